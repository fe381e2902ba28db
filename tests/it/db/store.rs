//! Integration tests of the `store` module, run against SQLite (in-memory and a temp file) and,
//! when `TEST_MYSQL_URL` is set (e.g. `mysql://root@127.0.0.1:3306/test`), MySQL/MariaDB.
//!
//! Each MySQL test creates its own database via the test kit (`crates/testkit`) and drops it afterwards. With
//! `TEST_MYSQL_URL` unset the MySQL tests print a skip note and pass; with it set and the server
//! unreachable they fail.

use crate::common;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pension_gateway::store::{
    Account, Backend, BindingSession, NewAccount, NewAudit, RowRefusal, Store, StoreError,
    StoreOptions,
};
use testkit as testing;

// ------------------------------------------------------------------------------------------------
// Fixtures

fn digest(b: u8) -> [u8; 32] {
    let mut d = [b; 32];
    d[31] = b.wrapping_mul(7);
    d
}

fn acct(no: &str, d: u8, name: &str, status: i16) -> NewAccount {
    NewAccount {
        account_no: no.to_owned(),
        holder_name: name.to_owned(),
        phone: format!("1380000{:04}", d),
        id_digest: digest(d),
        status,
        opened_at: Some(1_700_000_000 + i64::from(d)),
        closed_at: None,
        updated_at: 1_764_000_000,
    }
}

fn audit(req: &str, outcome: &str, d: Option<u8>) -> NewAudit {
    NewAudit {
        request_id: req.to_owned(),
        received_at_ms: 1_764_000_000_123,
        outcome: outcome.to_owned(),
        http_status: if outcome == "OK" { 200 } else { 412 },
        bank_key_version: 3,
        wechat_key_version: Some(7),
        id_digest: d.map(digest),
        pension_status: if outcome == "OK" { Some(1) } else { None },
        channel: "wechat",
        evidence: Default::default(),
    }
}

async fn migrated(s: &Store) {
    s.run_migrations().await.expect("migrations");
}

