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
