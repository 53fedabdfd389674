#!/usr/bin/env bash
# Install every Debian package the palhm test suite needs (Debian 12, run as root).
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
)

started=$EPOCHREALTIME

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
	echo "install-test-deps: installing ${#missing[@]} package(s): ${missing[*]}"
	apt-get update -qq
	# Install the whole list, not only the missing ones, so apt also fixes a
	# half-configured package; daemons are never started (policy-rc.d).
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${PACKAGES[@]}" >/dev/null
fi

awk -v a="$started" -v b="$EPOCHREALTIME" \
	'BEGIN { printf "install-test-deps: done in %.1f s\n", b - a }'
