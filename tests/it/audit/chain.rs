//! The tamper-evident audit log wired into the real group-commit writer, on a SQLite file and on
//! MySQL (`TEST_MYSQL_URL`): rows carry their chain columns, checkpoints are signed and
//! witnessed, a restarted writer continues its chain, and `audit verify` names each kind of
//! tampering — an edited column, a deleted middle row, deleted tail rows with their checkpoint
//! (found through the witness), swapped rows, forged rows, an altered checkpoint signature, a
//! removed witness line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pension_gateway::audit::check::{log_proof, parse_witness, verify_store, Finding, Summary};
use pension_gateway::audit::{Checkpoint, Damage, Sm2CheckpointSigner, Sm2CheckpointVerifier};
use pension_gateway::crypto::{EngineKind, SecretKey, DEFAULT_SIGNER_ID};
use pension_gateway::store::{AuditEvidence, ChainSetup, NewAudit, SignedEvidence, Store, Witness};
use testkit as testing;

use crate::common::{self, Db, TestDb};

const INSTANCE: &str = "gw-a";

struct Log {
    db: TestDb,
    key: SecretKey,
    witness: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup(key: &SecretKey, witness: &Path, rows: u64) -> ChainSetup {
    let signer: Arc<dyn pension_gateway::crypto::PreparedSigner> = Arc::from(
        EngineKind::DEFAULT
            .engine()
            .signer(key, DEFAULT_SIGNER_ID)
            .unwrap(),
    );
    ChainSetup {
        instance_id: INSTANCE.into(),
        checkpoint_rows: rows,
        checkpoint_every: Duration::from_secs(3600),
        sign: Box::new(move |cp: Checkpoint| {
            cp.sign(&Sm2CheckpointSigner {
                key_version: 1,
                signer: signer.as_ref(),
            })
        }),
        witness: Witness::open(witness).unwrap(),
        sign_failures: Default::default(),
    }
}

fn row(i: u32) -> NewAudit {
    NewAudit {
        request_id: format!("req-{i}"),
        received_at_ms: 1_700_000_000_000 + i64::from(i),
        outcome: "OK".into(),
        http_status: 200,
        bank_key_version: 1,
        wechat_key_version: Some(1),
        id_digest: Some([0x5A; 32]),
        pension_status: Some(1),
        channel: "wechat",
        evidence: AuditEvidence {
            request: Some(SignedEvidence {
                nonce: format!("n{i}"),
                timestamp: "1700000000".into(),
                digest: [0x11; 32],
                signature: [0x22; 64],
            }),
            response: None,
        },
    }
}

async fn open(db: Db, dir: &Path) -> Option<TestDb> {
    match db {
        Db::Sqlite => Some(common::sqlite_file_db(dir).await),
        _ => common::test_db(db).await,
    }
}

/// Ten rows written one batch each, checkpoints every 4 rows: sizes 4 and 8 signed and
/// witnessed, rows 8 and 9 not yet covered.
async fn ten_rows(db: Db) -> Option<Log> {
    let dir = tempfile::tempdir().unwrap();
    let db = open(db, dir.path()).await?;
    let key = SecretKey::generate();
    let witness = dir.path().join("witness.log");
    assert!(db.store.chain_audit(setup(&key, &witness, 4)));
    for i in 0..10 {
        db.store.insert_audit(&row(i)).await.unwrap();
    }
    Some(Log {
        db,
        key,
        witness,
        _dir: dir,
    })
}

impl Log {
    fn verifier(&self) -> Sm2CheckpointVerifier {
        let public = self.key.public_key();
        Sm2CheckpointVerifier::new(EngineKind::RustCrypto.engine().as_ref(), [(1, &public)])
            .unwrap()
    }

    async fn verify_since(&self, since: Option<i64>) -> Result<Summary, Finding> {
        let text = std::fs::read_to_string(&self.witness).unwrap();
        let witness = parse_witness(&text)?;
        verify_store(
            &self.db.store,
            &witness,
            &self.verifier(),
            since,
            &mut |_, _| {},
        )
        .await
        .unwrap()
    }

    async fn verify(&self) -> Result<Summary, Finding> {
        self.verify_since(None).await
    }

    async fn sql(&self, sql: &str) {
        testing::execute_sql(&self.db.store, sql).await.unwrap();
    }

