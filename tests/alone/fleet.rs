//! The gateway as a fleet behind a real load balancer: two `serve` processes of the real binary
//! (production configuration files, one fresh MariaDB database migrated and seeded with the
//! binary's own `db migrate` / `accounts seed-demo`, one Redis replay store, one shared key
//! ring), HAProxy in front health-checking `GET /readyz` on each instance's ops listener, and
//! load from the binary's own `bench http` through HAProxy — two bench loops side by side, each
//! running back-to-back runs of pre-signed unique queries, so traffic never pauses.
//!
//! (a) Rolling restart: SIGTERM one instance (it drains: `/readyz` 503, requests still served,
//!     HAProxy takes it out), wait for its exit, start it again, wait until HAProxy has it UP
//!     and sends it traffic, then the other → every request of every run answered 200, signed.
//! (b) SIGKILL of one instance mid-run → failures only among the requests in flight on it (at
//!     most the bench's total concurrency), reported; HAProxy retries the connection failures
//!     elsewhere.
//! Afterwards every 200 of (a) and (b) has exactly one audit row (by Request-ID), and a failed
//! request has at most one (its answer was lost after the row was written).
//! (c) One signed query answered 200 by one instance and then replayed, byte for byte, to each
//!     instance directly and through HAProxy → refused every time (signed 401 `SIGN_ERROR`,
//!     `NONCE_REPLAYED`): the nonce is remembered by the shared Redis, across instances.
//!
//! Needs `TEST_MYSQL_URL` and `TEST_REDIS_URL` (unset → note and return); when they are set it
//! also needs HAProxy (`TEST_HAPROXY_BIN`, or `haproxy` on the PATH) and FAILS without it.
//! It lives in `alone` because it measures failures under restarts with tight health-check
//! timings, which the CPU-heavy tests of `it` would only blur.

use crate::common::process::{
    demo_client, log_tail, post_query, production_keys, random_pepper, run_ok, signed_query,
    wait_ready, Proc, ServeConfig, BIN,
};
use crate::common::{free_port, mysql_url, redis_url};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds an instance keeps serving after SIGTERM while `/readyz` says `draining`: several
/// times what HAProxy needs to take it out (`fall` × `inter` = 2 × 250 ms).
const DRAIN_SECS: u64 = 3;
/// Bench loops running side by side.
const LOOPS: usize = 2;
/// Connections of one bench run.
const CONCURRENCY: usize = 4;
/// Requests of one bench run.
const PER_RUN: usize = 250;

/// A fresh MySQL database for this test, dropped when the test ends (also on failure).
struct SharedDb {
    server: String,
    name: String,
    url: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl SharedDb {
    fn create(server: &str) -> Self {
        let name = format!("pg_fleet_{}", uuid::Uuid::new_v4().simple());
        let url = block_on(testkit::create_mysql_database(server, &name)).unwrap_or_else(|e| {
            panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e}); start MariaDB or unset it")
        });
        Self {
            server: server.to_string(),
            name,
            url,
        }
    }

    /// Every audit row: (Request-ID, HTTP status).
    fn audit_rows(&self) -> Vec<(String, i16)> {
        use diesel::prelude::*;
        use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
        use pension_gateway::store::schema::query_audit as qa;
        block_on(async {
            let mut c = AsyncMysqlConnection::establish(&self.url).await.unwrap();
            qa::table
                .select((qa::request_id, qa::http_status))
                .load::<(String, i16)>(&mut c)
                .await
                .unwrap()
        })
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let _ = block_on(testkit::drop_mysql_database(&self.server, &self.name));
    }
}

/// Deletes the Redis keys under `prefix` (the nonces this test stored).
fn delete_redis_keys(url: &str, prefix: &str) {
    block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    });
}

/// HAProxy: `TEST_HAPROXY_BIN`, else `haproxy` on the PATH or in the sbin directories.
fn haproxy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TEST_HAPROXY_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TEST_HAPROXY_BIN={} does not exist; `apt-get install haproxy`",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "TEST_MYSQL_URL and TEST_REDIS_URL are set, so the fleet test runs, and it needs \
                 HAProxy: `apt-get install haproxy` (or set TEST_HAPROXY_BIN; `.ci/services` \
                 installs it)"
            )
        })
}

/// One gateway instance: its ports, configuration file and log; started and stopped by the test.
struct Instance {
    name: &'static str,
    port: u16,
    ops_port: u16,
    cfg: String,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Instance {
    fn start(&mut self) {
        let mut p = Proc::spawn(&["--config", &self.cfg, "serve"], &self.log);
        wait_ready(&mut p, self.ops_port, &self.log, Duration::from_secs(60));
        self.proc = Some(p);
    }

    fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("instance running")
    }
}

