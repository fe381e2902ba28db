//! Redis at scale: the replay store over TLS, on a Redis Cluster (including a master stopped and
//! restarted mid-test), and the fleet-wide per-identity limit (`limits.scope = "global"`) shared
//! by two instances.
//!
//! Services (`.ci/services` starts them): `TEST_REDIS_TLS_URL` + `TEST_REDIS_TLS_CA_FILE` (a
//! TLS-only Redis and the CA that signed its certificate), `TEST_REDIS_CLUSTER_NODES` (seed nodes
//! of a shared 3-master cluster), `TEST_REDIS_URL` (a single node). Unset → note and return;
//! set and unreachable → the test fails. The master-failure test never touches the shared
//! cluster: it starts a private 3-node cluster of its own in a temporary directory (it needs
//! `redis-server` and `redis-cli`, which `.ci/services` installs with the cluster).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{send, Db, Gateway, Keys, Req, TestDb, NOW};
use pension_gateway::config::{LimitScope, ReplayStoreKind, Settings};
use pension_gateway::state::AppState;

const NAME: &str = "张三";
const ID: &str = "11010519491231002X";

fn env_var(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            crate::common::skips::not_run(name, what);
            None
        }
    }
}

/// The TLS Redis URL and its CA file, or None (with a note).
fn tls_env() -> Option<(String, PathBuf)> {
    let url = env_var("TEST_REDIS_TLS_URL", "Redis TLS tests")?;
    let ca = env_var("TEST_REDIS_TLS_CA_FILE", "Redis TLS tests")
        .unwrap_or_else(|| panic!("TEST_REDIS_TLS_URL is set but TEST_REDIS_TLS_CA_FILE is not"));
    Some((url, PathBuf::from(ca)))
}

/// The shared cluster's seed nodes, or None (with a note).
fn cluster_env() -> Option<Vec<String>> {
    let v = env_var("TEST_REDIS_CLUSTER_NODES", "Redis Cluster tests")?;
    Some(v.split(',').map(|s| s.trim().to_string()).collect())
}

fn unique_prefix() -> String {
    format!("pgw-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Fails (never skips) when the Redis an instance is configured for does not answer.
async fn require_redis(state: &AppState, var: &str) {
    let link = state.replay().redis_link().expect("a Redis replay store");
    if let Err(e) = link.probe().await {
        panic!(
            "{var} is set but Redis at {} is unusable ({e}); start it (.ci/services) or unset {var}",
            link.description()
        );
    }
}

/// A second instance beside `a`: its own state, database and Redis client, the same keys,
/// clock and settings.
async fn second_instance(a: &Gateway, setup: &dyn Fn(&mut Settings)) -> (AppState, TestDb) {
    let db = common::test_db(Db::Sqlite).await.unwrap();
    let mut s = common::settings(&a.keys);
    setup(&mut s);
    let state = pension_gateway::server::build_state(
        &s,
        db.store.clone(),
        pension_gateway::server::load_keys(&s).unwrap(),
        a.clock.clone(),
    )
    .unwrap();
    pension_gateway::accounts::demo::seed_demo(state.accounts(), NOW)
        .await
        .unwrap();
    (state, db)
}

async fn service(
    state: AppState,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, state)),
    )
    .await
}

/// First use accepted, a replay to the other instance refused (signed 401 NONCE_REPLAYED), a
/// fresh nonce accepted there.
async fn replay_case(setup: impl Fn(&mut Settings), var: &str) {
    let a = Gateway::start_with(Db::Sqlite, &setup).await.unwrap();
    require_redis(&a.state, var).await;
    let (b_state, _b_db) = second_instance(&a, &setup).await;
    let svc_a = a.service().await;
    let svc_b = service(b_state).await;
    let req = Req::query(NAME, ID);
    let first = send(&svc_a, &a.keys, req.build(&a.keys)).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    assert_eq!(first.signed_by, Ok(1));
    let replayed = send(&svc_b, &a.keys, req.build(&a.keys)).await;
    assert_eq!((replayed.status, replayed.code()), (401, "SIGN_ERROR"));
    assert!(replayed.json["message"]
        .as_str()
        .unwrap()
        .contains("NONCE_REPLAYED"));
    assert_eq!(replayed.signed_by, Ok(1));
    let again = send(&svc_a, &a.keys, req.build(&a.keys)).await;
    assert_eq!(again.status, 401);
    let fresh = send(&svc_b, &a.keys, Req::query(NAME, ID).build(&a.keys)).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.json);
}

