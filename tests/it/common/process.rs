//! The real binary as a production `serve` process (configuration file in a tempdir, a copy of
//! the demo keys marked as a production ring, a secret pepper), and the plain-socket HTTP
//! helpers the process tests poll it with.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The gateway binary built with the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");

/// A production key ring in `dir/keys` shaped like the demo's (the demo manifest without
/// `demo = true`, the same file names) but with fresh keys and secrets: the published demo
/// keys are refused outside demo mode. Secrets 0600, the rest 0644; returns the directory.
pub fn production_keys(dir: &Path) -> PathBuf {
    use pension_gateway::crypto::SecretKey;
    use std::os::unix::fs::PermissionsExt;
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/demo")).unwrap() {
        let e = e.unwrap();
        let to = keys.join(e.file_name());
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name
            .strip_suffix(".key")
            .or_else(|| name.strip_suffix(".secret"))
        else {
            if name == "keyring.toml" {
                let text = std::fs::read_to_string(e.path()).unwrap();
                std::fs::write(&to, text.replace("demo = true", "demo = false")).unwrap();
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            continue;
        };
        if name.ends_with(".key") {
            let key = SecretKey::generate();
            std::fs::write(&to, key.to_pem().unwrap().as_bytes()).unwrap();
            let public = keys.join(format!("{stem}.pub"));
            std::fs::write(&public, format!("{}\n", key.public_key().to_hex())).unwrap();
            std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        } else {
            // 64 letters and digits: fits every channel's secret rule.
            std::fs::write(&to, format!("{}\n", random_pepper())).unwrap();
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    keys
}

/// A fresh secret pepper (64 hex digits).
pub fn random_pepper() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A `serve` process, killed (SIGKILL) when dropped if still running.
pub struct Proc {
    /// The child, `None` once it was waited for.
    pub child: Option<Child>,
}

impl Proc {
    /// Starts `BIN args…` with stdout discarded and stderr appended to `log`.
    pub fn spawn(args: &[&str], log: &Path) -> Self {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env_remove("GATEWAY_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        Self { child: Some(child) }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {}", self.pid());
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits up to `limit` for the exit; `None` if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `BIN args…` to completion; panics with its output unless it succeeds.
pub fn run_ok(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One HTTP/1.1 request on a fresh loopback connection: the status and the body, or `None` when
/// nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

/// The last `n` lines of a log file (for failure messages).
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until `GET /readyz` on `ops_port` answers 200; panics with the log's tail if the
/// process exits or `limit` passes first.
pub fn wait_ready(p: &mut Proc, ops_port: u16, log: &Path, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = p.exited() {
            panic!(
                "the gateway exited ({s}) before it was ready:\n{}",
                log_tail(log, 30)
            );
        }
        if http_get(ops_port, "/readyz").is_some_and(|(st, _)| st == 200) {
            return;
        }
        assert!(
            Instant::now() < until,
            "not ready within {limit:?}:\n{}",
            log_tail(log, 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `[server]`, `[database]`, `[accounts]`, `[keys]` and `[log]` sections of a production
/// configuration; `extra` is appended (e.g. a `[replay]` section).
pub struct ServeConfig<'a> {
    /// Public listener port.
    pub port: u16,
    /// Ops listener port.
    pub ops_port: u16,
    /// Database URL.
    pub database_url: &'a str,
    /// Pepper (hex).
    pub pepper: &'a str,
    /// Key directory.
    pub keys: &'a Path,
    /// `server.drain_secs`.
    pub drain_secs: u64,
    /// More TOML.
    pub extra: &'a str,
}

impl ServeConfig<'_> {
    /// Writes the file and returns its path.
    pub fn write(&self, path: &Path) -> PathBuf {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nops_listen = \"127.0.0.1:{}\"\nadmin_listen = \"\"\n\
             workers = 2\ndrain_secs = {}\nshutdown_timeout_secs = 10\n\n\
             [database]\nurl = {:?}\nmax_connections = 8\ncreate_if_missing = true\n\n\
             [accounts]\nid_pepper = {:?}\n\n\
             [keys]\ndir = {:?}\nwatch_interval_secs = 0\n\n\
             [limits]\nper_identity_per_minute = 0\n\n\
             [log]\nformat = \"text\"\nlevel = \"info\"\n\n{}\n",
            self.port,
            self.ops_port,
            self.drain_secs,
            self.database_url,
            self.pepper,
            self.keys.display().to_string(),
            self.extra
        );
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }
}

/// The WeChat-side client of the demo keys in `keys` (`wechat-v1.key`, `bank-v1.pub`).
pub fn demo_client(keys: &Path) -> pension_gateway::client::WechatClient {
    use pension_gateway::crypto::{EngineKind, PublicKey, SecretKey};
    let wechat =
        SecretKey::parse(&std::fs::read_to_string(keys.join("wechat-v1.key")).unwrap()).unwrap();
    let bank =
        PublicKey::parse(&std::fs::read_to_string(keys.join("bank-v1.pub")).unwrap()).unwrap();
    pension_gateway::client::WechatClient::new(
        EngineKind::DEFAULT,
        &wechat,
        Some(1),
        &[(1, bank)],
        b"1234567812345678",
    )
    .unwrap()
}

/// A query for the first demo person, signed now with a fresh nonce: (Authorization, body).
pub fn signed_query(client: &pension_gateway::client::WechatClient) -> (String, Vec<u8>) {
    let p = &pension_gateway::accounts::demo::DEMO_PEOPLE[0];
    let body = serde_json::to_vec(&serde_json::json!({"user_true_name": p.name,
        "user_identify_card_num": p.id_number, "corpno": "weibao"}))
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let nonce = pension_gateway::crypto::nonce::generate();
    let auth = client
        .sign_request("POST", "/v1/pension/account", &body, now, &nonce)
        .unwrap()
        .authorization;
    (auth, body)
}

/// An answer read off the socket.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The JSON body (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The bank key version the answer's signature verifies under.
    pub fn verify(&self, client: &pension_gateway::client::WechatClient) -> Result<u32, String> {
        let now = chrono::Utc::now().timestamp();
        client
            .verify_response(
                |n| {
                    self.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.as_str())
                },
                &self.body,
                now,
            )
            .map_err(|e| format!("{e:?}"))
    }
}

/// POSTs a signed query on a fresh loopback connection; `None` when nothing answers.
pub fn post_query(port: u16, authorization: &str, request_id: &str, body: &[u8]) -> Option<Answer> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let head = format!(
        "POST /v1/pension/account HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\
         Request-ID: {request_id}\r\nContent-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: out[split + 4..].to_vec(),
    })
}
