//! Redis shared by several instances: one [`RedisLink`] (a single node or a Cluster, plain or
//! TLS) used by the nonce store and by the global per-identity limit.
//!
//! The nonce store is `SET key 1 NX EX window` — atomic, so of two instances seeing one nonce
//! exactly one wins. The TTL is the same window the memory store keeps; Redis expires by its own
//! clock, which the window's margin covers. One key per nonce, so in a Cluster each command
//! touches one slot and no hash tag is needed.
//!
//! The link connects lazily and reconnects by itself (the single-node connection manager; the
//! Cluster client refreshes its slot map and reconnects to a node that comes back). Every call
//! is bounded by the configured timeout, and any failure is reported: the gateway then fails
//! closed unless `replay.fail_open` says otherwise.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisFuture, Value};
use tokio::sync::Mutex;

use super::ReplayError;

/// Where the link goes and how.
#[derive(Clone)]
pub struct RedisTarget {
    /// A single node (`redis://` or `rediss://`); ignored when `cluster_nodes` is non-empty.
    pub url: String,
    /// Cluster seed nodes; non-empty selects the Cluster client.
    pub cluster_nodes: Vec<String>,
    /// PEM CA certificates to trust instead of the system roots (TLS only).
    pub ca_pem: Option<Vec<u8>>,
    /// Deadline of one call (connect or command).
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &crate::config::redact_url(&self.url))
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|n| crate::config::redact_url(n))
                    .collect::<Vec<_>>(),
            )
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reads the PEM CA file of `replay.redis_ca_file` with the one CA reader,
/// [`crate::tls::read_ca_file`] (public-file rules, every certificate valid now and usable as a
/// trust anchor). The error names the setting.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, ReplayError> {
    crate::tls::read_ca_file(path, crate::tls::unix_now())
        .map(|ca| ca.pem)
        .map_err(|e| ReplayError::CaFile(Box::new(e)))
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per process, built once and never moved around"
)]
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A live connection of either kind; both reconnect by themselves and are cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One Redis connection (single node or Cluster) shared by the nonce store and the global limit.
pub struct RedisLink {
    client: Client,
    conn: Mutex<Option<Conn>>,
    timeout: Duration,
    tls: bool,
    description: String,
}

impl RedisLink {
    /// A link to `target`; nothing is connected until the first call (or [`Self::probe`]).
    pub fn new(target: &RedisTarget) -> Result<Self, ReplayError> {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: target.ca_pem.clone(),
        };
        let (client, tls, description) = if target.cluster_nodes.is_empty() {
            let info = redis::IntoConnectionInfo::into_connection_info(target.url.as_str())
                .map_err(|cause| ReplayError::Setting {
                    setting: "replay.redis_url",
                    cause: Box::new(cause),
                })?;
            let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
            if tls {
                crate::tls::ensure_default_provider();
            }
            let client = if tls && target.ca_pem.is_some() {
                redis::Client::build_with_tls(info, certs)
            } else {
                redis::Client::open(info)
            }
            .map_err(|cause| ReplayError::Setting {
                setting: "replay.redis_url",
                cause: Box::new(cause),
            })?;
            (
                Client::Single(client),
                tls,
                crate::config::redact_url(&target.url),
            )
        } else {
            let tls = target
                .cluster_nodes
                .iter()
                .any(|n| n.trim().to_ascii_lowercase().starts_with("rediss://"));
            if tls {
                crate::tls::ensure_default_provider();
            }
            let mut b = redis::cluster::ClusterClientBuilder::new(
                target.cluster_nodes.iter().map(|n| n.trim()),
            )
            .connection_timeout(target.timeout)
            .response_timeout(target.timeout)
            // A command is retried on another attempt after a MOVED/ASK or a lost node; the
            // caller's deadline bounds the whole call anyway.
            .retries(2);
            if tls && target.ca_pem.is_some() {
                b = b.certs(certs);
            }
            let client = b.build().map_err(|cause| ReplayError::Setting {
                setting: "replay.redis_cluster_nodes",
                cause: Box::new(cause),
            })?;
            let description = format!(
                "cluster {}",
                target
                    .cluster_nodes
                    .iter()
                    .map(|n| crate::config::redact_url(n))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            (Client::Cluster(client), tls, description)
        };
        Ok(Self {
            client,
            conn: Mutex::new(None),
            timeout: target.timeout,
            tls,
            description,
        })
    }