/// Two instances, limit 30 a minute counted in Redis, 60 queries for one identity alternating
/// between them within one minute: exactly 30 answered 200, the other 30 a signed 403
/// RULE_LIMIT. The next minute opens a new window.
async fn global_limit_case(setup: impl Fn(&mut Settings), var: &str) -> Gateway {
    let setup = move |s: &mut Settings| {
        setup(s);
        s.limits.scope = LimitScope::Global;
        s.limits.per_identity_per_minute = 30;
    };
    let a = Gateway::start_with(Db::Sqlite, &setup).await.unwrap();
    require_redis(&a.state, var).await;
    let (b_state, _b_db) = second_instance(&a, &setup).await;
    let svc_a = a.service().await;
    let svc_b = service(b_state).await;
    let minute = NOW - NOW % 60;
    a.clock.set(minute + 5);
    let (mut ok, mut limited) = (0, 0);
    for i in 0..60 {
        let mut req = Req::query(NAME, ID);
        req.timestamp = minute + 5;
        let r = if i % 2 == 0 {
            send(&svc_a, &a.keys, req.build(&a.keys)).await
        } else {
            send(&svc_b, &a.keys, req.build(&a.keys)).await
        };
        assert_eq!(r.signed_by, Ok(1), "query {i} unsigned: {:?}", r.json);
        match (r.status, r.code()) {
            (200, _) => ok += 1,
            (403, "RULE_LIMIT") => limited += 1,
            other => panic!("query {i}: unexpected {other:?} {:?}", r.json),
        }
    }
    assert_eq!((ok, limited), (30, 30));
    // Another identity has its own count.
    let mut other = Req::query("李四", "440300198503151236");
    other.timestamp = minute + 5;
    assert_eq!(
        send(&svc_b, &a.keys, other.build(&a.keys)).await.status,
        200
    );
    // The next minute is a new window, on either instance.
    a.clock.set(minute + 60);
    let mut later = Req::query(NAME, ID);
    later.timestamp = minute + 60;
    assert_eq!(
        send(&svc_b, &a.keys, later.build(&a.keys)).await.status,
        200
    );
    a
}

#[actix_web::test]
async fn replay_over_tls_with_a_private_ca() {
    let Some((url, ca)) = tls_env() else {
        return;
    };
    let prefix = unique_prefix();
    replay_case(
        |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = url.clone();
            s.replay.redis_ca_file = Some(ca.clone());
            s.replay.key_prefix = prefix.clone();
        },
        "TEST_REDIS_TLS_URL",
    )
    .await;
}

#[actix_web::test]
async fn global_limit_over_tls() {
    let Some((url, ca)) = tls_env() else {
        return;
    };
    let prefix = unique_prefix();
    global_limit_case(
        |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = url.clone();
            s.replay.redis_ca_file = Some(ca.clone());
            s.replay.key_prefix = prefix.clone();
        },
        "TEST_REDIS_TLS_URL",
    )
    .await;
}

/// Settings for a start (`server::prepare`) against the TLS Redis with `ca`.
fn tls_start_settings(keys: &Keys, url: &str, ca: Option<PathBuf>) -> Settings {
    let mut s = common::settings(keys);
    s.database.url = "sqlite::memory:".into();
    s.replay.store = ReplayStoreKind::Redis;
    s.replay.redis_url = url.to_string();
    s.replay.redis_ca_file = ca;
    s.replay.key_prefix = unique_prefix();
    s.replay.timeout_ms = 2000;
    s
}

