//! Two gateway instances sharing ONE MariaDB database and ONE Redis, under concurrent load.
//! Each instance is a real HTTP server on 127.0.0.1 in its own thread and actix
//! system, with its own `AppState`, connection pool, Redis client and limits; both load the same
//! key directory (bank v1 active + v2 in a 50 % gray rollout, so answers come signed by both).
//!
//! Properties: every answer verifies under the bank key version it names; every valid query is
//! answered 200 with the right status; the same request replayed to the OTHER instance — after
//! the first answer, or at the same moment — is refused (401 SIGN_ERROR, NONCE_REPLAYED) exactly
//! once; afterwards the shared `query_audit` table holds exactly one row per 200 (by Request-ID,
//! naming the bank version that signed) and nothing else.
//!
//! Needs `TEST_MYSQL_URL` and `TEST_REDIS_URL` (.ci/run sets both): unset → note and return;
//! set and unreachable → the test fails, it never skips.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use common::{Keys, NOW};
use pension_gateway::accounts::demo::{seed_demo, DEMO_PEOPLE};
use pension_gateway::client::WechatClient;
use pension_gateway::clock::ManualClock;
use pension_gateway::config::Settings;
use pension_gateway::crypto::SecretKey;
use pension_gateway::server::{build_state, load_keys};
use pension_gateway::store::{Store, StoreOptions};

/// Concurrent sender tasks, and fresh queries each sends (bounded: 12 × 40 = 480 queries, plus
/// one replay or simultaneous twin per query).
const SENDERS: usize = 12;
const PER_SENDER: usize = 40;
const ROUTE: &str = "/v1/pension/account";

/// A fresh MySQL database for this test, dropped when the test ends (also on failure).
struct SharedDb {
    server: String,
    name: String,
    url: String,
}

impl SharedDb {
    async fn create(server: &str) -> Self {
        let name = format!("pg_multi_{}", uuid::Uuid::new_v4().simple());
        let url = testkit::create_mysql_database(server, &name)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "TEST_MYSQL_URL is set but MySQL is unusable ({e}); start MariaDB or unset it"
                )
            });
        Self {
            server: server.to_string(),
            name,
            url,
        }
    }
}

impl Drop for SharedDb {
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

/// Fails (never skips) when Redis is configured but does not answer.
async fn require_redis(url: &str) {
    let client = redis::Client::open(url)
        .unwrap_or_else(|e| panic!("TEST_REDIS_URL is set but invalid ({e})"));
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    })
    .await;
    match pong {
        Ok(Ok(p)) if p == "PONG" => {}
        other => panic!(
            "TEST_REDIS_URL is set but Redis is unusable ({other:?}); start Redis or unset it"
        ),
    }
}

/// Keys under `prefix`, deleted after counting.
async fn count_and_delete_keys(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    keys.len()
}

/// One gateway instance: its own thread, actix system, pool, Redis client and state.
struct Instance {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
    /// Times the demo seeding was retried (see `start_instance`).
    seed_retries: usize,
}

fn start_instance(name: &'static str, db_url: String, settings: Settings) -> Instance {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("gateway-{name}"))
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let started = async {
                    let store = Store::open(
                        &db_url,
                        StoreOptions {
                            max_connections: 4,
                            acquire_timeout: Duration::from_secs(5),
                            create_if_missing: false,
                        },
                    )
                    .await
                    .map_err(|e| format!("open: {e}"))?;
                    // Both instances migrate and seed at the same time, as two replicas starting
                    // together would: the migration lock and the idempotent upsert must hold.
                    store
                        .run_migrations()
                        .await
                        .map_err(|e| format!("migrate: {e}"))?;
                    let ring = load_keys(&settings).map_err(|e| format!("keys: {e}"))?;
                    let state = build_state(&settings, store, ring, Arc::new(ManualClock::at(NOW)))
                        .map_err(|e| format!("state: {e}"))?;
                    // Two identical upserts at once can trip the import's read-back check ("account
                    // rows changed concurrently … retry"): on MariaDB's REPEATABLE READ the
                    // read-back does not see rows the other instance committed when this
                    // transaction's ODKU left them unchanged. The store asks for a retry; do so.
                    let mut retries = 0;
                    loop {
                        match seed_demo(state.accounts(), NOW).await {
                            Ok(_) => break,
                            Err(e) if retries < 5 && e.to_string().contains("retry") => {
                                retries += 1;
                                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(e) => return Err(format!("seed: {e}")),
                        }
                    }
                    let server = HttpServer::new(move || {
                        let st = state.clone();
                        App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st))
                    })
                    .workers(2)
                    .disable_signals()
                    .listen(listener)
                    .map_err(|e| format!("listen: {e}"))?
                    .run();
                    Ok::<_, String>((server, retries))
                }
                .await;
                match started {
                    Ok((server, retries)) => {
                        tx.send(Ok((server.handle(), retries))).unwrap();
                        let _ = server.await;
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            });
        })
        .unwrap();
    let (handle, seed_retries) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("instance {name} did not start: {e}"))
        .unwrap_or_else(|e| panic!("instance {name} failed to start: {e}"));
    Instance {
        addr,
        handle,
        thread,
        seed_retries,
    }
}

