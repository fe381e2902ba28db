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

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");

/// Runs the binary with `args` and a cleared environment; returns the exit code, stdout, stderr.
fn keys_cmd(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration naming only `keys.dir` and the admin endpoint: no pepper, no database.
fn keys_only_config(tmp: &std::path::Path, keys: &std::path::Path) -> std::path::PathBuf {
    let cfg = tmp.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nadmin_listen = \"127.0.0.1:19191\"\nadmin_token_file = \"{}\"\n\
             [keys]\ndir = \"{}\"\n",
            tmp.join("admin-token").display(),
            keys.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn key_commands_need_only_the_key_settings_and_their_hints_carry_the_invocation() {
    let (tmp, dir, _w) = fresh();
    let cfg = keys_only_config(tmp.path(), dir.path());
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = keys_cmd(&["--config", cfg, "keys", "list"]);
    assert_eq!(code, Some(0), "no accounts.id_pepper needed: {out}{err}");
    assert!(out.contains("bank") && out.contains("active"), "{out}");
    let (code, out, err) = keys_cmd(&["keys", "--config", cfg, "generate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!(
            "pension-gateway --config {cfg} keys export-public 2"
        )),
        "{out}"
    );
    assert!(
        out.contains("http://127.0.0.1:19191/admin/keyring/reload")
            && out.contains("admin-token")
            && !out.contains("9090"),
        "the configured admin endpoint: {out}"
    );
    // With --dir the hint carries it too.
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = keys_cmd(&["keys", "--dir", d, "generate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("pension-gateway keys --dir {d} export-public 3")),
        "{out}"
    );
}

#[test]
fn a_mistyped_key_directory_is_an_error_naming_the_setting_and_keys_init() {
    let (code, out, err) = keys_cmd(&["keys", "--dir", "/nonexistent/typo", "list"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(!out.contains("role"), "no empty table: {out}");
    assert!(
        err.contains("/nonexistent/typo (--dir)")
            && err.contains("pension-gateway keys --dir /nonexistent/typo init"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = keys_only_config(tmp.path(), &tmp.path().join("missing"));
    let (code, _, err) = keys_cmd(&["--config", cfg.to_str().unwrap(), "keys", "generate"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("(keys.dir)") && err.contains("keys init"),
        "{err}"
    );
}

#[test]
fn keys_list_shows_the_refusal_a_reload_would_give() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, dir, _w) = fresh();
    dir.generate().unwrap();
    std::fs::set_permissions(
        dir.path().join("bank-v2.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let row = dir
        .list()
        .unwrap()
        .into_iter()
        .find(|k| k.role == "bank" && k.version == 2)
        .unwrap();
    assert!(
        row.refusal
            .as_deref()
            .is_some_and(|r| r.contains("bank-v2.key")),
        "{row:?}"
    );
    let (code, out, err) = keys_cmd(&["keys", "--dir", dir.path().to_str().unwrap(), "list"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("REFUSED"), "{out}");
    assert!(out.contains("bank v2:") && out.contains("0600"), "{out}");
    assert!(err.contains("a reload would refuse this key set"), "{err}");
}

#[test]
fn the_owner_refusal_names_the_users() {
    let msg = pension_gateway::keyring::FileRule::Owner {
        owner: 65534,
        euid: 0,
    }
    .to_string();
    assert!(
        msg.contains("nobody (uid 65534)") && msg.contains("root (uid 0)"),
        "{msg}"
    );
    assert!(!msg.contains("the gateway's user"), "{msg}");
}

/// The test suite runs as root: a key directory owned by another user (the service user,
/// here `nobody`) gets files owned by that user when root runs the key commands, with the
/// modes the gateway requires, and that user can then use them.
#[test]
fn run_as_root_the_key_commands_write_files_the_directory_owner_can_read() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the ownership hand-over cannot be exercised here");
        return;
    }
    const SERVICE: u32 = 65534;
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(SERVICE), Some(SERVICE)).unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&keys, Some(SERVICE), Some(SERVICE)).unwrap();
    let dir = KeyDir::new(&keys, EngineKind::DEFAULT, ID);
    dir.init(1, &SecretKey::generate().public_key().to_hex())
        .unwrap();
    dir.generate().unwrap();
    for e in std::fs::read_dir(&keys).unwrap() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "no temporary file left: {name}");
        assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE), "{name}");
        let mode = meta.mode() & 0o777;
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode, want, "{name}");
    }
    // Root can still administer (files of the directory's owner are accepted)…
    assert_eq!(dir.list().unwrap().len(), 3);
    // …and the service user reads the set as the gateway would.
    let out = std::process::Command::new(BIN)
        .args(["keys", "--dir", keys.to_str().unwrap(), "list"])
        .env_clear()
        .uid(SERVICE)
        .gid(SERVICE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `keys gen-token` needs no key ring (it comes before `keys init` in a first install), and run
/// as root it hands the token to the key directory's owner — the service user, who cannot
/// write in the root-owned configuration directory the token lives in but must read it. An
/// existing token is replaced only with `--replace`, and the refusal says so.
#[test]
fn run_as_root_gen_token_hands_the_token_to_the_key_directory_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the ownership hand-over cannot be exercised here");
        return;
    }
    const SERVICE: u32 = 65534;
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let keys = etc.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&keys, Some(SERVICE), Some(SERVICE)).unwrap();
    let token = etc.path().join("admin-token");
    let gen = |extra: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args([
                "keys",
                "--dir",
                keys.to_str().unwrap(),
                "gen-token",
                "--out",
            ])
            .arg(&token)
            .args(extra)
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = gen(&[]);
    assert!(ok, "gen-token before `keys init`: {out}");
    assert!(
        out.contains("owned by") && out.contains("uid 65534"),
        "{out}"
    );
    let meta = std::fs::metadata(&token).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE));
    assert_eq!(meta.mode() & 0o777, 0o600);
    let first = std::fs::read(&token).unwrap();
    let (ok, out) = gen(&[]);
    assert!(!ok && out.contains("--replace"), "{out}");
    assert_eq!(std::fs::read(&token).unwrap(), first, "refused: unchanged");
    let (ok, out) = gen(&["--replace"]);
    assert!(ok, "{out}");
    let meta = std::fs::metadata(&token).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (SERVICE, 0o600));
    assert_ne!(std::fs::read(&token).unwrap(), first, "replaced");
}

/// `accounts gen-pepper` never writes over a file, and its refusal does not offer a `--replace`
/// it does not have.
#[test]
fn gen_pepper_refuses_an_existing_file_without_offering_a_replace() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("gateway.env");
    let run = || {
        let out = std::process::Command::new(BIN)
            .args(["accounts", "gen-pepper", "--out"])
            .arg(&env)
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run();
    assert!(ok, "{err}");
    let first = std::fs::read_to_string(&env).unwrap();
    assert!(
        first.starts_with("GATEWAY__ACCOUNTS__ID_PEPPER="),
        "{first}"
    );
    let (ok, err) = run();
    assert!(!ok, "an existing file must be refused");
    assert!(
        err.contains("never writes over") && !err.contains("--replace"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&env).unwrap(), first);
}
