//! Key rotation with zero downtime (WeChat guide §3.4): a real gateway on loopback under a
//! bounded load of signed queries while the bank key rotates v1→v2 (staged → rollout → active →
//! v1 retired) and WeChat's key v1→v2 (v2 trusted, clients switch, v1 untrusted), each step
//! written by the `keys` operations and applied through `POST /admin/keyring/reload`.
//! Zero failed requests, and every response verifies under the bank version it names.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Keys;
use pension_gateway::client::WechatClient;
use pension_gateway::clock::SystemClock;
use pension_gateway::crypto::{nonce, EngineKind, PublicKey, SecretKey};
use pension_gateway::keyring::admin::KeyDir;

/// The admin bearer token of the server under test.
const ADMIN_TOKEN: &[u8] = b"dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=";
use pension_gateway::server::{build_state, load_keys, serve_state, Listeners};

const ID: &[u8] = b"1234567812345678";
const MAX_REQUESTS: usize = 20_000;

struct Shared {
    wechat_keys: Mutex<BTreeMap<u32, SecretKey>>,
    bank_public: Mutex<Vec<(u32, PublicKey)>>,
    wechat_version: AtomicU32,
}

impl Shared {
    fn client(&self) -> (u32, WechatClient) {
        let v = self.wechat_version.load(Ordering::SeqCst);
        let key = self.wechat_keys.lock().unwrap()[&v].clone();
        let bank = self.bank_public.lock().unwrap().clone();
        (
            v,
            WechatClient::new(EngineKind::DEFAULT, &key, Some(v), &bank, ID).unwrap(),
        )
    }
}

/// Writes the admin token to `dir/admin-token` with mode 0600, as the gateway requires.
fn admin_token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, [ADMIN_TOKEN, b"\n"].concat()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// Starts the gateway as production does (`serve_state`): the public listener and the admin
/// listener (token from `token_file`), both on 127.0.0.1:0, in its own thread and actix system.
/// Returns the public and the admin address.
fn start_server(
    keys_dir: std::path::PathBuf,
    token_file: std::path::PathBuf,
) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addrs = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let mut s = pension_gateway::config::Settings::default();
            s.keys.dir = keys_dir;
            // Reloads happen only through the admin route, at the steps the test chooses.
            s.keys.watch_interval_secs = 0;
            s.accounts.id_pepper = pension_gateway::config::DEMO_PEPPER_HEX.into();
            s.server.demo = true;
            s.server.workers = 2;
            s.server.admin_token_file = Some(token_file);
            s.limits.per_identity_per_minute = 0; // one identity, hundreds of queries
            let store = pension_gateway::store::Store::open(
                "sqlite::memory:",
                pension_gateway::store::StoreOptions {
                    max_connections: 4,
                    acquire_timeout: Duration::from_secs(5),
                    create_if_missing: true,
                },
            )
            .await
            .unwrap();
            store.run_migrations().await.unwrap();
            let ring = load_keys(&s).unwrap();
            let state = build_state(&s, store, ring, Arc::new(SystemClock)).unwrap();
            pension_gateway::accounts::demo::seed_demo(
                state.accounts(),
                chrono::Utc::now().timestamp(),
            )
            .await
            .unwrap();
            let listeners = Listeners {
                public,
                ops: None,
                admin: Some(admin),
            };
            serve_state(&s, state, listeners).await.unwrap();
        });
    });
    addrs
}

async fn reload(http: &awc::Client, addr: std::net::SocketAddr) -> serde_json::Value {
    let mut r = http
        .post(format!("http://{addr}/admin/keyring/reload"))
        .bearer_auth(std::str::from_utf8(ADMIN_TOKEN).unwrap())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r.status(), 200, "reload refused: {body}");
    body
}

