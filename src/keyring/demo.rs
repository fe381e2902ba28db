//! The demo key ring, built into the binary so that a bare `pension-gateway` (installed with
//! `cargo install --path .`) runs its demo from any directory. The same files stay readable in
//! `keys/demo/` of the repository; they are published, so they are refused outside demo mode.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::KeyRingError;

/// The key directory the demo's settings name (relative to the working directory).
pub const DEMO_KEYS_DIR: &str = "keys/demo";

/// Where the built-in ring is written when `keys/demo` is not at hand (beside the demo's
/// SQLite database, relative to the working directory).
pub const MATERIALIZED_DIR: &str = "data/demo-keys";

/// The demo key ring's files: name, contents, and whether the file is secret (mode 0600).
pub const FILES: [(&str, &str, bool); 8] = [
    (
        "keyring.toml",
        include_str!("../../keys/demo/keyring.toml"),
        false,
    ),
    (
        "bank-v1.key",
        include_str!("../../keys/demo/bank-v1.key"),
        true,
    ),
    (
        "bank-v1.pub",
        include_str!("../../keys/demo/bank-v1.pub"),
        false,
    ),
    (
        "wechat-v1.key",
        include_str!("../../keys/demo/wechat-v1.key"),
        true,
    ),
    (
        "wechat-v1.pub",
        include_str!("../../keys/demo/wechat-v1.pub"),
        false,
    ),
    (
        "open-platform-wbdemo0000000001-v1.secret",
        include_str!("../../keys/demo/open-platform-wbdemo0000000001-v1.secret"),
        true,
    ),
    (
        "callback-demo-partner-v1.secret",
        include_str!("../../keys/demo/callback-demo-partner-v1.secret"),
        true,
    ),
    (
        "hmac-fappdemo0001-v1.secret",
        include_str!("../../keys/demo/hmac-fappdemo0001-v1.secret"),
        true,
    ),
];

/// The directory to load the demo ring from: `dir` itself unless it is the default
/// `keys/demo` and that directory is not there (an installed binary run elsewhere); then the
/// built-in ring, written afresh under `data/demo-keys` (directory 0700, secrets 0600).
pub fn resolve(dir: &Path) -> Result<PathBuf, KeyRingError> {
    if dir != Path::new(DEMO_KEYS_DIR) || dir.join("keyring.toml").exists() {
        return Ok(dir.to_path_buf());
    }
    let out = PathBuf::from(MATERIALIZED_DIR);
    write_to(&out)?;
    Ok(out)
}

/// Writes the built-in ring into `out` (created if missing), replacing what is there.
pub fn write_to(out: &Path) -> Result<(), KeyRingError> {
    let io = KeyRingError::io;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(out).map_err(|e| io(out, e))?;
    for (name, text, secret) in FILES {
        let path = out.join(name);
        // Replace, never write through: a file or link already there is removed first.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, if secret { 0o600 } else { 0o644 });
        let mut f = opts.open(&path).map_err(|e| io(&path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io(&path, e))?;
    }
    Ok(())
}
