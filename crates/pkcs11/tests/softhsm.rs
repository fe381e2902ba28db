//! The client's PKCS#11 plumbing against SoftHSM 2 (Debian's `softhsm2`), a token nobody here
//! wrote: token by label and by serial, login, a wrong PIN refused with a clear error, a key
//! found by `CKA_LABEL` and by `CKA_ID`, a missing key named, signing (ECDSA P-256 standing in
//! for SM2, which SoftHSM does not offer, through a profile naming `CKM_ECDSA`) checked by the
//! token's own verification, and the refusal of the default SM2 profile on a token that lists
//! only ECDSA.
//!
//! `TEST_SOFTHSM2_LIB` names the library (`.ci/services` sets it); without it the tests say they
//! did not run, with it a missing library or tool fails them. SoftHSM reads `SOFTHSM2_CONF` at
//! `C_Initialize`, once per process: the tests share one temporary configuration directory and
//! one token, made before the library is loaded, and run one at a time (login state is per
//! application in PKCS#11).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use pkcs11::{Input, KeyRef, P11Error, Pin, Profile, Token, TokenSelector};

const LABEL: &str = "gateway-test";
const PIN: &str = "user-pin-4821";
const SO_PIN: &str = "so-pin-9173";
/// `CKM_ECDSA`: the profile the plumbing signs with on SoftHSM.
const CKM_ECDSA: u64 = 0x1041;
/// DER of the P-256 curve's OID (prime256v1).
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

struct SoftHsm {
    library: PathBuf,
    _dir: tempfile::TempDir,
}

/// The library with its one token, or `None` when `TEST_SOFTHSM2_LIB` is not set.
fn softhsm() -> Option<&'static SoftHsm> {
    static HSM: OnceLock<Option<SoftHsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let Some(library) = std::env::var_os("TEST_SOFTHSM2_LIB").map(PathBuf::from) else {
            eprintln!("note: TEST_SOFTHSM2_LIB is not set; the SoftHSM tests did not run");
            return None;
        };
        assert!(
            library.exists(),
            "TEST_SOFTHSM2_LIB={} is missing",
            library.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", LABEL])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util runs (TEST_SOFTHSM2_LIB is set)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hsm = SoftHsm { library, _dir: dir };
        generate_key(&hsm.library, "k-label", &[0xa1, 0x01]);
        generate_key(&hsm.library, "k-other", &[0xa1, 0x02]);
        Some(hsm)
    })
    .as_ref()
}

/// One test at a time: login is per application.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// An EC P-256 key pair generated on the token through cryptoki, token objects with `label`
/// and `id`.
fn generate_key(library: &Path, label: &str, id: &[u8]) {
    let ctx = pkcs11::context(library).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == LABEL)
        .expect("the token made above");
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            if private {
                Attribute::Sign(true)
            } else {
                Attribute::Verify(true)
            },
        ]
    };
    let mut public = common(false);
    public.push(Attribute::EcParams(P256.to_vec()));
    let mut private = common(true);
    private.extend([Attribute::Private(true), Attribute::Sensitive(true)]);
    session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .unwrap();
    session.logout().unwrap();
}

fn ecdsa() -> Profile {
    Profile {
        name: "softhsm-ecdsa".into(),
        mechanism: CKM_ECDSA,
        input: Input::Digest,
    }
}

fn pin(text: &str) -> Pin {
    Pin::from_bytes(text.as_bytes())
}

/// Whether the token's own `C_Verify` (the public key object `label`) accepts `signature`.
fn token_verifies(library: &Path, label: &str, digest: &[u8], signature: &[u8]) -> bool {
    let ctx = pkcs11::context(library).unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_ro_session(slot).unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    session
        .verify(&Mechanism::Ecdsa, key, digest, signature)
        .is_ok()
}

