//! The newcomer's path, end to end with the real binary: start the demo (`serve --demo`: with
//! the test's `GATEWAY__*` overrides a bare invocation would be refused), run the exact
//! `client query` command it prints against it, check the answer verified, use the self-test
//! tools, then SIGTERM and expect a clean exit.

use crate::common::demo_server::{printed_args, start_demo};
use crate::common::free_port;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");

/// One HTTP/1.1 request on a fresh loopback connection: the status and the body.
fn http(port: u16, method: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn demo_server_answers_the_printed_command() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (ops_port, admin_port) = (free_port(), free_port());
    let token_file = tmp.path().join("admin.token");
    std::fs::write(
        &token_file,
        "dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (server, printed) = start_demo(
        Command::new(BIN)
            .args(["serve", "--demo"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env(
                "GATEWAY__DATABASE__URL",
                format!("sqlite://{}/demo.db", tmp.path().display()),
            )
            .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "GATEWAY__SERVER__OPS_LISTEN",
                format!("127.0.0.1:{ops_port}"),
            )
            .env(
                "GATEWAY__SERVER__ADMIN_LISTEN",
                format!("127.0.0.1:{admin_port}"),
            )
            .env("GATEWAY__SERVER__ADMIN_TOKEN_FILE", &token_file),
    );
    let args = printed_args(&printed);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(&args[..2], ["client", "query"]);
    assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HTTP 200"), "{text}");
    assert!(text.contains("\"pension_status\": 1"), "{text}");
    assert!(
        text.contains("response signature: VERIFIED (bank key version 1)"),
        "{text}"
    );

    // A signed error is verified too, and the client exits 4: a script can tell a verified
    // non-200 from success.
    let mut bad = args.clone();
    let name_at = bad.iter().position(|a| *a == "--name").unwrap() + 1;
    bad[name_at] = "张四";
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INVALID_USER_INFO") && text.contains("VERIFIED"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(4), "{text}");

    // An answer whose signature does not verify (the client trusts another bank key): exit 5,
    // whatever the status.
    let wrong = tmp.path().join("wrong-keys");
    std::fs::create_dir(&wrong).unwrap();
    let demo_keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/demo");
    std::fs::copy(demo_keys.join("wechat-v1.key"), wrong.join("wechat-v1.key")).unwrap();
    std::fs::write(
        wrong.join("bank-v1.pub"),
        pension_gateway::crypto::SecretKey::generate()
            .public_key()
            .to_hex(),
    )
    .unwrap();
    let mut unverified = args.clone();
    let wrong_dir = wrong.to_str().unwrap().to_owned();
    unverified.extend(["--keys-dir", wrong_dir.as_str()]);
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&unverified)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT VERIFIED"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");

    // The listeners: readiness and metrics on the ops port only; the admin reload only with
    // its bearer token; the public /healthz says "ok" and nothing else.
    let (status, body) = http(port, "GET", "/healthz", None);
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(http(port, "GET", "/readyz", None).0, 404);
    assert_eq!(http(port, "GET", "/metrics", None).0, 404);
    let (status, body) = http(ops_port, "GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(ops_port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(body.contains("gateway_requests_total"), "{body}");
    assert_eq!(
        http(admin_port, "POST", "/admin/keyring/reload", None).0,
        401
    );
    assert_eq!(
        http(
            admin_port,
            "POST",
            "/admin/keyring/reload",
            Some("Bearer wrong")
        )
        .0,
        401
    );
    let (status, body) = http(
        admin_port,
        "POST",
        "/admin/keyring/reload",
        Some("Bearer dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE="),
    );
    assert_eq!(status, 200, "{body}");

    // Graceful shutdown on SIGTERM: exit 0 within the shutdown timeout.
    let mut child = server;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn self_test_tools_sign_and_verify() {
    let sign = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "client",
            "sign",
            "--timestamp",
            "1661776967",
            "--nonce",
            "5f270f2ff52b0c67dd47cd5c3ee17e91",
            "--body",
            r#"{"a":1}"#,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sign.stdout).to_string();
    assert!(sign.status.success(), "{text}");
    assert!(text.contains("POST\\n\n/v1/pension/account\\n\n1661776967\\n\n5f270f2ff52b0c67dd47cd5c3ee17e91\\n\n{\"a\":1}\\n"), "{text}");
    let sig = text
        .lines()
        .find(|l| l.starts_with("signature"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let verify = |ts: &str| {
        Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "client",
                "verify",
                "--timestamp",
                ts,
                "--nonce",
                "5f270f2ff52b0c67dd47cd5c3ee17e91",
                "--body",
                r#"{"a":1}"#,
                "--signature",
                &sig,
                "--public-key",
                "keys/demo/wechat-v1.pub",
            ])
            .output()
            .unwrap()
    };
    let ok = verify("1661776967");
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("VERIFIED"));
    let bad = verify("1661776968");
    assert!(!bad.status.success());
}

