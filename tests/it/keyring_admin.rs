//! `keys …` operations: lifecycle transitions, refusals, atomic 0600 writes, and that every
//! written set loads exactly as the server loads it.

use pension_gateway::crypto::{EngineKind, SecretKey};
use pension_gateway::keyring::admin::KeyDir;
use pension_gateway::keyring::{load_keyring, BankKeyState, Manifest};

const ID: &[u8] = b"1234567812345678";

fn fresh() -> (tempfile::TempDir, KeyDir, SecretKey) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = KeyDir::new(tmp.path().join("prod"), EngineKind::DEFAULT, ID);
    let wechat = SecretKey::generate();
    dir.init(1, &wechat.public_key().to_hex()).unwrap();
    (tmp, dir, wechat)
}

fn manifest(dir: &KeyDir) -> Manifest {
    dir.manifest().unwrap()
}

fn state_of(dir: &KeyDir, v: u32) -> BankKeyState {
    manifest(dir)
        .bank
        .iter()
        .find(|b| b.version == v)
        .unwrap()
        .state
}

fn loads(dir: &KeyDir) -> pension_gateway::keyring::KeyRing {
    load_keyring(dir.path(), EngineKind::DEFAULT, ID, false).unwrap()
}

#[test]
fn init_then_full_rotation() {
    let (_tmp, dir, _w) = fresh();
    assert_eq!(loads(&dir).active_version(), 1);
    assert!(dir.init(1, "04").is_err(), "init twice is refused");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("bank-v1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let v2 = dir.generate().unwrap();
    assert_eq!((v2, state_of(&dir, 2)), (2, BankKeyState::Staged));
    assert_eq!(
        loads(&dir).response_signer(0).unwrap().version,
        1,
        "staged keys do not sign"
    );
    dir.rollout(2, 30).unwrap();
    let ring = loads(&dir);
    assert_eq!(ring.response_signer(29).unwrap().version, 2);
    assert_eq!(ring.response_signer(30).unwrap().version, 1);
    let listing = dir.list().unwrap();
    assert_eq!(
        listing
            .iter()
            .find(|k| k.role == "bank" && k.version == 1)
            .unwrap()
            .signs_percent,
        Some(70)
    );
    assert_eq!(
        listing
            .iter()
            .find(|k| k.role == "bank" && k.version == 2)
            .unwrap()
            .signs_percent,
        Some(30)
    );
    dir.activate(2).unwrap();
    assert_eq!(
        (state_of(&dir, 1), state_of(&dir, 2)),
        (BankKeyState::Retiring, BankKeyState::Active)
    );
    assert_eq!(manifest(&dir).rollout, None, "activation ends the rollout");
    // Roll back: the retiring key can be re-activated.
    dir.activate(1).unwrap();
    assert_eq!(
        (state_of(&dir, 1), state_of(&dir, 2)),
        (BankKeyState::Active, BankKeyState::Retiring)
    );
    dir.activate(2).unwrap();
    dir.retire(1).unwrap();
    assert_eq!(state_of(&dir, 1), BankKeyState::Retired);
    assert!(
        loads(&dir).bank_key(1).is_none(),
        "retired keys are not loaded"
    );
    assert_eq!(
        dir.export_public(2).unwrap(),
        loads(&dir).bank_public_key(2).unwrap()
    );
}

#[test]
fn refusals_leave_the_manifest_untouched() {
    let (_tmp, dir, _w) = fresh();
    let before = std::fs::read_to_string(dir.path().join("keyring.toml")).unwrap();
    let refused = [
        ("retire the only active key", dir.retire(1)),
        ("activate the active key", dir.activate(1)),
        ("activate an unknown key", dir.activate(9)),
        ("rollout of the active key", dir.rollout(1, 10)),
        ("rollout of an unknown key", dir.rollout(9, 10)),
        ("untrust the last WeChat key", dir.untrust_wechat(1)),
        ("untrust an unknown WeChat key", dir.untrust_wechat(9)),
        (
            "trust an invalid point",
            dir.trust_wechat(2, &format!("04{}", "11".repeat(64))),
        ),
    ];
    for (what, result) in refused {
        assert!(result.is_err(), "{what} was accepted");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keyring.toml")).unwrap(),
            before,
            "{what} changed the manifest"
        );
    }
    // Retiring a retired key's successor chain: v2 staged can be retired directly.
    dir.generate().unwrap();
    dir.retire(2).unwrap();
    assert!(dir.activate(2).is_err(), "retired keys are not reactivated");
}

#[test]
fn a_loose_private_key_mode_blocks_every_write() {
    let (_tmp, dir, _w) = fresh();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("bank-v1.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = dir.generate().unwrap_err().to_string();
        assert!(err.contains("bank-v1.key") && err.contains("0600"), "{err}");
    }
}

#[test]
fn wechat_keys_rotate() {
    let (_tmp, dir, _w) = fresh();
    let w2 = SecretKey::generate();
    dir.trust_wechat(2, &w2.public_key().to_pem().unwrap())
        .unwrap();
    assert_eq!(
        loads(&dir)
            .trusted_wechat_keys()
            .map(|k| k.version)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    dir.untrust_wechat(1).unwrap();
    assert!(loads(&dir).wechat_key(1).is_none());
    assert!(dir.untrust_wechat(2).is_err());
}
