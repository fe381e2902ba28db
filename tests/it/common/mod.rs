//! Shared integration-test harness: a real gateway (actix service, real store, real key ring on
//! disk) with a manual clock, and a WeChat-side client that signs like WeChat.
//!
//! Backends: SQLite in memory always; MySQL when `TEST_MYSQL_URL` is set — then an unreachable
//! server FAILS the test (it never skips), and each test gets a fresh database it drops after.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

pub mod demo_server;
pub mod partners;
pub mod process;
pub mod skips;
pub mod softsdf;

use std::path::Path;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, App};
use pension_gateway::accounts::demo;
use pension_gateway::client::WechatClient;
use pension_gateway::clock::ManualClock;
use pension_gateway::config::{Settings, DEMO_PEPPER_HEX};
use pension_gateway::crypto::{EngineKind, PublicKey, SecretKey};
use pension_gateway::server::{build_state, load_keys};
use pension_gateway::state::AppState;
use pension_gateway::store::{Store, StoreOptions};

/// 2022-08-29, the WeChat guide's example timestamp.
pub const NOW: i64 = 1_661_776_967;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Mysql,
    /// The TLS-only MariaDB of `TEST_MYSQL_TLS_URL`, verified with `TEST_MYSQL_TLS_CA_FILE`.
    MysqlTls,
}

/// The MySQL server URL for tests, or None (with a note) when not configured.
pub fn mysql_url() -> Option<String> {
    match std::env::var("TEST_MYSQL_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            skips::not_run("TEST_MYSQL_URL", "MySQL variant");
            None
        }
    }
}

/// The TLS-only MySQL server for tests (`TEST_MYSQL_TLS_URL`, with its TLS URL parameters) and
/// the CA that signed its certificate (`TEST_MYSQL_TLS_CA_FILE`), or None (with a note).
pub fn mysql_tls() -> Option<(String, std::path::PathBuf)> {
    match std::env::var("TEST_MYSQL_TLS_URL") {
        Ok(u) if !u.is_empty() => {
            let ca = std::env::var("TEST_MYSQL_TLS_CA_FILE").unwrap_or_else(|_| {
                panic!("TEST_MYSQL_TLS_URL is set but TEST_MYSQL_TLS_CA_FILE is not")
            });
            Some((u, ca.into()))
        }
        _ => {
            skips::not_run("TEST_MYSQL_TLS_URL", "MySQL-over-TLS variant");
            None
        }
    }
}

/// The Redis URL for tests, or None (with a note) when not configured; a test that gets a URL
/// fails when the server is unreachable.
pub fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            skips::not_run("TEST_REDIS_URL", "Redis variant");
            None
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers started as child processes,
/// which cannot be handed a bound listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database for one test; drops a MySQL database when the test ends.
pub struct TestDb {
    pub store: Store,
    mysql: Option<(String, String, Option<std::path::PathBuf>)>,
    /// The MySQL URL of this test's database (None for SQLite in memory).
    pub url: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name, ca)) = self.mysql.take() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = std::thread::spawn(move || {
                rt.block_on(testkit::drop_mysql_database_with_ca(
                    &server,
                    ca.as_deref(),
                    &name,
                ))
            })
            .join();
        }
    }
}

/// A migrated SQLite *file* database in `dir` (the backend's group-commit writer runs only on
/// files; `sqlite::memory:` writes row by row).
pub async fn sqlite_file_db(dir: &Path) -> TestDb {
    let url = format!("sqlite://{}", dir.join("gateway.db").display());
    let opts = StoreOptions {
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(5),
        create_if_missing: true,
    };
    let store = Store::open(&url, opts).await.expect("open SQLite file");
    store.run_migrations().await.expect("migrate SQLite");
    TestDb {
        store,
        mysql: None,
        url: Some(url),
    }
}

