//! Graceful drain on SIGTERM, with the real binary in production mode (`serve --config`, a
//! production copy of the demo keys, SQLite): after the signal `/readyz` on the ops listener
//! answers 503 `draining` at once while signed queries are still answered 200, and only when
//! `server.drain_secs` has passed does the process close its listeners and exit 0.

use std::time::{Duration, Instant};

use crate::common::free_port;
use crate::common::process::{
    demo_client, http_get, log_tail, post_query, production_keys, random_pepper, run_ok,
    signed_query, wait_ready, Proc, ServeConfig,
};
use pension_gateway::config::Settings;

/// Long enough that the checks made during the drain finish inside it on a loaded machine.
const DRAIN_SECS: u64 = 8;

#[test]
fn sigterm_drains_then_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = production_keys(tmp.path());
    let (port, ops_port) = (free_port(), free_port());
    let db = format!("sqlite://{}/gateway.db", tmp.path().display());
    let pepper = random_pepper();
    let cfg = ServeConfig {
        port,
        ops_port,
        database_url: &db,
        pepper: &pepper,
        keys: &keys,
        drain_secs: DRAIN_SECS,
        extra: "",
    }
    .write(&tmp.path().join("gateway.toml"));
    let cfg = cfg.to_str().unwrap();
    run_ok(&["--config", cfg, "accounts", "seed-demo"]);
    let log = tmp.path().join("gateway.log");
    let mut p = Proc::spawn(&["--config", cfg, "serve"], &log);
    wait_ready(&mut p, ops_port, &log, Duration::from_secs(60));

    let client = demo_client(&keys);
    let (before, during) = (signed_query(&client), signed_query(&client));
    let a = post_query(port, &before.0, "drain-before", &before.1).expect("answered");
    assert_eq!(a.status, 200, "{:?}", a.json());

    let signalled = Instant::now();
    p.signal("TERM");
    // Readiness turns 503 `draining` (the balancer's cue), well within the drain.
    let body = loop {
        match http_get(ops_port, "/readyz") {
            Some((503, body)) => break body,
            Some((200, _)) if signalled.elapsed() < Duration::from_secs(DRAIN_SECS - 2) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("readyz after SIGTERM: {other:?}\n{}", log_tail(&log, 20)),
        }
    };
    assert!(body.contains("draining"), "{body}");
    // Requests that still arrive are served, signed.
    let a = post_query(port, &during.0, "drain-during", &during.1).expect("served while draining");
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(a.verify(&client), Ok(1));
    assert_eq!(http_get(port, "/healthz").map(|(s, _)| s), Some(200));
    assert!(
        signalled.elapsed() < Duration::from_secs(DRAIN_SECS),
        "the checks took longer than the drain; raise DRAIN_SECS"
    );

    let status = p
        .wait_exit(Duration::from_secs(60))
        .expect("the process exits after the drain");
    assert!(status.success(), "exit {status}:\n{}", log_tail(&log, 20));
    // The drain is a wait: the process cannot have stopped before it ended.
    assert!(signalled.elapsed() >= Duration::from_secs(DRAIN_SECS));
    assert!(
        http_get(port, "/healthz").is_none(),
        "listener closed after exit"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("draining"), "{}", log_tail(&log, 20));
}

#[test]
fn drain_defaults_and_bounds() {
    assert_eq!(Settings::default().server.drain_secs, 5);
    assert_eq!(
        Settings::demo().server.drain_secs,
        0,
        "Ctrl-C stops the demo at once"
    );
    let env = |v: &str| {
        vec![
            ("GATEWAY__ACCOUNTS__ID_PEPPER".to_string(), random_pepper()),
            ("GATEWAY__SERVER__DRAIN_SECS".to_string(), v.to_string()),
        ]
    };
    let ok = Settings::load(None, Settings::default(), env("300")).unwrap();
    assert_eq!(ok.server.drain_secs, 300);
    let err = Settings::load(None, Settings::default(), env("301")).unwrap_err();
    assert!(err.to_string().contains("server.drain_secs"), "{err}");
}

/// The drain driven in process: the stop signal is handed to `serve_state_until` as a channel
/// (the `StopSignalWatch` trait), so the test says when the signals arrive. The drain is long
/// (ten minutes); a second signal must end it, and `serve_state_until` must then return.
#[test]
fn drain_in_process_with_a_handed_in_stop_signal() {
    use pension_gateway::server::signals::StopSignal;
    use pension_gateway::server::{build_state, load_keys, serve_state_until, Listeners};

    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (port, ops_port) = (
        public.local_addr().unwrap().port(),
        ops.local_addr().unwrap().port(),
    );
    let (stop, signals) = tokio::sync::mpsc::unbounded_channel::<StopSignal>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let keys = crate::common::Keys::new();
    let mut s = crate::common::settings(&keys);
    s.server.drain_secs = 600;
    s.keys.watch_interval_secs = 0;
    std::thread::spawn(move || {
        let result = actix_web::rt::System::new().block_on(async move {
            let store = pension_gateway::store::Store::open(
                "sqlite::memory:",
                pension_gateway::store::StoreOptions {
                    max_connections: 2,
                    acquire_timeout: Duration::from_secs(5),
                    create_if_missing: true,
                },
            )
            .await
            .unwrap();
            store.run_migrations().await.unwrap();
            let ring = load_keys(&s).unwrap();
            let clock = std::sync::Arc::new(pension_gateway::clock::SystemClock);
            let state = build_state(&s, store, ring, clock).unwrap();
            let listeners = Listeners {
                public,
                ops: Some(ops),
                admin: None,
            };
            serve_state_until(&s, state, listeners, signals).await
        });
        let _ = done_tx.send(result.map_err(|e| e.to_string()));
        drop(keys);
    });
    // Accepted connections queue until the servers run; this answers once they do.
    let ready = http_get(ops_port, "/readyz").expect("ops listener answers");
    assert_eq!(ready.0, 200, "{}", ready.1);

    stop.send(StopSignal::Terminate).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match http_get(ops_port, "/readyz") {
            Some((503, body)) => break body,
            Some((200, _)) if Instant::now() < deadline => std::thread::yield_now(),
            other => panic!("readyz after the stop signal: {other:?}"),
        }
    };
    assert!(body.contains("draining"), "{body}");
    // Still serving during the drain.
    assert_eq!(http_get(port, "/healthz").map(|(s, _)| s), Some(200));
    assert!(
        done.try_recv().is_err(),
        "serve_state_until returned during the drain"
    );

    // The second signal ends the ten-minute drain now.
    stop.send(StopSignal::Terminate).unwrap();
    let result = done
        .recv_timeout(Duration::from_secs(60))
        .expect("the second signal ends the drain and the servers stop");
    assert_eq!(result, Ok(()));
    assert!(http_get(port, "/healthz").is_none(), "listener closed");
}
