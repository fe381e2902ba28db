//! Key ring loading, validation, refusals and atomic reload.

use crate::common;

use common::{write_private, Keys};
use pension_gateway::crypto::{EngineKind, SecretKey};
use pension_gateway::keyring::{load_keyring, KeyRingError, KeyRingHandle, Manifest};

const ID: &[u8] = b"1234567812345678";

fn load(keys: &Keys, demo: bool) -> Result<pension_gateway::keyring::KeyRing, KeyRingError> {
    load_keyring(keys.dir.path(), EngineKind::DEFAULT, ID, demo)
}

#[test]
fn loads_a_valid_set() {
    let keys = Keys::new();
    let ring = load(&keys, false).unwrap();
    assert_eq!(ring.active_version(), 1);
    assert_eq!(
        ring.trusted_wechat_keys()
            .map(|k| k.version)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(ring.bank_public_key(1), Some(keys.bank[0].1.public_key()));
    assert!(!ring.is_demo());
}

#[cfg(unix)]
#[test]
fn private_key_files_must_be_0600() {
    use std::os::unix::fs::PermissionsExt;
    let keys = Keys::new();
    let path = keys.dir.path().join("bank-v1.key");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match load(&keys, false) {
            Err(KeyRingError::Permissions(p)) => assert!(p.ends_with("bank-v1.key"), "{p}"),
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load(&keys, false).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(load(&keys, false).is_ok());
}

#[test]
fn manifest_rules() {
    let ok = "[[bank]]\nversion=1\nstate=\"active\"\nprivate_key=\"b1\"\n[[wechat]]\nversion=1\nstate=\"trusted\"\npublic_key=\"w1\"\n";
    Manifest::parse(ok).unwrap().check().unwrap();
    let cases = [
        ("no active bank key", ok.replace("\"active\"", "\"staged\"")),
        ("two active", format!("{ok}[[bank]]\nversion=2\nstate=\"active\"\nprivate_key=\"b2\"\n")),
        ("repeated version", format!("{ok}[[bank]]\nversion=1\nstate=\"staged\"\nprivate_key=\"b2\"\n")),
        ("version zero", ok.replace("version=1\nstate=\"active\"", "version=0\nstate=\"active\"")),
        ("no trusted wechat", ok.replace("\"trusted\"", "\"untrusted\"")),
        ("path escape", ok.replace("\"b1\"", "\"../b1\"")),
        ("rollout of the active key", format!("{ok}[rollout]\nversion=1\npercent=10\n")),
        ("rollout unknown", format!("{ok}[rollout]\nversion=9\npercent=10\n")),
        ("rollout over 100", format!("{ok}[[bank]]\nversion=2\nstate=\"staged\"\nprivate_key=\"b2\"\n[rollout]\nversion=2\npercent=101\n")),
    ];
    for (what, text) in cases {
        let refused = Manifest::parse(&text).and_then(|m| m.check());
        assert!(refused.is_err(), "{what} was accepted");
    }
    assert!(Manifest::parse("bank = 1").is_err());
    assert!(Manifest::parse(&format!("{ok}unknown_key = 1\n")).is_err());
}

#[test]
fn demo_keys_refused_outside_demo_mode() {
    let keys = Keys::new();
    let text = std::fs::read_to_string(keys.dir.path().join("keyring.toml")).unwrap();
    std::fs::write(
        keys.dir.path().join("keyring.toml"),
        format!("demo = true\n{text}"),
    )
    .unwrap();
    let err = load(&keys, false).unwrap_err().to_string();
    assert!(err.contains("demo"), "{err}");
    assert!(load(&keys, true).unwrap().is_demo());
}

#[test]
fn the_shipped_demo_key_ring_is_consistent() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo"));
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    pension_gateway::server::prepare_demo_keys(copy.path()).unwrap();
    let ring = load_keyring(copy.path(), EngineKind::DEFAULT, ID, true).unwrap();
    assert!(ring.is_demo());
    let pub_hex = std::fs::read_to_string(dir.join("bank-v1.pub")).unwrap();
    assert_eq!(ring.bank_public_key(1).unwrap().to_hex(), pub_hex.trim());
    let wechat =
        SecretKey::parse(&std::fs::read_to_string(dir.join("wechat-v1.key")).unwrap()).unwrap();
    assert_eq!(
        wechat.public_key().to_hex(),
        std::fs::read_to_string(dir.join("wechat-v1.pub"))
            .unwrap()
            .trim()
    );
    assert!(load_keyring(copy.path(), EngineKind::DEFAULT, ID, false).is_err());
}

#[test]
fn broken_reload_keeps_the_old_set_and_good_reload_swaps() {
    let keys = Keys::new();
    let dir = keys.dir.path().to_path_buf();
    let ring = load(&keys, false).unwrap();
    let handle = KeyRingHandle::new(
        ring,
        Box::new(move || load_keyring(&dir, EngineKind::DEFAULT, ID, false)),
    );
    let before = handle.snapshot();
    // Corrupt manifest.
    std::fs::write(keys.dir.path().join("keyring.toml"), "this is [not toml").unwrap();
    assert!(handle.reload().is_err());
    assert_eq!(handle.snapshot().active_version(), 1);
    // Broken key file.
    keys.write_manifest("[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n");
    std::fs::write(keys.dir.path().join("wechat-v1.pub"), "04deadbeef").unwrap();
    assert!(handle.reload().is_err());
    assert!(handle.snapshot().wechat_key(1).is_some());
    // A good v2 set swaps in; the old snapshot is still usable by whoever holds it.
    let v2 = SecretKey::generate();
    write_private(&keys.dir.path().join("bank-v2.key"), &v2);
    std::fs::write(
        keys.dir.path().join("wechat-v1.pub"),
        keys.wechat[0].1.public_key().to_hex(),
    )
    .unwrap();
    std::fs::write(
        keys.dir.path().join("keyring.toml"),
        "[[bank]]\nversion = 1\nstate = \"retiring\"\nprivate_key = \"bank-v1.key\"\n[[bank]]\nversion = 2\nstate = \"active\"\nprivate_key = \"bank-v2.key\"\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    )
    .unwrap();
    handle.reload().unwrap();
    assert_eq!(handle.snapshot().active_version(), 2);
    assert_eq!(before.active_version(), 1);
    assert_eq!(handle.snapshot().response_signer(0).unwrap().version, 2);
}

#[test]
fn rollout_signs_the_configured_share() {
    let keys = Keys::new();
    write_private(&keys.dir.path().join("bank-v2.key"), &SecretKey::generate());
    std::fs::write(
        keys.dir.path().join("keyring.toml"),
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n[[bank]]\nversion = 2\nstate = \"staged\"\nprivate_key = \"bank-v2.key\"\n[rollout]\nversion = 2\npercent = 25\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    )
    .unwrap();
    let ring = load(&keys, false).unwrap();
    let v2 = (0..1000u64)
        .filter(|&pick| ring.response_signer(pick).unwrap().version == 2)
        .count();
    assert_eq!(v2, 250);
}

/// Log lines written while a closure runs (the process-wide subscriber is left alone).
fn captured_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn variable_time_signing_needs_an_explicit_setting() {
    use pension_gateway::config::Settings;
    use pension_gateway::server::{load_keys, StartError};
    let keys = Keys::new();
    let mut settings = Settings::default();
    settings.keys.dir = keys.dir.path().to_path_buf();
    assert!(!settings.keys.allow_variable_time_signing, "default is off");

    // The constant-time engines start without the flag, and without a warning.
    for engine in [EngineKind::Fast, EngineKind::RustCrypto] {
        settings.keys.engine = engine;
        let logs = captured_logs(|| {
            load_keys(&settings).unwrap();
        });
        assert!(!logs.contains("variable-time"), "{engine}: {logs}");
    }

    // libsm without the flag: refused, naming the setting.
    settings.keys.engine = EngineKind::Libsm;
    let err = load_keys(&settings)
        .err()
        .expect("libsm was accepted for signing");
    assert!(matches!(
        err,
        StartError::VariableTimeSigning(EngineKind::Libsm)
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("keys.allow_variable_time_signing") && msg.contains("libsm"),
        "{msg}"
    );

    // With the flag it starts, signs, and says so in the log.
    settings.keys.allow_variable_time_signing = true;
    let logs = captured_logs(|| {
        let handle = load_keys(&settings).unwrap();
        let ring = handle.snapshot();
        let signer = ring.response_signer(0).unwrap();
        let sig = signer.signer.sign(b"message").unwrap();
        let verifier = EngineKind::Fast
            .engine()
            .verifier(signer.signer.public_key(), ID)
            .unwrap();
        verifier.verify(b"message", &sig).unwrap();
    });
    assert!(
        logs.contains("WARN") && logs.contains("allow_variable_time_signing"),
        "{logs}"
    );
}

/// A copy of `keys/demo` marked as a production ring (`demo = false`), files at production
/// modes, in a fresh directory.
fn demo_copy_marked_production() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo"));
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        let to = dir.path().join(&name);
        let text = std::fs::read_to_string(e.path()).unwrap();
        std::fs::write(&to, text.replace("demo = true", "demo = false")).unwrap();
        let secret = name.ends_with(".key") || name.ends_with(".secret");
        let mode = if secret { 0o600 } else { 0o644 };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

/// Expects a `Published` refusal naming `file`; returns the message.
fn refused_as_published(
    result: Result<pension_gateway::keyring::KeyRing, KeyRingError>,
    file: &str,
) -> String {
    let err = result.expect_err("a published key was accepted");
    let msg = err.to_string();
    match &err {
        KeyRingError::Published { path, origin } => {
            assert!(path.ends_with(file), "{file}: {msg}");
            assert!(!origin.is_empty());
        }
        other => panic!("{file}: expected a published-key refusal, got {other:?}"),
    }
    assert!(msg.contains(file) && msg.contains("published key"), "{msg}");
    msg
}

/// Finding 3: the demo keys with `demo = false` are refused by fingerprint, key by key and
/// secret by secret, whatever the manifest says; in demo mode they load.
#[test]
fn published_keys_are_refused_by_fingerprint_outside_demo_mode() {
    use pension_gateway::partners::Channel;
    let dir = demo_copy_marked_production();
    let load = |demo| load_keyring(dir.path(), EngineKind::DEFAULT, ID, demo);
    assert!(!load(true).unwrap().is_demo(), "demo mode takes the copy");
    let msg = refused_as_published(load(false), "bank-v1.key");
    assert!(msg.contains("demo bank key"), "{msg}");
    // A fresh bank key: the WeChat key is the guide's published example.
    write_private(&dir.path().join("bank-v1.key"), &SecretKey::generate());
    let msg = refused_as_published(load(false), "wechat-v1.pub");
    assert!(msg.contains("§12.3"), "{msg}");
    // A fresh WeChat key: each demo partner secret in turn.
    std::fs::write(
        dir.path().join("wechat-v1.pub"),
        SecretKey::generate().public_key().to_hex(),
    )
    .unwrap();
    for (file, channel) in [
        (
            "open-platform-wbdemo0000000001-v1.secret",
            Channel::OpenPlatform,
        ),
        ("callback-demo-partner-v1.secret", Channel::Callback),
        ("hmac-fappdemo0001-v1.secret", Channel::Hmac),
    ] {
        refused_as_published(load(false), file);
        common::partners::write_secret(dir.path(), file, &common::process::random_pepper());
        let _ = channel;
    }
    let ring = load(false).expect("fresh keys load");
    assert!(!ring.is_demo());
    // A published key given as PEM or as hex is the same key: the SDK's test key (a PEM in
    // tests/data) as the bank key, and the GB/T annex key in hex.
    let sdk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/wechatpay_sdk_merchant_private_key.pem"
    ))
    .unwrap();
    std::fs::write(dir.path().join("bank-v1.key"), sdk).unwrap();
    let msg = refused_as_published(load(false), "bank-v1.key");
    assert!(msg.contains("WeChat Pay SDK"), "{msg}");
    std::fs::write(
        dir.path().join("bank-v1.key"),
        "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8\n",
    )
    .unwrap();
    let msg = refused_as_published(load(false), "bank-v1.key");
    assert!(msg.contains("GB/T 32918.5"), "{msg}");
}

/// Finding 3, on reload: swapping a published key into a running ring is refused and the
/// previous set keeps serving.
#[test]
fn a_reload_that_brings_a_published_key_is_refused_and_the_old_set_stays() {
    let keys = Keys::new();
    let dir = keys.dir.path().to_path_buf();
    let handle = KeyRingHandle::new(
        load(&keys, false).unwrap(),
        Box::new(move || load_keyring(&dir, EngineKind::DEFAULT, ID, false)),
    );
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/demo/wechat-v1.pub"
    ))
    .unwrap();
    std::fs::write(keys.dir.path().join("wechat-v1.pub"), guide).unwrap();
    match handle.reload() {
        Err(KeyRingError::Published { path, .. }) => assert!(path.ends_with("wechat-v1.pub")),
        other => panic!("{other:?}"),
    }
    let still = handle.snapshot();
    assert_eq!(
        still.wechat_key(1).map(|k| *k.verifier.public_key()),
        Some(keys.wechat[0].1.public_key())
    );
}