/// A self-signed CA that signed nothing the server presents.
fn other_ca(dir: &Path) -> PathBuf {
    let (key, cert) = (dir.join("other-ca.key"), dir.join("other-ca.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=not the Redis CA"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed with the Redis TLS service)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

#[actix_web::test]
async fn a_wrong_ca_is_refused_at_start_naming_the_setting() {
    let Some((url, ca)) = tls_env() else {
        return;
    };
    let keys = Keys::new();
    // The right CA starts (and proves the server is there).
    pension_gateway::server::prepare(&tls_start_settings(&keys, &url, Some(ca.clone())))
        .await
        .unwrap_or_else(|e| panic!("TEST_REDIS_TLS_URL is set but the start failed: {e}"));

    let tmp = tempfile::tempdir().unwrap();
    let wrong = other_ca(tmp.path());
    let err = pension_gateway::server::prepare(&tls_start_settings(&keys, &url, Some(wrong)))
        .await
        .err()
        .expect("a CA that did not sign the server certificate must stop the start")
        .to_string();
    assert!(
        err.contains("replay.redis_ca_file") && err.contains("does not verify"),
        "{err}"
    );

    // Without a CA file the system roots do not know the test CA either; the message says how
    // to trust a private CA.
    let err = pension_gateway::server::prepare(&tls_start_settings(&keys, &url, None))
        .await
        .err()
        .expect("a private CA is unknown to the system roots")
        .to_string();
    assert!(
        err.contains("system") && err.contains("replay.redis_ca_file"),
        "{err}"
    );

    // A file that is no certificate, and one group-writable, are refused by name before any
    // connection.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = pension_gateway::server::prepare(&tls_start_settings(&keys, &url, Some(junk)))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("replay.redis_ca_file"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let writable = tmp.path().join("writable.pem");
        std::fs::copy(&ca, &writable).unwrap();
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err =
            pension_gateway::server::prepare(&tls_start_settings(&keys, &url, Some(writable)))
                .await
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("replay.redis_ca_file"), "{err}");
    }
}

#[actix_web::test]
async fn replay_on_the_shared_cluster() {
    let Some(nodes) = cluster_env() else {
        return;
    };
    let prefix = unique_prefix();
    replay_case(
        |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_cluster_nodes = nodes.clone();
            s.replay.key_prefix = prefix.clone();
        },
        "TEST_REDIS_CLUSTER_NODES",
    )
    .await;
}

#[actix_web::test]
async fn global_limit_on_the_shared_cluster() {
    let Some(nodes) = cluster_env() else {
        return;
    };
    let prefix = unique_prefix();
    global_limit_case(
        |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_cluster_nodes = nodes.clone();
            s.replay.key_prefix = prefix.clone();
        },
        "TEST_REDIS_CLUSTER_NODES",
    )
    .await;
}

#[actix_web::test]
async fn global_limit_on_one_redis_keeps_only_digests_in_key_names() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = unique_prefix();
    let a = global_limit_case(
        |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = url.clone();
            s.replay.key_prefix = prefix.clone();
        },
        "TEST_REDIS_URL",
    )
    .await;
    // The count's keys: prefix, `limit:`, the hex digest, the minute. Never the ID number.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}limit:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    keys.sort();
    let digest = hex::encode(a.state.accounts().digest(ID));
    let minute = (NOW - NOW % 60) / 60;
    assert!(
        keys.contains(&format!("{prefix}limit:{digest}:{minute}")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("{prefix}limit:{digest}:{}", minute + 1)),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 3, "{keys:?}"); // 张三 twice (two minutes), 李四 once
    for k in &keys {
        assert!(!k.contains(ID) && !k.contains("440300198503151236"), "{k}");
        let ttl: i64 = redis::cmd("TTL").arg(k).query_async(&mut c).await.unwrap();
        assert!((1..=120).contains(&ttl), "{k}: ttl {ttl}");
    }
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if !all.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&all)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

#[actix_web::test]
async fn global_limit_fails_closed_with_a_signed_503_unless_configured_open() {
    for fail_open in [false, true] {
        let gw = Gateway::start_with(Db::Sqlite, |s| {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = "redis://127.0.0.1:1/".into();
            s.replay.timeout_ms = 300;
            s.replay.fail_open = fail_open;
            s.limits.scope = LimitScope::Global;
        })
        .await
        .unwrap();
        let svc = gw.service().await;
        let r = send(&svc, &gw.keys, Req::query(NAME, ID).build(&gw.keys)).await;
        if fail_open {
            assert_eq!(r.status, 200);
        } else {
            assert_eq!((r.status, r.code()), (503, "SYSTEM_ERROR"));
            assert_eq!(r.signed_by, Ok(1));
        }
    }
}

