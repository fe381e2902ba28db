//! `kill -9` under load loses no acknowledged audit row. The real binary (`serve --demo`) runs on a
//! SQLite file, and on a fresh MySQL database when `TEST_MYSQL_URL` is set; a few client threads
//! send signed queries over keep-alive connections and record every Request-ID answered 200;
//! once enough have been answered the server gets SIGKILL in the middle of the load. Reopening
//! the database, every acknowledged Request-ID has exactly one audit row: a 200 leaves only after
//! the batch holding its row committed. The server is then started again on the same database and
//! witness file, answers one more query (its writer resumes the chain from the tail), and the
//! whole tamper-evident log verifies: the kill left a valid chain.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pension_gateway::client::WechatClient;
use pension_gateway::config::Settings;
use pension_gateway::crypto::SecretKey;
use pension_gateway::store::{Store, StoreOptions};
use testkit as testing;

use crate::common::demo_server::{start_demo, Server};
use crate::common::{self, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");
/// Client threads (connections) sending at once.
const CLIENTS: usize = 6;
/// Requests a client sends at most (bounds the run if the kill came late).
const PER_CLIENT: usize = 1_500;
/// Acknowledged requests to see before the kill.
const KILL_AFTER: usize = 150;

fn demo_client() -> WechatClient {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/demo");
    let text = std::fs::read_to_string(dir.join("wechat-v1.key")).unwrap();
    let key = SecretKey::parse(&text).unwrap();
    let s = Settings::default();
    WechatClient::new(
        s.keys.engine,
        &key,
        Some(1),
        &[],
        s.wechat.signer_id.as_bytes(),
    )
    .unwrap()
}

/// Starts `serve --demo` on `db_url` and waits for its banner.
fn start(db_url: &str, tmp: &Path) -> (Server, u16) {
    start_as(db_url, tmp, "gw-kill")
}

/// [`start`] as audit instance `instance` (its chain), witnessing into `tmp/witness.log`.
fn start_as(db_url: &str, tmp: &Path, instance: &str) -> (Server, u16) {
    let port = free_port();
    let token_file = tmp.join("admin.token");
    std::fs::write(
        &token_file,
        "dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GATEWAY__DATABASE__URL", db_url)
        .env("GATEWAY__LOG__LEVEL", "warn")
        .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "GATEWAY__SERVER__OPS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "GATEWAY__SERVER__ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("GATEWAY__SERVER__ADMIN_TOKEN_FILE", &token_file)
        .env("GATEWAY__AUDIT__WITNESS_FILE", tmp.join("witness.log"))
        .env("GATEWAY__AUDIT__INSTANCE_ID", instance)
        .env("GATEWAY__AUDIT__CHECKPOINT_ROWS", "40");
    let (server, _) = start_demo(&mut cmd);
    (server, port)
}

/// One signed query on a keep-alive connection: the status, or None when the connection failed.
fn query(
    s: &mut BufReader<std::net::TcpStream>,
    client: &WechatClient,
    request_id: &str,
) -> Option<u16> {
    const PATH: &str = "/v1/pension/account";
    let body = br#"{"user_true_name":"\u5f20\u4e09","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#;
    let now = chrono::Utc::now().timestamp();
    let signed = client
        .sign_request(
            "POST",
            PATH,
            body,
            now,
            &pension_gateway::crypto::nonce::generate(),
        )
        .ok()?;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Authorization: {}\r\nRequest-ID: {request_id}\r\nContent-Length: {}\r\n\r\n",
        signed.authorization,
        body.len()
    );
    let w = s.get_mut();
    w.write_all(head.as_bytes()).ok()?;
    w.write_all(body).ok()?;
    let mut status_line = String::new();
    if s.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).ok()?;
    // Only a complete answer counts as acknowledged.
    Some(status)
}

/// Loads the server at `port`, SIGKILLs it after [`KILL_AFTER`] answers of 200, and returns the
/// Request-IDs answered 200 and the number of requests answered at all.
fn load_then_kill(server: Server, port: u16) -> (Vec<String>, usize) {
    load_many_then_kill(server, &[port])
}

