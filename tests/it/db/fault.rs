//! MySQL goes away mid-load and comes back: a loopback TCP proxy we can cut sits between the
//! gateway and MariaDB. While cut, every answer is a *signed* SYSTEM_ERROR within the deadline
//! (nothing hangs) and /readyz is 503; once restored the gateway recovers by itself, with no
//! restart; every 200 has its audit row. Needs TEST_MYSQL_URL (fails, never skips, when set and
//! unreachable).

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{send, Keys, Req, NOW};
use pension_gateway::store::{Store, StoreOptions};

/// A TCP forwarder on 127.0.0.1 that can drop every connection and refuse new ones, and can
/// swallow the acknowledgement of the next audit batch (the batch reaches MySQL, the answer
/// never reaches the gateway).
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Armed: the next connection that carries an audit INSERT gets no more bytes back.
    swallow_next_audit: Arc<AtomicBool>,
    /// With `swallow_next_audit`: refuse new connections from that moment (the link is gone).
    cut_after_audit: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    _rt: std::thread::JoinHandle<()>,
}

/// What the gateway's audit writer sends first in a batch (old and new statement text).
const AUDIT_INSERT: &[u8] = b"INSERT INTO query_audit";

impl Proxy {
    fn start(upstream: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let swallow = Arc::new(AtomicBool::new(false));
        let cut_after = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (c2, k2, s2, a2) = (
            cut.clone(),
            conns.clone(),
            swallow.clone(),
            cut_after.clone(),
        );
        let rt = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if c2.load(Ordering::SeqCst) {
                        drop(inbound); // refused while cut
                        continue;
                    }
                    let upstream = upstream.clone();
                    let (swallow, cut_after, cut) = (s2.clone(), a2.clone(), c2.clone());
                    let task = tokio::spawn(async move {
                        let Ok(out) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (mut ri, mut wi) = inbound.into_split();
                        let (mut ro, mut wo) = out.into_split();
                        let muted = Arc::new(AtomicBool::new(false));
                        let m2 = muted.clone();
                        let up = async move {
                            let mut buf = vec![0u8; 1 << 16];
                            loop {
                                let n = match ri.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                let chunk = &buf[..n];
                                if chunk.windows(AUDIT_INSERT.len()).any(|w| w == AUDIT_INSERT)
                                    && swallow.swap(false, Ordering::SeqCst)
                                {
                                    m2.store(true, Ordering::SeqCst);
                                    if cut_after.swap(false, Ordering::SeqCst) {
                                        cut.store(true, Ordering::SeqCst);
                                    }
                                }
                                if wo.write_all(chunk).await.is_err() {
                                    break;
                                }
                            }
                        };
                        let down = async move {
                            let mut buf = vec![0u8; 1 << 16];
                            loop {
                                let n = match ro.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if muted.load(Ordering::SeqCst) {
                                    continue; // read and dropped: the server's writes succeed
                                }
                                if wi.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        };
                        tokio::select! {
                            () = up => {}
                            () = down => {}
                        }
                    });
                    k2.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Self {
            port,
            cut,
            swallow_next_audit: swallow,
            cut_after_audit: cut_after,
            conns,
            _rt: rt,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// The next audit batch reaches MySQL but its answer is swallowed; with `then_cut`, new
    /// connections are refused from that moment until [`Proxy::restore`].
    fn lose_next_audit_ack(&self, then_cut: bool) {
        self.cut_after_audit.store(then_cut, Ordering::SeqCst);
        self.swallow_next_audit.store(true, Ordering::SeqCst);
    }
}

/// A gateway whose MySQL connections all go through a [`Proxy`], on a fresh database.
/// The database is dropped with the rig, also when a test fails.
struct Rig {
    proxy: Proxy,
    /// This test's database, not through the proxy.
    direct: String,
    keys: Keys,
    state: pension_gateway::state::AppState,
    store: Store,
    _db: DropDatabase, // last: dropped after the pool
}

/// Drops a test database on a runtime of its own (usable from `Drop`, also while unwinding).
struct DropDatabase {
    server: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(testkit::drop_mysql_database(&server, &name))
        })
        .join();
    }
}

