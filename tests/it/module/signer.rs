//! Bank keys inside a cryptographic module: the gateway signs WeChat responses through the
//! software SDF device (`crates/softsdf`, loaded as a vendor's library would be), with the real
//! actix app, store and key ring. Responses verified by the WeChat-side client and by OpenSSL;
//! a public key that differs from the recorded one refused; a missing library stops the start;
//! a hung or failing module answers the unsigned 503, a metric and /readyz not ready, and
//! recovers without a restart; a reload reopens the module; rotation file → module.
//!
//! The device reads `SOFTSDF_DIR` and `SOFTSDF_CONTROL` from the environment when it is opened:
//! this module sets both once for the test process and runs its tests one at a time ([`serial`]),
//! each with key indices of its own.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};

use super::setup::{
    app, busy_gateway, hsm_entry, hsm_password_file, key_dir, reload_opens_the_module_anew,
    write_ring,
};
use common::softsdf::{provision, softsdf_library};
use common::{send, Db, Gateway, Req, Resp};
use pension_gateway::crypto::signing_string::response_signing_string;
use pension_gateway::crypto::{PublicKey, SecretKey, Signature};
use pension_gateway::http::wechat::respond::MODULE_UNAVAILABLE_BODY;

pub(super) const PASSWORD: &str = "module-signer-Pw-7";
pub(super) const SIGNER_ID: &[u8] = b"1234567812345678";

pub(super) struct Device {
    pub(super) dir: tempfile::TempDir,
    control: PathBuf,
}

/// The device's key directory and control file, named in the environment once.
pub(super) fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control");
        std::env::set_var("SOFTSDF_DIR", dir.path());
        std::env::set_var("SOFTSDF_CONTROL", &control);
        for var in [
            "SOFTSDF_LATENCY_US",
            "SOFTSDF_HANG",
            "SOFTSDF_FAIL",
            "SOFTSDF_FAIL_CODE",
        ] {
            std::env::remove_var(var);
        }
        Device { dir, control }
    })
}

/// The device's key directory (`SOFTSDF_DIR` of this test process and of the processes it starts).
pub(super) fn device_dir() -> &'static Path {
    device().dir.path()
}

/// One test at a time: the control file is shared by every key of the device. (An async lock:
/// each test holds it across its awaits, on its own runtime.)
pub(super) async fn serial() -> MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let guard = LOCK.get_or_init(|| Mutex::new(())).lock().await;
    set_control("");
    guard
}

/// Replaces the control file atomically (the device re-reads it on every call).
pub(super) fn set_control(text: &str) {
    let d = device();
    let tmp = d.dir.path().join("control.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &d.control).unwrap();
}

/// A fresh key provisioned in the device at an index no other test uses.
pub(super) fn module_key() -> (u32, SecretKey) {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let index = NEXT.fetch_add(1, Ordering::SeqCst);
    let key = SecretKey::generate();
    provision(device().dir.path(), index, &key, PASSWORD);
    (index, key)
}

pub(super) fn write_0600(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The `[[module]]` section (and its password file in the ring directory).
pub(super) fn module_section(ring: &Path, library: &Path, timeout_ms: u64) -> String {
    hsm_password_file(ring);
    format!(
        "[[module]]\nname = \"hsm\"\nlibrary = \"{}\"\npassword_file = \"hsm.pass\"\n\
         sessions = 2\ntimeout_ms = {timeout_ms}\n",
        library.display()
    )
}

/// Bank v1 (file) in `v1_state`, bank v2 in the module at `index` in `v2_state`, WeChat v1.
pub(super) fn manifest(v1_state: &str, v2_state: &str, index: u32, module: &str) -> String {
    format!(
        "[[bank]]\nversion = 1\nstate = \"{v1_state}\"\nprivate_key = \"bank-v1.key\"\n\n\
         [[bank]]\nversion = 2\nstate = \"{v2_state}\"\nbackend = \"sdf\"\nmodule = \"hsm\"\n\
         key_index = {index}\npublic_key = \"bank-v2.pub\"\n\n\
         [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n\n{module}"
    )
}

/// A gateway whose bank v2 is the module's key at a fresh index, active (v1 retiring), loaded
/// by a reload; the WeChat-side client knows v2's public key. `None` without the database.
pub(super) async fn module_gateway(db: Db, timeout_ms: u64) -> Option<(Gateway, u32, SecretKey)> {
    let mut gw = Gateway::start(db).await?;
    let (index, key) = module_key();
    let ring = gw.keys.dir.path().to_path_buf();
    let module = module_section(&ring, softsdf_library(), timeout_ms);
    write_ring(
        &ring,
        &key.public_key(),
        &manifest("retiring", "active", index, &module),
    );
    gw.state
        .keyring()
        .reload()
        .expect("the module version loads");
    // The client's list of bank public keys (`Keys::client`); no file is written for it.
    gw.keys.bank.push((2, key.clone()));
    Some((gw, index, key))
}

pub(super) async fn readyz<S, B>(svc: &S) -> (u16, serde_json::Value)
where
    S: common::TestService<B>,
    B: actix_web::body::MessageBody,
{
    let resp = actix_web::test::call_service(
        svc,
        actix_web::test::TestRequest::get()
            .uri("/readyz")
            .to_request(),
    )
    .await;
    let status = resp.status().as_u16();
    let body = actix_web::test::read_body(resp).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Whether OpenSSL accepts `signature` over `message` under `public`, with the distinguishing ID
/// 1234567812345678 (`openssl pkeyutl`). Fails the test when `openssl` (Debian package
/// `openssl`, installed by `.ci/services`) is not on PATH.
pub(super) fn openssl_verifies(public: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), public.to_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("msg"), message).unwrap();
    std::fs::write(dir.path().join("sig.der"), signature.to_der()).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            "msg",
            "-sigfile",
            "sig.der",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `openssl` ({e}): the OpenSSL check needs it on PATH \
                 (Debian package `openssl`; `.ci/services` installs it)"
            )
        });
    out.status.success()
}