    /// True when the link speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Where the link goes (passwords redacted), for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    async fn connection(&self) -> Result<Conn, ReplayError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connect = async {
            match &self.client {
                Client::Single(c) => c.get_connection_manager().await.map(Conn::Single),
                Client::Cluster(c) => c.get_async_connection().await.map(Conn::Cluster),
            }
        };
        let c = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| ReplayError::TimedOut { what: "connect" })?
            .map_err(connect_error)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `cmd` within the deadline; `what` names it in errors.
    pub async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        what: &'static str,
    ) -> Result<T, ReplayError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| ReplayError::TimedOut { what })?
            .map_err(|cause| ReplayError::Redis {
                what,
                cause: Box::new(cause),
            })
    }

    /// Runs `script` with one key and its arguments within the deadline (`EVALSHA`, falling
    /// back to `EVAL` on a node that does not have the script yet).
    pub async fn run_script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[i64],
        what: &'static str,
    ) -> Result<T, ReplayError> {
        let mut conn = self.connection().await?;
        let mut inv = script.key(key);
        for a in args {
            inv.arg(*a);
        }
        tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| ReplayError::TimedOut { what })?
            .map_err(|cause| ReplayError::Redis {
                what,
                cause: Box::new(cause),
            })
    }

    /// Connects and sends `PING` once, at start-up. A refused TLS certificate is
    /// [`ReplayError::Untrusted`] (the caller refuses to start); anything else is returned as
    /// any other error (the caller may start and keep retrying).
    pub async fn probe(&self) -> Result<(), ReplayError> {
        // A one-shot connection, not the reconnecting one: its first error is the answer (the
        // connection manager would retry a refused certificate until the deadline).
        let ping = async {
            match &self.client {
                Client::Single(c) => {
                    let mut conn = c.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                }
                Client::Cluster(c) => {
                    let mut conn = c.get_async_connection().await?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                }
            }
        };
        let pong = tokio::time::timeout(self.timeout, ping)
            .await
            .map_err(|_| ReplayError::TimedOut { what: "PING" })?
            .map_err(connect_error)?;
        if pong != "PONG" {
            return Err(ReplayError::NotPong(pong));
        }
        Ok(())
    }
}

/// A failed connect; a refused server certificate is told apart so start-up can stop on it.
fn connect_error(e: redis::RedisError) -> ReplayError {
    if is_certificate_error(&e) {
        ReplayError::Untrusted(Box::new(e))
    } else {
        ReplayError::Redis {
            what: "connect",
            cause: Box::new(e),
        }
    }
}

/// Whether `e` (or an error under it) is rustls refusing the server's certificate.
fn is_certificate_error(e: &redis::RedisError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        cur = err.source();
    }
    // Some layers flatten the cause into text.
    let text = e.to_string();
    text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
}

/// Redis-backed nonce store.
pub struct RedisReplayStore {
    link: Arc<RedisLink>,
    prefix: String,
}

impl RedisReplayStore {
    /// A store on `link`, keys `prefix + nonce`.
    pub fn new(link: Arc<RedisLink>, prefix: &str) -> Self {
        Self {
            link,
            prefix: prefix.to_string(),
        }
    }

    /// The connection this store uses (shared with the global limit).
    pub fn link(&self) -> &Arc<RedisLink> {
        &self.link
    }

    /// See [`super::ReplayGuard::check_and_record`].
    pub async fn check_and_record(
        &self,
        nonce: &str,
        window_secs: i64,
    ) -> Result<bool, ReplayError> {
        let key = format!("{}{}", self.prefix, nonce);
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(window_secs.max(1))
            .to_owned();
        let reply: Option<String> = self.link.query(&cmd, "SET").await?;
        Ok(reply.is_some())
    }

    /// `PING`, within the call timeout (readiness and `gateway_dependency_up`).
    pub async fn ping(&self) -> Result<(), ReplayError> {
        let _: String = self.link.query(&redis::cmd("PING"), "PING").await?;
        Ok(())
    }
}