/// The versions of the embedded migrations, oldest first, as diesel names them (the folder
/// name's date and time digits); both backends' folders hold the same names.
fn migration_versions() -> Vec<String> {
    let names = |backend: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.as_bytes().first().is_some_and(u8::is_ascii_digit))
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert_eq!(
        sqlite,
        names("mysql"),
        "the two backends' migration folders differ"
    );
    sqlite
        .iter()
        .map(|n| {
            n.split('_')
                .next()
                .unwrap()
                .chars()
                .filter(char::is_ascii_digit)
                .collect()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Scenarios, each run on every backend

/// Migrations apply once, then a second run is a no-op; the schema is usable afterwards.
async fn migrations_idempotent(s: Store) {
    let first = s.run_migrations().await.expect("first migration run");
    assert_eq!(first, migration_versions());
    let second = s.run_migrations().await.expect("second migration run");
    assert!(second.is_empty(), "second run applied {second:?}");
    assert_eq!(s.count_accounts().await.unwrap(), 0);
    assert_eq!(s.count_audit().await.unwrap(), 0);
    s.ping().await.expect("ping");
}

/// `pending_migrations`, the check `serve` makes with `database.migrate_on_start = false`:
/// every migration on a fresh database (and the check creates nothing: the bookkeeping table is
/// still absent), none once migrated, and exactly the one whose bookkeeping row is missing when
/// the schema is behind — the same answers on every backend.
async fn pending_migrations_report_a_schema_that_is_behind(s: Store) {
    let all = migration_versions();
    let newest = all.last().expect("at least one migration").clone();
    assert_eq!(s.pending_migrations().await.expect("pending, fresh"), all);
    assert!(
        testing::execute_sql(&s, "DELETE FROM __diesel_schema_migrations")
            .await
            .is_err(),
        "asking what is pending must not create the bookkeeping table (no DDL)"
    );
    assert_eq!(s.run_migrations().await.expect("migrate"), all);
    assert!(s.pending_migrations().await.expect("pending").is_empty());
    // One migration behind, as a newer binary finds the schema an older one left.
    testing::execute_sql(
        &s,
        &format!("DELETE FROM __diesel_schema_migrations WHERE version = '{newest}'"),
    )
    .await
    .expect("forget the newest migration");
    assert_eq!(
        s.pending_migrations().await.expect("pending, behind"),
        vec![newest]
    );
}

/// Lookup by digest: hit returns every field, miss returns None.
async fn lookup_hit_and_miss(s: Store) {
    migrated(&s).await;
    let mut a = acct("6222000000000001", 1, "张三丰", 1);
    a.closed_at = Some(1_800_000_000);
    let sum = s
        .upsert_accounts(&[a.clone(), acct("6222000000000002", 2, "李四", 3)])
        .await
        .unwrap();
    assert_eq!((sum.inserted, sum.updated), (2, 0));
    assert!(sum.rejected.is_empty());

    let got = s
        .find_account_by_digest(&digest(1))
        .await
        .unwrap()
        .expect("hit");
    let want = Account {
        account_no: a.account_no.clone(),
        holder_name: a.holder_name.clone(),
        phone: a.phone.clone(),
        id_digest: a.id_digest,
        status: 1,
        opened_at: a.opened_at,
        closed_at: Some(1_800_000_000),
    };
    assert_eq!(got, want);
    let other = s
        .find_account_by_digest(&digest(2))
        .await
        .unwrap()
        .expect("hit 2");
    assert_eq!((other.status, other.closed_at), (3, None));
    assert_eq!(s.find_account_by_digest(&digest(99)).await.unwrap(), None);
}

/// A session is live while expires_at > now; expires_at == now is expired. Ids match exactly.
async fn session_expiry_boundary(s: Store) {
    migrated(&s).await;
    let sess = BindingSession {
        session_id: "sess-abcDEF-0001".into(),
        id_digest: Some(digest(5)),
        created_at: 1_000,
        expires_at: 2_000,
    };
    s.insert_session(&sess).await.unwrap();
    let anon = BindingSession {
        session_id: "sess-anon".into(),
        id_digest: None,
        created_at: 1_000,
        expires_at: 5_000,
    };
    s.insert_session(&anon).await.unwrap();

    assert_eq!(
        s.find_live_session("sess-abcDEF-0001", 1_999)
            .await
            .unwrap(),
        Some(sess.clone())
    );
    assert_eq!(
        s.find_live_session("sess-abcDEF-0001", 2_000)
            .await
            .unwrap(),
        None,
        "expires_at == now is expired"
    );
    assert_eq!(
        s.find_live_session("sess-abcDEF-0001", 2_001)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.find_live_session("SESS-ABCDEF-0001", 1_500)
            .await
            .unwrap(),
        None,
        "ids compare exactly"
    );
    assert_eq!(s.find_live_session("nope", 0).await.unwrap(), None);
    assert_eq!(
        s.find_live_session("sess-anon", 4_999).await.unwrap(),
        Some(anon)
    );

    // Same id twice is a query error whose text does not quote the id.
    match s.insert_session(&sess).await {
        Err(StoreError::Statement(m)) => assert!(
            !m.to_string().contains("sess-abcDEF"),
            "message leaks the session id: {m}"
        ),
        other => panic!("expected Query error, got {other:?}"),
    }
}

/// Audit rows are written and read back per request id, oldest first.
async fn audit_insert_and_read(s: Store) {
    migrated(&s).await;
    s.insert_audit(&audit("req-1", "INVALID_USER_INFO", Some(1)))
        .await
        .unwrap();
    s.insert_audit(&audit("req-1", "OK", Some(1)))
        .await
        .unwrap();
    s.insert_audit(&audit("req-2", "SIGN_ERROR", None))
        .await
        .unwrap();
    assert_eq!(s.count_audit().await.unwrap(), 3);

    let rows = s.audit_for_request("req-1").await.unwrap();
    assert_eq!(rows.len(), 2);
    let want = audit("req-1", "OK", Some(1));
    let r = &rows[1];
    assert_eq!(
        (
            &r.request_id,
            r.received_at_ms,
            &r.outcome,
            r.http_status,
            r.bank_key_version,
            r.wechat_key_version,
            r.id_digest,
            r.pension_status
        ),
        (
            &want.request_id,
            want.received_at_ms,
            &want.outcome,
            want.http_status,
            want.bank_key_version,
            want.wechat_key_version,
            want.id_digest,
            want.pension_status
        )
    );
    assert_eq!(rows[0].outcome, "INVALID_USER_INFO");
    let r2 = s.audit_for_request("req-2").await.unwrap();
    assert_eq!(
        (r2.len(), r2[0].id_digest, r2[0].wechat_key_version),
        (1, None, Some(7))
    );
    assert!(s.audit_for_request("req-3").await.unwrap().is_empty());
}

/// Insert, then re-run with changes: counts and stored values follow.
async fn upsert_insert_then_update(s: Store) {
    migrated(&s).await;
    let batch: Vec<NewAccount> = (1..=3)
        .map(|i| acct(&format!("62220000000001{i:02}"), i, "王五", 1))
        .collect();
    let first = s.upsert_accounts(&batch).await.unwrap();
    assert_eq!(
        (first.inserted, first.updated, first.rejected.len()),
        (3, 0, 0)
    );
    assert_eq!(s.count_accounts().await.unwrap(), 3);

    // Idempotent re-run.
    let again = s.upsert_accounts(&batch).await.unwrap();
    assert_eq!(
        (again.inserted, again.updated, again.rejected.len()),
        (0, 3, 0)
    );

    let mut changed = batch.clone();
    changed[1].status = 2;
    changed[1].closed_at = Some(1_790_000_000);
    changed[1].phone = "13999999999".into();
    changed.push(acct("6222000000000199", 9, "赵六", 4));
    let second = s.upsert_accounts(&changed).await.unwrap();
    assert_eq!(
        (second.inserted, second.updated, second.rejected.len()),
        (1, 3, 0)
    );
    assert_eq!(s.count_accounts().await.unwrap(), 4);
    let a = s.find_account_by_digest(&digest(2)).await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.closed_at, a.phone.as_str()),
        (2, Some(1_790_000_000), "13999999999")
    );

    // Empty batch is fine.
    let empty = s.upsert_accounts(&[]).await.unwrap();
    assert_eq!(
        (empty.inserted, empty.updated, empty.rejected.len()),
        (0, 0, 0)
    );
}