/// The list of published keys cannot drift: every key and secret file under `keys/` and
/// `tests/data/` (and every file of the ring built into the binary) is on it, and every entry
/// is recomputed from a file of the repository.
#[test]
fn the_published_list_matches_every_key_and_secret_in_the_repository() {
    use pension_gateway::crypto::PublicKey;
    use pension_gateway::keyring::published::{
        key_fingerprint, published_key, published_secret, secret_fingerprint, PUBLISHED,
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = std::collections::BTreeSet::new();
    let mut check_key = |what: &str, key: PublicKey| {
        assert!(
            published_key(&key).is_some(),
            "{what} is a published key missing from src/keyring/published.rs \
             (sha256 {})",
            key_fingerprint(&key)
        );
        seen.insert(key_fingerprint(&key));
    };
    let mut secrets = Vec::new();
    let mut files = Vec::new();
    for top in ["keys", "tests/data"] {
        let mut stack = vec![root.join(top)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
    }
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let shown = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        match path.extension().and_then(|x| x.to_str()) {
            Some("key" | "pem") => {
                check_key(&shown, SecretKey::parse(&text).unwrap().public_key());
            }
            Some("pub") => check_key(&shown, PublicKey::parse(&text).unwrap()),
            Some("secret") => secrets.push((shown, text.trim_end().to_owned())),
            Some("json") => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut keys_in_file = 0;
                for (set, entry) in v.as_object().unwrap() {
                    if let Some(hex) = entry.get("public_key_hex").and_then(|h| h.as_str()) {
                        check_key(
                            &format!("{shown} → {set}"),
                            PublicKey::from_hex(hex).unwrap(),
                        );
                        keys_in_file += 1;
                    }
                    if let Some(hex) = entry.get("private_key_hex").and_then(|h| h.as_str()) {
                        let key = SecretKey::from_hex(hex).unwrap().public_key();
                        check_key(&format!("{shown} → {set} (private)"), key);
                    }
                }
                assert!(
                    keys_in_file > 0,
                    "{shown}: no key found; classify this file"
                );
            }
            // Not key material: the manifest, the READMEs, an HMAC-SM3 output (its key is the
            // three bytes `key`, far below every secret rule), and the scripts that check the
            // audit log's Merkle roots and `audit prove`'s output with pymerkle (they read keys
            // from their arguments and hold none).
            _ if name == "keyring.toml"
                || name == "README.md"
                || name == "hmac_sm3_key_fox.hex"
                || name == "verify_with_pymerkle.py"
                || name == "verify_prove_with_pymerkle.py" => {}
            _ => panic!(
                "{shown}: a file under keys/ or tests/data/ of a kind this test does not know; \
                 if it holds a key or secret add it to src/keyring/published.rs, then teach \
                 this test its format"
            ),
        }
    }
    for (shown, value) in secrets {
        assert!(
            published_secret(value.as_bytes()).is_some(),
            "{shown} is a published secret missing from src/keyring/published.rs (sha256 {})",
            secret_fingerprint(value.as_bytes())
        );
        seen.insert(secret_fingerprint(value.as_bytes()));
    }
    // The ring built into the binary: the same files, checked from the binary's copy.
    for (name, text, _) in pension_gateway::keyring::demo::FILES {
        if name.ends_with(".key") {
            assert!(published_key(&SecretKey::parse(text).unwrap().public_key()).is_some());
        } else if name.ends_with(".pub") {
            assert!(published_key(&PublicKey::parse(text).unwrap()).is_some());
        } else if name.ends_with(".secret") {
            assert!(published_secret(text.trim_end().as_bytes()).is_some());
        }
    }
    for p in PUBLISHED {
        assert!(
            seen.contains(p.sha256),
            "src/keyring/published.rs lists {} ({}), which no file of the repository holds",
            p.sha256,
            p.origin
        );
    }
}