#[actix_web::test]
async fn rotate_bank_and_wechat_keys_under_load_with_zero_failures() {
    let keys = Keys::new();
    let dir = KeyDir::new(keys.dir.path(), EngineKind::DEFAULT, ID);
    let token_dir = tempfile::tempdir().unwrap();
    let (addr, admin) = start_server(
        keys.dir.path().to_path_buf(),
        admin_token_file(token_dir.path()),
    );
    let shared = Arc::new(Shared {
        wechat_keys: Mutex::new(keys.wechat.iter().cloned().collect()),
        bank_public: Mutex::new(keys.bank_public()),
        wechat_version: AtomicU32::new(1),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let by_version = Arc::new(Mutex::new(BTreeMap::<(u32, u32), usize>::new()));

    // Wait until the server answers.
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let started = Instant::now();
    while http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (shared, stop, sent, failures, by_version) = (
            shared.clone(),
            stop.clone(),
            sent.clone(),
            failures.clone(),
            by_version.clone(),
        );
        tasks.push(actix_web::rt::spawn(async move {
            let http = awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish();
            let url = format!("http://{addr}/v1/pension/account");
            while !stop.load(Ordering::SeqCst) && sent.fetch_add(1, Ordering::SeqCst) < MAX_REQUESTS
            {
                let (wv, client) = shared.client();
                let body = serde_json::to_vec(&serde_json::json!({"user_true_name": "张三",
                    "user_identify_card_num": "11010519491231002X", "corpno": "weibao"}))
                .unwrap();
                let signed = client
                    .sign_request(
                        "POST",
                        "/v1/pension/account",
                        &body,
                        chrono::Utc::now().timestamp(),
                        &nonce::generate(),
                    )
                    .unwrap();
                let resp = http
                    .post(url.as_str())
                    .insert_header(("Authorization", signed.authorization))
                    .insert_header(("Request-ID", uuid::Uuid::new_v4().to_string()))
                    .insert_header(("Content-Type", "application/json"))
                    .send_body(body)
                    .await;
                let mut resp = match resp {
                    Ok(r) => r,
                    Err(e) => {
                        failures.lock().unwrap().push(format!("transport: {e}"));
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                let rbody = resp.body().await.unwrap_or_default();
                let headers = resp.headers().clone();
                match client.verify_response(
                    |n| headers.get(n).and_then(|v| v.to_str().ok()),
                    &rbody,
                    chrono::Utc::now().timestamp(),
                ) {
                    Ok(bv) if status == 200 => {
                        *by_version.lock().unwrap().entry((wv, bv)).or_default() += 1
                    }
                    other => failures.lock().unwrap().push(format!(
                        "wechat v{wv}: HTTP {status} {:?} {}",
                        other,
                        String::from_utf8_lossy(&rbody)
                    )),
                }
            }
        }));
    }
    let pause = || actix_web::rt::time::sleep(Duration::from_millis(400));
    pause().await;

    // 1. Bank: generate v2 (staged); the WeChat side learns its public key.
    let v2 = dir.generate().unwrap();
    assert_eq!(v2, 2);
    shared
        .bank_public
        .lock()
        .unwrap()
        .push((2, dir.export_public(2).unwrap()));
    reload(&http, admin).await;
    pause().await;
    // 2. Bank trusts WeChat's new key v2; then WeChat switches to signing with it.
    let wechat_v2 = SecretKey::generate();
    dir.trust_wechat(2, &wechat_v2.public_key().to_hex())
        .unwrap();
    reload(&http, admin).await;
    shared.wechat_keys.lock().unwrap().insert(2, wechat_v2);
    shared.wechat_version.store(2, Ordering::SeqCst);
    pause().await;
    // 3. Gray rollout: half the responses signed by bank v2.
    dir.rollout(2, 50).unwrap();
    let body = reload(&http, admin).await;
    assert_eq!(body["rollout"]["percent"], 50);
    pause().await;
    // 4. Bank v2 active, v1 retiring.
    dir.activate(2).unwrap();
    assert_eq!(reload(&http, admin).await["active_bank_key_version"], 2);
    pause().await;
    // 5. Retire the old keys on both sides.
    dir.untrust_wechat(1).unwrap();
    dir.retire(1).unwrap();
    let body = reload(&http, admin).await;
    assert_eq!(body["trusted_wechat_key_versions"], serde_json::json!([2]));
    pause().await;
    // A broken key set is refused and the server keeps serving the last good one.
    std::fs::write(keys.dir.path().join("keyring.toml"), "not = [valid").unwrap();
    let mut r = http
        .post(format!("http://{admin}/admin/keyring/reload"))
        .bearer_auth(std::str::from_utf8(ADMIN_TOKEN).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let refused: serde_json::Value = r.json().await.unwrap();
    assert_eq!(refused["active_bank_key_version"], 2);
    pause().await;

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        failures.first()
    );
    let counts = by_version.lock().unwrap().clone();
    eprintln!("answered (wechat version, bank version) → count: {counts:?}");
    for pair in [(1, 1), (2, 1), (2, 2)] {
        assert!(
            counts.get(&pair).copied().unwrap_or(0) > 0,
            "no responses for {pair:?}: {counts:?}"
        );
    }
    // Nothing signed by bank v2 before WeChat could verify it, nothing by v1 after retirement:
    // every response verified under the version it named (checked per response above).
}

/// Runs `pension-gateway --config cfg keys …` (the operator's command); the exit status and
/// both outputs.
fn keys_cli(cfg: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(common::process::BIN)
        .env_remove("GATEWAY_CONFIG")
        .env_remove("PENSION_GATEWAY_TRAFFIC_WINDOW_MINUTES")
        .arg("--config")
        .arg(cfg)
        .arg("keys")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rotation guards against the running gateway: `keys list` shows each version's traffic
/// from the admin endpoint, `untrust-wechat` of the version requests just arrived under is
/// refused without `--force` (the typo that failed 21 requests), a repeated command says it was
/// a no-op, and `rollout` and `activate` refuse a staged bank key that was never exported.
#[actix_web::test]
async fn keys_commands_guard_versions_with_recent_traffic() {
    let keys = Keys::new();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = admin_token_file(token_dir.path());
    let (addr, admin) = start_server(keys.dir.path().to_path_buf(), token_file.clone());
    let cfg = token_dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nadmin_listen = \"{admin}\"\nadmin_token_file = \"{}\"\n\n\
             [accounts]\nid_pepper = \"{}\"\n\n[keys]\ndir = \"{}\"\n",
            token_file.display(),
            common::process::random_pepper(),
            keys.dir.path().display()
        ),
    )
    .unwrap();
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let started = Instant::now();
    while http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // WeChat v2 is trusted too, so untrusting v1 is not refused for being the last one.
    let dir = KeyDir::new(keys.dir.path(), EngineKind::DEFAULT, ID);
    let wechat2 = SecretKey::generate();
    dir.trust_wechat(2, &wechat2.public_key().to_hex()).unwrap();
    reload(&http, admin).await;
    // One request under WeChat v1.
    let client = keys.client(1, true);
    let body = br#"{"user_true_name":"x","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#;
    let signed = client
        .sign_request(
            "POST",
            "/v1/pension/account",
            body,
            chrono::Utc::now().timestamp(),
            &nonce::generate(),
        )
        .unwrap();
    let resp = http
        .post(format!("http://{addr}/v1/pension/account"))
        .insert_header(("Authorization", signed.authorization))
        .insert_header(("Request-ID", uuid::Uuid::new_v4().to_string()))
        .insert_header(("Content-Type", "application/json"))
        .send_body(&body[..])
        .await
        .unwrap();
    assert!(resp.headers().contains_key("WxIns-Signature"));
    assert_ne!(
        resp.headers().get("WxIns-Version").map(|v| v.as_bytes()),
        None
    );

    let (ok, out, err) = keys_cli(&cfg, &["list"]);
    assert!(ok, "{err}");
    let row = |role: &str, v: &str| {
        out.lines()
            .find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&role) && f.get(1) == Some(&v)
            })
            .unwrap_or_else(|| panic!("no {role} v{v} row:\n{out}"))
            .to_string()
    };
    // role, version, state, fingerprint, (no share for WeChat keys), count, last used.
    let count = |r: String| r.split_whitespace().nth(4).unwrap_or("").to_string();
    assert_eq!(count(row("wechat", "1")), "1", "{out}");
    assert!(row("wechat", "1").ends_with("s ago"), "{out}");
    assert_eq!(count(row("wechat", "2")), "0", "{out}");

    let (ok, _, err) = keys_cli(&cfg, &["untrust-wechat", "1"]);
    assert!(!ok, "untrusting a version in use must be refused");
    assert!(
        err.contains("WeChat key v1 carried traffic") && err.contains("--force"),
        "{err}"
    );
    assert!(dir
        .list()
        .unwrap()
        .iter()
        .any(|k| k.role == "wechat" && k.version == 1 && k.state == "trusted"));
    // A version without traffic goes through (and the window can be narrowed).
    let (ok, out, err) = keys_cli(&cfg, &["untrust-wechat", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("WeChat key v2 no longer trusted"), "{out}");
    let (ok, out, _) = keys_cli(&cfg, &["untrust-wechat", "2"]);
    assert!(
        ok && out.contains("already untrusted: nothing changed"),
        "{out}"
    );
    let (ok, _, err) = keys_cli(&cfg, &["trust-wechat", "2", &wechat2.public_key().to_hex()]);
    assert!(ok, "{err}");
    reload(&http, admin).await;
    let (ok, out, err) = keys_cli(&cfg, &["untrust-wechat", "1", "--force"]);
    assert!(ok && out.contains("no longer trusted"), "{out}{err}");

    // Bank: a staged key never exported cannot be rolled out without --force.
    let (ok, _, err) = keys_cli(&cfg, &["generate"]);
    assert!(ok, "{err}");
    let (ok, _, err) = keys_cli(&cfg, &["rollout", "2", "--percent", "10"]);
    assert!(!ok && err.contains("never exported"), "{err}");
    let (ok, _, err) = keys_cli(&cfg, &["export-public", "2"]);
    assert!(ok, "{err}");
    let (ok, out, err) = keys_cli(&cfg, &["rollout", "2", "--percent", "10"]);
    assert!(ok && out.contains("signs 10%"), "{out}{err}");
    let (ok, out, _) = keys_cli(&cfg, &["rollout", "2", "--percent", "10"]);
    assert!(ok && out.contains("nothing changed"), "{out}");

    // `activate` is guarded the same way for a staged key: v3, never exported, is refused (and
    // the manifest is untouched); v2, exported, goes through; again, it says it was a no-op.
    let (ok, _, err) = keys_cli(&cfg, &["generate"]);
    assert!(ok, "{err}");
    let before = std::fs::read(keys.dir.path().join("keyring.toml")).unwrap();
    let (ok, _, err) = keys_cli(&cfg, &["activate", "3"]);
    assert!(
        !ok && err.contains("never exported") && err.contains("keys export-public 3"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(keys.dir.path().join("keyring.toml")).unwrap(),
        before,
        "a refused activate must write nothing"
    );
    let (ok, out, err) = keys_cli(&cfg, &["activate", "2"]);
    assert!(ok && out.contains("bank key v2 is active"), "{out}{err}");
    let (ok, out, err) = keys_cli(&cfg, &["activate", "2"]);
    assert!(
        ok && out.contains("already active: nothing changed"),
        "{out}{err}"
    );
    // The rollback to the retiring v1 (never exported here: `init` made it) is not guarded.
    let (ok, out, err) = keys_cli(&cfg, &["activate", "1"]);
    assert!(ok && out.contains("bank key v1 is active"), "{out}{err}");
    // --force activates a never-exported staged key.
    let (ok, out, err) = keys_cli(&cfg, &["activate", "3", "--force"]);
    assert!(ok && out.contains("bank key v3 is active"), "{out}{err}");
}
