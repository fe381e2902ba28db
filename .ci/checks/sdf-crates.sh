#!/usr/bin/env bash
# The SDF crates of the workspace (crates/softsdf, crates/sdf). Cargo commands run at the root
# select the root package only, so .ci/run's clippy, doc and test steps do not reach them
# (`cargo fmt --check` does): run those three here.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p softsdf -p sdf --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p softsdf -p sdf
cargo test -p softsdf -p sdf
