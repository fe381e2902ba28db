//! Audit checkpoints signed by a module-held bank key (the writer signs with the active version,
//! through the module, as the answers are signed): on a SQLite file and on MySQL, the active
//! key in the software SDF device signs a checkpoint after every row and `audit verify`'s check
//! finds the log intact; while the module hangs, the writer signs under the module's deadline,
//! writes the row uncovered (the unsigned 503 stays audited, in time) and counts the failure;
//! once the module answers again, the timer's checkpoint after the backoff covers every row.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::setup::{app, write_ring};
use super::signer::{manifest, module_key, module_section, serial, set_control, wait_ready};
use crate::common::softsdf::softsdf_library;
use crate::common::{self, send, Db, Gateway, Keys, Req, TestDb, NOW};
use pension_gateway::accounts::demo;
use pension_gateway::audit::check::{parse_witness, verify_store, Summary};
use pension_gateway::audit::{SignedCheckpoint, Sm2CheckpointVerifier};
use pension_gateway::clock::ManualClock;
use pension_gateway::crypto::EngineKind;
use pension_gateway::http::wechat::respond::MODULE_UNAVAILABLE_BODY;
use pension_gateway::server::{build_state, chain_audit, load_keys};

/// The module's deadline in these tests.
const TIMEOUT_MS: u64 = 300;

struct Chained {
    gw: Gateway,
    witness: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A gateway as `serve` builds it — the audit chained (a checkpoint after every row) before
/// the state — whose active bank key v2 is in the module; `None` without the database.
async fn chained_module_gateway(db: Db) -> Option<Chained> {
    let dir = tempfile::tempdir().unwrap();
    let tdb: TestDb = match db {
        Db::Sqlite => common::sqlite_file_db(dir.path()).await,
        _ => common::test_db(db).await?,
    };
    let mut keys = Keys::new();
    let (index, key) = module_key();
    let ring = keys.dir.path().to_path_buf();
    let module = module_section(&ring, softsdf_library(), TIMEOUT_MS);
    write_ring(
        &ring,
        &key.public_key(),
        &manifest("retiring", "active", index, &module),
    );
    keys.bank.push((2, key));
    let mut s = common::settings(&keys);
    s.limits.per_identity_per_minute = 0;
    let witness = dir.path().join("witness.log");
    s.audit.witness_file = witness.clone();
    s.audit.checkpoint_rows = 1;
    let ring = load_keys(&s).expect("the module version loads");
    chain_audit(&s, &tdb.store, &ring).expect("audit chain");
    let clock = Arc::new(ManualClock::at(NOW));
    let state = build_state(&s, tdb.store.clone(), ring, clock.clone()).expect("state");
    demo::seed_demo(state.accounts(), NOW)
        .await
        .expect("seed demo accounts");
    Some(Chained {
        gw: Gateway {
            state,
            clock,
            keys,
            db: tdb,
        },
        witness,
        _dir: dir,
    })
}

impl Chained {
    /// `audit verify`'s check of the whole log against the ring's public keys (both versions).
    async fn verify(&self) -> Summary {
        let text = std::fs::read_to_string(&self.witness).unwrap();
        let witness = parse_witness(&text).expect("the witness file parses");
        let public = self.gw.keys.bank_public();
        let verifier = Sm2CheckpointVerifier::new(
            EngineKind::RustCrypto.engine().as_ref(),
            public.iter().map(|(v, k)| (*v, k)),
        )
        .unwrap();
        verify_store(&self.gw.db.store, &witness, &verifier, None, &mut |_, _| {})
            .await
            .unwrap()
            .expect("the audit log verifies")
    }

    /// The instance's checkpoints, parsed: (tree size, signing key version).
    async fn checkpoints(&self, instance: &str) -> Vec<(u64, u32)> {
        self.gw
            .db
            .store
            .audit_checkpoints(instance)
            .await
            .unwrap()
            .iter()
            .map(|c| {
                let signed = SignedCheckpoint::from_note(&c.note).unwrap();
                (signed.checkpoint.size, signed.key_version)
            })
            .collect()
    }

    fn checkpoint_failures(&self) -> u64 {
        self.gw.state.metrics().audit_checkpoint_failures.get()
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Sqlite).await } )* }
        mod mysql { $( #[actix_web::test] async fn $name() { super::$name(super::Db::Mysql).await } )* }
    };
}

on_both_backends!(module_key_signs_checkpoints_and_a_hung_module_never_holds_the_audit);

