#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: system packages, a venv with
# palhm and its test dependencies, lint, type check, then pytest. Services (moto,
# SMTP receiver, MariaDB, PostgreSQL, slapd, DNSSEC lab) are started by the pytest
# fixtures on 127.0.0.1 and stopped by them; in this script a missing service FAILS.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
bash scripts/install-test-deps.sh
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[aws,test]'
bash scripts/install-s3-stores.sh .venv/bin/python  # Ceph RGW, SeaweedFS, s3rver for tests/contract
echo "== setup took $(( $(date +%s) - start )) s"

echo "== ruff"
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
export PALHM_TEST_REQUIRE_SERVICES="${PALHM_TEST_REQUIRE_SERVICES:-1}"
.venv/bin/pytest -q -p no:cacheprovider "$@"