pub async fn test_db(db: Db) -> Option<TestDb> {
    let opts = StoreOptions {
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(5),
        create_if_missing: true,
    };
    match db {
        Db::Sqlite => {
            let store = Store::open("sqlite::memory:", opts)
                .await
                .expect("open in-memory SQLite");
            store.run_migrations().await.expect("migrate SQLite");
            Some(TestDb {
                store,
                mysql: None,
                url: None,
            })
        }
        Db::Mysql => {
            let server = mysql_url()?;
            let name = format!("pg_test_{}", uuid::Uuid::new_v4().simple());
            let url = testkit::create_mysql_database(&server, &name)
                .await
                .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e}); start MariaDB or unset it"));
            let store = Store::open(&url, opts).await.expect("open MySQL");
            store.run_migrations().await.expect("migrate MySQL");
            Some(TestDb {
                store,
                mysql: Some((server, name, None)),
                url: Some(url),
            })
        }
        Db::MysqlTls => {
            let (server, ca) = mysql_tls()?;
            let name = format!("pg_test_{}", uuid::Uuid::new_v4().simple());
            let url = testkit::create_mysql_database_with_ca(
                &server,
                Some(&ca),
                &name,
            )
            .await
            .unwrap_or_else(|e| panic!("TEST_MYSQL_TLS_URL is set but the TLS MySQL is unusable ({e}); run .ci/services or unset it"));
            let store = Store::open_with_ca(&url, Some(&ca), opts)
                .await
                .expect("open MySQL over TLS");
            store
                .run_migrations()
                .await
                .expect("migrate MySQL over TLS");
            Some(TestDb {
                store,
                mysql: Some((server, name, Some(ca))),
                url: Some(url),
            })
        }
    }
}

/// Key material of a test: bank v1 (+ optional v2), WeChat v1 (+ optional v2).
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub bank: Vec<(u32, SecretKey)>,
    pub wechat: Vec<(u32, SecretKey)>,
}

pub fn write_private(path: &Path, key: &SecretKey) {
    std::fs::write(path, key.to_pem().unwrap().as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = Self {
            dir,
            bank: vec![(1, SecretKey::generate())],
            wechat: vec![(1, SecretKey::generate())],
        };
        keys.write_manifest("[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n");
        keys
    }

    pub fn write_manifest(&self, text: &str) {
        for (v, k) in &self.bank {
            write_private(&self.dir.path().join(format!("bank-v{v}.key")), k);
        }
        for (v, k) in &self.wechat {
            std::fs::write(
                self.dir.path().join(format!("wechat-v{v}.pub")),
                k.public_key().to_hex(),
            )
            .unwrap();
        }
        std::fs::write(self.dir.path().join("keyring.toml"), text).unwrap();
    }

    pub fn bank_public(&self) -> Vec<(u32, PublicKey)> {
        self.bank
            .iter()
            .map(|(v, k)| (*v, k.public_key()))
            .collect()
    }

    /// A WeChat-side client signing with WeChat key `version`, naming it in Authorization if `hint`.
    pub fn client(&self, version: u32, hint: bool) -> WechatClient {
        let key = &self.wechat.iter().find(|(v, _)| *v == version).unwrap().1;
        WechatClient::new(
            EngineKind::DEFAULT,
            key,
            hint.then_some(version),
            &self.bank_public(),
            b"1234567812345678",
        )
        .unwrap()
    }
}

pub fn settings(keys: &Keys) -> Settings {
    let mut s = Settings::default();
    s.keys.dir = keys.dir.path().to_path_buf();
    s.accounts.id_pepper = DEMO_PEPPER_HEX.into();
    s.server.demo = true; // only for the public pepper; the key ring here is not marked demo
    s
}

pub struct Gateway {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub keys: Keys,
    pub db: TestDb,
}

impl Gateway {
    /// A gateway on `db` with the demo accounts seeded, or None when that backend is not configured.
    pub async fn start(db: Db) -> Option<Self> {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let db = test_db(db).await?;
        Some(Self::start_on(db, tweak).await)
    }

    /// A gateway on an already opened (and migrated) test database.
    pub async fn start_on(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> Self {
        let keys = Keys::new();
        let mut s = settings(&keys);
        tweak(&mut s);
        let clock = Arc::new(ManualClock::at(NOW));
        let ring = load_keys(&s).expect("key ring loads");
        let state = build_state(&s, db.store.clone(), ring, clock.clone()).expect("state");
        demo::seed_demo(state.accounts(), NOW)
            .await
            .expect("seed demo accounts");
        Self {
            state,
            clock,
            keys,
            db,
        }
    }

    pub async fn service(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        let st = self.state.clone();
        test::init_service(
            App::new().configure(move |cfg| pension_gateway::http::configure(cfg, st)),
        )
        .await
    }
}

/// The service `actix_web::test::init_service` returns, as one bound for test helpers.
pub trait TestService<B>:
    Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>
{
}

impl<S, B> TestService<B> for S where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>
{
}

/// A request as WeChat would send it, with knobs to break it.
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub body: Vec<u8>,
    pub timestamp: i64,
    pub nonce: String,
    pub request_id: Option<String>,
    pub content_type: Option<&'static str>,
    pub wechat_version: u32,
    pub hint: bool,
}