impl Rig {
    /// None (with a note) when TEST_MYSQL_URL is unset; panics when it is set and unusable.
    async fn start(prefix: &str) -> Option<Self> {
        let server = common::mysql_url()?;
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let direct = testkit::create_mysql_database(&server, &name)
            .await
            .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e})"));
        let db = DropDatabase {
            server: server.clone(),
            name: name.clone(),
        };
        // mysql://user@host:port/db → the same through the proxy.
        let after_at = direct.split('@').nth(1).unwrap();
        let hostport = after_at.split('/').next().unwrap().to_string();
        let proxy = Proxy::start(hostport.clone());
        let direct_url = direct.clone();
        // prefer_socket=false: for a loopback host mysql_async otherwise switches to the server's
        // Unix socket after the handshake, which would bypass the proxy.
        let via_proxy = format!(
            "{}?prefer_socket=false",
            direct.replace(&hostport, &format!("127.0.0.1:{}", proxy.port))
        );
        let direct = direct_url;

        let keys = Keys::new();
        let mut s = common::settings(&keys);
        s.limits.per_identity_per_minute = 0;
        let store = Store::open(
            &via_proxy,
            StoreOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_millis(1500),
                create_if_missing: false,
            },
        )
        .await
        .unwrap();
        store.run_migrations().await.unwrap();
        let clock = Arc::new(pension_gateway::clock::ManualClock::at(NOW));
        let state = pension_gateway::server::build_state(
            &s,
            store.clone(),
            pension_gateway::server::load_keys(&s).unwrap(),
            clock,
        )
        .unwrap();
        pension_gateway::accounts::demo::seed_demo(state.accounts(), NOW)
            .await
            .unwrap();
        Some(Self {
            proxy,
            direct,
            keys,
            state,
            store,
            _db: db,
        })
    }
}

#[actix_web::test]
async fn mysql_outage_gives_signed_errors_and_recovers_without_restart() {
    let Some(rig) = Rig::start("pg_fault").await else {
        return;
    };
    let (proxy, keys, store, state) = (&rig.proxy, &rig.keys, &rig.store, &rig.state);
    let st = state.clone();
    let ops = st.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new()
            .configure(move |cfg| pension_gateway::http::configure(cfg, st))
            .configure(move |cfg| pension_gateway::ops::configure_ops(cfg, ops)),
    )
    .await;
    // The readiness verdict is cached for READINESS_TTL: wait it out before each check.
    macro_rules! ready {
        () => {{
            actix_web::rt::time::sleep(pension_gateway::ops::health::READINESS_TTL).await;
            actix_web::test::call_service(
                &svc,
                actix_web::test::TestRequest::get()
                    .uri("/readyz")
                    .to_request(),
            )
            .await
            .status()
            .as_u16()
        }};
    }

    let mut ok_ids = Vec::new();
    let query = |phase: &'static str| {
        let req = Req::query("张三", "11010519491231002X");
        let id = req.request_id.clone().unwrap();
        (phase, req, id)
    };
    // Healthy.
    for _ in 0..20 {
        let (_, req, id) = query("before");
        let r = send(&svc, keys, req.build(keys)).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        ok_ids.push(id);
    }
    assert_eq!(ready!(), 200);

    // Outage: signed SYSTEM_ERROR within the deadline, never a hang; not ready.
    proxy.cut();
    // The proxy's connection tasks are aborted asynchronously on its own runtime; give the
    // sockets a moment to close before judging what the gateway answers.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        let (_, req, _) = query("during");
        let started = Instant::now();
        let r = send(&svc, keys, req.build(keys)).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "answer took {:?}",
            started.elapsed()
        );
        assert!(matches!(r.status, 500 | 503), "{} {:?}", r.status, r.json);
        assert_eq!(r.code(), "SYSTEM_ERROR");
        assert_eq!(r.signed_by, Ok(1), "errors during the outage are signed");
    }
    assert_eq!(ready!(), 503);

    // Recovery, no restart.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, req, id) = query("after");
        let r = send(&svc, keys, req.build(keys)).await;
        if r.status == 200 {
            ok_ids.push(id);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {:?}",
            r.status,
            r.json
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..20 {
        let (_, req, id) = query("after");
        let r = send(&svc, keys, req.build(keys)).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        ok_ids.push(id);
    }
    assert_eq!(ready!(), 200);

    // Every 200 has exactly one audit row.
    for id in &ok_ids {
        let rows = store.audit_for_request(id).await.unwrap();
        assert_eq!(rows.len(), 1, "audit rows for {id}");
        assert_eq!(rows[0].outcome, "OK");
    }
    drop(svc);
    drop(rig);
}