/// A query's answer signed by bank v2, the key in the device (`signer` names it in the
/// messages): 200, verified by the WeChat-side client, and by OpenSSL independently, which
/// also refuses the message changed by one byte.
pub(super) fn assert_signed_by_v2(resp: &Resp, key: &SecretKey, signer: &str) {
    assert_eq!(resp.status, 200, "{:?}", resp.json);
    assert_eq!(resp.header("WxIns-Version"), Some("2"));
    assert_eq!(
        resp.signed_by.as_ref().ok(),
        Some(&2),
        "the WeChat-side client verifies the {signer}'s signature"
    );
    let message = response_signing_string(
        resp.header("WxIns-Timestamp").unwrap(),
        resp.header("WxIns-Nonce").unwrap(),
        &resp.body,
    );
    let signature = Signature::from_base64(resp.header("WxIns-Signature").unwrap()).unwrap();
    assert!(
        openssl_verifies(&key.public_key(), &message, &signature),
        "OpenSSL refused the {signer}'s response signature"
    );
    let mut changed = message;
    changed.push(b' ');
    assert!(
        !openssl_verifies(&key.public_key(), &changed, &signature),
        "OpenSSL must refuse a changed message"
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Sqlite).await } )* }
        mod mysql { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Mysql).await } )* }
    };
}

on_both_backends!(
    query_answered_and_signed_by_the_module,
    hang_and_failure_then_recovery
);

async fn query_answered_and_signed_by_the_module(db: Db) {
    let _serial = serial().await;
    let Some((gw, _index, key)) = module_gateway(db, 2000).await else {
        return;
    };
    let svc = app(gw.state.clone()).await;
    let resp = send(
        &svc,
        &gw.keys,
        Req::query("张三", "11010519491231002X").build(&gw.keys),
    )
    .await;
    assert_signed_by_v2(&resp, &key, "module");
    assert_no_private_key(gw.keys.dir.path(), &key);
    let metrics = gw.state.metrics().render();
    assert!(metrics.contains("gateway_sign_seconds_count{engine=\"sdf\"}"));
}

/// Nothing in the ring directory is (or contains) the module key's private key.
pub(super) fn assert_no_private_key(ring: &Path, key: &SecretKey) {
    let secret_hex = key.to_hex().to_string();
    let public = key.public_key();
    for entry in std::fs::read_dir(ring).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text
                .to_ascii_lowercase()
                .contains(&secret_hex.to_ascii_lowercase()),
            "{} holds the module key's private key",
            path.display()
        );
        if let Ok(sk) = SecretKey::parse(&text) {
            assert_ne!(
                sk.public_key(),
                public,
                "{} holds the module key's private key",
                path.display()
            );
        }
    }
}