/// The same account_no twice in one batch: the last row wins, the earlier one is reported.
async fn upsert_duplicate_account_in_batch(s: Store) {
    migrated(&s).await;
    let rows = vec![
        acct("6222000000000300", 30, "甲", 1),
        acct("6222000000000300", 31, "乙", 2),
    ];
    let sum = s.upsert_accounts(&rows).await.unwrap();
    assert_eq!((sum.inserted, sum.updated), (1, 0));
    assert_eq!(sum.rejected, vec![(0, RowRefusal::Superseded { by: 1 })]);
    assert_eq!(s.count_accounts().await.unwrap(), 1);
    assert_eq!(s.find_account_by_digest(&digest(30)).await.unwrap(), None);
    let a = s
        .find_account_by_digest(&digest(31))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.holder_name.as_str(), a.status), ("乙", 2));
}

/// A digest owned by another account is rejected (index + reason) and does not touch that
/// account; the good rows of the same batch still land. Also: digest repeated inside a batch,
/// and invalid fields.
async fn upsert_digest_conflict_rejected(s: Store) {
    migrated(&s).await;
    let owner = acct("6222000000000400", 40, "原主", 1);
    s.upsert_accounts(std::slice::from_ref(&owner))
        .await
        .unwrap();

    let mut thief = acct("6222000000000401", 40, "冒用", 2); // new account_no, digest of `owner`
    thief.phone = "13100000000".into();
    let rows = vec![
        acct("6222000000000402", 42, "好人甲", 1),
        thief,
        acct("6222000000000403", 43, "好人乙", 3),
        acct("6222000000000404", 43, "重复摘要", 1), // digest repeated within the batch
        acct("6222000000000405", 45, "坏状态", 9),   // invalid status
    ];
    let sum = s.upsert_accounts(&rows).await.unwrap();
    assert_eq!((sum.inserted, sum.updated), (2, 0), "{sum:?}");
    assert_eq!(
        sum.rejected,
        vec![
            (1, RowRefusal::DigestTaken),
            (3, RowRefusal::DigestRepeated { first: 2 }),
            (4, RowRefusal::Status(9)),
        ]
    );
    for (_, refusal) in &sum.rejected {
        let reason = refusal.to_string();
        assert!(
            !reason.contains("冒用") && !reason.contains("6222"),
            "reason leaks data: {reason}"
        );
    }
    assert_eq!(s.count_accounts().await.unwrap(), 3);
    // The owner is untouched.
    let o = s
        .find_account_by_digest(&digest(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.account_no.as_str(), o.holder_name.as_str(), o.status),
        ("6222000000000400", "原主", 1)
    );
    assert!(s
        .find_account_by_digest(&digest(42))
        .await
        .unwrap()
        .is_some());
    let b = s
        .find_account_by_digest(&digest(43))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.account_no, "6222000000000403");

    // An existing account may move to a free digest (correction of the bank's extract).
    let mut moved = owner.clone();
    moved.id_digest = digest(77);
    let sum = s.upsert_accounts(&[moved]).await.unwrap();
    assert_eq!((sum.inserted, sum.updated, sum.rejected.len()), (0, 1, 0));
    assert_eq!(s.find_account_by_digest(&digest(40)).await.unwrap(), None);
    assert_eq!(
        s.find_account_by_digest(&digest(77))
            .await
            .unwrap()
            .unwrap()
            .account_no,
        "6222000000000400"
    );
}

