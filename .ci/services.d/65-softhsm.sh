#!/usr/bin/env bash
# SoftHSM 2 (Debian's softhsm2), the PKCS#11 token the `pkcs11` client's plumbing is tested
# against (crates/pkcs11/tests/softhsm.rs, tests/it/module/pkcs11.rs): TEST_SOFTHSM2_LIB. The
# tests make their own tokens in a temporary SOFTHSM2_CONF directory; nothing runs here.
set -euo pipefail
lib=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$lib" ] || ! command -v softhsm2-util >/dev/null; then
  echo "== softhsm2 is missing; installing Debian's softhsm2" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >&2
fi
echo "== softhsm2 ready; TEST_SOFTHSM2_LIB=$lib" >&2
echo "export TEST_SOFTHSM2_LIB='$lib'"
