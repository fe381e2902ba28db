//! Key-ring file rules: every file is opened once without following links and checked on the
//! open handle (regular file, owner, mode, size) before it is read; each refusal names the file
//! and the rule.
#![cfg(unix)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Keys;
use pension_gateway::crypto::EngineKind;
use pension_gateway::keyring::admin::KeyDir;
use pension_gateway::keyring::{
    load_keyring, read_partner_secret, FileRule, KeyRing, KeyRingError, MAX_KEY_FILE_BYTES,
};

const ID: &[u8] = b"1234567812345678";

fn load(dir: &Path) -> Result<KeyRing, KeyRingError> {
    load_keyring(dir, EngineKind::DEFAULT, ID, false)
}

/// Loads on another thread and fails (instead of hanging the suite) if loading blocks, as an
/// open of a FIFO without `O_NONBLOCK` would.
fn load_within_10s(dir: &Path) -> Result<KeyRing, KeyRingError> {
    let dir = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(&dir));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("loading the key ring blocked for 10 s")
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Expects a `File` refusal naming `file` with `rule`; returns the message.
fn refused_by_rule(
    result: Result<KeyRing, KeyRingError>,
    file: &str,
    rule: impl Fn(&FileRule) -> bool,
) -> String {
    let err = result.expect_err("the key set was accepted");
    let msg = err.to_string();
    match &err {
        KeyRingError::File { path, rule: r } => {
            assert!(path.ends_with(file), "{file}: {msg}");
            assert!(rule(r), "{file}: unexpected rule: {msg}");
        }
        other => panic!("{file}: expected a file-rule refusal, got {other:?}"),
    }
    assert!(msg.contains(file), "{msg}");
    eprintln!("refused as expected: {msg}");
    msg
}

/// Moves `name` aside and puts a symbolic link to `target` in its place.
fn replace_with_symlink(dir: &Path, name: &str, target: &Path) {
    std::fs::remove_file(dir.join(name)).unwrap();
    std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
}

fn moved_aside(dir: &Path, name: &str) -> PathBuf {
    let aside = dir.join(format!("real-{name}"));
    std::fs::rename(dir.join(name), &aside).unwrap();
    aside
}

#[test]
fn a_valid_set_still_loads() {
    let keys = Keys::new();
    load(keys.dir.path()).unwrap();
}

#[test]
fn symbolic_link_in_place_of_a_private_key_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    // The link points at the genuine key with the right mode: only the link itself is wrong.
    let aside = moved_aside(dir, "bank-v1.key");
    std::os::unix::fs::symlink(&aside, dir.join("bank-v1.key")).unwrap();
    let msg = refused_by_rule(load(dir), "bank-v1.key", |r| *r == FileRule::SymbolicLink);
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn symbolic_link_in_place_of_the_manifest_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let aside = moved_aside(dir, "keyring.toml");
    std::os::unix::fs::symlink(&aside, dir.join("keyring.toml")).unwrap();
    let msg = refused_by_rule(load(dir), "keyring.toml", |r| *r == FileRule::SymbolicLink);
    assert!(msg.contains("symbolic link"), "{msg}");
    // The administration commands read the manifest the same way.
    let err = KeyDir::new(dir, EngineKind::DEFAULT, ID)
        .manifest()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keyring.toml") && err.contains("symbolic link"),
        "{err}"
    );
}

#[test]
fn dev_zero_behind_a_symbolic_link_is_refused_without_reading() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    replace_with_symlink(dir, "wechat-v1.pub", Path::new("/dev/zero"));
    let msg = refused_by_rule(load_within_10s(dir), "wechat-v1.pub", |r| {
        *r == FileRule::SymbolicLink
    });
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn world_writable_manifest_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    chmod(&dir.join("keyring.toml"), 0o666);
    let msg = refused_by_rule(load(dir), "keyring.toml", |r| {
        *r == FileRule::WritableByOthers { mode: 0o666 }
    });
    assert!(
        msg.contains("0666") && msg.contains("world-writable"),
        "{msg}"
    );
    chmod(&dir.join("keyring.toml"), 0o644);
    load(dir).unwrap();
}

#[test]
fn group_writable_public_key_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    chmod(&dir.join("wechat-v1.pub"), 0o664);
    let msg = refused_by_rule(load(dir), "wechat-v1.pub", |r| {
        *r == FileRule::WritableByOthers { mode: 0o664 }
    });
    assert!(msg.contains("group-"), "{msg}");
    // Readable by everyone is fine for a public key.
    chmod(&dir.join("wechat-v1.pub"), 0o444);
    load(dir).unwrap();
}

#[test]
fn directory_in_place_of_a_file_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    std::fs::remove_file(dir.join("wechat-v1.pub")).unwrap();
    std::fs::create_dir(dir.join("wechat-v1.pub")).unwrap();
    let msg = refused_by_rule(load(dir), "wechat-v1.pub", |r| {
        *r == FileRule::NotRegular("directory")
    });
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn fifo_named_by_the_manifest_is_refused_without_blocking() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    std::fs::remove_file(dir.join("wechat-v1.pub")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("wechat-v1.pub"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // No writer ever opens the FIFO: a blocking open would hang here.
    refused_by_rule(load_within_10s(dir), "wechat-v1.pub", |r| {
        *r == FileRule::NotRegular("FIFO")
    });
}

#[test]
fn character_device_named_by_the_manifest_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    std::fs::remove_file(dir.join("bank-v1.key")).unwrap();
    // The same device as /dev/zero (1, 5), created in place: no link involved.
    if let Err(e) = rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("bank-v1.key"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 5),
    ) {
        eprintln!(
            "note: cannot create a character device here ({e}; needs root with CAP_MKNOD); \
             the character-device case is not run"
        );
        return;
    }
    refused_by_rule(load_within_10s(dir), "bank-v1.key", |r| {
        *r == FileRule::NotRegular("character device")
    });
}

