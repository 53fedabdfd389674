# Packages, generated manuals, and installation helpers for a pip/pipx install.
#
#   make deb        the Debian package, in dist/ (Debian 12; needs the packages that
#                   scripts/install-test-deps.sh installs: debhelper, dh-python ...)
#   make wheel      wheel and sdist in dist/ (python3 -m build)
#   make manuals    man pages and completions in build/manuals (also made by both)
#   make install-units [DESTDIR=/staging] [PALHM=/path/to/palhm]
#   make install-examples [DOC_DIR=...]
#
# The Debian package installs units and examples itself; install-units and
# install-examples are for a pip or pipx install. Nothing here enables or starts a
# unit: the commands to do so are printed.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
PYTHON ?= python3
# The palhm executable the units run (written into their ExecStart= lines): the one
# on PATH (pipx puts it in ~/.local/bin or $PIPX_BIN_DIR), else $(BINDIR)/palhm.
PALHM ?= $(or $(shell command -v palhm 2>/dev/null),$(BINDIR)/palhm)
DESTDIR ?=
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
DOC_DIR ?= $(PREFIX)/share/doc/palhm

DATA := src/palhm/data
UNITS := palhm-boot-report.service palhm@.service palhm@.timer
EXAMPLES := $(notdir $(wildcard $(DATA)/examples/*))

.PHONY: install install-units install-examples uninstall-units deb wheel manuals

DEB_BUILD := build/deb
# the source tree without local state, copied so that the build writes nothing here
DEB_EXCLUDES := --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./.git \
	--exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache \
	--exclude=.pytest_cache --exclude=.hypothesis --exclude='*.egg-info'

deb:
	rm -rf "$(DEB_BUILD)" && mkdir -p "$(DEB_BUILD)/palhm" dist
	tar -c $(DEB_EXCLUDES) . | tar -x -C "$(DEB_BUILD)/palhm"
	# Debian's own python3 and tools, whatever python a PATH (pyenv, a venv) puts first
	cd "$(DEB_BUILD)/palhm" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -b -us -uc
	mv "$(DEB_BUILD)"/palhm_*.deb dist/
	@ls dist/palhm_*.deb

wheel:
	$(PYTHON) -m build --outdir dist .

manuals:
	$(PYTHON) scripts/gen_manuals.py build/manuals

install: install-units install-examples

install-units:
	install -d -m 755 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)"
	for unit in $(UNITS); do \
		sed 's|/usr/local/bin/palhm|$(PALHM)|g' "$(DATA)/systemd/$$unit" \
			> "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit" || exit 1; \
		chmod 644 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit" || exit 1; \
	done
	@echo "Installed $(UNITS) in $(DESTDIR)$(SYSTEMD_UNIT_DIR)."
	@echo "Nothing was enabled. To activate (as root, on the target system):"
	@echo "  systemctl daemon-reload"
	@echo "  systemctl enable palhm-boot-report.service"
	@echo "  systemctl enable --now palhm@TASK.timer      # e.g. palhm@backup.timer"

install-examples:
	install -d -m 755 "$(DESTDIR)$(DOC_DIR)/examples" "$(DESTDIR)$(DOC_DIR)/conf.d"
	for file in $(EXAMPLES); do \
		install -m 644 "$(DATA)/examples/$$file" "$(DESTDIR)$(DOC_DIR)/examples/$$file" || exit 1; \
	done
	# the DNSSEC example includes ../conf.d/core.json
	install -m 644 "$(DATA)/conf.d/core.json" "$(DESTDIR)$(DOC_DIR)/conf.d/core.json"

uninstall-units:
	for unit in $(UNITS); do rm -f "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit"; done
	@echo "Removed the unit files. Run: systemctl daemon-reload"