    fn store(&self) -> &Store {
        &self.db.store
    }
}

fn damaged(damage: Damage) -> Result<Summary, Finding> {
    Err(Finding::Damaged {
        instance: INSTANCE.into(),
        damage,
    })
}

async fn intact_and_proved(db: Db) {
    let Some(log) = ten_rows(db).await else {
        return;
    };
    let s = log.verify().await.unwrap();
    assert_eq!(s.instances.len(), 1);
    assert_eq!((s.instances[0].rows, s.instances[0].checkpoints), (10, 2));
    let cps = log.store().audit_checkpoints(INSTANCE).await.unwrap();
    assert_eq!(
        cps.iter().map(|c| c.tree_size).collect::<Vec<_>>(),
        vec![4, 8]
    );
    let lines = std::fs::read_to_string(&log.witness).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // The rows carry their chain columns; a covered row proves into its checkpoint, an
    // uncovered one is pending.
    let r5 = log.store().audit_for_request("req-5").await.unwrap();
    let c = r5[0].chain.as_ref().unwrap();
    assert_eq!((c.instance_id.as_str(), c.seq), (INSTANCE, 5));
    let p = log_proof(log.store(), &r5[0], &log.verifier())
        .await
        .unwrap();
    assert_eq!(p.verdict, "verified");
    assert!(p.checkpoint.as_deref().unwrap().contains("\n8\n"));
    assert_eq!(p.inclusion.len(), 3);
    let r9 = log.store().audit_for_request("req-9").await.unwrap();
    let p = log_proof(log.store(), &r9[0], &log.verifier())
        .await
        .unwrap();
    assert_eq!(p.verdict, "pending");
    // Incremental: from the last checkpoint at or before now, only the rows after it.
    let s = log.verify_since(Some(i64::MAX)).await.unwrap();
    assert_eq!((s.instances[0].from_seq, s.instances[0].rows), (8, 2));
}

#[tokio::test]
async fn intact_log_verifies_and_proves_sqlite() {
    intact_and_proved(Db::Sqlite).await;
}

#[tokio::test]
async fn intact_log_verifies_and_proves_mysql() {
    intact_and_proved(Db::Mysql).await;
}

async fn restart_continues(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(tdb) = open(db, dir.path()).await else {
        return;
    };
    let key = SecretKey::generate();
    let witness = dir.path().join("witness.log");
    assert!(tdb.store.chain_audit(setup(&key, &witness, 4)));
    for i in 0..6 {
        tdb.store.insert_audit(&row(i)).await.unwrap();
    }
    // A second store on the same database: a restarted instance (its writer resumes from the
    // checkpoint at 4 and the rows after it).
    let url = tdb.url.clone().unwrap();
    let again = Store::open(
        &url,
        pension_gateway::store::StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            create_if_missing: false,
        },
    )
    .await
    .unwrap();
    assert!(again.chain_audit(setup(&key, &witness, 4)));
    for i in 6..11 {
        again.insert_audit(&row(i)).await.unwrap();
    }
    let log = Log {
        db: tdb,
        key,
        witness,
        _dir: dir,
    };
    let s = log.verify().await.unwrap();
    assert_eq!((s.instances[0].rows, s.instances[0].checkpoints), (11, 2));
}

#[tokio::test]
async fn restarted_writer_continues_its_chain_sqlite() {
    restart_continues(Db::Sqlite).await;
}

#[tokio::test]
async fn restarted_writer_continues_its_chain_mysql() {
    restart_continues(Db::Mysql).await;
}

/// A witness file that refuses appends (`/dev/full`: ENOSPC): the writer goes on — every row
/// is written and acknowledged, the checkpoints are in the database — and counts each failed
/// append (`gateway_audit_witness_failures_total`); `audit verify` names the missing line.
async fn witness_failure_is_counted(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(tdb) = open(db, dir.path()).await else {
        return;
    };
    let key = SecretKey::generate();
    assert!(tdb
        .store
        .chain_audit(setup(&key, Path::new("/dev/full"), 4)));
    let failures = prometheus::IntCounter::new("f", "f").unwrap();
    tdb.store.count_witness_failures(failures.clone());
    for i in 0..10 {
        tdb.store.insert_audit(&row(i)).await.unwrap();
    }
    assert_eq!(tdb.store.count_audit().await.unwrap(), 10);
    let cps = tdb.store.audit_checkpoints(INSTANCE).await.unwrap();
    assert_eq!(cps.len(), 2);
    // Size 4 failed; at size 8 the pending line of 4 is tried first and fails again.
    assert_eq!(failures.get(), 2);
    let witness = dir.path().join("copy.log");
    std::fs::write(&witness, "").unwrap();
    let log = Log {
        db: tdb,
        key,
        witness,
        _dir: dir,
    };
    assert_eq!(
        log.verify().await,
        damaged(Damage::WitnessMissing { size: 4 })
    );
}

