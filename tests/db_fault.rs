//! MySQL goes away mid-load and comes back: a loopback TCP proxy we can cut sits between the
//! gateway and MariaDB. While cut, every answer is a *signed* SYSTEM_ERROR within the deadline
//! (nothing hangs) and /readyz is 503; once restored the gateway recovers by itself, with no
//! restart; every 200 has its audit row. Needs TEST_MYSQL_URL (fails, never skips, when set and
//! unreachable).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{send, Keys, Req, NOW};
use pension_gateway::store::{Store, StoreOptions};

/// A TCP forwarder on 127.0.0.1 that can drop every connection and refuse new ones.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    _rt: std::thread::JoinHandle<()>,
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (c2, k2) = (cut.clone(), conns.clone());
        let rt = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if c2.load(Ordering::SeqCst) {
                        drop(inbound); // refused while cut
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                    k2.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        Self {
            port,
            cut,
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
}

#[actix_web::test]
async fn mysql_outage_gives_signed_errors_and_recovers_without_restart() {
    let Some(server) = common::mysql_url() else {
        return;
    };
    let name = format!("pg_fault_{}", uuid::Uuid::new_v4().simple());
    let direct = pension_gateway::store::testing::create_mysql_database(&server, &name)
        .await
        .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e})"));
    // mysql://user@host:port/db → the same through the proxy.
    let after_at = direct.split('@').nth(1).unwrap();
    let hostport = after_at.split('/').next().unwrap().to_string();
    let proxy = Proxy::start(hostport.clone());
    // prefer_socket=false: for a loopback host mysql_async otherwise switches to the server's
    // Unix socket after the handshake, which would bypass the proxy.
    let via_proxy = format!(
        "{}?prefer_socket=false",
        direct.replace(&hostport, &format!("127.0.0.1:{}", proxy.port))
    );

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
    let clock = Arc::new(pension_gateway::http::ManualClock::at(NOW));
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
    let st = state.clone();
    let svc = actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st)),
    )
    .await;
    macro_rules! ready {
        () => {
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
        let r = send(&svc, &keys, req.build(&keys)).await;
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
        let r = send(&svc, &keys, req.build(&keys)).await;
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
        let r = send(&svc, &keys, req.build(&keys)).await;
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
        let r = send(&svc, &keys, req.build(&keys)).await;
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
    drop(state);
    drop(store);
    let _ = pension_gateway::store::testing::drop_mysql_database(&server, &name).await;
}