/// A signed query as WeChat would send it; `send` replays exactly these bytes.
struct Signed {
    request_id: String,
    authorization: String,
    body: Vec<u8>,
    person: usize,
}

impl Signed {
    fn new(client: &WechatClient, person: usize) -> Self {
        let p = &DEMO_PEOPLE[person];
        let body = serde_json::to_vec(&serde_json::json!({"user_true_name": p.name,
            "user_identify_card_num": p.id_number, "corpno": "weibao"}))
        .unwrap();
        let nonce = pension_gateway::crypto::nonce::generate();
        let authorization = client
            .sign_request("POST", ROUTE, &body, NOW, &nonce)
            .unwrap()
            .authorization;
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            authorization,
            body,
            person,
        }
    }
}

struct Answer {
    status: u16,
    json: serde_json::Value,
    /// Bank key version named in `WxIns-Version` that the response verified under.
    signed_by: Result<u32, String>,
    echoed_id: Option<String>,
}

async fn send(http: &awc::Client, client: &WechatClient, addr: SocketAddr, q: &Signed) -> Answer {
    let resp = http
        .post(format!("http://{addr}{ROUTE}"))
        .insert_header(("Authorization", q.authorization.as_str()))
        .insert_header(("Request-ID", q.request_id.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Accept", "application/json"))
        .send_body(q.body.clone())
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: 0,
                json: serde_json::Value::String(format!("transport: {e}")),
                signed_by: Err("no response".into()),
                echoed_id: None,
            }
        }
    };
    let status = resp.status().as_u16();
    let body = resp.body().await.unwrap_or_default();
    let headers = resp.headers().clone();
    let signed_by = client
        .verify_response(|n| headers.get(n).and_then(|v| v.to_str().ok()), &body, NOW)
        .map_err(|e| format!("{e:?}"));
    Answer {
        status,
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        signed_by,
        echoed_id: headers
            .get("Request-ID")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

fn is_replay_refusal(a: &Answer) -> bool {
    a.status == 401
        && a.json["code"] == "SIGN_ERROR"
        && a.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("NONCE_REPLAYED"))
}

/// What one 200 was, for the audit check.
struct Ok200 {
    request_id: String,
    bank_version: u32,
    status: i64,
}

#[derive(Default)]
struct Tally {
    ok: Vec<Ok200>,
    failures: Vec<String>,
    replays_refused: usize,
    races: usize,
    race_wins: [usize; 2],
    by_instance: [usize; 2],
}