/// Concurrent writers through clones of one store all land (pool sharing, busy handling).
async fn concurrent_writes(s: Store) {
    migrated(&s).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_audit(&audit(&format!("conc-{i}"), "OK", None))
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("insert");
    }
    assert_eq!(s.count_audit().await.unwrap(), 24);
}

/// Group commit: a batch whose statement fails (a trigger refuses one of its rows) fails every
/// caller in it and leaves none of its rows; rows of every other batch are intact, each once.
async fn audit_batch_failure_fails_only_its_rows(s: Store) {
    migrated(&s).await;
    testing::execute_sql(&s, testing::poison_audit_trigger_sql(&s))
        .await
        .expect("install the fault trigger");

    // One at a time: each call is its own batch.
    s.insert_audit(&audit("before", "OK", Some(1)))
        .await
        .unwrap();
    let err = s
        .insert_audit(&audit("poison-alone", "OK", Some(1)))
        .await
        .expect_err("the poisoned row fails");
    assert!(
        matches!(err, StoreError::Statement(_) | StoreError::Unavailable(_)),
        "{err:?}"
    );
    s.insert_audit(&audit("after", "OK", None)).await.unwrap();

    // Concurrently: batches form as they will; whatever joined a poisoned batch fails with it.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = s.clone();
        let id = if i % 15 == 7 {
            format!("poison-{i}")
        } else {
            format!("row-{i}")
        };
        tasks.push(tokio::spawn(async move {
            let r = s.insert_audit(&audit(&id, "OK", Some(2))).await;
            (id, r)
        }));
    }
    let mut acknowledged = 2;
    for t in tasks {
        let (id, r) = t.await.expect("task");
        let rows = s.audit_for_request(&id).await.unwrap();
        match r {
            Ok(()) => {
                assert!(!id.starts_with("poison"), "{id} was acknowledged");
                assert_eq!(rows.len(), 1, "{id}: acknowledged, so exactly one row");
                acknowledged += 1;
            }
            Err(_) => assert!(rows.is_empty(), "{id}: failed, so no row"),
        }
    }
    for id in ["before", "after"] {
        assert_eq!(s.audit_for_request(id).await.unwrap().len(), 1, "{id}");
    }
    assert!(s
        .audit_for_request("poison-alone")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.count_audit().await.unwrap(), acknowledged);
}

// ------------------------------------------------------------------------------------------------
// Backends

fn opts() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        create_if_missing: false,
    }
}

async fn memory_store() -> Store {
    let s = Store::open("sqlite::memory:", opts())
        .await
        .expect("open memory");
    assert_eq!(s.backend(), Backend::Sqlite);
    s
}

async fn file_store(dir: &tempfile::TempDir) -> Store {
    let path = dir.path().join("gw.db");
    let url = format!("sqlite://{}", path.display());
    let s = Store::open(
        &url,
        StoreOptions {
            create_if_missing: true,
            ..opts()
        },
    )
    .await
    .expect("open file");
    assert!(path.exists());
    s
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let short: String = name.chars().take(30).collect();
    format!("pgw_{short}_{}_{nanos}", std::process::id())
}