#[tokio::test]
async fn witness_failure_is_counted_sqlite() {
    witness_failure_is_counted(Db::Sqlite).await;
}

#[tokio::test]
async fn witness_failure_is_counted_mysql() {
    witness_failure_is_counted(Db::Mysql).await;
}

/// Each tampering on a fresh log, and what `audit verify` names.
async fn tampering_is_named(db: Db) {
    // An edited column.
    let Some(log) = ten_rows(db).await else {
        return;
    };
    log.sql("UPDATE query_audit SET outcome = 'FORGED' WHERE seq = 2")
        .await;
    assert_eq!(log.verify().await, damaged(Damage::EditedLeaf { seq: 2 }));

    // A deleted row in the middle.
    let log = ten_rows(db).await.unwrap();
    log.sql("DELETE FROM query_audit WHERE seq = 5").await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::Gap {
            expected: 5,
            found: 6
        })
    );

    // Tail rows deleted together with the checkpoint covering them: the witness still has it.
    let log = ten_rows(db).await.unwrap();
    log.sql("DELETE FROM query_audit WHERE seq >= 6").await;
    log.sql("DELETE FROM audit_checkpoints WHERE tree_size = 8")
        .await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::TruncatedTail { size: 8, rows: 6 })
    );

    // Two rows swapped (their sequence numbers exchanged).
    let log = ten_rows(db).await.unwrap();
    log.sql(
        "UPDATE query_audit SET seq = 100 WHERE seq = 3; \
         UPDATE query_audit SET seq = 3 WHERE seq = 4; \
         UPDATE query_audit SET seq = 4 WHERE seq = 100",
    )
    .await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::SwappedRows {
            expected: 3,
            found: 4
        })
    );

    // A forged row in the chain (its hashes made up), and one slipped in without chain columns.
    let log = ten_rows(db).await.unwrap();
    log.sql(&format!(
        "INSERT INTO query_audit (request_id, received_at_ms, outcome, http_status, \
         bank_key_version, channel, instance_id, seq, prev_hash, leaf_hash) VALUES \
         ('forged', 1, 'OK', 200, 1, 'wechat', '{INSTANCE}', 10, {}, {})",
        hex_literal(db, &[7; 32]),
        hex_literal(db, &[8; 32])
    ))
    .await;
    assert_eq!(log.verify().await, damaged(Damage::EditedLeaf { seq: 10 }));
    let log = ten_rows(db).await.unwrap();
    log.sql(
        "INSERT INTO query_audit (request_id, received_at_ms, outcome, http_status, \
         bank_key_version, channel) VALUES ('forged', 1, 'OK', 200, 1, 'wechat')",
    )
    .await;
    assert_eq!(log.verify().await, Err(Finding::Unchained { count: 1 }));

    // A row that names the instance but has no sequence number: outside the chain while
    // claiming a place in it (sequence-ordered reads never see it).
    let log = ten_rows(db).await.unwrap();
    log.sql(&format!(
        "INSERT INTO query_audit (request_id, received_at_ms, outcome, http_status, \
         bank_key_version, channel, instance_id) VALUES ('seqless', 1, 'OK', 200, 1, 'wechat', \
         '{INSTANCE}')"
    ))
    .await;
    assert_eq!(
        log.verify().await,
        Err(Finding::IncompleteChain {
            instance: INSTANCE.into(),
            count: 1,
            request_id: "seqless".into()
        })
    );
    // A chained row whose chain hash was blanked.
    let log = ten_rows(db).await.unwrap();
    log.sql("UPDATE query_audit SET leaf_hash = NULL WHERE seq = 3")
        .await;
    assert_eq!(
        log.verify().await,
        Err(Finding::IncompleteChain {
            instance: INSTANCE.into(),
            count: 1,
            request_id: "req-3".into()
        })
    );

    // A checkpoint's signature altered (one Base64 character of r ‖ s).
    let log = ten_rows(db).await.unwrap();
    let cp = log.store().audit_checkpoints(INSTANCE).await.unwrap();
    let note = &cp[0].note;
    let at = note.rfind(' ').unwrap() + 3;
    let mut altered = note.clone().into_bytes();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    log.sql(&format!(
        "UPDATE audit_checkpoints SET note = '{altered}' WHERE tree_size = 4"
    ))
    .await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::BadSignature { size: 4 })
    );

    // A witness line removed.
    let log = ten_rows(db).await.unwrap();
    let text = std::fs::read_to_string(&log.witness).unwrap();
    let rest: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log.witness, rest).unwrap();
    assert_eq!(
        log.verify().await,
        damaged(Damage::WitnessMissing { size: 4 })
    );
}

