#!/usr/bin/env bash
# What signing through a cryptographic module costs the request path: one binary, `serve --demo`
# on a fresh SQLite file per run (log level warn), the bank's active key either a file (v1, the
# demo key) or the software device's key (v2, added with `keys add-module-key`, activated),
# reached through its SDF face (`--key-index 1`) and/or its PKCS#11 face (token `softsdf`, key
# `--key-label sign-1`, the same key file), the device with no injected latency and with
# LATENCY_US of it, in alternating rounds, each measured by `bench http --concurrency 16
# --requests N --warmup 2000 --server-pid --backend` (every answer's signature verified; the run
# fails unless the server signed every answer with the named backend).
#
#   BIN=target/release/pension-gateway SOFTSDF_LIB=target/release/libsoftsdf.so \
#     scripts/module-cost.sh [rounds=6] [requests=20000] [latency_us=300] [sessions=4] [backends]
#
# backends: the module backends to measure, space-separated, `sdf` and/or `pkcs11` (the 5th
# argument, else $BACKENDS, else `sdf`). Each round runs file, then per backend its 0 µs and
# L µs variants, in the order given.
#
# Prints one line per run: the round, the variant (file | sdf-0us | sdf-<L>us | p11-0us |
# p11-<L>us), the throughput, the server's CPU per request, p50/p99 and the server's mean signing
# time. The software device sleeps the latency at the start of every call that reaches it: an
# SDF signature is one such call (SDF_InternalSign_ECC), a PKCS#11 signature two (C_SignInit,
# C_Sign), so p11-<L>us waits 2·L per signature. Only 127.0.0.1:8080 and :9100 (the demo's
# listeners, which must be free); stops only the gateway it started.
set -euo pipefail
rounds=${1:-6}
requests=${2:-20000}
latency=${3:-300}
sessions=${4:-4}
backends=${5:-${BACKENDS:-sdf}}
for b in $backends; do
    case $b in
        sdf | pkcs11) ;;
        *) echo "module-cost.sh: unknown backend \`$b' (sdf | pkcs11)" >&2; exit 2 ;;
    esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${BIN:-target/release/pension-gateway}")
lib=$(realpath "${SOFTSDF_LIB:-target/release/libsoftsdf.so}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The rings: keys-file is a copy of the demo ring (v1, a file, active); keys-sdf / keys-p11 the
# same with v2 added in the software device (SDF face: index 1; PKCS#11 face: token `softsdf`,
# key label `sign-1`, user PIN file token.pin) and activated. The device's key: a fresh SM2 key at
# index 1.
umask 077
mkdir "$work/device" "$work/keys-file"
cp -r "$repo/keys/demo/." "$work/keys-file/"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2 -out "$work/device/sign-1.key" 2>/dev/null
printf '%s\n' 'module-cost-Pw-1' > "$work/device/sign-1.pass"
printf '%s\n' 'module-cost-Pw-1' > "$work/device/token.pin"
variants=file
for b in $backends; do
    case $b in
        sdf)
            cp -r "$work/keys-file" "$work/keys-sdf"
            printf '%s\n' 'module-cost-Pw-1' > "$work/keys-sdf/soft.pass"
            (
                cd "$work"
                export SOFTSDF_DIR="$work/device"
                "$bin" --demo keys --dir keys-sdf add-module-key --module soft --key-index 1 \
                    --library "$lib" --password-file soft.pass --sessions "$sessions" >/dev/null
                "$bin" --demo keys --dir keys-sdf activate 2 --force >/dev/null
            )
            variants="$variants sdf-0us sdf-${latency}us"
            ;;
        pkcs11)
            cp -r "$work/keys-file" "$work/keys-p11"
            printf '%s\n' 'module-cost-Pw-1' > "$work/keys-p11/tok.pin"
            (
                cd "$work"
                export SOFTSDF_DIR="$work/device"
                "$bin" --demo keys --dir keys-p11 add-module-key --module tok --backend pkcs11 \
                    --token-label softsdf --key-label sign-1 --library "$lib" \
                    --password-file tok.pin --sessions "$sessions" >/dev/null
                "$bin" --demo keys --dir keys-p11 activate 2 --force >/dev/null
            )
            variants="$variants p11-0us p11-${latency}us"
            ;;
    esac
done

for round in $(seq "$rounds"); do
    for variant in $variants; do
        case $variant in
            file) keys=keys-file backend=file lat=0 ;;
            sdf-0us) keys=keys-sdf backend=sdf lat=0 ;;
            sdf-*) keys=keys-sdf backend=sdf lat=$latency ;;
            p11-0us) keys=keys-p11 backend=pkcs11 lat=0 ;;
            p11-*) keys=keys-p11 backend=pkcs11 lat=$latency ;;
        esac
        dir=$(mktemp -d -p "$work")
        (
            cd "$dir"
            env -i PATH=/usr/bin:/bin HOME="$dir" GATEWAY__LOG__LEVEL=warn \
                GATEWAY__KEYS__DIR="$work/$keys" SOFTSDF_DIR="$work/device" \
                SOFTSDF_LATENCY_US=$lat "$bin" serve --demo >serve.log 2>&1 &
            pid=$!
            trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
            for _ in $(seq 100); do
                curl -sf http://127.0.0.1:9100/readyz >/dev/null && break
                sleep 0.1
            done
            if ! out=$("$bin" --demo bench http --concurrency 16 --requests "$requests" \
                --warmup 2000 --server-pid "$pid" --keys-dir "$work/$keys" \
                --backend "$backend" 2>&1); then
                echo "round=$round variant=$variant FAILED:"; echo "$out"; tail -5 serve.log
                exit 1
            fi
            rate=$(grep -E '^throughput' <<<"$out" | awk '{print $2}')
            cpu=$(grep -E '^server CPU  ' <<<"$out" | awk '{print $3}')
            p50=$(grep -E '^latency' <<<"$out" | sed -E 's/.*p50 ([0-9.]+) ms.*/\1/')
            p99=$(grep -E '^latency' <<<"$out" | sed -E 's/.* p99 ([0-9.]+) ms.*/\1/')
            sign=$(grep -E '^signing' <<<"$out" | sed -E 's/.*mean ([0-9.-]+) µs.*/\1/')
            echo "round=$round variant=$variant req_per_s=$rate server_cpu_us=$cpu sign_mean_us=$sign p50_ms=$p50 p99_ms=$p99"
        )
    done
done
