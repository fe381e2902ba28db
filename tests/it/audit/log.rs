//! The audit log's Merkle tree against outside references: fixed SM3 roots (computed with
//! pymerkle 7.0.0 and, separately, a ten-line RFC 6962 MTH over OpenSSL's SM3), and — when
//! `TEST_PYMERKLE_PYTHON` is set (`.ci/services`) — pymerkle itself recomputing every root and
//! leaf hash, checking the inclusion proofs this crate produces and the consistency of its roots
//! (`tests/data/verify_with_pymerkle.py`).

use std::path::Path;
use std::process::Command;

use pension_gateway::audit::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion, Frontier, Hash,
};
use pension_gateway::audit::{AuditLeaf, ChainHead};

fn data(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn hashes(d: &[Vec<u8>]) -> Vec<Hash> {
    d.iter().map(|b| leaf_hash(b)).collect()
}

/// Roots of the leaves "leaf 0", "leaf 1", … (ASCII), from pymerkle 7.0.0 with SM3 and from an
/// independent recursive MTH over OpenSSL's SM3; both gave these values.
const KNOWN_ROOTS: [(usize, &str); 9] = [
    (
        0,
        "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b",
    ),
    (
        1,
        "265a931c3d9e95aeffdd1d3653fdc5ddc0c50100e656bdef4aeba09fd43bebea",
    ),
    (
        2,
        "5f4c609d311545d17cf002108167c248f9b8bfbc2c468a17456da04f90588c53",
    ),
    (
        3,
        "2965a6112b6c5f59ef9ccf6521d05e3c271b2a47c436809b195d184271df25bb",
    ),
    (
        4,
        "a55d42c6ec0b828646c90bafd03f6885a3cbff881ab2fa489100c8527860459d",
    ),
    (
        5,
        "c13c464e890216c2d123e16161d8d3251c47ccf8558e521640527fefe8059799",
    ),
    (
        7,
        "3c5f82a412484065b04e04b396fcdd521733baa7e2901b9b7d4487873eab1380",
    ),
    (
        8,
        "358e702f0cb7f0de71d163d1594684df3f69bfb3104a498f4bc694510d47f35f",
    ),
    (
        100,
        "02f8961b04a0895e47aae579b88ee84bcfbc088510e57bc6548d465d54fc441e",
    ),
];

#[test]
fn known_sm3_roots() {
    assert_eq!(hex::encode(empty_root()), KNOWN_ROOTS[0].1);
    for (n, want) in KNOWN_ROOTS {
        let l = hashes(&data(n));
        assert_eq!(hex::encode(root(&l)), want, "size {n}");
        let mut f = Frontier::new();
        l.iter().for_each(|h| f.push(*h));
        assert_eq!(hex::encode(f.root()), want, "frontier, size {n}");
    }
}

/// The leaf hash of the minimal row in `leaf.rs`'s encoding vector, computed by OpenSSL as
/// SM3(0x00 ‖ leaf).
#[test]
fn known_leaf_hash_of_an_encoded_row() {
    let mut head = ChainHead::resume("i", 2, [0; 32]).unwrap();
    let mut row = AuditLeaf {
        instance_id: String::new(),
        seq: 0,
        prev_hash: [9; 32],
        request_id: "r".into(),
        channel: "hmac".into(),
        outcome: "OK".into(),
        http_status: 200,
        received_at_ms: 1,
        bank_key_version: 3,
        wechat_key_version: None,
        id_digest: None,
        pension_status: None,
        request: None,
        response: None,
    };
    let h = head.link(&mut row).unwrap();
    assert_eq!(
        hex::encode(h),
        "0cd4d30002180d6605e3fb3c586ce5a75383dfb3f86ccd4ea91356b1c0ef27bd"
    );
}

fn hexes(v: &[Hash]) -> Vec<String> {
    v.iter().map(hex::encode).collect()
}

/// The cases handed to pymerkle: sizes that exercise every shape the RFC 6962 split takes (a
/// power of two, one past it, one before it, odd and even remainders) up to 40 — pymerkle's
/// pure-Python SM3 makes every size costly — with every root and inclusion proof, and every
/// pair m ≤ n of them (whose RFC 6962 consistency proofs this crate verifies here; pymerkle
/// proves the same pairs of roots consistent its own way).
fn cases_json() -> serde_json::Value {
    let sizes: Vec<usize> = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 31, 33, 40];
    let cases: Vec<serde_json::Value> = sizes
        .iter()
        .map(|&n| {
            let d = data(n);
            let l = hashes(&d);
            let roots: Vec<String> = (0..=n).map(|k| hex::encode(root(&l[..k]))).collect();
            let inclusion: Vec<serde_json::Value> = (0..n)
                .map(|i| {
                    let p = inclusion_proof(&l, i).unwrap();
                    verify_inclusion(i as u64, n as u64, &l[i], &p, &root(&l)).unwrap();
                    serde_json::json!({"index": i, "size": n, "path": hexes(&p)})
                })
                .collect();
            let consistency: Vec<serde_json::Value> = if n <= 40 {
                (1..=n)
                    .map(|m| {
                        let p = consistency_proof(&l, m).unwrap();
                        verify_consistency(m as u64, n as u64, &root(&l[..m]), &root(&l), &p)
                            .unwrap();
                        serde_json::json!({"first": m, "second": n})
                    })
                    .collect()
            } else {
                Vec::new()
            };
            serde_json::json!({
                "leaves": d.iter().map(hex::encode).collect::<Vec<_>>(),
                "leaf_hashes": hexes(&l),
                "roots": roots,
                "inclusion": inclusion,
                "consistency": consistency,
            })
        })
        .collect();
    serde_json::json!({ "cases": cases })
}

/// pymerkle 7.0.0 (SM3 registered as its hash) recomputes every root and leaf hash, checks this
/// crate's inclusion proofs, and proves each pair of this crate's roots consistent. Fails when `TEST_PYMERKLE_PYTHON` is set but
/// the interpreter, pymerkle or gmssl is missing.
#[test]
fn pymerkle_agrees_on_roots_and_proofs() {
    let Ok(python) = std::env::var("TEST_PYMERKLE_PYTHON") else {
        eprintln!("note: TEST_PYMERKLE_PYTHON unset, pymerkle cross-check skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(&cases, serde_json::to_vec(&cases_json()).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verify_with_pymerkle.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&cases)
        .output()
        .unwrap_or_else(|e| panic!("TEST_PYMERKLE_PYTHON={python} cannot run: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pymerkle check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("agrees"), "{stdout}");
    eprintln!("{stdout}");
}

/// The script is not a rubber stamp: one wrong root in the cases makes it fail.
#[test]
fn pymerkle_check_fails_on_a_wrong_root() {
    let Ok(python) = std::env::var("TEST_PYMERKLE_PYTHON") else {
        eprintln!("note: TEST_PYMERKLE_PYTHON unset, pymerkle cross-check skipped");
        return;
    };
    let mut cases = cases_json();
    cases["cases"][2]["roots"][3] = serde_json::Value::String(hex::encode([0u8; 32]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verify_with_pymerkle.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root of size 3 differs"));
}
