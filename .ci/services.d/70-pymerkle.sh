#!/usr/bin/env bash
# pymerkle, the independent Merkle-tree implementation the audit log's roots and proofs are
# checked against (tests/it/audit/log.rs runs tests/data/verify_with_pymerkle.py):
# TEST_PYMERKLE_PYTHON. A venv under $PG_CI_DIR with pinned versions; SM3 comes from gmssl
# (pure Python), so the check does not depend on the local OpenSSL offering SM3.
set -euo pipefail
venv="${PG_CI_DIR}/pymerkle-venv"
pins=(pymerkle==7.0.0 cachetools==7.2.1 gmssl==3.2.2 pycryptodomex==3.24.2)
check='import pymerkle, gmssl.sm3; assert pymerkle.__version__ == "7.0.0", pymerkle.__version__'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "== python3 with venv is missing; installing Debian's python3-venv" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  fi
  echo "== creating the pymerkle venv in $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
  "$venv/bin/python" -c "$check" >&2
fi
echo "== pymerkle ready; TEST_PYMERKLE_PYTHON=${venv}/bin/python" >&2
echo "export TEST_PYMERKLE_PYTHON='${venv}/bin/python'"