/// One row of HAProxy's CSV statistics.
#[derive(Debug, Clone, Default)]
struct ServerStat {
    status: String,
    /// Requests (streams) sent to the server so far.
    total: u64,
    /// Requests on the server right now.
    current: u64,
}

/// HAProxy's statistics as CSV, from its stats socket (`show stat`).
fn stats_csv(socket: &Path) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The `gateways` backend's servers as HAProxy sees them.
fn stats(stats: &Path) -> HashMap<String, ServerStat> {
    let Some(csv) = stats_csv(stats) else {
        return HashMap::new();
    };
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(st), Some(stot), Some(scur)) = (
        col("pxname"),
        col("svname"),
        col("status"),
        col("stot"),
        col("scur"),
    ) else {
        return HashMap::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&"gateways"))
        .filter_map(|f| {
            Some((
                f.get(sv)?.to_string(),
                ServerStat {
                    status: f.get(st)?.to_string(),
                    total: f.get(stot)?.parse().unwrap_or(0),
                    current: f.get(scur)?.parse().unwrap_or(0),
                },
            ))
        })
        .collect()
}

fn stat(stats: &Path, server: &str) -> ServerStat {
    self::stats(stats).remove(server).unwrap_or_default()
}

/// Waits until HAProxy reports `server` with status `want` (`UP` or `DOWN`); the time it took.
fn wait_status(stats: &Path, server: &str, want: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let s = stat(stats, server);
        if s.status == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "HAProxy did not see {server} {want} within {limit:?} (status {:?})",
            s.status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `server` has been sent `n` more requests (the load reaches it).
fn wait_traffic(stats: &Path, server: &str, n: u64) {
    let from = stat(stats, server).total;
    let t0 = Instant::now();
    while stat(stats, server).total < from + n {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no traffic reaches {server}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Haproxy {
    proc: std::process::Child,
    port: u16,
    /// The stats socket.
    stats: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// The configuration `docs/fleet.md` documents, on the test's ports.
fn haproxy_config(port: u16, stats: &Path, servers: &[&Instance]) -> String {
    let mut text = format!(
        "global\n    nbthread 1\n    maxconn 512\n    stats socket {} mode 600 level user\n\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    \
         timeout server 30s\n    timeout check 1s\n    \
         # Retry only what never reached a gateway (connection refused or reset while\n    \
         # connecting), and on another instance.\n    \
         retries 3\n    retry-on conn-failure\n    option redispatch 1\n\n\
         frontend wechat\n    bind 127.0.0.1:{port}\n    default_backend gateways\n\n\
         backend gateways\n    balance roundrobin\n    option httpchk GET /readyz\n    \
         http-check expect status 200\n    default-server inter 250ms fall 2 rise 2\n",
        stats.display()
    );
    for s in servers {
        text.push_str(&format!(
            "    server {} 127.0.0.1:{} check port {}\n",
            s.name, s.port, s.ops_port
        ));
    }
    text
}

fn start_haproxy(bin: &Path, dir: &Path, servers: &[&Instance]) -> Haproxy {
    let port = free_port();
    let stats = dir.join("haproxy.sock");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(port, &stats, servers)).unwrap();
    let check = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
    let proc = Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let h = Haproxy { proc, port, stats };
    for s in servers {
        wait_status(&h.stats, s.name, "UP", Duration::from_secs(30));
    }
    h
}

/// One finished bench run.
struct Run {
    prefix: String,
    report: serde_json::Value,
}

impl Run {
    fn failed(&self) -> Vec<String> {
        self.report["failed_request_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn count(&self, field: &str) -> u64 {
        self.report[field].as_u64().unwrap_or(u64::MAX)
    }
}

/// `LOOPS` threads each running `bench http` through HAProxy back to back until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Run>>>,
}

impl Load {
    fn start(tag: &'static str, port: u16, keys: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..LOOPS)
            .map(|k| {
                let (stop, keys) = (Arc::clone(&stop), keys.to_path_buf());
                std::thread::spawn(move || {
                    let mut runs = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let prefix = format!("{tag}{k}-{}-", runs.len());
                        runs.push(bench(port, &keys, &prefix));
                    }
                    runs
                })
            })
            .collect();
        Self { stop, threads }
    }

    fn finish(self) -> Vec<Run> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("bench loop"))
            .collect()
    }
}