/// The running server picks up key changes from SIGHUP and from the manifest watch, with the
/// `keys` commands doing the edits, exactly as the runbook says.
#[test]
fn running_server_reloads_on_sighup_and_on_manifest_change() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), keys.join(e.file_name())).unwrap();
    }
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1/pension/account");
    let env = |c: &mut Command, watch: &str| {
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env(
                "GATEWAY__DATABASE__URL",
                format!("sqlite://{}/demo.db", tmp.path().display()),
            )
            .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEWAY__SERVER__ADMIN_LISTEN", "")
            .env("GATEWAY__SERVER__OPS_LISTEN", "")
            .env("GATEWAY__KEYS__DIR", &keys)
            .env("GATEWAY__KEYS__WATCH_INTERVAL_SECS", watch);
    };
    let start = |watch: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--demo"]);
        env(&mut cmd, watch);
        start_demo(&mut cmd).0
    };
    let query = || {
        let out = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "client",
                "query",
                "--url",
                &url,
                "--name",
                "张三",
                "--id-number",
                "11010519491231002X",
                "--keys-dir",
            ])
            .arg(&keys)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let keys_cmd = |args: &[&str]| {
        // `--dir` names the key directory: no configuration needed.
        let out = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("keys")
            .arg("--dir")
            .arg(&keys)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let wait_for = |version: u32, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = query();
            if out.contains(&format!("VERIFIED (bank key version {version})")) {
                break;
            }
            assert!(Instant::now() < deadline, "{what}: {out}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // Phase 1, no watch: the edit is invisible until SIGHUP.
    let server = start("0");
    assert!(query().contains("VERIFIED (bank key version 1)"));
    keys_cmd(&["generate"]);
    keys_cmd(&["export-public", "2"]);
    keys_cmd(&["activate", "2"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        query().contains("VERIFIED (bank key version 1)"),
        "no reload without a trigger"
    );
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(2, "SIGHUP reload not applied");
    // A broken manifest is refused on SIGHUP; the last good set keeps serving.
    let good = std::fs::read_to_string(keys.join("keyring.toml")).unwrap();
    std::fs::write(keys.join("keyring.toml"), "broken = [").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(query().contains("VERIFIED (bank key version 2)"));
    std::fs::write(keys.join("keyring.toml"), good).unwrap();
    drop(server);

    // Phase 2, watch every second: the manifest change alone is enough.
    let _server = start("1");
    wait_for(2, "restart with v2");
    keys_cmd(&["activate", "1"]);
    wait_for(1, "manifest change not picked up by the watch");
}

/// The installed binary's path: a bare run (no command, no configuration) from a directory
/// without the repository's `keys/demo` starts the demo on the built-in key ring, and the
/// command it prints, run from there too, gets a verified answer. (The bare demo listens on its
/// fixed ports, 127.0.0.1:8080 and :9100.)
#[test]
fn bare_run_outside_the_repository_uses_the_built_in_demo_ring() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(tmp.path()).env_remove("GATEWAY_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEWAY__") {
            cmd.env_remove(k);
        }
    }
    let (server, printed) = start_demo(&mut cmd);
    let args = printed_args(&printed);
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HTTP 200") && text.contains("VERIFIED (bank key version 1)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("data/demo-keys/bank-v1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the built-in private key is written 0600"
        );
    }
    drop(server);
}

/// `tls self-signed --ca-dir`: the first run creates the CA there, the next reuses it, and both
/// server certificates chain to the one `ca.pem` clients trust — a rotation can be rehearsed.
#[test]
fn tls_self_signed_with_a_ca_dir_reuses_the_ca() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str| {
        let o = Command::new(BIN)
            .current_dir(tmp.path())
            .env_clear()
            .args([
                "tls",
                "self-signed",
                "--ca-dir",
                "ca",
                "--host",
                "localhost",
            ])
            .args(["--out", out])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, text) = run("one");
    assert!(ok && text.contains("created the test CA"), "{text}");
    let (ok, text) = run("two");
    assert!(ok && text.contains("reused the test CA"), "{text}");
    let (ok, text) = run("ca");
    assert!(!ok && text.contains("--ca-dir and --out"), "{text}");

    let read = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap();
    let ca = read("ca/ca.pem");
    assert_eq!(ca, read("one/ca.pem"));
    assert_eq!(ca, read("two/ca.pem"));
    assert_ne!(read("one/cert.pem"), read("two/cert.pem"));
    let mode = std::fs::metadata(tmp.path().join("ca/ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    for out in ["one", "two"] {
        let leaf =
            CertificateDer::from_pem_slice(read(&format!("{out}/cert.pem")).as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{out}/cert.pem does not chain to ca/ca.pem: {e}"));
    }
}
