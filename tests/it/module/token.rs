//! Bank keys inside a PKCS#11 token: the gateway signs WeChat responses through the software
//! device's PKCS#11 face (`crates/softsdf`, `C_GetFunctionList`, loaded through `cryptoki` as a
//! vendor's library would be), with the real actix app, store and key ring. Responses verified by
//! the WeChat-side client and by OpenSSL; a public key that differs from the recorded one
//! refused; a token listing only ECDSA refused at load, naming the mechanism (the software token
//! switched to ECDSA, and SoftHSM 2 as it is); a missing library stops the start; a hung token
//! answers the unsigned 503, a metric and /readyz not ready, and recovers; a reload reopens the
//! sessions; `keys add-module-key` for a token.
//!
//! The software token shares the SDF tests' key directory and control file
//! ([`super::signer`]) and runs under the same one-test-at-a-time lock.

use crate::common;

use std::path::Path;
use std::time::Duration;

use super::setup::{app, key_dir, reload_opens_the_module_anew, write_ring};
use super::signer::{
    assert_no_private_key, assert_signed_by_v2, device, module_key, readyz, serial, set_control,
    wait_ready, write_0600, PASSWORD,
};
use common::softsdf::softsdf_library;
use common::{send, Db, Gateway, Req};
use pension_gateway::crypto::{PublicKey, SecretKey};
use pension_gateway::http::wechat::respond::MODULE_UNAVAILABLE_BODY;
use pension_gateway::keyring::{ModuleEntry, ModuleKey};

/// The token's user PIN file (`token.pin`) in the device directory, written once.
fn token_pin() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| write_0600(&device().dir.path().join("token.pin"), PASSWORD));
}

/// Mechanisms the software token lists and what its `C_Sign` takes (environment, read per call).
fn token_env(mechanisms: Option<&str>, input: Option<&str>) {
    match mechanisms {
        Some(m) => std::env::set_var("SOFTSDF_P11_MECHANISMS", m),
        None => std::env::remove_var("SOFTSDF_P11_MECHANISMS"),
    }
    match input {
        Some(i) => std::env::set_var("SOFTSDF_P11_INPUT", i),
        None => std::env::remove_var("SOFTSDF_P11_INPUT"),
    }
}

/// The `[[module]]` section of a token module `tok` (and its PIN file in the ring directory).
fn token_section(ring: &Path, library: &Path, token_label: &str, extra: &str) -> String {
    write_0600(&ring.join("tok.pin"), &format!("{PASSWORD}\n"));
    format!(
        "[[module]]\nname = \"tok\"\nbackend = \"pkcs11\"\nlibrary = \"{}\"\n\
         pin_file = \"tok.pin\"\ntoken_label = \"{token_label}\"\nsessions = 2\n\
         timeout_ms = 300\n{extra}",
        library.display()
    )
}

/// Bank v1 (file) in `v1_state`, bank v2 on the token as `key_line` in `v2_state`, WeChat v1.
fn manifest(v1_state: &str, v2_state: &str, key_line: &str, module: &str) -> String {
    format!(
        "[[bank]]\nversion = 1\nstate = \"{v1_state}\"\nprivate_key = \"bank-v1.key\"\n\n\
         [[bank]]\nversion = 2\nstate = \"{v2_state}\"\nbackend = \"pkcs11\"\nmodule = \"tok\"\n\
         {key_line}\npublic_key = \"bank-v2.pub\"\n\n\
         [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n\n{module}"
    )
}

/// The ring of `ring`: bank v1 (file) active, bank v2 staged on the token `softsdf` of
/// `library` as `sign-<index>`, recorded as `recorded`.
fn staged_token_ring(ring: &Path, recorded: &PublicKey, library: &Path, index: u32) {
    let module = token_section(ring, library, "softsdf", "");
    let key_line = format!("key_label = \"sign-{index}\"");
    write_ring(
        ring,
        recorded,
        &manifest("active", "staged", &key_line, &module),
    );
}

/// A gateway whose bank v2 is the token's key at a fresh index (named by label, or by id),
/// active, loaded by a reload; the WeChat-side client knows v2's public key.
async fn token_gateway(db: Db, by_id: bool, profile: &str) -> Option<(Gateway, SecretKey)> {
    let mut gw = Gateway::start(db).await?;
    token_pin();
    let (index, key) = module_key();
    let ring = gw.keys.dir.path().to_path_buf();
    let key_line = if by_id {
        format!("key_id = \"{}\"", hex::encode(index.to_be_bytes()))
    } else {
        format!("key_label = \"sign-{index}\"")
    };
    let module = token_section(&ring, softsdf_library(), "softsdf", profile);
    write_ring(
        &ring,
        &key.public_key(),
        &manifest("retiring", "active", &key_line, &module),
    );
    gw.state
        .keyring()
        .reload()
        .expect("the token version loads");
    gw.keys.bank.push((2, key.clone()));
    Some((gw, key))
}

