//! The one-shot commands as a script uses them: output piped into a reader that stops early.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use crate::common::process::BIN;

/// `keys list | head -0`: the reader is gone before the first line. The command ends by
/// SIGPIPE, as `ls | head` does, with no panic and no backtrace (it used to exit 101 with
/// "failed printing to stdout: Broken pipe").
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["--demo", "keys", "--dir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo"))
        .arg("list")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(tempfile::tempdir().unwrap().path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?}: {stderr}", out.status);
}
