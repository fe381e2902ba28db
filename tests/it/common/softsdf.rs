//! The software SDF device (`crates/softsdf`) for tests: built once per test process with cargo
//! (the workspace's target directory) and loaded as a vendor's library would be; keys provisioned
//! in its documented file format.

use std::path::{Path, PathBuf};
use std::process::Command;

use pension_gateway::crypto::SecretKey;

/// The device library, built once per test process.
pub fn softsdf_library() -> &'static Path {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(build_softsdf)
}

/// Builds the device library with cargo (the workspace's target directory) and returns its path,
/// as cargo reports it.
fn build_softsdf() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "softsdf",
            "--lib",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p softsdf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "softsdf")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .expect("cargo reports the softsdf shared library")
}

/// Writes key `index` and its `password` into `dir`, 0600, in the device's documented format
/// (`sign-<index>.key`, `sign-<index>.pass`).
pub fn provision(dir: &Path, index: u32, key: &SecretKey, password: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (name, text) in [
        (format!("sign-{index}.key"), key.to_hex().to_string()),
        (format!("sign-{index}.pass"), format!("{password}\n")),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(name))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
}