#[test]
fn files_over_64_kib_are_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let too_big = usize::try_from(MAX_KEY_FILE_BYTES).unwrap() + 1;
    // A private key padded with trailing newlines past the cap.
    let key = std::fs::read_to_string(dir.join("bank-v1.key")).unwrap();
    let padded = format!("{key}{}", "\n".repeat(too_big - key.len()));
    std::fs::write(dir.join("bank-v1.key"), &padded).unwrap();
    chmod(&dir.join("bank-v1.key"), 0o600);
    let msg = refused_by_rule(load(dir), "bank-v1.key", |r| *r == FileRule::TooLarge);
    assert!(msg.contains("64 KiB"), "{msg}");
    // Exactly at the cap, the size rule passes (the padded PEM then parses or not on its own).
    std::fs::write(dir.join("bank-v1.key"), &padded[..too_big - 1]).unwrap();
    assert!(
        !matches!(
            load(dir),
            Err(KeyRingError::File {
                rule: FileRule::TooLarge,
                ..
            })
        ),
        "a file of exactly 64 KiB was refused as too large"
    );
    // A manifest past the cap.
    let manifest = std::fs::read_to_string(dir.join("keyring.toml")).unwrap();
    std::fs::write(
        dir.join("keyring.toml"),
        format!("{manifest}{}", "#".repeat(too_big)),
    )
    .unwrap();
    refused_by_rule(load(dir), "keyring.toml", |r| *r == FileRule::TooLarge);
}

#[test]
fn owner_must_be_the_process_user_or_root() {
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 {
        eprintln!(
            "note: not running as root (uid {euid}); cannot give a file to another user, \
             the owner case is not run"
        );
        return;
    }
    let nobody = 65534;
    for name in ["wechat-v1.pub", "bank-v1.key", "keyring.toml"] {
        let keys = Keys::new();
        let dir = keys.dir.path();
        std::os::unix::fs::chown(dir.join(name), Some(nobody), Some(nobody)).unwrap();
        let msg = refused_by_rule(load(dir), name, |r| {
            *r == FileRule::Owner {
                owner: nobody,
                euid,
            }
        });
        assert!(msg.contains("uid 65534"), "{msg}");
    }
}

#[test]
fn private_key_modes() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    let key = dir.join("bank-v1.key");
    chmod(&key, 0o400);
    load(dir).unwrap();
    chmod(&key, 0o600);
    load(dir).unwrap();
    for mode in [0o640, 0o604, 0o644, 0o700, 0o200, 0o4600] {
        chmod(&key, mode);
        match load(dir) {
            Err(KeyRingError::Permissions(p)) => assert!(p.ends_with("bank-v1.key"), "{p}"),
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
    chmod(&key, 0o640);
    let msg = load(dir).unwrap_err().to_string();
    assert!(
        msg.contains("bank-v1.key") && msg.contains("0600 or 0400"),
        "{msg}"
    );
}

#[test]
fn partner_secrets_and_admin_reads_follow_the_same_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("s.secret");
    std::fs::write(&secret, "abcdefgh\n").unwrap();
    chmod(&secret, 0o600);
    assert_eq!(read_partner_secret(&secret).unwrap().as_str(), "abcdefgh");
    chmod(&secret, 0o640);
    assert!(matches!(
        read_partner_secret(&secret),
        Err(KeyRingError::Permissions(_))
    ));
    chmod(&secret, 0o600);
    let link = tmp.path().join("link.secret");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    assert!(matches!(
        read_partner_secret(&link),
        Err(KeyRingError::File {
            rule: FileRule::SymbolicLink,
            ..
        })
    ));

    // `keys export-public` reads the private key through the same rules.
    let kd = KeyDir::new(tmp.path().join("prod"), EngineKind::DEFAULT, ID);
    kd.init(
        1,
        &pension_gateway::crypto::SecretKey::generate()
            .public_key()
            .to_hex(),
    )
    .unwrap();
    kd.export_public(1).unwrap();
    let aside = moved_aside(kd.path(), "bank-v1.key");
    std::os::unix::fs::symlink(&aside, kd.path().join("bank-v1.key")).unwrap();
    let err = kd.export_public(1).unwrap_err().to_string();
    assert!(
        err.contains("bank-v1.key") && err.contains("symbolic link"),
        "{err}"
    );
}

#[test]
fn demo_preparation_tightens_through_handles_and_never_follows_links() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo"));
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    // A checkout under umask 002: everything group-writable.
    for e in std::fs::read_dir(copy.path()).unwrap() {
        chmod(&e.unwrap().path(), 0o664);
    }
    // A link named like a key, pointing outside the directory: must not be chmod'ed through.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "not a key").unwrap();
    chmod(&victim, 0o644);
    std::os::unix::fs::symlink(&victim, copy.path().join("stray.key")).unwrap();

    pension_gateway::server::prepare_demo_keys(copy.path()).unwrap();

    let mode = |name: &str| {
        std::fs::symlink_metadata(copy.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("keyring.toml"), 0o644);
    assert_eq!(mode("wechat-v1.pub"), 0o644);
    assert_eq!(mode("bank-v1.key"), 0o600);
    assert_eq!(mode("hmac-fappdemo0001-v1.secret"), 0o600);
    assert_eq!(
        std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777,
        0o644,
        "the link's target was changed"
    );
    load_keyring(copy.path(), EngineKind::DEFAULT, ID, true).unwrap();
}
