#!/usr/bin/env bash
# Install every Debian package the palhm test suite needs (Debian 12, run as root).
#
# Meant for a throwaway machine or container (CI), but safe on a kept one:
# - only packages that are not installed yet are installed, with --no-upgrade:
#   nothing already on the machine is upgraded or removed;
# - no daemon starts during the install: a policy-rc.d that denies every start is
#   put in place for the install only (an existing /usr/sbin/policy-rc.d is left
#   alone), and the services of the packages installed here are disabled
#   afterwards, so slapd, nsd, unbound and postgresql do not start at boot either
#   (the tests start their own servers on 127.0.0.1);
# - it prints every package it installed (dependencies included), so they can be
#   removed with `apt-get purge` later;
# - it writes no temporary file of its own (apt keeps its usual cache in
#   /var/cache/apt; `apt-get clean` empties it).
#
# Idempotent: when every package is already installed the apt calls are skipped,
# so a warm CI machine pays only for one dpkg-query. Other helpers add packages
# to the one PACKAGES array below; keep one package per line with its reason.
set -euo pipefail

PACKAGES=(
	# databases (tests/services/databases.py): servers started by hand, dump tools
	mariadb-server-core   # mariadb-install-db, mariadbd
	mariadb-client        # mysqldump (mariadb-dump), mariadb, mariadb-admin
	postgresql            # initdb, pg_ctl, psql, pg_dumpall (postgresql-15)
	slapd                 # slapd, slapadd, slapcat
	ldap-utils            # ldapadd, ldapsearch
	# mail: the mailx MUA talks SMTP to the aiosmtpd receiver
	s-nail
	# DNSSEC lab: authoritative nsd, validating unbound, dig, zone signing
	bind9-dnsutils
	unbound
	nsd
	ldnsutils
	iproute2              # `ip link set lo up` inside unshare -n
	# filters and tools named by core.json and the example configs
	zstd
	xz-utils
	gzip
	gnupg                 # gpg, gpg-agent, gpgconf (encrypted dumps)
	tar
	attr                  # setfattr/getfattr: tar --xattrs round trips
	util-linux            # lsblk, unshare, setpriv, uptime helpers
	procps                # uptime, ps
	b3sum                 # check palhm's default blake3 checksums by hand
	xxhash                # xxhsum: check xxh3-128 checksums by hand
	# boot report and system integration tests
	openssl               # self-signed certificate for the TLS SMTP receivers
	make                  # `make install-units` test
	systemd               # systemd-analyze verify of the shipped units (systemd is not PID 1 here)
	# packaging: `make deb` (Debian tooling) and the man pages and completions
	debhelper
	dh-python
	pybuild-plugin-pyproject
	python3-all
	python3-setuptools
	python3-wheel
	python3-venv          # the package tests install the wheel into a fresh venv
	python3-shtab         # bash and zsh completions generated from the argparse parser
	python3-argparse-manpage  # palhm(1) generated from the argparse parser
	python3-pip           # `make deb` fetches the two libraries Debian 12 lacks (pyjson5, blake3)
	man-db                # `man palhm` in the package test
	zsh                   # syntax check of the generated zsh completion
	fish                  # syntax check of the generated fish completion
)

started=$EPOCHREALTIME

installed_packages() {
	dpkg-query -W -f='${db:Status-Status} ${binary:Package}\n' | awk '$1 == "installed" { print $2 }' | sort
}

missing=()
for package in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
	if [[ "$status" != installed ]]; then
		missing+=("$package")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "install-test-deps: all ${#PACKAGES[@]} packages already installed"
else
	echo "install-test-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
	before=$(installed_packages)
	policy=/usr/sbin/policy-rc.d
	own_policy=false
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# written by palhm scripts/install-test-deps.sh for one apt-get run\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=true
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade \
		"${missing[@]}" >/dev/null
	if $own_policy; then
		rm -f "$policy"
		trap - EXIT
	fi
	new=$(comm -13 <(echo "$before") <(installed_packages))
	# services of the newly installed packages: installed, never enabled at boot
	for package in $new; do
		while read -r unit; do
			systemctl disable --quiet "$(basename "$unit")" 2>/dev/null || true
		done < <(dpkg -L "$package" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.(service|socket|timer)$' || true)
		while read -r script; do
			update-rc.d -f "$(basename "$script")" disable >/dev/null 2>&1 || true
		done < <(dpkg -L "$package" 2>/dev/null | grep -E '^/etc/init\.d/[^/]+$' || true)
	done
	echo "install-test-deps: installed $(echo "$new" | grep -c . || true) package(s) (remove with apt-get purge):"
	echo "$new" | fmt -w 100 | sed 's/^/  /'
fi

awk -v a="$started" -v b="$EPOCHREALTIME" \
	'BEGIN { printf "install-test-deps: done in %.1f s\n", b - a }'