/// Runs `scenario` in a fresh MySQL database; drops it afterwards even if the scenario panics.
async fn with_mysql<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(server) = common::mysql_url() else {
        eprintln!("SKIP {name}: TEST_MYSQL_URL is not set (e.g. mysql://root@127.0.0.1:3306/test)");
        return;
    };
    let db = unique(name);
    let url = testing::create_mysql_database(&server, &db)
        .await
        .unwrap_or_else(|e| {
            panic!("TEST_MYSQL_URL is set but the MySQL server is not usable: {e}")
        });
    let result = match Store::open(&url, opts()).await {
        Ok(s) => {
            assert_eq!(s.backend(), Backend::Mysql);
            tokio::spawn(scenario(s)).await
        }
        Err(e) => {
            let _ = testing::drop_mysql_database(&server, &db).await;
            panic!("cannot open fresh MySQL database: {e}");
        }
    };
    testing::drop_mysql_database(&server, &db)
        .await
        .expect("drop test database");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// [`with_mysql`] on the TLS-only server of `TEST_MYSQL_TLS_URL`, verified with its CA.
async fn with_mysql_tls<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((server, ca)) = common::mysql_tls() else {
        return;
    };
    let db = unique(name);
    let url = testing::create_mysql_database_with_ca(&server, Some(&ca), &db)
        .await
        .unwrap_or_else(|e| panic!("TEST_MYSQL_TLS_URL is set but the server is not usable: {e}"));
    let result = match Store::open_with_ca(&url, Some(&ca), opts()).await {
        Ok(s) => {
            assert_eq!(s.backend(), Backend::Mysql);
            tokio::spawn(scenario(s)).await
        }
        Err(e) => {
            let _ = testing::drop_mysql_database_with_ca(&server, Some(&ca), &db).await;
            panic!("cannot open fresh MySQL database over TLS: {e}");
        }
    };
    testing::drop_mysql_database_with_ca(&server, Some(&ca), &db)
        .await
        .expect("drop test database");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite_memory {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::memory_store().await).await; } )*
        }
        mod sqlite_file {
            $( #[tokio::test] async fn $scenario() {
                let dir = tempfile::tempdir().unwrap();
                super::$scenario(super::file_store(&dir).await).await;
            } )*
        }
        mod mysql {
            $( #[tokio::test] async fn $scenario() {
                super::with_mysql(stringify!($scenario), super::$scenario).await;
            } )*
        }
        mod mysql_tls {
            $( #[tokio::test] async fn $scenario() {
                super::with_mysql_tls(stringify!($scenario), super::$scenario).await;
            } )*
        }
    };
}

on_every_backend!(
    migrations_idempotent,
    pending_migrations_report_a_schema_that_is_behind,
    lookup_hit_and_miss,
    session_expiry_boundary,
    audit_insert_and_read,
    upsert_insert_then_update,
    upsert_duplicate_account_in_batch,
    upsert_digest_conflict_rejected,
    concurrent_writes,
    audit_batch_failure_fails_only_its_rows,
);

// ------------------------------------------------------------------------------------------------
// Opening and configuration

