#!/usr/bin/env bash
# GmSSL 3.1's command-line tool, the independent SDF client of the software SDF device's
# conformance test (tests/it/module/sdf_conformance.rs, docs/hsm.md): TEST_GMSSL_BIN.
#
# GmSSL's source is taken from the `easy-gmssl` 2.0.1 source distribution on PyPI (it ships
# GmSSL-3.1.1 inside), checked against the sha256 pinned below, built with cmake into
# $PG_CI_DIR/gmssl (only the `gmssl` tool, statically linked against its own library), and
# reused when already built. Nothing of GmSSL is kept in the repository.
set -euo pipefail

EASY_GMSSL_VERSION=2.0.1
EASY_GMSSL_SHA256=18f74927a4a0a57c46d2912284bc0232a792a0fb8d078c2346b2a05f4b7e9607
GMSSL_DIR_IN_SDIST=easy_gmssl/Core/GmSSL-3.1.1

ci_dir="${PG_CI_DIR:-/tmp/pension-gateway-ci}"
prefix="$ci_dir/gmssl"
bin="${TEST_GMSSL_BIN:-$prefix/bin/gmssl}"

runs() { [ -x "$1" ] && "$1" version >/dev/null 2>&1; }

if ! runs "$bin"; then
  if [ -n "${TEST_GMSSL_BIN:-}" ]; then
    echo "TEST_GMSSL_BIN=$TEST_GMSSL_BIN does not run" >&2
    exit 1
  fi
  mkdir -p "$prefix"
  # One build at a time: sessions and CI runs on one machine share $PG_CI_DIR.
  exec 9>"$prefix/.lock"
  flock 9
  if ! runs "$bin"; then
    started=$SECONDS
    echo "== building GmSSL from easy-gmssl ${EASY_GMSSL_VERSION} (PyPI source distribution)" >&2
    if ! command -v cmake >/dev/null; then
      echo "== cmake is not installed; installing it" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >&2
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
      echo "== pip is not installed; installing it" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >&2
    fi
    work="$(mktemp -d "$prefix/build.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      -d "$work" "easy-gmssl==${EASY_GMSSL_VERSION}" >&2
    sdist="$work/easy_gmssl-${EASY_GMSSL_VERSION}.tar.gz"
    echo "${EASY_GMSSL_SHA256}  ${sdist}" | sha256sum --check --quiet - >&2 || {
      echo "easy-gmssl ${EASY_GMSSL_VERSION}: sha256 is not the pinned ${EASY_GMSSL_SHA256}" >&2
      exit 1
    }
    tar -xzf "$sdist" -C "$work" "easy_gmssl-${EASY_GMSSL_VERSION}/${GMSSL_DIR_IN_SDIST}"
    cmake -S "$work/easy_gmssl-${EASY_GMSSL_VERSION}/${GMSSL_DIR_IN_SDIST}" -B "$work/build" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF >"$work/cmake.log" 2>&1 || {
      cat "$work/cmake.log" >&2
      exit 1
    }
    cmake --build "$work/build" --target gmssl-bin -j "$(nproc)" >"$work/build.log" 2>&1 || {
      tail -50 "$work/build.log" >&2
      exit 1
    }
    mkdir -p "$prefix/bin"
    cp "$work/build/bin/gmssl" "$prefix/bin/gmssl.new"
    mv "$prefix/bin/gmssl.new" "$prefix/bin/gmssl"
    echo "== GmSSL built in $((SECONDS - started)) s" >&2
  fi
  flock -u 9
fi
runs "$bin" || { echo "$bin does not run" >&2; exit 1; }
echo "== GmSSL ready; TEST_GMSSL_BIN=${bin} ($("$bin" version | head -1))" >&2
echo "export TEST_GMSSL_BIN='${bin}'"