impl Req {
    pub fn query(name: &str, id: &str) -> Self {
        Self::body(serde_json::to_vec(&serde_json::json!({"user_true_name": name, "user_identify_card_num": id, "corpno": "weibao"})).unwrap())
    }

    pub fn body(body: Vec<u8>) -> Self {
        Self {
            method: "POST",
            path: "/v1/pension/account".into(),
            body,
            timestamp: NOW,
            nonce: pension_gateway::crypto::nonce::generate(),
            request_id: Some(uuid::Uuid::new_v4().to_string()),
            content_type: Some("application/json"),
            wechat_version: 1,
            hint: true,
        }
    }

    /// The Authorization header this request would carry.
    pub fn authorization(&self, keys: &Keys) -> String {
        keys.client(self.wechat_version, self.hint)
            .sign_request(
                self.method,
                &self.path,
                &self.body,
                self.timestamp,
                &self.nonce,
            )
            .unwrap()
            .authorization
    }

    /// Builds the actix test request, signed over exactly these fields.
    pub fn build(&self, keys: &Keys) -> test::TestRequest {
        let auth = self.authorization(keys);
        self.build_with_auth(Some(auth))
    }

    pub fn build_with_auth(&self, auth: Option<String>) -> test::TestRequest {
        let mut r = test::TestRequest::default()
            .method(self.method.parse().unwrap())
            .uri(&self.path)
            .insert_header(("Accept", "application/json"))
            .insert_header(("User-Agent", "wechat-test"));
        if let Some(a) = auth {
            r = r.insert_header(("Authorization", a));
        }
        if let Some(id) = &self.request_id {
            r = r.insert_header(("Request-ID", id.as_str()));
        }
        if let Some(ct) = self.content_type {
            r = r.insert_header(("Content-Type", ct));
        }
        r.set_payload(self.body.clone())
    }
}

/// A response, read whole, with its signature checked.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
    /// Bank key version the response verified under.
    pub signed_by: Result<u32, pension_gateway::client::ResponseError>,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send<S, B>(svc: &S, keys: &Keys, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let resp = test::call_service(svc, req.to_request()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await.to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let signed_by = keys.client(1, true).verify_response(
        |n| headers.get(n).and_then(|v| v.to_str().ok()),
        &body,
        NOW,
    );
    Resp {
        status,
        headers,
        body,
        json,
        signed_by,
    }
}

/// A MySQL account created by a test, dropped (at both hosts it is created for) when this goes
/// out of scope.
pub struct DropUser {
    /// The admin URL that created it.
    pub admin_url: String,
    /// The account name.
    pub user: String,
}

impl Drop for DropUser {
    fn drop(&mut self) {
        let (url, user) = (self.admin_url.clone(), self.user.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(testkit::mysql_exec(
                &url,
                None,
                &format!(
                    "DROP USER IF EXISTS '{user}'@'127.0.0.1'; DROP USER IF EXISTS '{user}'@'localhost';"
                ),
            ))
        })
        .join();
    }
}

/// `url` with `user:password` in place of its credentials.
pub fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host_and_rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host_and_rest}")
}

/// Creates a MySQL account `<prefix><random>` at `127.0.0.1` and `localhost`, with the grants
/// that `grants(database, "'user'@'host'")` returns for the database of `admin_url`. Returns the
/// guard that drops it (its `user` is the name) and the URL that logs in as it.
pub async fn temp_mysql_user(
    admin_url: &str,
    prefix: &str,
    grants: impl Fn(&str, &str) -> String,
) -> (DropUser, String) {
    let db_name = admin_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let user = format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let password = uuid::Uuid::new_v4().simple().to_string();
    let guard = DropUser {
        admin_url: admin_url.to_owned(),
        user: user.clone(),
    };
    let mut sql = String::new();
    for host in ["127.0.0.1", "localhost"] {
        let who = format!("'{user}'@'{host}'");
        sql.push_str(&format!("CREATE USER {who} IDENTIFIED BY '{password}';"));
        sql.push_str(&grants(&db_name, &who));
    }
    testkit::mysql_exec(admin_url, None, &sql)
        .await
        .expect("create the test account");
    let url = as_user(admin_url, &user, &password);
    (guard, url)
}