#[actix_web::test]
async fn two_instances_share_mariadb_and_redis_under_concurrent_load() {
    let Some(mysql) = common::mysql_url() else {
        return;
    };
    let Some(redis_url) = common::redis_url() else {
        return;
    };
    require_redis(&redis_url).await;
    let db = SharedDb::create(&mysql).await;
    let prefix = format!("pgw-test:multi:{}:", uuid::Uuid::new_v4().simple());

    // One key directory for both: bank v1 active, v2 staged at a 50 % rollout.
    let mut keys = Keys::new();
    keys.bank.push((2, SecretKey::generate()));
    keys.write_manifest(
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\n\
         [[bank]]\nversion = 2\nstate = \"staged\"\nprivate_key = \"bank-v2.key\"\n\n\
         [rollout]\nversion = 2\npercent = 50\n\n\
         [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    );
    let keys = Arc::new(keys);
    let mut s = common::settings(&keys);
    s.replay.store = pension_gateway::config::ReplayStoreKind::Redis;
    s.replay.redis_url = redis_url.clone();
    s.replay.key_prefix = prefix.clone();
    s.limits.per_identity_per_minute = 0; // four identities, hundreds of queries
    s.database.url = db.url.clone();

    let started = Instant::now();
    let (ta, tb) = (
        {
            let (u, s) = (db.url.clone(), s.clone());
            std::thread::spawn(move || start_instance("a", u, s))
        },
        {
            let (u, s) = (db.url.clone(), s.clone());
            std::thread::spawn(move || start_instance("b", u, s))
        },
    );
    let instances = [ta.join().unwrap(), tb.join().unwrap()];
    let addrs = [instances[0].addr, instances[1].addr];
    eprintln!(
        "multi-instance: a={} b={} started in {:?} (seed retries: a {}, b {})",
        addrs[0],
        addrs[1],
        started.elapsed(),
        instances[0].seed_retries,
        instances[1].seed_retries
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let load_started = Instant::now();
    let load = async {
        let mut tasks = Vec::new();
        for sender in 0..SENDERS {
            let (keys, tally) = (keys.clone(), tally.clone());
            tasks.push(actix_web::rt::spawn(async move {
                let client = keys.client(1, true);
                let http = awc::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .finish();
                for i in 0..PER_SENDER {
                    let person = (sender + i) % DEMO_PEOPLE.len();
                    let q = Signed::new(&client, person);
                    let (first, other) = ((sender + i) % 2, (sender + i + 1) % 2);
                    let expect = DEMO_PEOPLE[person].status;
                    let fail = |what: String| {
                        tally
                            .lock()
                            .unwrap()
                            .failures
                            .push(format!("sender {sender} query {i}: {what}"))
                    };
                    // Every 4th query goes to both instances at the same moment.
                    let race = i % 4 == 3;
                    let (a, b) = if race {
                        futures_util::future::join(
                            send(&http, &client, addrs[first], &q),
                            send(&http, &client, addrs[other], &q),
                        )
                        .await
                    } else {
                        let a = send(&http, &client, addrs[first], &q).await;
                        let b = send(&http, &client, addrs[other], &q).await;
                        (a, b)
                    };
                    for ans in [&a, &b] {
                        if ans.signed_by.is_err() {
                            fail(format!(
                                "unsigned or badly signed answer: {} {:?} {}",
                                ans.status, ans.signed_by, ans.json
                            ));
                        }
                        if ans.echoed_id.as_deref() != Some(q.request_id.as_str()) {
                            fail(format!("Request-ID not echoed: {:?}", ans.echoed_id));
                        }
                    }
                    // Exactly one of the two is the 200; the other is the refused replay.
                    let (winner, ok, refused) = match (a.status, b.status) {
                        (200, _) => (first, &a, &b),
                        (_, 200) if race => (other, &b, &a),
                        _ => {
                            fail(format!(
                                "no 200: {} {} / {} {}",
                                a.status, a.json, b.status, b.json
                            ));
                            continue;
                        }
                    };
                    if ok.json["pension_status"] != expect {
                        fail(format!("wrong answer for person {person}: {}", ok.json));
                    }
                    if !is_replay_refusal(refused) {
                        fail(format!(
                            "replay to the other instance not refused: {} {}",
                            refused.status, refused.json
                        ));
                        continue;
                    }
                    let mut t = tally.lock().unwrap();
                    t.replays_refused += 1;
                    t.by_instance[winner] += 1;
                    if race {
                        t.races += 1;
                        t.race_wins[winner] += 1;
                    }
                    if let Ok(v) = ok.signed_by {
                        t.ok.push(Ok200 {
                            request_id: q.request_id.clone(),
                            bank_version: v,
                            status: i64::from(DEMO_PEOPLE[q.person].status),
                        });
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("sender task panicked");
        }
    };
    actix_web::rt::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("load did not finish within 60 s (something hangs)");
    let load_time = load_started.elapsed();

    for inst in &instances {
        inst.handle.stop(true).await;
    }
    let [a, b] = instances;
    a.thread.join().unwrap();
    b.thread.join().unwrap();

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(
        tally.failures.is_empty(),
        "{} failures, first: {:#?}",
        tally.failures.len(),
        &tally.failures[..tally.failures.len().min(10)]
    );
    let total = SENDERS * PER_SENDER;
    assert_eq!(tally.ok.len(), total, "every valid query answered 200 once");
    assert_eq!(tally.replays_refused, total);
    let v1 = tally.ok.iter().filter(|o| o.bank_version == 1).count();
    let v2 = tally.ok.iter().filter(|o| o.bank_version == 2).count();
    assert!(v1 > 0 && v2 > 0, "rollout: v1 {v1}, v2 {v2}");
    assert!(tally.by_instance[0] > 0 && tally.by_instance[1] > 0);

    // The shared audit table: exactly one row per 200, naming the bank version that signed.
    let store = Store::open(
        &db.url,
        StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            create_if_missing: false,
        },
    )
    .await
    .unwrap();
    for ok in &tally.ok {
        let rows = store.audit_for_request(&ok.request_id).await.unwrap();
        assert_eq!(rows.len(), 1, "audit rows for {}", ok.request_id);
        let r = &rows[0];
        assert_eq!((r.outcome.as_str(), r.http_status), ("OK", 200));
        assert_eq!(r.bank_key_version, ok.bank_version as i32);
        assert_eq!(r.pension_status.map(i64::from), Some(ok.status));
    }
    let rows = store.count_audit().await.unwrap();
    assert_eq!(
        rows, total as i64,
        "no duplicate or stray audit rows (replays are not audited)"
    );
    assert_eq!(store.count_accounts().await.unwrap(), 3);
    drop(store);

    // One nonce recorded per query, under this run's prefix, by whichever instance won.
    let nonces = count_and_delete_keys(&redis_url, &prefix).await;
    assert_eq!(nonces, total, "Redis nonce keys under {prefix}");

    eprintln!(
        "multi-instance: {total} queries over 2 instances ({} on a, {} on b) from {SENDERS} \
         concurrent senders; {total} replays to the other instance refused ({} sent \
         simultaneously to both: a won {}, b won {}); bank v1 {v1} / v2 {v2}; {rows} audit rows, \
         {nonces} Redis nonces; {:?}",
        tally.by_instance[0],
        tally.by_instance[1],
        tally.races,
        tally.race_wins[0],
        tally.race_wins[1],
        load_time
    );
}
