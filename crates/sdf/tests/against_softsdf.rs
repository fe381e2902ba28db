//! The client against the workspace's software SDF device, loaded from its shared library as a
//! vendor's would be: open, access right with a password file, public key export, signing of a
//! digest (checked with an independent SM2 verifier), wrong password, missing key, a wrong
//! vendor profile, injected failures and recovery.
//!
//! The device reads `SOFTSDF_DIR` and `SOFTSDF_CONTROL` from the environment when a device is
//! opened: they are set once, in the fixture, before any test opens one; tests that write the
//! control file hold `CONTROL` so they do not disturb each other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use sdf::{Module, Password, Profile, SdfError};
use sm2::dsa::signature::hazmat::PrehashVerifier;

const ANNEX_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const ANNEX_X: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const ANNEX_Y: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
const ANNEX_E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";

struct Fixture {
    library: PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn password_file(&self) -> PathBuf {
        self.dir.path().join("module.pin")
    }

    fn control(&self) -> PathBuf {
        self.dir.path().join("control")
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let library = build_softsdf();
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(ANNEX_D)).unwrap();
        softsdf::provision(&keys, 1, &secret, b"module-pin").unwrap();
        let pin = dir.path().join("module.pin");
        std::fs::write(&pin, "module-pin\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Every test starts here, so no test thread reads the environment while it is set.
        std::env::set_var("SOFTSDF_DIR", &keys);
        std::env::set_var("SOFTSDF_CONTROL", dir.path().join("control"));
        Fixture { library, dir }
    })
}

/// Serialises the tests that write the control file (and those that must not see it).
fn control_lock() -> MutexGuard<'static, ()> {
    static CONTROL: Mutex<()> = Mutex::new(());
    CONTROL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds `softsdf`'s shared library with cargo and returns its path as cargo reports it.
fn build_softsdf() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "softsdf",
            "--lib",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "softsdf")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .expect("cargo reports libsoftsdf.so")
}

fn hex32(s: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn open(f: &Fixture) -> Module {
    Module::open(&f.library, Profile::standard()).unwrap()
}

#[test]
fn exports_the_key_and_signs_a_digest_that_an_sm2_verifier_accepts() {
    let f = fixture();
    let _quiet = control_lock();
    let module = open(f);
    let mut session = module.session().unwrap();
    session.check_sm2().unwrap();
    let info = session.device_info().unwrap().unwrap();
    assert_eq!(info.name, "softsdf");

    let public = session.export_sign_public_key(1).unwrap();
    assert_eq!(public[0], 4);
    assert_eq!(&public[1..33], &hex32(ANNEX_X));
    assert_eq!(&public[33..], &hex32(ANNEX_Y));

    let password = Password::read_file(&f.password_file()).unwrap();
    session.get_access_right(1, &password).unwrap();
    let e = hex32(ANNEX_E);
    let signature = session.sign_digest(1, &e).unwrap();
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &public).unwrap();
    let sig = sm2::dsa::Signature::from_scalars(signature.r, signature.s).unwrap();
    assert!(key.verify_prehash(&e, &sig).is_ok());
    let mut other = e;
    other[0] ^= 0x80;
    assert!(key.verify_prehash(&other, &sig).is_err());

    // Sessions are independent: another session has no right until it gets one.
    let mut second = module.session().unwrap();
    let refused = second.sign_digest(1, &e).unwrap_err();
    assert_eq!(refused.code(), Some(0x0100_0007), "{refused}");
    session.release_access_right(1).unwrap();
    assert_eq!(
        session.sign_digest(1, &e).unwrap_err().code(),
        Some(0x0100_0007)
    );
}

#[test]
fn wrong_password_and_missing_key_are_the_modules_codes() {
    let f = fixture();
    let _quiet = control_lock();
    let module = open(f);
    let mut session = module.session().unwrap();
    let wrong = session
        .get_access_right(1, &Password::from_bytes(b"module-pin\n"))
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "SDF_GetPrivateKeyAccessRight returned 0x01000018 (SDR_PRKRERR)"
    );
    let missing = session.export_sign_public_key(7).unwrap_err();
    assert_eq!(missing.code(), Some(0x0100_0008), "{missing}");
}

#[test]
fn a_profile_that_does_not_match_the_library_is_refused_not_misread() {
    let f = fixture();
    let _quiet = control_lock();
    let narrow = Profile {
        name: "vendor-256".to_owned(),
        ecc_field_len: 32,
        ..Profile::standard()
    };
    let module = Module::open(&f.library, narrow).unwrap();
    let mut session = module.session().unwrap();
    let e = session.export_sign_public_key(1).unwrap_err();
    assert!(
        matches!(e, SdfError::Layout { .. }),
        "a 64-byte layout read as 32-byte fields: {e}"
    );
    let not_sm2 = Profile {
        sm2_sign_algorithm: 0x0002_0800,
        ..Profile::standard()
    };
    let module = Module::open(&f.library, not_sm2).unwrap();
    let e = module.session().unwrap().check_sm2().unwrap_err();
    assert!(matches!(e, SdfError::NoSm2 { .. }), "{e}");
}

#[test]
fn a_library_that_is_not_an_sdf_library_is_named() {
    let f = fixture();
    let e = Module::open(Path::new("/nonexistent/libvendor.so"), Profile::standard()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libvendor.so"), "{e}");
    // libc exists and exports none of the SDF functions.
    let e = Module::open(Path::new("libc.so.6"), Profile::standard()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "SDF library libc.so.6 has no function SDF_OpenDevice"
    );
    let _ = f;
}

#[test]
fn injected_failures_reach_the_caller_and_the_module_recovers() {
    let f = fixture();
    let _control = control_lock();
    let module = open(f);
    let mut session = module.session().unwrap();
    let password = Password::read_file(&f.password_file()).unwrap();
    session.get_access_right(1, &password).unwrap();
    let e = hex32(ANNEX_E);

    write_control(f, "fail = sign\nfail_code = 0x01000004\n");
    let failed = session.sign_digest(1, &e).unwrap_err();
    assert_eq!(failed.code(), Some(0x0100_0004), "{failed}");
    assert!(failed.to_string().ends_with("(SDR_HARDFAIL)"));

    write_control(f, "fail = open_session\n");
    assert_eq!(module.session().unwrap_err().code(), Some(0x0100_0003));

    std::fs::remove_file(f.control()).unwrap();
    assert!(session.sign_digest(1, &e).is_ok());
    assert!(module.session().is_ok());
}

fn write_control(f: &Fixture, text: &str) {
    let tmp = f.dir.path().join("control.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, f.control()).unwrap();
}