/// [`load_then_kill`] with the clients spread over `ports` (the first is `server`'s); only
/// `server` is killed, the others keep answering until the load stops.
fn load_many_then_kill(mut server: Server, ports: &[u16]) -> (Vec<String>, usize) {
    let client = Arc::new(demo_client());
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (client, acked, answered, stop) = (
                client.clone(),
                acked.clone(),
                answered.clone(),
                stop.clone(),
            );
            let port = ports[t % ports.len()];
            std::thread::spawn(move || {
                let Ok(conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                let mut conn = BufReader::new(conn);
                for i in 0..PER_CLIENT {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("kill-{t}-{i}-{}", uuid::Uuid::new_v4().simple());
                    match query(&mut conn, &client, &id) {
                        Some(status) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            if status == 200 {
                                acked.lock().unwrap().push(id);
                            }
                        }
                        None => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < KILL_AFTER && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGKILL while requests are in flight.
    server.0.kill().expect("SIGKILL the gateway");
    let _ = server.0.wait();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let acked = acked.lock().unwrap().clone();
    (acked, answered.load(Ordering::Relaxed))
}

/// Starts the server again on `url`, sends one query (the writer resumes its chain and appends a
/// witness line the kill may have cost), stops it, and verifies the whole log.
async fn restart_and_verify(url: &str, tmp: &Path) {
    let (mut server, port) = start(url, tmp);
    let status = tokio::task::spawn_blocking(move || {
        let client = demo_client();
        let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let status = query(&mut BufReader::new(conn), &client, "after-restart");
        let _ = server.0.kill();
        let _ = server.0.wait();
        status
    })
    .await
    .unwrap();
    assert_eq!(status, Some(200));
    let summary = verify_all(url, tmp).await;
    assert_eq!(summary.instances.len(), 1);
}

/// `audit verify` of the whole log at `url` with `tmp/witness.log`: panics on damage; checks
/// that every row was checked and each instance has a checkpoint.
async fn verify_all(url: &str, tmp: &Path) -> pension_gateway::audit::check::Summary {
    let store = Store::open(
        url,
        StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
            create_if_missing: false,
        },
    )
    .await
    .unwrap();
    let keys = pension_gateway::audit::prove::PublicKeys::from_key_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/demo"),
    )
    .unwrap();
    let verifier = pension_gateway::audit::Sm2CheckpointVerifier::new(
        pension_gateway::crypto::EngineKind::RustCrypto
            .engine()
            .as_ref(),
        keys.bank.iter().map(|(v, k)| (*v, k)),
    )
    .unwrap();
    let text = std::fs::read_to_string(tmp.join("witness.log")).unwrap();
    let witness = pension_gateway::audit::check::parse_witness(&text).unwrap();
    let summary = pension_gateway::audit::check::verify_store(
        &store,
        &witness,
        &verifier,
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap()
    .unwrap_or_else(|f| panic!("the log after kill -9 and restart: {f}"));
    for i in &summary.instances {
        assert!(i.checkpoints >= 1, "{summary:?}");
    }
    let rows: u64 = summary.instances.iter().map(|i| i.rows).sum();
    assert_eq!(
        i64::try_from(rows).unwrap(),
        store.count_audit().await.unwrap()
    );
    summary
}

async fn check_rows(url: &str, acked: &[String]) {
    let store = Store::open(
        url,
        StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
            create_if_missing: false,
        },
    )
    .await
    .expect("reopen the database after the kill");
    for id in acked {
        let rows = store.audit_for_request(id).await.unwrap();
        assert_eq!(
            rows.len(),
            1,
            "{id} was answered 200 but has {} audit rows",
            rows.len()
        );
        assert_eq!((rows[0].http_status, rows[0].outcome.as_str()), (200, "OK"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_loses_no_acknowledged_row() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gateway.db", tmp.path().display());
    let (server, port) = start(&url, tmp.path());
    let (acked, answered) = tokio::task::spawn_blocking(move || load_then_kill(server, port))
        .await
        .unwrap();
    assert!(
        acked.len() >= KILL_AFTER,
        "only {} of {answered} answers were 200",
        acked.len()
    );
    check_rows(&url, &acked).await;
    restart_and_verify(&url, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_kill_9_loses_no_acknowledged_row() {
    let Some(server_url) = common::mysql_url() else {
        return;
    };
    let name = format!("pg_kill_{}", uuid::Uuid::new_v4().simple());
    let url = testing::create_mysql_database(&server_url, &name)
        .await
        .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e})"));
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(&url, tmp.path());
    let outcome = tokio::task::spawn_blocking(move || load_then_kill(server, port)).await;
    let checked = match outcome {
        Ok((acked, _)) if acked.len() >= KILL_AFTER => {
            let url = url.clone();
            let dir = tmp.path().to_owned();
            tokio::spawn(async move {
                check_rows(&url, &acked).await;
                restart_and_verify(&url, &dir).await;
            })
            .await
        }
        Ok((acked, answered)) => {
            let _ = testing::drop_mysql_database(&server_url, &name).await;
            panic!("only {} of {answered} answers were 200", acked.len());
        }
        Err(e) => Err(e),
    };
    testing::drop_mysql_database(&server_url, &name)
        .await
        .expect("drop the test database");
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Instances sharing one MySQL database (each its own `audit.instance_id`, one witness file).
const INSTANCES: [&str; 3] = ["gw-a", "gw-b", "gw-c"];

/// Three gateway processes on one MySQL database, each its own audit instance, sharing the
/// witness file: load spread over all three, `kill -9` of one mid-load, that one restarted,
/// one more query to each; every acknowledged row is there, and `audit verify` finds three
/// intact chains holding every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_instances_kill_9_one_restart_verify() {
    let Some(server_url) = common::mysql_url() else {
        return;
    };
    let name = format!("pg_kill_{}", uuid::Uuid::new_v4().simple());
    let url = testing::create_mysql_database(&server_url, &name)
        .await
        .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e})"));
    let tmp = tempfile::tempdir().unwrap();
    let run = {
        let (url, dir) = (url.clone(), tmp.path().to_owned());
        tokio::spawn(async move {
            let started: Vec<(Server, u16)> =
                INSTANCES.iter().map(|i| start_as(&url, &dir, i)).collect();
            let mut started = started.into_iter();
            let (victim, victim_port) = started.next().unwrap();
            let others: Vec<(Server, u16)> = started.collect();
            let mut ports = vec![victim_port];
            ports.extend(others.iter().map(|(_, p)| *p));
            let (acked, answered) =
                tokio::task::spawn_blocking(move || load_many_then_kill(victim, &ports))
                    .await
                    .unwrap();
            assert!(
                acked.len() >= KILL_AFTER,
                "only {} of {answered} answers were 200",
                acked.len()
            );
            check_rows(&url, &acked).await;
            // The killed instance again, then one query to each; all stopped.
            let (restarted, port) = start_as(&url, &dir, INSTANCES[0]);
            let mut all = vec![(restarted, port)];
            all.extend(others);
            let statuses = tokio::task::spawn_blocking(move || {
                let client = demo_client();
                let mut statuses = Vec::new();
                for (mut server, port) in all {
                    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let id = format!("after-{port}");
                    statuses.push(query(&mut BufReader::new(conn), &client, &id));
                    let _ = server.0.kill();
                    let _ = server.0.wait();
                }
                statuses
            })
            .await
            .unwrap();
            assert_eq!(statuses, vec![Some(200); INSTANCES.len()]);
            let summary = verify_all(&url, &dir).await;
            let names: Vec<&str> = summary
                .instances
                .iter()
                .map(|i| i.instance.as_str())
                .collect();
            assert_eq!(names, INSTANCES, "{summary:?}");
        })
        .await
    };
    testing::drop_mysql_database(&server_url, &name)
        .await
        .expect("drop the test database");
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}