/// One query: 200, signed by v2, verified by the WeChat-side client and by OpenSSL.
async fn query_signed_by_the_token<S, B>(svc: &S, gw: &Gateway, key: &SecretKey)
where
    S: common::TestService<B>,
    B: actix_web::body::MessageBody,
{
    let resp = send(
        svc,
        &gw.keys,
        Req::query("张三", "11010519491231002X").build(&gw.keys),
    )
    .await;
    assert_signed_by_v2(&resp, key, "token");
}

async fn query_signed_through_pkcs11(db: Db) {
    let _serial = serial().await;
    token_env(None, None);
    let Some((gw, key)) = token_gateway(db, false, "").await else {
        return;
    };
    let svc = app(gw.state.clone()).await;
    query_signed_by_the_token(&svc, &gw, &key).await;
    assert_no_private_key(gw.keys.dir.path(), &key);
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains("gateway_sign_seconds_count{engine=\"pkcs11\"}"),
        "{metrics}"
    );

    // A reload opens new sessions on the token; it still signs.
    assert_eq!(reload_opens_the_module_anew(&gw).backend(), "pkcs11");
    query_signed_by_the_token(&svc, &gw, &key).await;
}

mod sqlite {
    #[actix_web::test]
    async fn query_signed_through_pkcs11() {
        super::query_signed_through_pkcs11(super::Db::Sqlite).await
    }
}

mod mysql {
    #[actix_web::test]
    async fn query_signed_through_pkcs11() {
        super::query_signed_through_pkcs11(super::Db::Mysql).await
    }
}

#[actix_web::test]
async fn a_message_input_profile_and_a_key_by_id() {
    let _serial = serial().await;
    // The token hashes (Z with the default ID, as the gateway's signer ID here).
    token_env(None, Some("message"));
    let profile = "[module.pkcs11_profile]\nname = \"hashing-token\"\ninput = \"message\"\n";
    let (gw, key) = token_gateway(Db::Sqlite, true, profile).await.unwrap();
    let svc = app(gw.state.clone()).await;
    query_signed_by_the_token(&svc, &gw, &key).await;
    token_env(None, None);
}

#[actix_web::test]
async fn public_key_mismatch_is_refused() {
    let _serial = serial().await;
    token_env(None, None);
    token_pin();
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let (index, _key) = module_key();
    let ring = gw.keys.dir.path();
    let other = SecretKey::generate().public_key();
    staged_token_ring(ring, &other, softsdf_library(), index);
    let err = gw.state.keyring().reload().unwrap_err().to_string();
    assert!(err.contains("bank key v2"), "{err}");
    assert!(err.contains("pkcs11 module `tok`"), "{err}");
    assert!(err.contains("is not the one recorded"), "{err}");
    assert!(err.contains(&other.fingerprint()), "{err}");
    assert!(gw.state.keyring().snapshot().bank_key(2).is_none());
}

#[actix_web::test]
async fn a_token_listing_only_ecdsa_is_refused_naming_the_mechanism() {
    let _serial = serial().await;
    token_pin();
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let (index, key) = module_key();
    let ring = gw.keys.dir.path();
    staged_token_ring(ring, &key.public_key(), softsdf_library(), index);
    // CKM_ECDSA only.
    token_env(Some("0x1041"), None);
    let err = gw.state.keyring().reload().unwrap_err().to_string();
    token_env(None, None);
    assert!(err.contains("bank key v2: pkcs11 module `tok`"), "{err}");
    assert!(
        err.contains(&softsdf_library().display().to_string()),
        "{err}"
    );
    assert!(err.contains("does not offer mechanism 0x80020200"), "{err}");
    assert!(err.contains("CKM_ECDSA"), "{err}");
    // Listed again: the same set loads.
    gw.state.keyring().reload().unwrap();
}

#[actix_web::test]
async fn a_missing_library_stops_the_start() {
    let _serial = serial().await;
    let keys = common::Keys::new();
    let (index, key) = module_key();
    let ring = keys.dir.path();
    let missing = Path::new("/nonexistent/vendor/libp11.so");
    staged_token_ring(ring, &key.public_key(), missing, index);
    let err = pension_gateway::server::load_keys(&common::settings(&keys))
        .err()
        .expect("the start is refused")
        .to_string();
    assert!(err.contains("pkcs11 module `tok`"), "{err}");
    assert!(
        err.contains("cannot load PKCS#11 library /nonexistent/vendor/libp11.so"),
        "{err}"
    );
}

