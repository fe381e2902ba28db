//! Slow and hostile clients against a real listener started through the production entry point
//! (`server::serve_state`): 1,000 connections that send a valid-looking head and then trickle
//! their body one byte a second, and 200 that trickle their head. While they are open and after
//! their deadlines, a signed WeChat query is answered 200 within a second: trickling holds a
//! connection, never an in-flight permit, a pool connection or a row.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Keys, Req, NOW};
use pension_gateway::config::Settings;
use pension_gateway::server::{serve_state, Listeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY_TRICKLERS: usize = 1_000;
const HEAD_TRICKLERS: usize = 200;
/// Short deadlines keep the test brief; the mechanism is the one of the 10 s defaults.
const BODY_DEADLINE_MS: u64 = 3_000;
const HEAD_DEADLINE_MS: u64 = 3_000;
/// Far fewer permits than trickling connections: if a trickler held one, queries would get
/// `RULE_LIMIT` at once.
const MAX_IN_FLIGHT: usize = 32;

fn tweak(s: &mut Settings) {
    s.limits.max_concurrent = MAX_IN_FLIGHT;
    s.limits.per_identity_per_minute = 0;
    s.server.body_timeout_ms = BODY_DEADLINE_MS;
    s.server.header_timeout_ms = HEAD_DEADLINE_MS;
    s.server.workers = 2;
    s.keys.watch_interval_secs = 0;
}

/// Starts the gateway on 127.0.0.1:0 in its own thread and actix system; returns its address.
fn start(keys: &Keys, backend: common::Db) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = common::settings(keys);
    tweak(&mut settings);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let db = common::test_db(backend).await.unwrap();
            let clock = std::sync::Arc::new(pension_gateway::clock::ManualClock::at(NOW));
            let ring = pension_gateway::server::load_keys(&settings).unwrap();
            let state =
                pension_gateway::server::build_state(&settings, db.store.clone(), ring, clock)
                    .unwrap();
            pension_gateway::accounts::demo::seed_demo(state.accounts(), NOW)
                .await
                .unwrap();
            let listeners = Listeners {
                public: listener,
                ops: None,
                admin: None,
            };
            serve_state(&settings, state, listeners).await.unwrap();
            drop(db);
        });
    });
    addr
}

/// One signed query over a fresh connection; its status and how long it took.
async fn signed_query(keys: &Keys, addr: SocketAddr) -> (u16, Duration) {
    let req = Req::query("张三", "11010519491231002X");
    let auth = req.authorization(keys);
    let started = Instant::now();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let resp = client
        .post(format!("http://{addr}{}", req.path))
        .insert_header(("Authorization", auth))
        .insert_header(("Request-ID", req.request_id.clone().unwrap()))
        .insert_header(("Content-Type", "application/json"))
        .send_body(req.body.clone())
        .await
        .expect("the gateway answers");
    (resp.status().as_u16(), started.elapsed())
}

/// Everything the server sends within `quiet` of its last bytes (the head and body may arrive
/// in separate segments).
async fn read_answer(s: &mut TcpStream, first: &[u8]) -> String {
    let mut all = first.to_vec();
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// How many seconds a trickler keeps sending, one byte a second: it stops a second before the
/// deadline and then only waits. A byte that arrives after the server stopped reading would make
/// the server's close a reset, and a reset can discard the answer before the client reads it;
/// a client that goes quiet is just as slow (its body never completes).
const TRICKLE_SECS: u64 = BODY_DEADLINE_MS / 1000 - 1;

/// A connection that sends a complete, well-formed head (a real signature over another body)
/// announcing 64 KiB, then one body byte a second, and waits for the server's answer.
async fn body_trickler(addr: SocketAddr, head: String) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(head.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    for second in 0..60 {
        if second < TRICKLE_SECS && s.write_all(b"{").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => return Some(read_answer(&mut s, &buf[..n]).await),
            Ok(_) => return None,
            Err(_) => {}
        }
    }
    None
}

/// A connection that trickles its head one byte a second (for [`TRICKLE_SECS`]), then waits.
async fn head_trickler(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = b"POST /v1/pension/account HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    s.write_all(head).await.ok()?;
    let mut buf = vec![0u8; 4096];
    for second in 0..60 {
        if second < TRICKLE_SECS && s.write_all(b"a").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => return Some(read_answer(&mut s, &buf[..n]).await),
            Ok(_) => return Some(String::new()),
            Err(_) => {}
        }
    }
    None
}

