//! Stamps the binary with the commit it was built from, for `gateway_build_info{commit}`:
//! `PENSION_GATEWAY_COMMIT` when the build sets it (a release pipeline building from an
//! archive), otherwise `git rev-parse --short=12 HEAD` (the commit, not uncommitted changes:
//! watching the work tree would rebuild the crate on every edit),
//! otherwise `unknown` (no git, not a checkout).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=PENSION_GATEWAY_COMMIT");
    let commit = match std::env::var("PENSION_GATEWAY_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves (a checkout, a commit on the current branch).
            // Only files that exist: a missing one (a packed ref) would rerun this every build.
            let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(git(&["rev-parse", "--git-path", &r]));
            }
            for p in watched.into_iter().flatten() {
                if std::path::Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=PENSION_GATEWAY_COMMIT={commit}");
}