#[actix_web::test]
async fn a_hung_token_answers_503_and_recovers() {
    let _serial = serial().await;
    token_env(None, None);
    let (gw, _key) = token_gateway(Db::Sqlite, false, "").await.unwrap();
    let svc = app(gw.state.clone()).await;
    let query = || Req::query("张三", "11010519491231002X").build(&gw.keys);
    assert_eq!(readyz(&svc).await.0, 200);
    set_control("hang = sign\n");
    for _ in 0..2 {
        let resp = send(&svc, &gw.keys, query()).await;
        assert_eq!(resp.status, 503);
        assert_eq!(resp.body, MODULE_UNAVAILABLE_BODY.as_bytes());
        assert_eq!(resp.header("WxIns-Signature"), None);
    }
    let (status, body) = readyz(&svc).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["signing_module"], "unavailable");
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains(r#"gateway_signer_failures_total{backend="pkcs11",reason="timeout"} 2"#),
        "{metrics}"
    );
    set_control("fail = sign\n");
    // The stuck calls return (failing) and free their sessions; a new call fails at once.
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 503);
    assert!(gw
        .state
        .metrics()
        .render()
        .contains(r#"gateway_signer_failures_total{backend="pkcs11",reason="device"}"#));
    set_control("");
    wait_ready(&svc).await;
    let resp = send(&svc, &gw.keys, query()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
}

#[actix_web::test]
async fn add_module_key_records_a_token_key() {
    let _serial = serial().await;
    token_env(None, None);
    token_pin();
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let (index, key) = module_key();
    let ring = gw.keys.dir.path().to_path_buf();
    write_0600(&ring.join("tok.pin"), &format!("{PASSWORD}\n"));
    let admin = key_dir(&ring);
    let declare = ModuleEntry::pkcs11(
        "tok".into(),
        softsdf_library().to_path_buf(),
        "tok.pin".into(),
        // The software token's serial number (crates/softsdf/src/p11.rs).
        &pkcs11::TokenSelector::Serial("SOFTSDF000000001".into()),
        2,
        2000,
    );
    let v = admin
        .add_module_key_at(
            "tok",
            &ModuleKey::Id(index.to_be_bytes().to_vec()),
            Some(declare),
        )
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(admin.export_public(2).unwrap(), key.public_key());
    assert_no_private_key(&ring, &key);
    let text = std::fs::read_to_string(ring.join("keyring.toml")).unwrap();
    assert!(text.contains("backend = \"pkcs11\""), "{text}");
    assert!(
        text.contains(&format!(
            "key_id = \"{}\"",
            hex::encode(index.to_be_bytes())
        )),
        "{text}"
    );
    gw.state.keyring().reload().unwrap();
    assert_eq!(
        gw.state
            .keyring()
            .snapshot()
            .bank_key(2)
            .unwrap()
            .signer
            .backend(),
        "pkcs11"
    );
    // A key the token does not hold is named, and nothing is added.
    let err = admin
        .add_module_key_at("tok", &ModuleKey::Label("absent".into()), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds no public key with CKA_LABEL `absent`"),
        "{err}"
    );
}

/// SoftHSM 2 as it is (it lists ECDSA, not SM2): the start is refused naming the mechanism.
/// Needs `TEST_SOFTHSM2_LIB` (`.ci/services`); the token is made in a temporary SOFTHSM2_CONF
/// directory (read by SoftHSM once per process — this is the only test of this binary that
/// loads it).
#[actix_web::test]
async fn softhsm_offering_only_ecdsa_stops_the_start() {
    let Some(library) = std::env::var_os("TEST_SOFTHSM2_LIB") else {
        common::skips::not_run(
            "TEST_SOFTHSM2_LIB",
            "module::token::softhsm_offering_only_ecdsa_stops_the_start",
        );
        return;
    };
    let library = std::path::PathBuf::from(library);
    assert!(
        library.exists(),
        "TEST_SOFTHSM2_LIB={} is missing",
        library.display()
    );
    let hsm = tempfile::tempdir().unwrap();
    let tokens = hsm.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = hsm.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bank-hsm"])
        .args(["--pin", PASSWORD, "--so-pin", "so-pin-5521"])
        .output()
        .expect("softhsm2-util runs (TEST_SOFTHSM2_LIB is set)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = common::Keys::new();
    let ring = keys.dir.path();
    let module = token_section(ring, &library, "bank-hsm", "");
    write_ring(
        ring,
        &SecretKey::generate().public_key(),
        &manifest("active", "staged", "key_label = \"bank\"", &module),
    );
    let err = pension_gateway::server::load_keys(&common::settings(&keys))
        .err()
        .expect("the start is refused")
        .to_string();
    assert!(err.contains("bank key v2: pkcs11 module `tok`"), "{err}");
    assert!(err.contains(&library.display().to_string()), "{err}");
    assert!(
        err.contains("token label `bank-hsm` does not offer mechanism 0x80020200"),
        "{err}"
    );
    assert!(err.contains("CKM_ECDSA"), "{err}");
}