/// One backend at a time: the two runs would otherwise share the machine's two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[actix_web::test]
async fn trickling_clients_never_lock_wechat_out_sqlite() {
    let _one = ONE_AT_A_TIME.lock().await;
    trickling_clients_never_lock_wechat_out(common::Db::Sqlite).await;
}

#[actix_web::test]
async fn trickling_clients_never_lock_wechat_out_mysql() {
    if common::mysql_url().is_none() {
        return; // the note is printed by mysql_url(); with TEST_MYSQL_URL set this runs
    }
    let _one = ONE_AT_A_TIME.lock().await;
    trickling_clients_never_lock_wechat_out(common::Db::Mysql).await;
}

async fn trickling_clients_never_lock_wechat_out(backend: common::Db) {
    let _alone = crate::ALONE.read().await;
    let keys = Keys::new();
    let addr = start(&keys, backend);
    let ready = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = signed_query(&keys, addr).await;
    assert_eq!(status, 200, "baseline query");

    // The tricklers: valid-looking heads (signed, over another body), 64 KiB announced, one
    // byte a second. Heads are signed before the clock starts.
    let client = keys.client(1, true);
    let heads: Vec<String> = (0..BODY_TRICKLERS)
        .map(|i| {
            let req = Req::query("张三", "11010519491231002X");
            let auth = client
                .sign_request("POST", &req.path, &req.body, req.timestamp, &req.nonce)
                .unwrap()
                .authorization;
            format!(
                "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nRequest-ID: slow-{i}\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n",
                req.path
            )
        })
        .collect();
    let opened = Instant::now();
    let body_tasks: Vec<_> = heads
        .into_iter()
        .map(|head| actix_web::rt::spawn(body_trickler(addr, head)))
        .collect();
    let head_tasks: Vec<_> = (0..HEAD_TRICKLERS)
        .map(|_| actix_web::rt::spawn(head_trickler(addr)))
        .collect();
    // Let them all connect and start trickling.
    actix_web::rt::time::sleep(Duration::from_millis(1_000)).await;

    // While they are open: every signed query answered 200 within a second.
    let mut during = Vec::new();
    while opened.elapsed() < Duration::from_millis(BODY_DEADLINE_MS - 500) {
        let (status, took) = signed_query(&keys, addr).await;
        assert_eq!(status, 200, "query while {BODY_TRICKLERS} clients trickle");
        assert!(
            took < Duration::from_secs(1),
            "query took {took:?} while clients trickle"
        );
        during.push(took);
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!during.is_empty());

    // Past their deadlines: each trickler got an answer and the channel still serves.
    let mut body_answers = 0;
    for t in body_tasks {
        if let Some(head) = t.await.unwrap() {
            assert!(
                head.starts_with("HTTP/1.1 400") && head.contains("PARAM_ERROR"),
                "a trickled body gets a signed PARAM_ERROR: {head}"
            );
            assert!(
                head.to_ascii_lowercase().contains("wxins-signature"),
                "{head}"
            );
            body_answers += 1;
        }
    }
    assert_eq!(
        body_answers, BODY_TRICKLERS,
        "every trickled body was cut off at its deadline"
    );
    let mut head_answers = 0;
    for t in head_tasks {
        if let Some(head) = t.await.unwrap() {
            assert!(
                head.is_empty() || head.starts_with("HTTP/1.1 408"),
                "{head}"
            );
            head_answers += 1;
        }
    }
    assert_eq!(
        head_answers, HEAD_TRICKLERS,
        "every trickled head was cut off at its deadline"
    );
    let (status, took) = signed_query(&keys, addr).await;
    assert_eq!(status, 200, "query after the deadlines");
    assert!(
        took < Duration::from_secs(1),
        "query took {took:?} after the deadlines"
    );
    println!(
        "{backend:?}: {BODY_TRICKLERS} body and {HEAD_TRICKLERS} head tricklers; {} queries meanwhile, slowest {:?}; all tricklers cut off within {:?}",
        during.len(),
        during.iter().max().unwrap(),
        opened.elapsed()
    );
}