fn hex_literal(db: Db, b: &[u8]) -> String {
    match db {
        Db::Sqlite => format!("X'{}'", hex::encode(b)),
        _ => format!("X'{}'", hex::encode(b)),
    }
}

#[tokio::test]
async fn tampering_is_named_sqlite() {
    tampering_is_named(Db::Sqlite).await;
}

#[tokio::test]
async fn tampering_is_named_mysql() {
    tampering_is_named(Db::Mysql).await;
}

/// A configuration for the `audit` commands over `log`: its database, a key directory with the
/// bank key and a WeChat key, its witness file.
struct Cli {
    keys: tempfile::TempDir,
    cfg: PathBuf,
}

impl Cli {
    fn new(log: &Log) -> Cli {
        let keys = tempfile::tempdir().unwrap();
        common::write_private(&keys.path().join("bank-v1.key"), &log.key);
        let wechat = SecretKey::generate();
        std::fs::write(
            keys.path().join("wechat-v1.pub"),
            wechat.public_key().to_hex(),
        )
        .unwrap();
        std::fs::write(
            keys.path().join("keyring.toml"),
            "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
        )
        .unwrap();
        let cfg = keys.path().join("gateway.toml");
        std::fs::write(
            &cfg,
            format!(
                "[accounts]\nid_pepper = \"{}\"\n[database]\nurl = \"{}\"\n[keys]\ndir = \"{}\"\n[audit]\nwitness_file = \"{}\"\ninstance_id = \"{INSTANCE}\"\n",
                common::process::random_pepper(),
                log.db.url.as_deref().unwrap(),
                keys.path().display(),
                log.witness.display()
            ),
        )
        .unwrap();
        Cli { keys, cfg }
    }

