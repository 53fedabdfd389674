# Installation helpers for files pip does not install (systemd units, examples).
# palhm itself is installed with pip/pipx; see README.md.
#
#   make install-units [DESTDIR=/staging] [PREFIX=/usr/local] [PALHM=/path/to/palhm]
#
# Nothing here enables or starts a unit: the commands to do so are printed.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# The palhm executable the units run (written into their ExecStart= lines).
PALHM ?= $(BINDIR)/palhm
DESTDIR ?=
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
DOC_DIR ?= $(PREFIX)/share/doc/palhm

DATA := src/palhm/data
UNITS := palhm-boot-report.service palhm@.service palhm@.timer \
	palhm-drill@.service palhm-drill@.timer
EXAMPLES := $(notdir $(wildcard $(DATA)/examples/*))

.PHONY: install install-units install-examples uninstall-units

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
	@echo "  systemctl enable --now palhm-drill@TASK.timer  # restore drills (doc/restore.md)"

install-examples:
	install -d -m 755 "$(DESTDIR)$(DOC_DIR)/examples"
	for file in $(EXAMPLES); do \
		install -m 644 "$(DATA)/examples/$$file" "$(DESTDIR)$(DOC_DIR)/examples/$$file" || exit 1; \
	done

uninstall-units:
	for unit in $(UNITS); do rm -f "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit"; done
	@echo "Removed the unit files. Run: systemctl daemon-reload"