async fn module_key_signs_checkpoints_and_a_hung_module_never_holds_the_audit(db: Db) {
    let _serial = serial().await;
    let Some(c) = chained_module_gateway(db).await else {
        return;
    };
    let gw = &c.gw;
    let svc = app(gw.state.clone()).await;
    let query = || Req::query("张三", "11010519491231002X");

    // Three answers signed in the module; each row is covered by a checkpoint the module signed.
    let mut instance = String::new();
    for _ in 0..3 {
        let req = query();
        let rid = req.request_id.clone().unwrap();
        let resp = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!(resp.status, 200, "{:?}", resp.json);
        assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
        let rows = gw.db.store.audit_for_request(&rid).await.unwrap();
        instance = rows[0].chain.as_ref().unwrap().instance_id.clone();
    }
    assert_eq!(
        c.checkpoints(&instance).await,
        vec![(1, 2), (2, 2), (3, 2)],
        "a checkpoint after every row, each signed by the module's key v2"
    );
    let summary = c.verify().await;
    assert_eq!(summary.instances.len(), 1);
    assert_eq!(summary.instances[0].rows, 3);
    assert_eq!(summary.instances[0].checkpoints, 3);
    assert_eq!(c.checkpoint_failures(), 0);

    // The module hangs. The query gets the unsigned 503 at the answer's deadline, and its
    // audit row is written at the checkpoint's: the writer never waits on the module past its
    // deadline. (That a failure is not tried again with every batch during the backoff is the
    // writer's unit test: here it would hang on the timing of a loaded machine.)
    set_control("hang = sign\n");
    // Cleared however the test ends (declared after the gateway, so dropped before it): a
    // failed assertion must not leave the writer stuck in the device while the store shuts down.
    let _clear = ClearOnDrop;
    let req = query();
    let rid = req.request_id.clone().unwrap();
    let started = Instant::now();
    // A writer waiting on the module would hold the answer as long as the module hangs.
    let resp = actix_web::rt::time::timeout(
        Duration::from_secs(10),
        send(&svc, &gw.keys, req.build(&gw.keys)),
    )
    .await
    .expect("no answer in 10 s: the audit writer waits on the hung module");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body, MODULE_UNAVAILABLE_BODY.as_bytes());
    // Two deadlines of 300 ms; the device hangs until it is cleared, so any answer at all came
    // from the deadlines, and the 10 s bound only keeps a loaded machine from failing the test.
    eprintln!("the unsigned 503 came after {:?}", started.elapsed());
    let rows = gw.db.store.audit_for_request(&rid).await.unwrap();
    assert_eq!(rows.len(), 1, "the unsigned 503 is audited");
    assert_eq!(rows[0].http_status, 503);
    assert_eq!(c.checkpoint_failures(), 1);
    assert_eq!(
        c.checkpoints(&instance).await.len(),
        3,
        "no checkpoint while the module hangs"
    );
    let metrics = gw.state.metrics().render();
    assert!(
        metrics.contains("gateway_audit_checkpoint_failures_total 1"),
        "{metrics}"
    );

    // The module answers again. Once the backoff (1 s) is over, the next batch's checkpoint
    // covers every row, the uncovered one included, and the log verifies.
    set_control("");
    wait_ready(&svc).await;
    // With no further request, the writer's timer tries again once the backoff (1 s from the
    // failure) is over: a checkpoint of all four rows, the uncovered one included.
    let until = Instant::now() + Duration::from_secs(20);
    while c.checkpoints(&instance).await.len() < 4 {
        assert!(
            Instant::now() < until,
            "no checkpoint {:?} after the query that failed",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The failure came at least the checkpoint's deadline (300 ms) after the query was sent,
    // and the backoff is 1 s from the failure: an earlier checkpoint was a try during the
    // backoff. (From `started`, a lower bound however slow the machine; the test's own clock
    // after the answer may be later than the failure.)
    assert!(
        started.elapsed() >= Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(1),
        "tried again during the backoff ({:?} after the query was sent)",
        started.elapsed()
    );
    assert_eq!(
        c.checkpoints(&instance).await,
        vec![(1, 2), (2, 2), (3, 2), (4, 2)]
    );
    assert_eq!(c.checkpoint_failures(), 1);
    // And the next row is covered as before.
    let resp = send(&svc, &gw.keys, query().build(&gw.keys)).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json);
    assert_eq!(resp.signed_by.as_ref().ok(), Some(&2));
    assert_eq!(
        c.checkpoints(&instance).await,
        vec![(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)]
    );
    let summary = c.verify().await;
    assert_eq!(summary.instances[0].rows, 5);
    assert_eq!(summary.instances[0].checkpoints, 5);
    assert_witness_lines(&c.witness, 5);
}

/// The witness file holds `n` lines, one per checkpoint.
fn assert_witness_lines(path: &Path, n: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.lines().count(), n, "{text}");
}

/// Clears the device's control file when dropped.
struct ClearOnDrop;

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        set_control("");
    }
}