/// Answer deadline while MySQL is gone: pool checkout (1.5 s) for the lookup and again for the
/// audit row, plus signing.
const DEADLINE: Duration = Duration::from_secs(4);

/// One answer of a concurrent burst.
struct Sent {
    request_id: String,
    started: Instant,
    elapsed: Duration,
    status: u16,
    code: String,
    signed_by: Result<u32, pension_gateway::client::ResponseError>,
}

/// `senders` concurrent senders, each sending `per_sender` queries one after another.
async fn burst<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    keys: &Keys,
    senders: usize,
    per_sender: usize,
) -> Vec<Sent> {
    let one_sender = |_| async move {
        let mut out = Vec::with_capacity(per_sender);
        for _ in 0..per_sender {
            let req = Req::query("张三", "11010519491231002X");
            let started = Instant::now();
            let r = send(svc, keys, req.build(keys)).await;
            out.push(Sent {
                request_id: req.request_id.clone().unwrap(),
                started,
                elapsed: started.elapsed(),
                status: r.status,
                code: r.code().to_string(),
                signed_by: r.signed_by,
            });
        }
        out
    };
    futures_util::future::join_all((0..senders).map(one_sender))
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn check_signed_and_timely(phase: &str, sent: &[Sent]) {
    for s in sent {
        assert_eq!(
            s.signed_by,
            Ok(1),
            "{phase}: unsigned answer {} {}",
            s.status,
            s.code
        );
        assert!(
            s.elapsed < DEADLINE,
            "{phase}: answer took {:?} ({} {})",
            s.elapsed,
            s.status,
            s.code
        );
        assert!(
            s.status == 200 || (matches!(s.status, 500 | 503) && s.code == "SYSTEM_ERROR"),
            "{phase}: {} {}",
            s.status,
            s.code
        );
    }
}

#[actix_web::test]
async fn mysql_outage_under_concurrent_load() {
    const SENDERS: usize = 6;
    let Some(rig) = Rig::start("pg_faultc").await else {
        return;
    };
    let (proxy, keys, store) = (&rig.proxy, &rig.keys, &rig.store);
    let st = rig.state.clone();
    let ops = st.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new()
            .configure(move |cfg| pension_gateway::http::configure(cfg, st))
            .configure(move |cfg| pension_gateway::ops::configure_ops(cfg, ops)),
    )
    .await;
    // The readiness verdict is cached for READINESS_TTL: wait it out before each check.
    let ready = || async {
        actix_web::rt::time::sleep(pension_gateway::ops::health::READINESS_TTL).await;
        actix_web::test::call_service(
            &svc,
            actix_web::test::TestRequest::get()
                .uri("/readyz")
                .to_request(),
        )
        .await
        .status()
        .as_u16()
    };
    let mut all = Vec::new();

    // Healthy, concurrent.
    let before = burst(&svc, keys, SENDERS, 5).await;
    check_signed_and_timely("before", &before);
    assert!(before.iter().all(|s| s.status == 200));
    all.extend(before);

    // Cut while a burst is in flight: each answer is a 200 or a signed SYSTEM_ERROR within the
    // deadline; nothing hangs.
    let (mid, cut_at) = futures_util::future::join(burst(&svc, keys, SENDERS, 8), async {
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
        proxy.cut();
        Instant::now()
    })
    .await;
    check_signed_and_timely("cut mid-burst", &mid);
    let settled = cut_at + Duration::from_millis(300);
    for s in mid.iter().filter(|s| s.started >= settled) {
        assert_ne!(s.status, 200, "a query sent well after the cut succeeded");
    }
    let mid_ok = mid.iter().filter(|s| s.status == 200).count();
    let mid_500 = mid.iter().filter(|s| s.status == 500).count();
    let mid_len = mid.len();
    all.extend(mid);

    // Fully down: every concurrent answer a signed SYSTEM_ERROR within the deadline; not ready.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let during = burst(&svc, keys, SENDERS, 3).await;
    check_signed_and_timely("during", &during);
    assert!(
        during.iter().all(|s| s.status == 503),
        "while down every answer is a 503: {:?}",
        during.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    let during_max = during.iter().map(|s| s.elapsed).max().unwrap();
    let during_len = during.len();
    assert_eq!(ready().await, 503);
    all.extend(during);

    // Restored: recovery without restart, then a concurrent burst all 200.
    proxy.restore();
    let recovery_started = Instant::now();
    loop {
        let first = burst(&svc, keys, 1, 1).await;
        check_signed_and_timely("recovering", &first);
        let ok = first[0].status == 200;
        all.extend(first);
        if ok {
            break;
        }
        assert!(
            recovery_started.elapsed() < Duration::from_secs(20),
            "no recovery"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let recovery = recovery_started.elapsed();
    let after = burst(&svc, keys, SENDERS, 5).await;
    check_signed_and_timely("after", &after);
    assert!(after.iter().all(|s| s.status == 200));
    all.extend(after);
    assert_eq!(ready().await, 200);

    // Every 200 has exactly one audit row; an error answer has at most one (its own, when the
    // audit insert still went through); nothing is duplicated.
    let mut rows_total = 0;
    let mut error_rows = std::collections::BTreeMap::<String, usize>::new();
    for s in &all {
        let rows = store.audit_for_request(&s.request_id).await.unwrap();
        if s.status == 200 {
            assert_eq!(rows.len(), 1, "audit rows for 200 {}", s.request_id);
            assert_eq!(rows[0].outcome, "OK");
            assert!(!rows[0].undelivered, "a 200 read as undelivered");
        } else {
            assert!(rows.len() <= 1, "audit rows for {} {}", s.status, s.code);
            // The audit never claims an answer the caller did not get: a row of an error
            // answer is one whose batch is marked undelivered.
            for r in &rows {
                assert!(
                    r.undelivered,
                    "{} {} answered, but the audit row says {} {}",
                    s.status, s.code, r.http_status, r.outcome
                );
                *error_rows
                    .entry(format!("{} → {}", s.status, r.outcome))
                    .or_default() += 1;
            }
        }
        rows_total += rows.len();
    }
    assert_eq!(store.count_audit().await.unwrap(), rows_total as i64);
    let oks = all.iter().filter(|s| s.status == 200).count();
    eprintln!(
        "db_fault concurrent: {} answers from {SENDERS} senders, {oks} × 200; burst cut \
         mid-flight: {mid_ok} × 200, {} × 503, {mid_500} × 500; while down: {} × 503 (slowest \
         {during_max:?}); recovered in {recovery:?}; {rows_total} audit rows (for error answers: \
         {error_rows:?})",
        all.len(),
        mid_len - mid_ok - mid_500,
        during_len
    );
    drop(svc);
    drop(rig);
}

/// Sends `n` queries at once; (request id, status, code, signed_by) of each.
async fn wave<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    keys: &Keys,
    n: usize,
) -> Vec<(
    String,
    u16,
    String,
    Result<u32, pension_gateway::client::ResponseError>,
)> {
    let reqs: Vec<Req> = (0..n)
        .map(|_| Req::query("张三", "11010519491231002X"))
        .collect();
    let answers =
        futures_util::future::join_all(reqs.iter().map(|r| send(svc, keys, r.build(keys)))).await;
    reqs.iter()
        .zip(answers)
        .map(|(q, r)| {
            let code = r.code().to_string();
            (q.request_id.clone().unwrap(), r.status, code, r.signed_by)
        })
        .collect()
}

#[derive(diesel::QueryableByName)]
struct Busy {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A batch stalled mid-commit: another session holds a lock the audit INSERT waits on, so the
/// batch times out. Its callers get a signed 503, and once the lock is released the stalled
/// INSERT must not commit after all (on the old writer it did: rows saying 200 for 503s).
#[actix_web::test]
async fn audit_batch_stalled_on_a_lock_answers_503_and_never_commits_later() {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    let Some(rig) = Rig::start("pg_stall").await else {
        return;
    };
    let (keys, store) = (&rig.keys, &rig.store);
    let st = rig.state.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st)),
    )
    .await;
    let warm = wave(&svc, keys, 1).await;
    assert_eq!(warm[0].1, 200);

    // Lock every row and the gap after the last one: an INSERT into query_audit now waits.
    let mut locker = diesel_async::AsyncMysqlConnection::establish(&rig.direct)
        .await
        .unwrap();
    locker
        .batch_execute("START TRANSACTION; SELECT id FROM query_audit FOR UPDATE")
        .await
        .unwrap();
    let stalled = wave(&svc, keys, 6).await;
    for (id, status, code, signed) in &stalled {
        assert_eq!((*status, code.as_str()), (503, "SYSTEM_ERROR"), "{id}");
        assert_eq!(*signed, Ok(1), "the 503 is signed");
    }
    locker.batch_execute("ROLLBACK").await.unwrap();

    // Whatever the stalled statement does once it gets the lock, it ends; wait for that (the
    // signal: no other session of this database is running a statement).
    let started = Instant::now();
    loop {
        let busy: Vec<Busy> = diesel_async::RunQueryDsl::load(
            diesel::sql_query(
                "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND COMMAND = 'Query' AND ID <> CONNECTION_ID()",
            ),
            &mut locker,
        )
        .await
        .unwrap();
        if busy[0].n == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stalled INSERT never ended"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    for (id, ..) in &stalled {
        let rows = store.audit_for_request(id).await.unwrap();
        assert!(rows.is_empty(), "{id} was answered 503 but has {rows:?}");
    }
    // And the writer goes on.
    let after = wave(&svc, keys, 3).await;
    for (id, status, ..) in &after {
        assert_eq!(*status, 200);
        assert_eq!(store.audit_for_request(id).await.unwrap().len(), 1);
    }
    drop(svc);
    drop(rig);
}

