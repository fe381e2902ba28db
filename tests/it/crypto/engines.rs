//! Engines against each other and against the OpenSSL 3 command line.

use std::process::Command;

use pension_gateway::crypto::{
    EngineKind, PreparedSigner, PreparedVerifier, SecretKey, Signature, DEFAULT_SIGNER_ID,
};
use proptest::prelude::*;

struct Pair {
    signers: Vec<Box<dyn PreparedSigner>>,
    verifiers: Vec<Box<dyn PreparedVerifier>>,
}

fn pair(sk: &SecretKey) -> Pair {
    Pair {
        signers: EngineKind::ALL
            .iter()
            .map(|k| k.engine().signer(sk, DEFAULT_SIGNER_ID).unwrap())
            .collect(),
        verifiers: EngineKind::ALL
            .iter()
            .map(|k| {
                k.engine()
                    .verifier(&sk.public_key(), DEFAULT_SIGNER_ID)
                    .unwrap()
            })
            .collect(),
    }
}

fn flip(bytes: &mut [u8], bit: usize) {
    let i = bit / 8 % bytes.len();
    bytes[i] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every engine verifies every other engine's signature over random messages and keys;
    /// a flipped bit in the message or the signature is rejected by every engine.
    #[test]
    fn engines_verify_each_other(
        key in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..300),
        bit in any::<usize>(),
    ) {
        let Ok(sk) = SecretKey::from_bytes(&key) else { return Ok(()); };
        let p = pair(&sk);
        for signer in &p.signers {
            let sig = signer.sign(&msg).unwrap();
            for verifier in &p.verifiers {
                prop_assert!(verifier.verify(&msg, &sig).is_ok());
                let mut bad_msg = msg.clone();
                if bad_msg.is_empty() { bad_msg.push(0); } else { flip(&mut bad_msg, bit); }
                prop_assert!(verifier.verify(&bad_msg, &sig).is_err());
                let mut raw = sig.to_raw();
                flip(&mut raw, bit);
                let r: [u8; 32] = raw[..32].try_into().unwrap();
                let s: [u8; 32] = raw[32..].try_into().unwrap();
                if let Ok(bad_sig) = Signature::from_scalars(r, s) {
                    prop_assert!(verifier.verify(&msg, &bad_sig).is_err());
                }
            }
        }
    }

    /// A signature does not verify under a key that differs by one bit.
    #[test]
    fn flipped_key_is_rejected(key in any::<[u8; 32]>(), bit in 0usize..256) {
        let Ok(sk) = SecretKey::from_bytes(&key) else { return Ok(()); };
        let mut other = key;
        flip(&mut other, bit);
        let Ok(other_sk) = SecretKey::from_bytes(&other) else { return Ok(()); };
        let msg = b"POST\n/v1/pension/account\n1661776967\nabc\n{}\n";
        for kind in EngineKind::ALL {
            let sig = kind.engine().signer(&sk, DEFAULT_SIGNER_ID).unwrap().sign(msg).unwrap();
            for vkind in EngineKind::ALL {
                let v = vkind.engine().verifier(&other_sk.public_key(), DEFAULT_SIGNER_ID).unwrap();
                prop_assert!(v.verify(msg, &sig).is_err());
            }
        }
    }
}

fn openssl_available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: `openssl` is not on PATH; OpenSSL interop not checked");
    }
    ok
}

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn openssl_signs_and_we_verify() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            "sk.pem",
        ],
        p,
    );
    openssl(&["pkey", "-in", "sk.pem", "-pubout", "-out", "pk.pem"], p);
    let msg = b"POST\n/v1/pension/account\n1661776967\n5f270f2ff52b0c67dd47cd5c3ee17e91\n{\"corpno\":\"weibao\"}\n";
    std::fs::write(p.join("msg"), msg).unwrap();
    let pk = pension_gateway::crypto::PublicKey::parse(
        &std::fs::read_to_string(p.join("pk.pem")).unwrap(),
    )
    .unwrap();
    // Our PKCS#8 reader agrees with OpenSSL's key.
    let sk = SecretKey::parse(&std::fs::read_to_string(p.join("sk.pem")).unwrap()).unwrap();
    assert_eq!(sk.public_key(), pk);
    for round in 0..5 {
        openssl(
            &[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-digest",
                "sm3",
                "-inkey",
                "sk.pem",
                "-in",
                "msg",
                "-out",
                "sig.der",
                "-pkeyopt",
                "distid:1234567812345678",
            ],
            p,
        );
        let sig = Signature::from_der(&std::fs::read(p.join("sig.der")).unwrap()).unwrap();
        for kind in EngineKind::ALL {
            let v = kind.engine().verifier(&pk, DEFAULT_SIGNER_ID).unwrap();
            v.verify(msg, &sig)
                .unwrap_or_else(|e| panic!("round {round} {kind}: {e}"));
            assert!(v.verify(b"other", &sig).is_err());
        }
    }
}

#[test]
fn we_sign_and_openssl_verifies() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let sk = SecretKey::generate();
    std::fs::write(p.join("pk.pem"), sk.public_key().to_pem().unwrap()).unwrap();
    let msg = b"1661776967\n5f270f2ff52b0c67dd47cd5c3ee17e91\n{\"pension_status\":1}\n";
    std::fs::write(p.join("msg"), msg).unwrap();
    for kind in EngineKind::ALL {
        let sig = kind
            .engine()
            .signer(&sk, DEFAULT_SIGNER_ID)
            .unwrap()
            .sign(msg)
            .unwrap();
        std::fs::write(p.join("sig.der"), sig.to_der()).unwrap();
        let out = openssl(
            &[
                "pkeyutl",
                "-verify",
                "-rawin",
                "-digest",
                "sm3",
                "-pubin",
                "-inkey",
                "pk.pem",
                "-in",
                "msg",
                "-sigfile",
                "sig.der",
                "-pkeyopt",
                "distid:1234567812345678",
            ],
            p,
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Verified Successfully"),
            "{kind}"
        );
        // And OpenSSL rejects it over another message.
        std::fs::write(p.join("msg2"), b"tampered").unwrap();
        let bad = Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-rawin",
                "-digest",
                "sm3",
                "-pubin",
                "-inkey",
                "pk.pem",
                "-in",
                "msg2",
                "-sigfile",
                "sig.der",
                "-pkeyopt",
                "distid:1234567812345678",
            ])
            .current_dir(p)
            .output()
            .unwrap();
        assert!(
            !bad.status.success(),
            "{kind}: openssl accepted a tampered message"
        );
    }
}