async fn hang_and_failure_then_recovery(db: Db) {
    let _serial = serial().await;
    let Some((gw, _index, _key)) = module_gateway(db, 300).await else {
        return;
    };
    let svc = app(gw.state.clone()).await;
    let query = || Req::query("张三", "11010519491231002X").build(&gw.keys);
    assert_eq!(readyz(&svc).await.0, 200);

    // The module stops answering: each query answers the unsigned 503 within the deadline.
    set_control("hang = sign\n");
    for _ in 0..3 {
        let started = Instant::now();
        let resp = send(&svc, &gw.keys, query()).await;
        assert_eq!(resp.status, 503);
        assert_eq!(resp.body, MODULE_UNAVAILABLE_BODY.as_bytes());
        assert_eq!(resp.header("WxIns-Signature"), None, "nothing can sign it");
        // The device hangs until the test clears it: an answer at all means the deadline
        // (300 ms) gave it; the bound only keeps a loaded machine from failing the test.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered at the deadline, not when the module answers"
        );
    }
    let (status, body) = readyz(&svc).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["signing_module"], "unavailable");
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains(r#"gateway_signer_failures_total{backend="sdf",reason="timeout"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gateway_dependency_up{dependency="signing_module"} 0"#));

    // It answers again: ready and signing, no restart.
    set_control("");
    wait_ready(&svc).await;
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));

    // Injected failures: the same 503, counted as device failures.
    set_control("fail = sign\n");
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body, MODULE_UNAVAILABLE_BODY.as_bytes());
    assert_eq!(readyz(&svc).await.0, 503);
    assert!(gw
        .state
        .metrics()
        .render()
        .contains(r#"gateway_signer_failures_total{backend="sdf",reason="device"} 1"#));
    set_control("");
    wait_ready(&svc).await;
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
}

/// Polls /readyz until 200 (at most 5 s).
pub(super) async fn wait_ready<S, B>(svc: &S)
where
    S: common::TestService<B>,
    B: actix_web::body::MessageBody,
{
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = readyz(svc).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < until, "never ready again: {body}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn public_key_mismatch_is_refused() {
    let _serial = serial().await;
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let (index, _key) = module_key();
    let ring = gw.keys.dir.path();
    // Recorded: some other key.
    let other = SecretKey::generate().public_key();
    let module = module_section(ring, softsdf_library(), 2000);
    write_ring(ring, &other, &manifest("active", "staged", index, &module));
    let err = gw.state.keyring().reload().unwrap_err().to_string();
    assert!(err.contains("bank key v2"), "{err}");
    assert!(err.contains("is not the one recorded"), "{err}");
    assert!(err.contains(&other.fingerprint()), "{err}");
    // The old set keeps serving.
    assert!(gw.state.keyring().snapshot().bank_key(2).is_none());
}

#[actix_web::test]
async fn a_missing_module_stops_the_start() {
    let _serial = serial().await;
    let keys = common::Keys::new();
    let (index, key) = module_key();
    let ring = keys.dir.path();
    let missing = Path::new("/nonexistent/vendor/libsdf.so");
    let module = module_section(ring, missing, 2000);
    write_ring(
        ring,
        &key.public_key(),
        &manifest("active", "staged", index, &module),
    );
    let err = pension_gateway::server::load_keys(&common::settings(&keys))
        .err()
        .expect("the start is refused")
        .to_string();
    assert!(err.contains("sdf module `hsm`"), "{err}");
    assert!(err.contains("/nonexistent/vendor/libsdf.so"), "{err}");
}

#[actix_web::test]
async fn reload_reopens_the_module() {
    let _serial = serial().await;
    let (gw, _index, _key) = module_gateway(Db::Sqlite, 2000).await.unwrap();
    let svc = app(gw.state.clone()).await;
    let query = || Req::query("张三", "11010519491231002X").build(&gw.keys);
    reload_opens_the_module_anew(&gw);
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
    // A reload while the module refuses to export its key is refused; the old set serves on.
    set_control("fail = export_public_key\n");
    let err = gw.state.keyring().reload().unwrap_err().to_string();
    assert!(err.contains("sdf module `hsm`"), "{err}");
    set_control("");
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
    gw.state.keyring().reload().unwrap();
}

#[actix_web::test]
async fn rotation_from_a_file_key_to_a_module_key() {
    let _serial = serial().await;
    // 90 queries of one demo person: no per-identity limit here.
    let (mut gw, index, key) = busy_gateway().await;
    let svc = app(gw.state.clone()).await;
    let ring = gw.keys.dir.path().to_path_buf();
    hsm_password_file(&ring);
    let admin = key_dir(&ring);
    let v = admin
        .add_module_key("hsm", index, Some(hsm_entry(2, 2000)))
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(admin.export_public(2).unwrap(), key.public_key());
    assert_no_private_key(&ring, &key);
    gw.keys.bank.push((2, key.clone()));

    let signed_by = |expect: &'static [u32]| {
        let svc = &svc;
        let keys = &gw.keys;
        async move {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..30 {
                let resp = send(
                    svc,
                    keys,
                    Req::query("张三", "11010519491231002X").build(keys),
                )
                .await;
                assert_eq!(resp.status, 200, "{:?}", resp.json);
                let v = *resp.signed_by.as_ref().expect("every response verifies");
                assert!(expect.contains(&v), "signed by v{v}, expected {expect:?}");
                seen.insert(v);
            }
            seen
        }
    };
    gw.state.keyring().reload().unwrap();
    assert_eq!(signed_by(&[1]).await.len(), 1, "staged: v1 still signs");
    admin.rollout(2, 50).unwrap();
    gw.state.keyring().reload().unwrap();
    assert_eq!(
        signed_by(&[1, 2]).await.len(),
        2,
        "a 50 % rollout signs with both in 30 queries"
    );
    admin.activate(2).unwrap();
    gw.state.keyring().reload().unwrap();
    signed_by(&[2]).await;
}