/// The batch commits but its acknowledgement is lost: the writer learns on a fresh connection
/// that it committed and answers the callers with their 200s (on the old writer: 503s while
/// the rows said 200).
#[actix_web::test]
async fn audit_ack_lost_after_commit_is_learned_and_answered() {
    let Some(rig) = Rig::start("pg_ack").await else {
        return;
    };
    let (proxy, keys, store) = (&rig.proxy, &rig.keys, &rig.store);
    let st = rig.state.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st)),
    )
    .await;
    assert_eq!(wave(&svc, keys, 1).await[0].1, 200);
    proxy.lose_next_audit_ack(false);
    let answered = wave(&svc, keys, 6).await;
    for (id, status, code, signed) in &answered {
        assert_eq!(*signed, Ok(1));
        let rows = store.audit_for_request(id).await.unwrap();
        assert_eq!(*status, 200, "{id}: {status} {code}, rows {rows:?}");
        assert_eq!(rows.len(), 1, "{id}");
        assert!(!rows[0].undelivered);
        assert_eq!((rows[0].http_status, rows[0].outcome.as_str()), (200, "OK"));
    }
    drop(svc);
    drop(rig);
}

/// The batch commits, its acknowledgement is lost and the link is cut before the writer can
/// learn the batch's fate: the callers get a signed 503, and once MySQL is back the committed
/// rows are marked undelivered, so every row's outcome matches what its caller received and
/// no caller got a 200 without a row.
#[actix_web::test]
async fn audit_ack_lost_and_link_cut_marks_the_rows_undelivered() {
    let Some(rig) = Rig::start("pg_cutack").await else {
        return;
    };
    let (proxy, keys, store) = (&rig.proxy, &rig.keys, &rig.store);
    let st = rig.state.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st)),
    )
    .await;
    let mut all = wave(&svc, keys, 1).await;
    assert_eq!(all[0].1, 200);
    proxy.lose_next_audit_ack(true);
    let cut = wave(&svc, keys, 6).await;
    for (id, status, code, signed) in &cut {
        assert_eq!((*status, code.as_str()), (503, "SYSTEM_ERROR"), "{id}");
        assert_eq!(*signed, Ok(1));
    }
    all.extend(cut.iter().cloned());
    proxy.cut(); // drops the connection whose answers were swallowed
    proxy.restore();
    // Back: the next batch first settles the one of unknown fate.
    let started = Instant::now();
    loop {
        let next = wave(&svc, keys, 1).await;
        let ok = next[0].1 == 200;
        all.extend(next);
        if ok {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no recovery");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let mut undelivered = 0;
    for (id, status, code, _) in &all {
        let rows = store.audit_for_request(id).await.unwrap();
        if *status == 200 {
            assert_eq!(rows.len(), 1, "a 200 without its row: {id}");
            assert!(!rows[0].undelivered);
        } else {
            assert!(rows.len() <= 1);
            for r in &rows {
                assert!(
                    r.undelivered,
                    "{id}: answered {status} {code}, the row says {} {}",
                    r.http_status, r.outcome
                );
                undelivered += 1;
            }
        }
    }
    assert!(
        undelivered >= 1,
        "the swallowed batch committed, so some rows must read undelivered"
    );
    drop(svc);
    drop(rig);
}
