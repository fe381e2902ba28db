//! The witness line's copy to a syslog socket (`audit.witness_syslog`), through the real binary:
//! a unix datagram socket stands in for `/dev/log`; the demo server, told to sign a checkpoint
//! every row, sends each witness line there exactly as the witness file holds it. A socket
//! nobody listens on stops the start, naming the setting.

use crate::common::demo_server::{printed_args, start_demo};
use crate::common::free_port;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");

fn demo(dir: &Path, socket: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("GATEWAY_CONFIG")
        .env(
            "GATEWAY__DATABASE__URL",
            format!("sqlite://{}/demo.db", dir.display()),
        )
        .env(
            "GATEWAY__SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "GATEWAY__SERVER__OPS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("GATEWAY__AUDIT__WITNESS_FILE", dir.join("witness.log"))
        .env("GATEWAY__AUDIT__WITNESS_SYSLOG", socket)
        .env("GATEWAY__AUDIT__CHECKPOINT_ROWS", "1");
    cmd
}

#[test]
fn witness_lines_reach_the_syslog_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("log");
    let daemon = UnixDatagram::bind(&socket).unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (_server, printed) = start_demo(&mut demo(tmp.path(), &socket));
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(printed_args(&printed))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The query's row is covered by a checkpoint of its own; its line goes to both.
    let mut buf = vec![0u8; 8192];
    let n = daemon
        .recv(&mut buf)
        .expect("a witness line on the syslog socket");
    let got = String::from_utf8(buf[..n].to_vec()).unwrap();
    assert!(got.starts_with("<85>"), "authpriv.notice: {got}");
    let file = std::fs::read_to_string(tmp.path().join("witness.log")).unwrap();
    let first = file.lines().next().expect("the witness file has the line");
    assert!(first.starts_with("pgw1 "), "{first}");
    assert!(
        got.ends_with(&format!("]: {first}")),
        "syslog copy {got:?} is not the file's line {first:?}"
    );
}

#[test]
fn a_syslog_socket_nobody_listens_on_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path(), &tmp.path().join("no-daemon"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit.witness_syslog") && err.contains("no-daemon"),
        "{err}"
    );
}