fn bench(port: u16, keys: &Path, prefix: &str) -> Run {
    let out = Command::new(BIN)
        .args(["bench", "http", "--url"])
        .arg(format!("http://127.0.0.1:{port}/v1/pension/account"))
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--requests", &PER_RUN.to_string()])
        .args(["--max-seconds", "120", "--output", "json"])
        .args(["--request-id-prefix", prefix])
        // Load only: no warm-up, no crypto floor, no server-CPU reading between the runs.
        .args(["--warmup", "0", "--floor-seconds", "0", "--no-server-cpu"])
        .arg("--keys-dir")
        .arg(keys)
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench http printed no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        prefix: prefix.to_string(),
        report,
    }
}

/// Sums of a scenario's runs.
#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    requests: u64,
    ok: u64,
    failed: Vec<String>,
    by_status: BTreeMap<String, u64>,
    transport_errors: u64,
    bad_signatures: u64,
}

fn tally(runs: &[Run]) -> Tally {
    let mut t = Tally::default();
    for r in runs {
        assert_eq!(
            r.count("requests"),
            PER_RUN as u64,
            "a bench run stopped early: {}",
            r.report
        );
        t.runs += 1;
        t.requests += r.count("requests");
        t.transport_errors += r.count("transport_errors");
        t.bad_signatures += r.count("bad_signatures");
        if let Some(m) = r.report["by_status"].as_object() {
            for (k, v) in m {
                *t.by_status.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
        t.failed.extend(r.failed());
    }
    t.ok = t.by_status.get("200").copied().unwrap_or(0);
    t
}

/// Every 200 of `runs` has exactly one audit row; a failed request at most one. Returns the
/// failed requests that have a row (answered by the gateway, the answer lost on the way).
fn check_audit(runs: &[Run], rows: &HashMap<String, Vec<i16>>) -> usize {
    let mut lost_answers = 0;
    for r in runs {
        let failed: HashSet<String> = r.failed().into_iter().collect();
        for i in 0..PER_RUN {
            let id = format!("{}{i}", r.prefix);
            let got = rows.get(&id).map_or(&[][..], Vec::as_slice);
            if failed.contains(&id) {
                assert!(got.len() <= 1, "{id}: {got:?}");
                lost_answers += got.len();
            } else {
                assert_eq!(got, [200], "audit rows of {id}, answered 200");
            }
        }
    }
    lost_answers
}

#[test]
fn fleet_behind_haproxy_survives_rolling_restart_and_instance_loss() {
    let (Some(mysql), Some(redis)) = (mysql_url(), redis_url()) else {
        return;
    };
    let haproxy = haproxy_bin();
    let _alone = crate::ALONE.blocking_write();
    let t_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let keys = production_keys(tmp.path());
    let db = SharedDb::create(&mysql);
    let pepper = random_pepper();
    let prefix = format!("pg-fleet-{}:", uuid::Uuid::new_v4().simple());
    let replay =
        format!("[replay]\nstore = \"redis\"\nredis_url = {redis:?}\nkey_prefix = {prefix:?}\n");
    let mut gw: Vec<Instance> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (port, ops_port) = (free_port(), free_port());
            let cfg = ServeConfig {
                port,
                ops_port,
                database_url: &db.url,
                pepper: &pepper,
                keys: &keys,
                drain_secs: DRAIN_SECS,
                extra: &replay,
            }
            .write(&tmp.path().join(format!("gateway-{name}.toml")));
            Instance {
                name,
                port,
                ops_port,
                cfg: cfg.to_str().unwrap().to_string(),
                log: tmp.path().join(format!("gateway-{name}.log")),
                proc: None,
            }
        })
        .collect();
    // Migrations and accounts through the binary's own commands, as a deployment would.
    run_ok(&["--config", &gw[0].cfg, "db", "migrate"]);
    run_ok(&["--config", &gw[0].cfg, "accounts", "seed-demo"]);
    for g in &mut gw {
        g.start();
    }
    let lb = start_haproxy(&haproxy, tmp.path(), &[&gw[0], &gw[1]]);
    let client = demo_client(&keys);

    // (a) Rolling restart under load.
    let load = Load::start("roll", lb.port, &keys);
    let mut restarts = Vec::new();
    for g in &mut gw {
        wait_traffic(&lb.stats, g.name, 50);
        let t0 = Instant::now();
        g.proc().signal("TERM");
        let out_after = wait_status(&lb.stats, g.name, "DOWN", Duration::from_secs(60));
        let status = g
            .proc()
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{} did not exit after SIGTERM", g.name));
        assert!(
            status.success(),
            "{}: {status}\n{}",
            g.name,
            log_tail(&g.log, 20)
        );
        let exited_after = t0.elapsed();
        g.proc = None;
        g.start();
        wait_status(&lb.stats, g.name, "UP", Duration::from_secs(60));
        let back_after = t0.elapsed();
        wait_traffic(&lb.stats, g.name, 50);
        restarts.push((g.name, out_after, exited_after, back_after));
    }
    let roll_runs = load.finish();
    let roll = tally(&roll_runs);
    assert!(
        roll.failed.is_empty()
            && roll.transport_errors == 0
            && roll.bad_signatures == 0
            && roll.ok == roll.requests,
        "rolling restart: failed requests {roll:?}"
    );

    // (b) SIGKILL of one instance mid-run, then it comes back.
    let load = Load::start("kill", lb.port, &keys);
    wait_traffic(&lb.stats, gw[0].name, 100);
    let in_flight = stat(&lb.stats, gw[0].name).current;
    gw[0].proc().signal("KILL");
    gw[0]
        .proc()
        .wait_exit(Duration::from_secs(30))
        .expect("killed");
    gw[0].proc = None;
    let down_after = wait_status(&lb.stats, gw[0].name, "DOWN", Duration::from_secs(60));
    wait_traffic(&lb.stats, gw[1].name, 100);
    gw[0].start();
    wait_status(&lb.stats, gw[0].name, "UP", Duration::from_secs(60));
    wait_traffic(&lb.stats, gw[0].name, 50);
    let kill_runs = load.finish();
    let kill = tally(&kill_runs);
    let bound = (LOOPS * CONCURRENCY) as u64;
    assert!(
        kill.failed.len() as u64 <= bound && kill.bad_signatures <= bound,
        "SIGKILL: more failures than requests in flight ({bound}): {kill:?}"
    );

    // Every 200 has exactly one audit row.
    let mut rows: HashMap<String, Vec<i16>> = HashMap::new();
    for (id, status) in db.audit_rows() {
        rows.entry(id).or_default().push(status);
    }
    let all: Vec<Run> = roll_runs.into_iter().chain(kill_runs).collect();
    let lost_answers = check_audit(&all, &rows);
    let audited: usize = rows.values().map(Vec::len).sum();
    assert_eq!(
        audited as u64,
        roll.ok + kill.ok + lost_answers as u64,
        "no stray audit rows"
    );

    // (c) A replay is refused by every instance, directly and through the balancer.
    let (auth, body) = signed_query(&client);
    let first = post_query(gw[1].port, &auth, "fleet-replay-0", &body).expect("answered");
    assert_eq!(first.status, 200, "{:?}", first.json());
    let mut refused = 0;
    for (to, port) in [("a", gw[0].port), ("b", gw[1].port), ("haproxy", lb.port)] {
        let a = post_query(port, &auth, &format!("fleet-replay-{to}"), &body).expect("answered");
        let j = a.json();
        assert!(
            a.status == 401
                && j["code"] == "SIGN_ERROR"
                && j["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("NONCE_REPLAYED")),
            "replay to {to}: {} {j}",
            a.status
        );
        assert_eq!(a.verify(&client), Ok(1), "the refusal from {to} is signed");
        refused += 1;
    }

    for g in &mut gw {
        g.proc().signal("TERM");
    }
    drop(lb);
    eprintln!(
        "fleet: (a) rolling restart: {} requests in {} runs, {} failed; per instance \
         (out of HAProxy after SIGTERM, exited, back UP): {:?}\n\
         fleet: (b) SIGKILL: {} requests in {} runs, {} failed (bound {bound}; HAProxy showed \
         {in_flight} in flight at the kill; statuses {:?}, transport errors {}, {lost_answers} \
         failed requests had been audited), DOWN {:?} after the kill\n\
         fleet: audit: {audited} rows = the 200s plus {lost_answers}; (c) replay refused {refused}/3; \
         total {:?}",
        roll.requests,
        roll.runs,
        roll.failed.len(),
        restarts,
        kill.requests,
        kill.runs,
        kill.failed.len(),
        kill.by_status,
        kill.transport_errors,
        down_after,
        t_start.elapsed()
    );
    for g in &mut gw {
        if let Some(p) = g.proc.as_mut() {
            p.wait_exit(Duration::from_secs(30));
        }
    }
    delete_redis_keys(&redis, &prefix);
}