#[test]
fn settings_rules_for_redis() {
    let keys = Keys::new();
    let base = common::settings(&keys);

    let mut s = base.clone();
    s.limits.scope = LimitScope::Global;
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("limits.scope") && err.contains("replay.store"),
        "{err}"
    );
    s.replay.store = ReplayStoreKind::Redis;
    s.validate().unwrap();

    let mut s = base.clone();
    s.replay.store = ReplayStoreKind::Redis;
    s.replay.redis_ca_file = Some("/etc/ssl/certs/ca.pem".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("replay.redis_ca_file") && err.contains("rediss://"),
        "{err}"
    );
    s.replay.redis_url = "rediss://redis.internal:6380".into();
    s.validate().unwrap();

    let mut s = base.clone();
    s.replay.store = ReplayStoreKind::Redis;
    s.replay.redis_cluster_nodes = vec!["redis://a:7000".into(), "rediss://b:7000".into()];
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("replay.redis_cluster_nodes"), "{err}");
    s.replay.redis_cluster_nodes = vec!["http://a:7000".into()];
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("replay.redis_cluster_nodes"));

    // From a file and the environment, as an operator writes them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        "[replay]\nstore = \"redis\"\nredis_cluster_nodes = [\"redis://127.0.0.1:17001\", \
         \"redis://127.0.0.1:17002\"]\n[limits]\nscope = \"global\"\n",
    )
    .unwrap();
    let loaded = Settings::load(Some(&file), base.clone(), Vec::new()).unwrap();
    assert_eq!(loaded.limits.scope, LimitScope::Global);
    assert_eq!(loaded.replay.redis_cluster_nodes.len(), 2);
    let env = vec![("GATEWAY__LIMITS__SCOPE".to_string(), "global".to_string())];
    let err = Settings::load(None, base, env).unwrap_err().to_string();
    assert!(err.contains("limits.scope"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A private cluster whose master is stopped mid-test.

/// Three cluster-enabled redis-servers on free ports in a temporary directory, stopped (by PID)
/// when dropped.
struct PrivateCluster {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

/// A port that is free, whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    for _ in 0..1000 {
        let p = 20_000 + (rand::random::<u16>() % 20_000);
        if taken.contains(&p) {
            continue;
        }
        let a = std::net::TcpListener::bind(("127.0.0.1", p));
        let b = std::net::TcpListener::bind(("127.0.0.1", p + 10_000));
        if a.is_ok() && b.is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a private Redis Cluster");
}

impl PrivateCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        for _ in 0..3 {
            ports.push(free_cluster_port(&ports));
        }
        let mut c = Self {
            dir,
            ports,
            children: vec![None, None, None],
        };
        for i in 0..3 {
            c.start_node(i);
        }
        for i in 0..3 {
            c.wait_ping(i);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &c.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (installed with the Redis Cluster service)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.wait_state_ok();
        c
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    fn start_node(&mut self, i: usize) {
        let d = self.node_dir(i);
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.ports[i].to_string())
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&d)
            .arg("--logfile")
            .arg(d.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed with the Redis Cluster service)");
        self.children[i] = Some(child);
    }

    /// SIGKILL of node `i`, by its PID.
    fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, i: usize, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.ports[i].to_string())
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).replace('\r', ""))
    }

    fn wait_ping(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.cli(i, &["ping"]).is_some_and(|o| o.contains("PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private Redis node {} did not answer", self.ports[i]);
    }

    fn wait_state_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if (0..3).all(|i| {
                self.cli(i, &["cluster", "info"])
                    .is_some_and(|o| o.lines().any(|l| l == "cluster_state:ok"))
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("private Redis Cluster did not reach cluster_state:ok");
    }

    /// The slot ranges node `i` serves, asked of node `ask`.
    fn slots_of(&self, i: usize, ask: usize) -> Vec<(u16, u16)> {
        let nodes = self.cli(ask, &["cluster", "nodes"]).expect("cluster nodes");
        let me = format!("127.0.0.1:{}@", self.ports[i]);
        let line = nodes
            .lines()
            .find(|l| l.contains(&me))
            .expect("node listed");
        line.split_whitespace()
            .skip(8)
            .filter_map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect()
    }

    fn keyslot(&self, ask: usize, key: &str) -> u16 {
        self.cli(ask, &["cluster", "keyslot", key])
            .and_then(|o| o.trim().parse().ok())
            .expect("cluster keyslot")
    }

    fn seed_urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill_node(i);
        }
    }
}

