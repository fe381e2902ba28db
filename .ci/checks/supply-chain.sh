#!/usr/bin/env bash
# Supply chain: licences, banned crates and sources of every dependency (cargo-deny, deny.toml),
# and a real version requirement for every dependency of every manifest in the repository.
#
# The advisory check (`cargo deny check advisories`) is not run here: it needs the RustSec
# database from a Git host that CI cannot reach (deny.toml says the same).
set -euo pipefail
cd "$(dirname "$0")/../.."

deny="$(bash .ci/tools/cargo-deny.sh)"
"$deny" --log-level error check licenses bans sources
# The fuzz crate is its own workspace (excluded from the root one): judged on its own lock file,
# with the same deny.toml (cargo-deny looks for it from the manifest upwards).
"$deny" --log-level error --manifest-path fuzz/Cargo.toml check licenses bans sources

# cargo-deny refuses `*` but not a bare major-zero requirement: `"0"` accepts every 0.y release,
# each of which may break the API. A requirement must name the minor when the major is 0.
python3 - <<'PY'
import pathlib, re, sys, tomllib

bad = []
for manifest in sorted(pathlib.Path(".").glob("**/Cargo.toml")):
    if "target" in manifest.parts:
        continue
    doc = tomllib.loads(manifest.read_text())
    tables = [doc]
    tables += list(doc.get("target", {}).values())
    for table in tables:
        for section in ("dependencies", "dev-dependencies", "build-dependencies"):
            for name, spec in table.get(section, {}).items():
                req = spec if isinstance(spec, str) else spec.get("version")
                if req is None:
                    if isinstance(spec, dict) and ("path" in spec or spec.get("workspace")):
                        continue
                    bad.append(f"{manifest}: {name} has no version requirement")
                    continue
                for part in req.split(","):
                    part = part.strip().lstrip("^~=<> ")
                    if part == "*" or re.fullmatch(r"0(\.\*)?", part):
                        bad.append(f"{manifest}: {name} = \"{req}\" is not a real version requirement")
    for name, spec in doc.get("workspace", {}).get("dependencies", {}).items():
        req = spec if isinstance(spec, str) else spec.get("version", "")
        if req.strip() in ("*", "0"):
            bad.append(f"{manifest}: workspace dependency {name} = \"{req}\"")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print("every dependency names a real version requirement")
PY
