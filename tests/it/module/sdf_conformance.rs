//! The software SDF device (`crates/softsdf`) checked by clients nobody here wrote: GmSSL 3.1's
//! `sdfutil` loads the built `libsoftsdf.so`, reads the device information, exports the signing
//! public key and signs a message through the device (it computes e = SM3(Z‖M) itself and has
//! the device sign e); OpenSSL 3 and the project's verifier then check that signature under
//! the distinguishing ID 1234567812345678.
//!
//! Runs when `TEST_GMSSL_BIN` is set (`.ci/services.d/60-gmssl.sh` builds GmSSL and sets it);
//! then a missing tool, a failed build of the device or a signature that does not verify FAILS.

use std::path::{Path, PathBuf};

use crate::common::softsdf::{self, softsdf_library};
use std::process::{Command, Output};

use pension_gateway::crypto::signing_string::response_signing_string;
use pension_gateway::crypto::{EngineKind, PublicKey, SecretKey, Signature, DEFAULT_SIGNER_ID};

const PASSWORD: &str = "conformance-Pw-1";

/// The GmSSL tool, or `None` (the test is not run) when `TEST_GMSSL_BIN` is unset.
fn gmssl() -> Option<PathBuf> {
    let Ok(bin) = std::env::var("TEST_GMSSL_BIN") else {
        eprintln!("note: TEST_GMSSL_BIN unset, SDF conformance against GmSSL not checked");
        return None;
    };
    let bin = PathBuf::from(bin);
    let out = Command::new(&bin).arg("version").output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "TEST_GMSSL_BIN={} does not run: {out:?}",
        bin.display()
    );
    Some(bin)
}

/// Writes key index 1 and its password into `dir`, 0600, in the device's documented format.
fn provision(dir: &Path, key: &SecretKey) {
    softsdf::provision(dir, 1, key, PASSWORD);
}

fn run(program: &Path, args: &[&str], keys: &Path, cwd: &Path) -> Output {
    Command::new(program)
        .args(args)
        .env("SOFTSDF_DIR", keys)
        .env_remove("SOFTSDF_CONTROL")
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl_verifies(dir: &Path, message_file: &str) -> bool {
    Command::new("openssl")
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
            message_file,
            "-sigfile",
            "sig.der",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl is on PATH where TEST_GMSSL_BIN is set")
        .status
        .success()
}

#[test]
fn gmssl_sdfutil_exports_and_signs_through_softsdf_and_openssl_verifies() {
    let Some(gmssl) = gmssl() else { return };
    let lib = softsdf_library().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = SecretKey::generate();
    provision(&keys, &key);
    let cwd = work.path();

    let info = ok(
        run(&gmssl, &["sdfutil", "-lib", lib, "-devinfo"], &keys, cwd),
        "sdfutil -devinfo",
    );
    assert!(
        info.contains("softsdf") && info.contains("sm2sign"),
        "{info}"
    );

    // The exported public key is the provisioned key's.
    let export = [
        "sdfutil",
        "-lib",
        lib,
        "-exportpubkey",
        "-key",
        "1",
        "-pass",
        PASSWORD,
        "-out",
        "pub.pem",
    ];
    ok(run(&gmssl, &export, &keys, cwd), "sdfutil -exportpubkey");
    let exported =
        PublicKey::from_pem(&std::fs::read_to_string(cwd.join("pub.pem")).unwrap()).unwrap();
    assert_eq!(exported, key.public_key());

    // A message as the gateway signs it: the response signing string.
    let message = response_signing_string(
        "1661776967",
        "5f270f2ff52b0c67dd47cd5c3ee17e91",
        "{\"code\":0,\"balance\":\"12.34\"}".as_bytes(),
    );
    std::fs::write(cwd.join("msg"), &message).unwrap();
    let sign = [
        "sdfutil", "-lib", lib, "-sign", "-key", "1", "-pass", PASSWORD, "-in", "msg", "-out",
        "sig.der",
    ];
    ok(run(&gmssl, &sign, &keys, cwd), "sdfutil -sign");
    let der = std::fs::read(cwd.join("sig.der")).unwrap();

    // OpenSSL verifies it, and refuses it for another message (the check can fail).
    assert!(
        openssl_verifies(cwd, "msg"),
        "OpenSSL refused the signature"
    );
    let mut other = message.clone();
    other[0] ^= 1;
    std::fs::write(cwd.join("other"), &other).unwrap();
    assert!(!openssl_verifies(cwd, "other"));

    // The project's verifier agrees.
    let signature = Signature::from_der(&der).unwrap();
    let verifier = EngineKind::Fast
        .engine()
        .verifier(&exported, DEFAULT_SIGNER_ID)
        .unwrap();
    assert_eq!(verifier.verify(&message, &signature), Ok(()));
    assert!(verifier.verify(&other, &signature).is_err());

    // A wrong password gets no signature.
    let wrong = [
        "sdfutil", "-lib", lib, "-sign", "-key", "1", "-pass", "wrong", "-in", "msg", "-out",
        "sig2.der",
    ];
    let refused = run(&gmssl, &wrong, &keys, cwd);
    assert!(!refused.status.success());
    assert!(std::fs::read(cwd.join("sig2.der"))
        .unwrap_or_default()
        .is_empty());
}

/// A signature through the device with a failure injected from the environment: sdfutil gets
/// the error code and writes no signature; without the switch the same call succeeds.
#[test]
fn gmssl_sdfutil_sees_an_injected_device_failure() {
    let Some(gmssl) = gmssl() else { return };
    let lib = softsdf_library().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    provision(&keys, &SecretKey::generate());
    let cwd = work.path();
    std::fs::write(cwd.join("msg"), b"message").unwrap();
    let sign = [
        "sdfutil", "-lib", lib, "-sign", "-key", "1", "-pass", PASSWORD, "-in", "msg", "-out",
        "sig.der",
    ];
    let failed = Command::new(&gmssl)
        .args(sign)
        .env("SOFTSDF_DIR", &keys)
        .env("SOFTSDF_FAIL", "sign")
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(std::fs::read(cwd.join("sig.der"))
        .unwrap_or_default()
        .is_empty());
    ok(
        run(&gmssl, &sign, &keys, cwd),
        "sdfutil -sign without faults",
    );
    assert!(!std::fs::read(cwd.join("sig.der")).unwrap().is_empty());
}