    /// `pension-gateway --config … audit <args>`: exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut all = vec!["--config", self.cfg.to_str().unwrap(), "audit"];
        all.extend_from_slice(args);
        let out = std::process::Command::new(common::process::BIN)
            .args(&all)
            .env_remove("GATEWAY_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The command: exit 0 on the intact log, 1 naming the damage after an edit.
#[tokio::test]
async fn audit_verify_command_exit_codes() {
    let log = ten_rows(Db::Sqlite).await.unwrap();
    let cli = Cli::new(&log);
    let run = |args: &[&str]| cli.run(args);
    let (code, out, err) = run(&["verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("instance gw-a: rows 0..10 intact, 2 checkpoint root(s) checked"),
        "{out}"
    );
    let (code, out, err) = run(&["verify", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("rows 8..10 intact"), "{out}");
    // prove: the leaf, the inclusion path and the covering checkpoint, as JSON.
    let (code, out, err) = run(&["prove", "req-1", "--json"]);
    assert_eq!(code, Some(4), "{out}{err}"); // the made-up request signature does not verify
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let l = &v["rows"][0]["log"];
    assert_eq!(l["verdict"], "verified", "{out}");
    assert_eq!(l["seq"], 1);
    assert_eq!(l["inclusion"].as_array().unwrap().len(), 2);
    assert!(l["checkpoint"]
        .as_str()
        .unwrap()
        .starts_with("pension-gateway audit gw-a\n4\n"));
    log.sql("UPDATE query_audit SET http_status = 201 WHERE seq = 7")
        .await;
    let (code, out, err) = run(&["verify"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("DAMAGED: instance gw-a: row 7: edited"),
        "{out}"
    );
}

/// `audit prove --json` checked by an implementation that shares no code with this one:
/// pymerkle 7.0.0 (SM3 registered as its hash) recomputes the leaf hash and verifies the
/// inclusion path against the checkpoint's root, gmssl verifies the checkpoint's SM2 signature
/// (`tests/data/verify_prove_with_pymerkle.py`). A changed path element, a reordered path, a
/// changed leaf and the wrong bank key each make it fail. Fails when `TEST_PYMERKLE_PYTHON` is
/// set but the interpreter, pymerkle or gmssl is missing.
async fn prove_json_checked_by_pymerkle(db: Db) {
    let Ok(python) = std::env::var("TEST_PYMERKLE_PYTHON") else {
        eprintln!("note: TEST_PYMERKLE_PYTHON unset, pymerkle check of audit prove skipped");
        return;
    };
    let Some(log) = ten_rows(db).await else {
        return;
    };
    let cli = Cli::new(&log);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/verify_prove_with_pymerkle.py");
    let public = log.key.public_key().to_hex();
    let check = |json: &serde_json::Value, key: &str| {
        let file = cli.keys.path().join("prove.json");
        std::fs::write(&file, serde_json::to_vec(json).unwrap()).unwrap();
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&file)
            .arg(key)
            .output()
            .unwrap_or_else(|e| panic!("TEST_PYMERKLE_PYTHON={python} cannot run: {e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Rows 0, 5 and 7: covered by the checkpoints of size 4 and 8 (paths of 2 and 3 hashes).
    for (request, seq, size) in [("req-0", 0, 4), ("req-5", 5, 8), ("req-7", 7, 8)] {
        let (code, out, err) = cli.run(&["prove", request, "--json"]);
        // 4: the request signatures of these rows are made up; the log proof is what counts.
        assert_eq!(code, Some(4), "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let l = &v["rows"][0]["log"];
        assert_eq!(l["verdict"], "verified", "{out}");
        assert_eq!(l["seq"], seq);
        assert!(l["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pension-gateway audit {INSTANCE}\n{size}\n")));
        let (code, out, err) = check(&v, &public);
        assert_eq!(code, Some(0), "{request}: {out}{err}");
        assert!(out.contains("verify 1 row(s)"), "{out}");

        // One byte of one path element changed.
        let mut bad = v.clone();
        let h = bad["rows"][0]["log"]["inclusion"][1]
            .as_str()
            .unwrap()
            .to_owned();
        let flipped = format!("{}{}", if &h[..1] == "0" { "1" } else { "0" }, &h[1..]);
        bad["rows"][0]["log"]["inclusion"][1] = flipped.into();
        let (code, out, err) = check(&bad, &public);
        assert_eq!(code, Some(1), "{request}: {out}{err}");
        assert!(err.contains(&format!("inclusion of seq {seq}")), "{err}");

        // The path's hashes in another order.
        let mut bad = v.clone();
        let path = bad["rows"][0]["log"]["inclusion"].as_array_mut().unwrap();
        path.reverse();
        let (code, _, err) = check(&bad, &public);
        assert_eq!(code, Some(1), "{request}: {err}");

        // A changed leaf (its outcome byte), with its leaf hash left as printed.
        let mut bad = v.clone();
        let leaf = bad["rows"][0]["log"]["leaf"].as_str().unwrap().to_owned();
        // The outcome field: u32 length 2, then `OK`.
        let at = leaf.find("000000024f4b").unwrap() + 8;
        let changed = format!("{}{}{}", &leaf[..at], hex::encode("NO"), &leaf[at + 4..]);
        bad["rows"][0]["log"]["leaf"] = changed.into();
        let (code, _, err) = check(&bad, &public);
        assert_eq!(code, Some(1), "{request}: {err}");
        assert!(err.contains("leaf hash"), "{err}");

        // Another bank key: the checkpoint's signature does not verify.
        let other = SecretKey::generate().public_key().to_hex();
        let (code, _, err) = check(&v, &other);
        assert_eq!(code, Some(1), "{request}: {err}");
        assert!(err.contains("signature"), "{err}");
    }
    // A row no checkpoint covers yet has nothing to check: the script says so (exit 2).
    let (_, out, _) = cli.run(&["prove", "req-9", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"][0]["log"]["verdict"], "pending");
    assert_eq!(check(&v, &public).0, Some(2));
}

#[tokio::test]
async fn prove_json_checked_by_pymerkle_sqlite() {
    prove_json_checked_by_pymerkle(Db::Sqlite).await;
}

#[tokio::test]
async fn prove_json_checked_by_pymerkle_mysql() {
    prove_json_checked_by_pymerkle(Db::Mysql).await;
}

const BEFORE: &str = "2999-01-01T00:00:00Z";

/// `audit prune` cuts at a checkpoint, writes a signed prune record and its witness line, and
/// what remains verifies (also incrementally, and as a proof of a remaining row); the writer
/// goes on and a later prune continues from the cut.
async fn prune_keeps_the_rest_verifiable(db: Db) {
    let Some(log) = ten_rows(db).await else {
        return;
    };
    let cli = Cli::new(&log);
    let (code, out, err) = cli.run(&["prune", "--before", BEFORE, "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("instance gw-a: would remove rows 0..4"),
        "{out}"
    );
    assert_eq!(log.store().count_audit().await.unwrap(), 10);
    // The newest checkpoint (8) is never the cut: rows 0..4 go.
    let (code, out, err) = cli.run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(
            "instance gw-a: removed rows 0..4 (4 row(s)), cut at the checkpoint of size 4"
        ),
        "{out}"
    );
    assert_eq!(log.store().count_audit().await.unwrap(), 6);
    let lines = std::fs::read_to_string(&log.witness).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines
        .lines()
        .nth(2)
        .unwrap()
        .starts_with("pgw1-prune gw-a 0 4 "));
    let s = log.verify().await.unwrap();
    assert_eq!((s.instances[0].from_seq, s.instances[0].rows), (4, 6));
    let (code, out, err) = cli.run(&["verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("instance gw-a: rows 4..10 intact"), "{out}");
    // Nothing more to cut until a newer checkpoint exists.
    let (code, out, err) = cli.run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("instance gw-a: nothing to prune"), "{out}");
    // The writer goes on (checkpoint 12); the next prune removes 4..8.
    for i in 10..14 {
        log.store().insert_audit(&row(i)).await.unwrap();
    }
    let (code, out, err) = cli.run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("removed rows 4..8 (4 row(s))"), "{out}");
    let s = log.verify().await.unwrap();
    assert_eq!((s.instances[0].from_seq, s.instances[0].rows), (8, 6));
    let s = log.verify_since(Some(i64::MAX)).await.unwrap();
    assert_eq!((s.instances[0].from_seq, s.instances[0].rows), (12, 2));
    // A remaining row proves into its checkpoint through the frontier at the cut.
    let r9 = log.store().audit_for_request("req-9").await.unwrap();
    let p = log_proof(log.store(), &r9[0], &log.verifier())
        .await
        .unwrap();
    assert_eq!(p.verdict, "verified", "{p:?}");
    assert!(p.checkpoint.as_deref().unwrap().contains("\n12\n"));
    // A pruned request has no row left.
    assert!(log
        .store()
        .audit_for_request("req-1")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn prune_keeps_the_rest_verifiable_sqlite() {
    prune_keeps_the_rest_verifiable(Db::Sqlite).await;
}

#[tokio::test]
async fn prune_keeps_the_rest_verifiable_mysql() {
    prune_keeps_the_rest_verifiable(Db::Mysql).await;
}

/// Deleting rows without a prune record, or a prune record or its witness line, or a row past
/// the cut, is named; a damaged log is not pruned.
async fn pruning_around_the_record_is_named(db: Db) {
    let pruned = |e: u64, damage| {
        Err(Finding::Prune {
            instance: INSTANCE.into(),
            end: e,
            damage,
        })
    };
    // The oldest rows deleted without a record.
    let Some(log) = ten_rows(db).await else {
        return;
    };
    log.sql("DELETE FROM query_audit WHERE seq < 4").await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::Gap {
            expected: 0,
            found: 4
        })
    );

    // A damaged log is not pruned.
    let log = ten_rows(db).await.unwrap();
    log.sql("UPDATE query_audit SET outcome = 'FORGED' WHERE seq = 2")
        .await;
    let (code, out, err) = Cli::new(&log).run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("DAMAGED: instance gw-a: row 2: edited"),
        "{out}"
    );
    assert_eq!(log.store().count_audit().await.unwrap(), 10);

    // After a prune: the record deleted from the database.
    let log = ten_rows(db).await.unwrap();
    let (code, out, err) = Cli::new(&log).run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    log.sql("DELETE FROM audit_prunes").await;
    assert_eq!(
        log.verify().await,
        pruned(4, pension_gateway::audit::check::PruneDamage::Missing)
    );

    // Its witness line removed.
    let log = ten_rows(db).await.unwrap();
    let (code, out, err) = Cli::new(&log).run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    let text = std::fs::read_to_string(&log.witness).unwrap();
    let rest: String = text
        .lines()
        .filter(|l| !l.starts_with("pgw1-prune"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log.witness, rest).unwrap();
    assert_eq!(
        log.verify().await,
        pruned(
            4,
            pension_gateway::audit::check::PruneDamage::WitnessMissing
        )
    );

    // A row past the cut deleted too.
    let log = ten_rows(db).await.unwrap();
    let (code, out, err) = Cli::new(&log).run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    log.sql("DELETE FROM query_audit WHERE seq = 4").await;
    assert_eq!(
        log.verify().await,
        damaged(Damage::Gap {
            expected: 4,
            found: 5
        })
    );

    // A record claiming a longer cut (its note edited; its columns made to agree).
    let log = ten_rows(db).await.unwrap();
    let (code, out, err) = Cli::new(&log).run(&["prune", "--before", BEFORE]);
    assert_eq!(code, Some(0), "{out}{err}");
    let note = log.store().audit_prunes(None).await.unwrap()[0]
        .note
        .clone();
    let forged = note.replacen("\n0\n4\n", "\n0\n5\n", 1);
    assert_ne!(forged, note);
    log.sql(&format!(
        "UPDATE audit_prunes SET note = '{forged}', end_seq = 5"
    ))
    .await;
    assert_eq!(
        log.verify().await,
        pruned(5, pension_gateway::audit::check::PruneDamage::BadSignature)
    );
}

#[tokio::test]
async fn pruning_around_the_record_is_named_sqlite() {
    pruning_around_the_record_is_named(Db::Sqlite).await;
}

#[tokio::test]
async fn pruning_around_the_record_is_named_mysql() {
    pruning_around_the_record_is_named(Db::Mysql).await;
}

/// The `audit verify` rate (rows/s) on a SQLite file of `AUDIT_VERIFY_ROWS` rows (default
/// 1,000,000) written through the real writer, checkpoints every 1000 rows. Not run by
/// default (minutes): `AUDIT_VERIFY_ROWS=1000000 cargo test --test it verify_rate -- --ignored
/// --nocapture`; docs/performance.md has the figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn verify_rate() {
    let n: u32 = std::env::var("AUDIT_VERIFY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = common::sqlite_file_db(dir.path()).await;
    let key = SecretKey::generate();
    let witness = dir.path().join("witness.log");
    assert!(db.store.chain_audit(setup(&key, &witness, 1000)));
    let started = std::time::Instant::now();
    let mut next = 0;
    while next < n {
        let end = (next + 4096).min(n);
        let writes = (next..end).map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move { store.insert_audit(&row(i)).await })
        });
        for w in futures_util::future::join_all(writes).await {
            w.unwrap().unwrap();
        }
        next = end;
    }
    let wrote = started.elapsed();
    let log = Log {
        db,
        key,
        witness,
        _dir: dir,
    };
    let started = std::time::Instant::now();
    let s = log.verify().await.unwrap();
    let took = started.elapsed();
    assert_eq!(s.instances[0].rows, u64::from(n));
    eprintln!(
        "wrote {n} chained rows in {:.1} s ({:.0} rows/s); audit verify: {:.1} s, {:.0} rows/s, {} checkpoint roots",
        wrote.as_secs_f64(),
        f64::from(n) / wrote.as_secs_f64(),
        took.as_secs_f64(),
        f64::from(n) / took.as_secs_f64(),
        s.instances[0].checkpoints
    );
}
