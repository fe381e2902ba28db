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

/// Finding 4: a key directory group- or world-writable (files in it can be renamed over each
/// other, e.g. `wechat-v1.pub` over `bank-v1.pub`) is refused, checked on the opened directory;
/// so is a key directory that is a symbolic link. Demo mode (published keys) is exempt from the
/// mode rule only.
#[test]
fn a_group_or_world_writable_or_linked_key_directory_is_refused() {
    let keys = Keys::new();
    let dir = keys.dir.path();
    for mode in [0o777, 0o770, 0o775, 0o757, 0o1777] {
        chmod(dir, mode);
        let err = load(dir).expect_err("a writable key directory was accepted");
        match &err {
            KeyRingError::File {
                path,
                rule: FileRule::DirectoryWritableByOthers { mode: m },
            } => {
                assert_eq!(*m, mode);
                assert!(Path::new(path) == dir, "{err}");
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert!(err.to_string().contains("group or others"), "{err}");
        assert!(load_keyring(dir, EngineKind::DEFAULT, ID, true).is_ok());
    }
    for mode in [0o700, 0o750, 0o755, 0o500] {
        chmod(dir, mode);
        load(dir).unwrap_or_else(|e| panic!("mode {mode:o}: {e}"));
    }
    chmod(dir, 0o700);
    // The directory named through a symbolic link: refused, whatever its target's mode.
    let holder = tempfile::tempdir().unwrap();
    let link = holder.path().join("keys");
    std::os::unix::fs::symlink(dir, &link).unwrap();
    refused_by_rule(load(&link), "keys", |r| *r == FileRule::SymbolicLink);
    // A file in place of the directory.
    let file = holder.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    refused_by_rule(load(&file), "plain", |r| *r == FileRule::NotDirectory);
}

/// Finding 4: a key file with a second name (hard link) is refused, whether secret, public or
/// the manifest: whoever controls the other name's directory controls the file.
#[test]
fn a_key_file_with_more_than_one_hard_link_is_refused() {
    for name in ["bank-v1.key", "wechat-v1.pub", "keyring.toml"] {
        let keys = Keys::new();
        let elsewhere = tempfile::tempdir().unwrap();
        let other = elsewhere.path().join("other-name");
        std::fs::hard_link(keys.dir.path().join(name), &other).unwrap();
        refused_by_rule(load(keys.dir.path()), name, |r| {
            *r == FileRule::HardLinks { links: 2 }
        });
        std::fs::remove_file(&other).unwrap();
        load(keys.dir.path()).unwrap_or_else(|e| panic!("{name} after unlinking: {e}"));
    }
}

/// Finding 4: partner secrets at their channel's length (open platform 32–64 letters and
/// digits; callback salt and HMAC token at least 16), never shorter than 16.
#[test]
fn partner_secrets_shorter_than_their_rule_are_refused() {
    use pension_gateway::keyring::{check_partner_secret, SecretRule};
    use pension_gateway::partners::Channel;
    let cases: [(Channel, &str, bool); 12] = [
        (Channel::OpenPlatform, "x", false),
        (Channel::OpenPlatform, &"a1".repeat(15), false),
        (Channel::OpenPlatform, &"a1".repeat(16), true),
        (Channel::OpenPlatform, &"a1".repeat(32), true),
        (Channel::OpenPlatform, &"a1".repeat(33), false),
        (
            Channel::OpenPlatform,
            "abcdefghijklmnopqrstuvwxyz-12345",
            false,
        ),
        (Channel::Callback, "x", false),
        (Channel::Callback, "fifteen-chars-x", false),
        (Channel::Callback, "sixteen-chars-xy", true),
        (Channel::Hmac, "x", false),
        (Channel::Hmac, "fifteen-chars-x", false),
        (Channel::Hmac, "sixteen-chars-xy", true),
    ];
    for (channel, value, ok) in cases {
        let got = check_partner_secret(channel, value);
        assert_eq!(got.is_ok(), ok, "{channel} {value:?}: {got:?}");
    }
    assert!(matches!(
        check_partner_secret(Channel::OpenPlatform, "abcdefghijklmnopqrstuvwxyz-12345"),
        Err(SecretRule::Alphabet { .. })
    ));
    // Loaded from a key ring: refused by name, the message never quoting the secret.
    let keys = Keys::new();
    common::partners::write_secret(keys.dir.path(), "cb.secret", "s3cr3t");
    let text = std::fs::read_to_string(keys.dir.path().join("keyring.toml")).unwrap();
    std::fs::write(
        keys.dir.path().join("keyring.toml"),
        format!(
            "{text}\n[[partner]]\nchannel = \"callback\"\nid = \"p1\"\nversion = 1\n\
             state = \"active\"\nsecret = \"cb.secret\"\n"
        ),
    )
    .unwrap();
    let err = load(keys.dir.path()).expect_err("a 6-character salt was accepted");
    assert!(
        matches!(&err, KeyRingError::WeakSecret { path, rule: SecretRule::Length { len: 6, min: 16, .. } } if path.ends_with("cb.secret")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
}

/// Finding 4: the admin token is at least 32 random bytes as text; a 1-byte token, a short one
/// and a repeated word are refused by name, a `head -c 32 /dev/urandom | base64` one loads.
#[test]
fn a_weak_admin_token_is_refused() {
    use pension_gateway::keyring::SecretRule;
    use pension_gateway::ops::AdminToken;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("admin-token");
    let write = |text: &str| {
        std::fs::write(&path, format!("{text}\n")).unwrap();
        chmod(&path, 0o600);
    };
    for weak in ["x", "a-long-random-admin-token", &"password".repeat(6)] {
        write(weak);
        match AdminToken::from_file(&path) {
            Err(KeyRingError::WeakSecret { path: p, rule }) => {
                assert_eq!(p, path);
                assert!(
                    matches!(
                        rule,
                        SecretRule::Length { .. } | SecretRule::NotRandom { .. }
                    ),
                    "{rule:?}"
                );
            }
            other => panic!("{weak:?}: {other:?}"),
        }
    }
    let strong = std::process::Command::new("sh")
        .args(["-c", "head -c 32 /dev/urandom | base64"])
        .output()
        .unwrap();
    write(String::from_utf8(strong.stdout).unwrap().trim());
    let token = AdminToken::from_file(&path).expect("a random 32-byte token loads");
    assert_eq!(format!("{token:?}"), "AdminToken(***)");
    // One more name for the file: refused like every key file.
    std::fs::hard_link(&path, tmp.path().join("second-name")).unwrap();
    assert!(matches!(
        AdminToken::from_file(&path),
        Err(KeyRingError::File {
            rule: FileRule::HardLinks { links: 2 },
            ..
        })
    ));
}