#[test]
fn sessions_login_and_keys_by_label_and_by_id() {
    let _serial = serial();
    let Some(hsm) = softhsm() else { return };
    let token = Token::open(&hsm.library, TokenSelector::Label(LABEL.into()), ecdsa()).unwrap();
    let by_label = token.public_key(&KeyRef::Label("k-label".into())).unwrap();
    let by_id = token.public_key(&KeyRef::Id(vec![0xa1, 0x01])).unwrap();
    assert_eq!(by_label, by_id, "one key, found by label and by id");
    assert_eq!(by_label[0], 0x04);
    let other = token.public_key(&KeyRef::Id(vec![0xa1, 0x02])).unwrap();
    assert_ne!(other, by_label);

    // The same token by its serial number.
    let ctx = pkcs11::context(&hsm.library).unwrap();
    let serial = ctx
        .get_token_info(ctx.get_slots_with_token().unwrap()[0])
        .unwrap()
        .serial_number()
        .trim_end()
        .to_owned();
    let by_serial = Token::open(&hsm.library, TokenSelector::Serial(serial), ecdsa()).unwrap();

    let digest = [0x5au8; 32];
    for (token, key) in [
        (&token, KeyRef::Label("k-label".into())),
        (&by_serial, KeyRef::Id(vec![0xa1, 0x01])),
    ] {
        let mut session = token.session(&pin(PIN), &key).unwrap();
        assert_eq!(session.public_key().unwrap(), by_label);
        let sig = session.sign(&digest, b"unused").unwrap();
        let mut raw = sig.r.to_vec();
        raw.extend_from_slice(&sig.s);
        assert!(token_verifies(&hsm.library, "k-label", &digest, &raw));
        assert!(!token_verifies(&hsm.library, "k-label", &[0x5b; 32], &raw));
        assert!(!token_verifies(&hsm.library, "k-other", &digest, &raw));
    }
}

#[test]
fn a_wrong_pin_is_refused_with_a_clear_error() {
    let _serial = serial();
    let Some(hsm) = softhsm() else { return };
    let token = Token::open(&hsm.library, TokenSelector::Label(LABEL.into()), ecdsa()).unwrap();
    let err = token
        .session(&pin("not-the-pin"), &KeyRef::Label("k-label".into()))
        .unwrap_err();
    assert!(matches!(err, P11Error::WrongPin { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("token label `gateway-test` refused the PIN"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-pin"),
        "the PIN is never in an error"
    );
    // The right PIN still works afterwards.
    token
        .session(&pin(PIN), &KeyRef::Label("k-label".into()))
        .unwrap();
}

#[test]
fn a_missing_key_or_token_is_named() {
    let _serial = serial();
    let Some(hsm) = softhsm() else { return };
    let token = Token::open(&hsm.library, TokenSelector::Label(LABEL.into()), ecdsa()).unwrap();
    let err = token
        .session(&pin(PIN), &KeyRef::Label("absent".into()))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "token label `gateway-test` holds no private key with CKA_LABEL `absent`"
    );
    let err = token
        .public_key(&KeyRef::Id(vec![9, 9]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds no public key with CKA_ID 0909"),
        "{err}"
    );
    let err = Token::open(&hsm.library, TokenSelector::Label("nope".into()), ecdsa())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no token label `nope`"), "{err}");
    assert!(err.contains("`gateway-test`"), "{err}");
}

#[test]
fn a_token_offering_only_ecdsa_is_refused_for_sm2() {
    let _serial = serial();
    let Some(hsm) = softhsm() else { return };
    let err = Token::open(
        &hsm.library,
        TokenSelector::Label(LABEL.into()),
        Profile::default(),
    )
    .unwrap_err();
    assert!(matches!(err, P11Error::NoMechanism { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("does not offer mechanism 0x80020200 (SM2 signature of profile `default`)"),
        "{text}"
    );
    assert!(
        text.contains("CKM_ECDSA"),
        "the token's list is shown: {text}"
    );
}
