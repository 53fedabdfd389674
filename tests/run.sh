#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root): system packages, a
# venv with palhm and its test dependencies, lint, type check, then pytest. Services
# (moto, SMTP receiver, MariaDB, PostgreSQL, slapd, DNSSEC lab) are started by the
# pytest fixtures on 127.0.0.1 and stopped by them; in this script a missing service
# FAILS.
#
# Meant for a throwaway machine or container (CI). On a kept machine it installs
# only the Debian packages that are missing (never upgrades one; see
# scripts/install-test-deps.sh for the list and what it does to services) and
# prints them so they can be purged. pytest's temporary files go to one directory
# that is removed at the end, whatever the outcome (the servers' own temporary
# directories are removed by their fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
bash scripts/install-test-deps.sh
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[aws,test]'
bash scripts/install-s3-stores.sh .venv/bin/python  # Ceph RGW, SeaweedFS, s3rver for tests/contract
echo "== setup took $(( $(date +%s) - start )) s"

work=$(mktemp -d /tmp/palhm-tests.XXXXXX)
chmod 755 "$work"  # database servers run as their own users below it
trap 'rm -rf "$work"' EXIT

echo "== ruff"
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
export PALHM_TEST_REQUIRE_SERVICES="${PALHM_TEST_REQUIRE_SERVICES:-1}"
.venv/bin/pytest -q -p no:cacheprovider --basetemp="$work/pytest" "$@"