/// Finding 3 with the real binary: a copy of `keys/demo` with `demo = false` and a production
/// pepper is refused by `serve --check-config` (exit 2) and at start, each naming the file; a
/// running production gateway refuses a reload (SIGHUP) that brings a published key and keeps
/// answering signed queries under its previous ring.
#[test]
fn published_keys_are_refused_by_check_config_at_start_and_on_reload() {
    use common::process::{
        demo_client, log_tail, post_query, production_keys, random_pepper, run_ok, signed_query,
        wait_ready, Proc, ServeConfig, BIN,
    };
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let published = demo_copy_marked_production();
    let (port, ops_port) = (common::free_port(), common::free_port());
    let db = format!("sqlite://{}/gateway.db", tmp.path().display());
    let pepper = random_pepper();
    let config = |keys: &std::path::Path, name: &str| {
        ServeConfig {
            port,
            ops_port,
            database_url: &db,
            pepper: &pepper,
            keys,
            drain_secs: 0,
            extra: "",
        }
        .write(&tmp.path().join(name))
    };
    let bad = config(published.path(), "published.toml");
    let bad = bad.to_str().unwrap();
    run_ok(&["--config", bad, "accounts", "seed-demo"]);
    let out = std::process::Command::new(BIN)
        .args(["--config", bad, "serve", "--check-config"])
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bank-v1.key") && err.contains("published key"),
        "{err}"
    );

    let log = tmp.path().join("refused.log");
    let mut p = Proc::spawn(&["--config", bad, "serve"], &log);
    let status = p
        .wait_exit(Duration::from_secs(60))
        .expect("the gateway refuses to start");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("bank-v1.key") && text.contains("published key"),
        "{text}"
    );

    // A production ring starts; a reload bringing the guide's published WeChat key is refused.
    let keys = production_keys(tmp.path());
    let good = config(&keys, "gateway.toml");
    let good = good.to_str().unwrap();
    run_ok(&["--config", good, "serve", "--check-config"]);
    let log = tmp.path().join("gateway.log");
    let mut p = Proc::spawn(&["--config", good, "serve"], &log);
    wait_ready(&mut p, ops_port, &log, Duration::from_secs(60));
    let client = demo_client(&keys);
    let q = signed_query(&client);
    let a = post_query(port, &q.0, "published-before", &q.1).expect("answered");
    assert_eq!(a.status, 200, "{:?}", a.json());

    std::fs::copy(
        published.path().join("wechat-v1.pub"),
        keys.join("wechat-v1.pub"),
    )
    .unwrap();
    p.signal("HUP");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("key ring reload refused") {
            assert!(
                text.contains("wechat-v1.pub") && text.contains("published key"),
                "{}",
                log_tail(&log, 10)
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "no reload logged:\n{}",
            log_tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The previous ring still verifies the fresh WeChat key and signs the answer.
    let q = signed_query(&client);
    let a = post_query(port, &q.0, "published-after", &q.1).expect("answered");
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(a.verify(&client), Ok(1));
}