#[tokio::test]
async fn memory_store_is_shared_by_clones_and_isolated_between_stores() {
    let a = memory_store().await;
    migrated(&a).await;
    a.upsert_accounts(&[acct("6222000000000500", 50, "共享", 1)])
        .await
        .unwrap();
    let a2 = a.clone();
    assert_eq!(a2.count_accounts().await.unwrap(), 1);
    // A second in-memory store is a different database.
    let b = memory_store().await;
    assert_eq!(b.run_migrations().await.unwrap().len(), 6);
    assert_eq!(b.count_accounts().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_file_persists_and_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    match Store::open(&url, opts()).await {
        Err(StoreError::Config(m)) => assert!(m.to_string().contains("does not exist"), "{m}"),
        other => panic!("expected Config error, got {other:?}"),
    }
    assert!(!path.exists(), "refused open must not create the file");

    // Missing parent directory is refused even with create_if_missing.
    let deep = format!("sqlite://{}", dir.path().join("no/such/dir/x.db").display());
    match Store::open(
        &deep,
        StoreOptions {
            create_if_missing: true,
            ..opts()
        },
    )
    .await
    {
        Err(StoreError::Config(m)) => assert!(m.to_string().contains("does not exist"), "{m}"),
        other => panic!("expected Config error, got {other:?}"),
    }

    // Created on request, then reopened without create_if_missing; data persists.
    {
        let s = Store::open(
            &url,
            StoreOptions {
                create_if_missing: true,
                ..opts()
            },
        )
        .await
        .unwrap();
        migrated(&s).await;
        s.insert_audit(&audit("persist", "OK", None)).await.unwrap();
    }
    let s = Store::open(&url, opts()).await.unwrap();
    assert!(s.run_migrations().await.unwrap().is_empty());
    assert_eq!(s.count_audit().await.unwrap(), 1);
    assert!(format!("{s:?}").contains("typo.db"));
}

#[tokio::test]
async fn unknown_scheme_is_refused() {
    for url in [
        "postgres://u:pw@h/db",
        "mariadb2://h/db",
        "/var/lib/gw.db",
        "gw.db",
    ] {
        match Store::open(url, opts()).await {
            Err(StoreError::Config(m)) => {
                assert!(!m.to_string().contains("pw@"), "{m}");
                if url.starts_with("postgres") {
                    assert!(
                        m.to_string().contains("postgres"),
                        "error should name the scheme: {m}"
                    );
                }
            }
            other => panic!("{url}: expected Config error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn unreachable_mysql_is_unavailable_within_deadline() {
    let o = StoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..opts()
    };
    // Refused port, and a non-routable address (black hole or "unreachable", whichever this
    // network does): both must come back as Unavailable within acquire_timeout + 1 s.
    for url in [
        "mysql://root@127.0.0.1:1/x",
        "mysql://root:Sup3rSecretPw@10.255.255.1:3306/x",
    ] {
        let t0 = Instant::now();
        let r = Store::open(url, o.clone()).await;
        let took = t0.elapsed();
        match r {
            Err(StoreError::Unavailable(m)) => {
                assert!(
                    !m.to_string().contains("Sup3rSecretPw"),
                    "password leaked: {m}"
                )
            }
            other => panic!("{url}: expected Unavailable, got {other:?}"),
        }
        assert!(took < Duration::from_secs(2), "{url}: took {took:?}");
    }
}

#[tokio::test]
async fn mysql_url_errors_never_show_the_password() {
    for url in [
        "mysql://root:Sup3rSecretPw@/db",
        "mysql://root:Sup3rSecretPw@host",
    ] {
        match Store::open(url, opts()).await {
            Err(e) => {
                let m = format!("{e} {e:?}");
                assert!(!m.contains("Sup3rSecretPw"), "password leaked: {m}");
                assert!(m.contains("***"), "{m}");
            }
            Ok(_) => panic!("{url}: expected an error"),
        }
    }
}

#[test]
fn debug_masks_personal_data() {
    let a = NewAccount {
        account_no: "6222021234567890".into(),
        holder_name: "张三丰".into(),
        phone: "13812345678".into(),
        id_digest: [0xab; 32],
        status: 1,
        opened_at: None,
        closed_at: None,
        updated_at: 0,
    };
    let acc = Account {
        account_no: a.account_no.clone(),
        holder_name: a.holder_name.clone(),
        phone: a.phone.clone(),
        id_digest: a.id_digest,
        status: 1,
        opened_at: None,
        closed_at: None,
    };
    for s in [format!("{a:?}"), format!("{acc:?}"), format!("{acc:#?}")] {
        assert!(s.contains("张*"), "{s}");
        assert!(s.contains("***5678") && s.contains("***7890"), "{s}");
        assert!(s.contains("abababab…"), "{s}");
        for secret in ["三丰", "138123", "62220212", "abababababab"] {
            assert!(!s.contains(secret), "{secret} visible in {s}");
        }
    }
    let sess = BindingSession {
        session_id: "sess-secret-token".into(),
        id_digest: Some([0xcd; 32]),
        created_at: 1,
        expires_at: 2,
    };
    let s = format!("{sess:?}");
    assert!(
        !s.contains("secret-token") && s.contains("cdcdcdcd…") && !s.contains("cdcdcdcdcd"),
        "{s}"
    );
    let au = format!("{:?}", audit("r", "OK", Some(1)));
    assert!(!au.contains(&"01".repeat(8)), "{au}");
}

/// The bundled SQLite is built as `.cargo/config.toml` says: no per-call connection mutex
/// (each connection is used by one thread at a time) and no global allocation statistics.
#[test]
fn sqlite_is_built_without_per_call_mutexes() {
    let opts = testkit::sqlite_compile_options().unwrap();
    for want in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
        assert!(opts.iter().any(|o| o == want), "{want} not in {opts:?}");
    }
}