/// A fresh request whose nonce key falls in (or, with `inside = false`, outside) `slots`.
fn req_in_slots(
    cluster: &PrivateCluster,
    ask: usize,
    prefix: &str,
    slots: &[(u16, u16)],
    inside: bool,
) -> Req {
    for _ in 0..200 {
        let req = Req::query(NAME, ID);
        let slot = cluster.keyslot(ask, &format!("{prefix}{}", req.nonce));
        if slots.iter().any(|&(a, b)| (a..=b).contains(&slot)) == inside {
            return req;
        }
    }
    panic!("no nonce found for the wanted slots");
}

#[actix_web::test]
async fn cluster_master_stopped_mid_test_answers_signed_503_then_recovers() {
    if cluster_env().is_none() {
        return;
    }
    let mut cluster = PrivateCluster::start();
    let prefix = unique_prefix();
    let nodes = cluster.seed_urls();
    let gw = Gateway::start_with(Db::Sqlite, |s| {
        s.replay.store = ReplayStoreKind::Redis;
        s.replay.redis_cluster_nodes = nodes.clone();
        s.replay.key_prefix = prefix.clone();
        s.replay.timeout_ms = 500;
        s.limits.per_identity_per_minute = 0;
    })
    .await
    .unwrap();
    require_redis(&gw.state, "TEST_REDIS_CLUSTER_NODES").await;
    let svc = gw.service().await;
    let down = 0;
    let down_slots = cluster.slots_of(down, 1);
    assert!(!down_slots.is_empty(), "node {down} serves no slot");

    // Healthy: both halves of the key space answer.
    for inside in [true, false] {
        let r = req_in_slots(&cluster, 1, &prefix, &down_slots, inside);
        let resp = send(&svc, &gw.keys, r.build(&gw.keys)).await;
        assert_eq!(resp.status, 200, "{:?}", resp.json);
    }

    // The master of those slots dies: requests whose nonce lives there get a signed 503, fast.
    cluster.kill_node(down);
    for _ in 0..3 {
        let r = req_in_slots(&cluster, 1, &prefix, &down_slots, true);
        let started = Instant::now();
        let resp = send(&svc, &gw.keys, r.build(&gw.keys)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "must not hang");
        assert_eq!(
            (resp.status, resp.code()),
            (503, "SYSTEM_ERROR"),
            "{:?}",
            resp.json
        );
        assert_eq!(resp.signed_by, Ok(1));
    }
    // Whatever the rest of the key space answers meanwhile (200 until the cluster declares
    // itself failed, then 503), it is signed.
    let r = req_in_slots(&cluster, 1, &prefix, &down_slots, false);
    let resp = send(&svc, &gw.keys, r.build(&gw.keys)).await;
    assert!(matches!(resp.status, 200 | 503), "{:?}", resp.json);
    assert_eq!(resp.signed_by, Ok(1));

    // The node comes back on its port with its nodes.conf; the gateway, never restarted,
    // answers 200 again once the cluster is ok.
    cluster.start_node(down);
    cluster.wait_ping(down);
    cluster.wait_state_ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = req_in_slots(&cluster, 1, &prefix, &down_slots, true);
        let resp = send(&svc, &gw.keys, r.build(&gw.keys)).await;
        assert_eq!(resp.signed_by, Ok(1));
        if resp.status == 200 {
            break;
        }
        assert_eq!(resp.status, 503, "{:?}", resp.json);
        assert!(
            Instant::now() < deadline,
            "the gateway did not recover within 30 s of the cluster healing"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    // Recovered for good, on every slot, and replays are refused again.
    for i in 0..6 {
        let r = req_in_slots(&cluster, 1, &prefix, &down_slots, i % 2 == 0);
        let resp = send(&svc, &gw.keys, r.build(&gw.keys)).await;
        assert_eq!(
            resp.status, 200,
            "after recovery, query {i}: {:?}",
            resp.json
        );
        let replay = send(&svc, &gw.keys, r.build(&gw.keys)).await;
        assert_eq!(
            replay.status, 401,
            "replay after recovery: {:?}",
            replay.json
        );
    }
}
