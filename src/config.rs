//! Settings: defaults, then one TOML file, then environment overrides (layered with figment),
//! validated at start-up.
//!
//! Every key is declared once below with its type and default. An environment variable
//! `GATEWAY__SECTION__KEY` overrides `[section] key` (double underscores, case-insensitive), e.g.
//! `GATEWAY__DATABASE__URL=mysql://…`; its value takes the type of the field it sets (see
//! [`env`](mod@env): text stays text even when it is all digits, lists are written `[A,B]`).
//! Unknown keys are refused, from the file and from the environment alike. Validation fails fast
//! with a message naming the key. Secrets (`accounts.id_pepper`, passwords inside `database.url`,
//! `replay.redis_url` and `replay.redis_cluster_nodes`) print as `***`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::EngineKind;

pub mod env;
mod start_mode;

pub use start_mode::{Invocation, StartMode, CONFIG_VAR};

/// Why configuration was refused. The message names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `limits.scope = "global"` without a Redis replay store: the one statement of the rule,
    /// used by `Settings::validate` and by the start-up for settings built in code.
    pub fn global_limit_without_redis() -> Self {
        ConfigError(
            "limits.scope = \"global\" requires replay.store = \"redis\" (the count is kept in \
             the replay store's Redis)"
                .into(),
        )
    }
}

/// All settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP listeners and process behaviour.
    pub server: ServerSettings,
    /// The WeChat pension channel.
    pub wechat: WechatSettings,
    /// Key ring location and SM2 engine.
    pub keys: KeySettings,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Account lookup.
    pub accounts: AccountSettings,
    /// Logging.
    pub log: LogSettings,
    /// Nonce replay store.
    pub replay: ReplaySettings,
    /// Rate and concurrency limits (`RULE_LIMIT`).
    pub limits: LimitSettings,
    /// The other partner channels (docs/partner-channels.md).
    pub partners: PartnerSettings,
    /// TLS on the public listener and for outbound HTTPS calls (docs/tls.md).
    pub tls: TlsSettings,
    /// The tamper-evident audit log: hash chain, signed checkpoints, witness file (docs/audit.md).
    pub audit: AuditSettings,
}

/// Lowest TLS version the public listener accepts (`tls.min_version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3 (the default).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[tls]`: off by default. With `cert_file` and `key_file` set the public listener speaks only
/// TLS; `ca_file` alone only adds a CA for outbound `https://` calls.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain of the public listener, leaf first (not group- or world-writable).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, SEC1 or PKCS#1; mode 0600 or 0400).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, only clients presenting a certificate issued by one of
    /// them may connect (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Mutual TLS: certificate revocation lists (PEM or DER) of the client CA and of every
    /// intermediate; a revoked client certificate is refused, and so is one whose status no
    /// list gives. Re-read with the certificate on every reload.
    pub client_crl_files: Vec<PathBuf>,
    /// Mutual TLS: a file of pins (`spki-sha256 <hex>`, `subject <RFC 4514 name>`,
    /// `san-dns <name>`, `san-uri …`, `san-email …`, `san-ip …`, one a line); when set, a client
    /// certificate the CA accepts must also match one of them. Re-read with the certificate on
    /// every reload.
    pub client_pins_file: Option<PathBuf>,
    /// Lowest accepted version, `"1.2"` or `"1.3"`.
    pub min_version: TlsMinVersion,
    /// PEM CA certificates trusted for OUTBOUND `https://` calls, beside the platform's roots.
    pub ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether the public listener speaks TLS.
    pub fn inbound(&self) -> bool {
        self.cert_file.is_some()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("client_ca_file", &self.client_ca_file),
            ("client_pins_file", &self.client_pins_file),
            ("ca_file", &self.ca_file),
        ] {
            if p.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError(format!(
                    "tls.{name} must be a file path (leave it unset instead)"
                )));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(ConfigError(
                "tls.cert_file is set but tls.key_file is not; set both to serve TLS".into(),
            )),
            (None, Some(_)) => Err(ConfigError(
                "tls.key_file is set but tls.cert_file is not; set both to serve TLS".into(),
            )),
            (None, None) if self.client_ca_file.is_some() => Err(ConfigError(
                "tls.client_ca_file (mutual TLS) needs tls.cert_file and tls.key_file".into(),
            )),
            _ if self.client_ca_file.is_none()
                && (self.client_pins_file.is_some() || !self.client_crl_files.is_empty()) =>
            {
                Err(ConfigError(
                    "tls.client_pins_file and tls.client_crl_files apply to mutual TLS; set \
                     tls.client_ca_file too"
                        .into(),
                ))
            }
            _ if self
                .client_crl_files
                .iter()
                .any(|p| p.as_os_str().is_empty()) =>
            {
                Err(ConfigError(
                    "tls.client_crl_files must list file paths".into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `[partners]`: the open-platform, callback and HMAC channels. Each is off unless enabled
/// (the demo enables all three); an enabled channel still answers only partners that have a
/// credential in the key ring.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartnerSettings {
    /// Serve `GET /api/oauth2/access_token`, `GET /api/oauth2/api_ticket`, `POST /api/s/{service}/{code}`.
    pub open_platform: bool,
    /// Business routes `"{service}/{code}"` that answer the account query.
    pub open_platform_account_services: Vec<String>,
    /// Access token life, seconds.
    pub access_token_secs: i64,
    /// Sign ticket life, seconds.
    pub sign_ticket_secs: i64,
    /// User ticket life, seconds.
    pub user_ticket_secs: i64,
    /// How long the previous sign ticket stays valid after a new one, seconds (spec: 300).
    pub grace_secs: i64,
    /// How long the previous access token, and every ticket it issued, stays valid after a new
    /// token is issued, seconds. 0 (the spec): at once. More only for a partner whose several
    /// servers each fetch a token; it keeps a superseded chain usable for that long.
    pub access_token_grace_secs: i64,
    /// Serve salted callbacks at `POST /callback/{partner}`.
    pub callback: bool,
    /// The `transName` that answers the account query.
    pub callback_account_trans_name: String,
    /// Serve the sorted-parameter HMAC account query at `hmac_route`.
    pub hmac: bool,
    /// Path of the HMAC account query.
    pub hmac_route: String,
}

impl Default for PartnerSettings {
    fn default() -> Self {
        Self {
            open_platform: false,
            open_platform_account_services: vec!["pension/10001".into()],
            access_token_secs: 3600,
            sign_ticket_secs: 3600,
            user_ticket_secs: 300,
            grace_secs: 300,
            access_token_grace_secs: 0,
            callback: false,
            callback_account_trans_name: "PensionAccountQuery".into(),
            hmac: false,
            hmac_route: "/hmac/v1/pension/account".into(),
        }
    }
}

impl PartnerSettings {
    /// Grant lifetimes as the open-platform rules take them.
    pub fn grant_rules(&self) -> crate::partners::open_platform::GrantRules {
        crate::partners::open_platform::GrantRules {
            access_token_secs: self.access_token_secs,
            sign_ticket_secs: self.sign_ticket_secs,
            user_ticket_secs: self.user_ticket_secs,
            grace_secs: self.grace_secs,
            access_token_grace_secs: self.access_token_grace_secs,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("access_token_secs", self.access_token_secs),
            ("sign_ticket_secs", self.sign_ticket_secs),
            ("user_ticket_secs", self.user_ticket_secs),
        ] {
            if !(1..=86_400).contains(&v) {
                return Err(ConfigError(format!(
                    "partners.{name} must be 1–86400 seconds, got {v}"
                )));
            }
        }
        for (name, v) in [
            ("grace_secs", self.grace_secs),
            ("access_token_grace_secs", self.access_token_grace_secs),
        ] {
            if !(0..=3600).contains(&v) {
                return Err(ConfigError(format!(
                    "partners.{name} must be 0–3600 seconds, got {v}"
                )));
            }
        }
        for s in &self.open_platform_account_services {
            let ok = s.split_once('/').is_some_and(|(a, b)| {
                [a, b].iter().all(|p| {
                    !p.is_empty()
                        && p.len() <= 64
                        && p.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
                })
            });
            if !ok {
                return Err(ConfigError(format!(
                    "partners.open_platform_account_services entry `{s}` must be `service/code` \
                     (letters, digits, `_`, `-`)"
                )));
            }
        }
        if !self.hmac_route.starts_with('/') || self.hmac_route.contains(['{', '}', '?', '#']) {
            return Err(ConfigError(format!(
                "partners.hmac_route `{}` must be a literal absolute path",
                self.hmac_route
            )));
        }
        Ok(())
    }
}

/// Where nonces are remembered (`replay.store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStoreKind {
    /// In this process: one instance only.
    Memory,
    /// In Redis, shared by several instances.
    Redis,
}

impl ReplayStoreKind {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            ReplayStoreKind::Memory => "memory",
            ReplayStoreKind::Redis => "redis",
        }
    }
}

impl fmt::Display for ReplayStoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for collectors).
    Json,
    /// Compact human-readable lines.
    Text,
}

impl LogFormat {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[replay]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySettings {
    /// `memory` (one instance) or `redis` (several instances).
    pub store: ReplayStoreKind,
    /// Redis URL when `store = "redis"`: `redis://host:port/db`, or `rediss://…` for TLS
    /// (certificate always verified, against the system roots or `redis_ca_file`).
    pub redis_url: String,
    /// PEM file of the CA that signed the Redis servers' certificates (a private CA); read with
    /// the key ring's public-file rules. Unset: the system roots.
    pub redis_ca_file: Option<PathBuf>,
    /// Seed nodes of a Redis Cluster (`redis://host:port` or `rediss://…`, all one scheme). When
    /// non-empty the Cluster client is used and `redis_url` is ignored.
    pub redis_cluster_nodes: Vec<String>,
    /// Key prefix in Redis.
    pub key_prefix: String,
    /// Deadline of one Redis call, milliseconds.
    pub timeout_ms: u64,
    /// Accept requests when Redis is unreachable. Default false: fail closed with a signed 503.
    pub fail_open: bool,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            store: ReplayStoreKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_ca_file: None,
            redis_cluster_nodes: Vec::new(),
            key_prefix: "pension-gateway:nonce:".into(),
            timeout_ms: 500,
            fail_open: false,
        }
    }
}

/// Where the per-identity limit is counted (`limits.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitScope {
    /// In each instance: N instances let a caller through N times the limit.
    #[default]
    Instance,
    /// In Redis, shared by every instance (the replay section's connection and fail-open policy).
    Global,
}

impl LimitScope {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            LimitScope::Instance => "instance",
            LimitScope::Global => "global",
        }
    }
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Queries per ID number per minute (0: no limit), counted per instance or globally.
    pub per_identity_per_minute: u32,
    /// `instance` (default) or `global` (one count in Redis for the whole fleet; needs
    /// `replay.store = "redis"`).
    pub scope: LimitScope,
    /// Requests in flight at once on the public listener, every route, counted from the moment
    /// a request's body has arrived (0: no limit).
    pub max_concurrent: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_identity_per_minute: 30,
            scope: LimitScope::Instance,
            max_concurrent: 512,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Public listener for the WeChat channel.
    pub listen: SocketAddr,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Demo mode: demo keys allowed, demo accounts seeded. Never in production.
    pub demo: bool,
    /// Seconds to let in-flight requests finish on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Seconds between SIGTERM and closing the listeners, during which `/readyz` answers 503
    /// `draining` while every request is still served, so a load balancer takes the instance
    /// out before it stops accepting (0: stop at once). At most 300.
    pub drain_secs: u64,
    /// Admin listener (`POST /admin/keyring/reload`); must be a loopback address; "" disables it.
    /// It also needs `admin_token_file`: without one it stays off.
    pub admin_listen: String,
    /// File holding the bearer token the admin listener requires (mode 0600): at least 32 random
    /// bytes as text, made by `keys gen-token` (a shorter or repetitive token is refused); read
    /// again on every reload. Unset: the admin listener is off.
    pub admin_token_file: Option<PathBuf>,
    /// Ops listener serving `/metrics` and `/readyz`, off the WeChat port; may bind an internal
    /// interface; "" disables it.
    pub ops_listen: String,
    /// Deadline for a request's head to arrive, milliseconds (100–120000).
    pub header_timeout_ms: u64,
    /// Deadline for a request's whole body to arrive, milliseconds (100–120000).
    pub body_timeout_ms: u64,
}

/// `[wechat]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatSettings {
    /// Path of the account-query API registered with WeChat.
    pub route: String,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Allowed |now − timestamp|, seconds (inclusive).
    pub clock_skew_secs: i64,
    /// How long a nonce is remembered, seconds (at least 2 × clock_skew_secs +
    /// [`crate::replay::REPLAY_MARGIN_SECS`]).
    pub replay_window_secs: i64,
    /// Scheme tokens accepted at the front of `Authorization`.
    pub accepted_schemes: Vec<String>,
    /// Answer `TIMESTAMP_EXPIRED` / `NONCE_REPLAYED` as their own codes (true) or as
    /// `SIGN_ERROR` with a distinct message (false, the default: WeChat documents only SIGN_ERROR).
    pub extended_auth_codes: bool,
    /// SM2 signer ID used on both sides.
    pub signer_id: String,
}

/// `[keys]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// Directory holding `keyring.toml` and the key files: a directory (not a link) owned by the
    /// gateway's user or root and not group- or world-writable, every file in it with one hard
    /// link; keys and secrets published in this repository are refused outside demo mode.
    pub dir: PathBuf,
    /// SM2 engine for signing and verifying.
    pub engine: EngineKind,
    /// How often to check `keyring.toml` for changes, seconds (0: only SIGHUP and the admin call).
    pub watch_interval_secs: u64,
    /// Allow signing with a variable-time engine (`libsm`), whose timing can reveal the bank's
    /// private key. Default false: the server refuses to start with such an engine.
    pub allow_variable_time_signing: bool,
}

/// `[database]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `mysql://user:pass@host:port/db`, `sqlite://path.db` or `sqlite::memory:`.
    pub url: String,
    /// Pool size.
    pub max_connections: usize,
    /// Deadline for getting a connection, milliseconds.
    pub acquire_timeout_ms: u64,
    /// Create a missing SQLite file (demo mode sets this).
    pub create_if_missing: bool,
    /// Group commit of audit rows (one writer, one multi-row INSERT per batch) and inline SQLite
    /// lookups. Default true; false sends every statement through the pool, one audit row per
    /// statement — the baseline for measurements.
    pub group_commit: bool,
    /// PEM CA that the MySQL server's TLS certificate must chain to (turns TLS on; see
    /// `docs/mysql.md` for the URL parameters). Read once with the key ring's public-file rules.
    pub ca_file: Option<PathBuf>,
    /// MySQL: a pooled connection idle for at least this many milliseconds is checked with
    /// `SELECT 1` before it is handed out (default 1000; 0 checks at every checkout). A
    /// connection whose statement failed is dropped either way.
    pub idle_check_ms: u64,
    /// Apply pending migrations when `serve` starts (default true). False: `serve` issues no
    /// DDL at all — it checks with one `SELECT` that the schema is current and refuses to start
    /// otherwise, naming `db migrate` — so the runtime account needs no `CREATE`/`ALTER`;
    /// migrations are then run by `pension-gateway db migrate` with the migration account.
    pub migrate_on_start: bool,
}

/// `[audit]`: every audit row the group-commit writer commits joins this instance's SM3 hash
/// chain and Merkle tree; signed checkpoints go to `audit_checkpoints` and to the witness file
/// (docs/audit.md). Needs `database.group_commit` (rows written without the writer stay
/// unchained, and `audit verify` reports them).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Chain the audit rows (default true). False writes rows without chain columns — the
    /// baseline for the cost measurement only; `audit verify` then reports unchained rows.
    pub chain: bool,
    /// This instance's chain name: 1–64 characters from `A-Z a-z 0-9 . _ : -`, unique among the
    /// gateways writing one database at the same time, and kept across restarts (a restarted
    /// instance continues its chain from its last row). Empty (default): the host name cut to
    /// the allowed characters, a colon and the public listener's port (`gw-3:8443`), so that
    /// several instances on one host have a chain each. Two processes with one name would
    /// write one chain: their batches would refuse each other's sequence numbers.
    pub instance_id: String,
    /// Sign a checkpoint once this many rows are uncovered (default 1000).
    pub checkpoint_rows: u64,
    /// …or once the oldest uncovered row is this many seconds old (default 60): checked at every
    /// batch and, while no batch comes, by a timer.
    pub checkpoint_secs: u64,
    /// The witness file: every checkpoint is appended to it as one line (`O_APPEND`, `fsync`
    /// after each). Keep it outside the database's reach and ship it off the host
    /// (docs/audit.md). `serve` creates a missing directory and refuses to start when the file
    /// cannot be opened for appending.
    pub witness_file: PathBuf,
    /// Also send every witness line to the host's syslog socket (`"/dev/log"`: journald or
    /// rsyslog; facility `authpriv`, severity `notice`, tag `pension-gateway`), a second copy
    /// out of the database's and the witness file's reach. Empty (default): no copy. `serve`
    /// refuses to start when the socket does not answer; after that a lost copy is counted
    /// (`gateway_audit_witness_syslog_failures_total`) and logged, and the file stays the
    /// witness of record (docs/audit.md).
    pub witness_syslog: PathBuf,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            chain: true,
            instance_id: String::new(),
            checkpoint_rows: 1000,
            checkpoint_secs: 60,
            witness_file: PathBuf::from("data/audit-witness.log"),
            witness_syslog: PathBuf::new(),
        }
    }
}

impl AuditSettings {
    /// `instance_id`, or when it is empty the host name cut to the allowed characters, a colon
    /// and `listen_port` (the public listener's; for port 0, the process id and a count of the
    /// servers this process started, so none share a chain).
    pub fn resolved_instance_id(&self, listen_port: u16) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let suffix = if listen_port == 0 {
            // An ephemeral port (tests): the port is not known yet, so this process and its
            // n-th server name the chain.
            static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!(":p{}-{n}", std::process::id())
        } else {
            format!(":{listen_port}")
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_default();
        let id: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
            .take(crate::audit::chain::MAX_INSTANCE_ID_LEN - suffix.len())
            .collect();
        let host = if id.is_empty() { "gateway" } else { &id };
        format!("{host}{suffix}")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.instance_id.is_empty()
            && !crate::audit::chain::valid_instance_id(&self.instance_id)
        {
            return Err(ConfigError(
                "audit.instance_id must be 1–64 characters from A-Z a-z 0-9 . _ : -".into(),
            ));
        }
        if self.checkpoint_rows == 0 || self.checkpoint_secs == 0 {
            return Err(ConfigError(
                "audit.checkpoint_rows and audit.checkpoint_secs must be at least 1".into(),
            ));
        }
        if !self.witness_syslog.as_os_str().is_empty() && !self.witness_syslog.is_absolute() {
            return Err(ConfigError(
                "audit.witness_syslog must be an absolute path (the syslog socket, \"/dev/log\")"
                    .into(),
            ));
        }
        if self.chain && self.witness_file.as_os_str().is_empty() {
            return Err(ConfigError(
                "audit.witness_file must name a file while audit.chain is on".into(),
            ));
        }
        Ok(())
    }
}

/// `[accounts]`
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountSettings {
    /// Secret pepper for HMAC-SM3 digests of ID numbers (hex, at least 32 bytes). Required: the
    /// empty default is refused outside the demo, whose pepper is public.
    pub id_pepper: String,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `json` (default) or `text`.
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `pension_gateway=debug`.
    pub level: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            demo: false,
            shutdown_timeout_secs: 30,
            drain_secs: 5,
            admin_listen: "127.0.0.1:9090".into(),
            admin_token_file: None,
            ops_listen: "127.0.0.1:9100".into(),
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
        }
    }
}

impl Default for WechatSettings {
    fn default() -> Self {
        Self {
            route: "/v1/pension/account".into(),
            max_body_bytes: 64 * 1024,
            clock_skew_secs: 300,
            replay_window_secs: crate::replay::nonce_memory_secs(300),
            accepted_schemes: vec![crate::crypto::authorization::DEFAULT_SCHEME.into()],
            extended_auth_codes: false,
            signer_id: "1234567812345678".into(),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("keys/demo"),
            engine: EngineKind::DEFAULT,
            watch_interval_secs: 5,
            allow_variable_time_signing: false,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/gateway.db".into(),
            max_connections: 16,
            acquire_timeout_ms: 2000,
            create_if_missing: false,
            group_commit: true,
            ca_file: None,
            idle_check_ms: 1000,
            migrate_on_start: true,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// The pepper of the demo: public, so demo digests are reproducible. Refused outside demo mode.
pub const DEMO_PEPPER_HEX: &str =
    "64656d6f2d7065707065722d6e6f742d666f722d70726f64756374696f6e2121";

impl Settings {
    /// The settings `cargo run --release` uses with no arguments: demo keys, embedded SQLite.
    pub fn demo() -> Self {
        let mut s = Self::default();
        s.server.demo = true;
        // Nobody balances the demo: Ctrl-C stops it at once.
        s.server.drain_secs = 0;
        s.database.create_if_missing = true;
        s.accounts.id_pepper = DEMO_PEPPER_HEX.into();
        s.log.format = LogFormat::Text;
        // The demo is what the performance team loads with `bench http`, a handful of demo
        // people many times over: no per-identity limit there.
        s.limits.per_identity_per_minute = 0;
        // The demo key ring carries a demo credential for each partner channel.
        s.partners.open_platform = true;
        s.partners.callback = true;
        s.partners.hmac = true;
        s
    }

    /// The layers of [`Settings::load`] without the cross-field validation: unknown keys and
    /// wrong types are still refused.
    fn load_unvalidated(
        path: Option<&std::path::Path>,
        base: Settings,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides = env::EnvOverrides::new(&base, env)?;
        let mut figment = Figment::from(Serialized::defaults(&base));
        if let Some(p) = path {
            // figment treats a missing file as empty; a file that was named must exist.
            std::fs::File::open(p).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", p.display()))
            })?;
            figment = figment.merge(Toml::file_exact(p));
        }
        figment.merge(overrides).extract().map_err(figment_error)
    }

    /// Loads `path` (if given) over `base`, then applies `GATEWAY__*` variables from `env`,
    /// then validates. Each layer overrides the one before, key by key.
    pub fn load(
        path: Option<&std::path::Path>,
        base: Settings,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let settings = Self::load_unvalidated(path, base, env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The settings of a run in `mode`: demo defaults under the configuration for
    /// [`StartMode::Demo`], production defaults only for [`StartMode::Production`] — where a
    /// configuration that turns `server.demo` on is refused (the command line chooses the demo).
    pub fn load_for(
        mode: StartMode,
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        match mode {
            StartMode::Demo => {
                let mut s = Self::load(path, Self::demo(), env)?;
                s.server.demo = true;
                Ok(s)
            }
            StartMode::Production => {
                let s = Self::load(path, Self::default(), env)?;
                if s.server.demo {
                    return Err(ConfigError(
                        "server.demo cannot be turned on by a configuration; run \
                         `pension-gateway serve --demo` for the demo"
                            .into(),
                    ));
                }
                Ok(s)
            }
        }
    }

    /// The settings a `keys …` command needs, in `mode`: the whole file is read (unknown keys
    /// and wrong types are still refused) but only what key administration touches is checked —
    /// `keys.*`, `wechat.signer_id` and the admin endpoint. Business secrets such as
    /// `accounts.id_pepper` and the database are neither needed nor checked, so the key
    /// administrator does not have to be able to read them.
    pub fn load_keys_for(
        mode: StartMode,
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let base = match mode {
            StartMode::Demo => Self::demo(),
            StartMode::Production => Self::default(),
        };
        let mut s = Self::load_unvalidated(path, base, env)?;
        if mode == StartMode::Demo {
            s.server.demo = true;
        }
        s.validate_key_admin()?;
        Ok(s)
    }

    /// The checks of [`Settings::validate`] on what key administration uses.
    fn validate_key_admin(&self) -> Result<(), ConfigError> {
        if self.wechat.signer_id.is_empty() || self.wechat.signer_id.len() > 1024 {
            return Err(ConfigError("wechat.signer_id must be 1–1024 bytes".into()));
        }
        if self.keys.dir.as_os_str().is_empty() {
            return Err(ConfigError("keys.dir must be a directory path".into()));
        }
        if let Some(addr) = self.admin_listen()? {
            if !addr.ip().is_loopback() {
                return Err(ConfigError(
                    "server.admin_listen must be a loopback address (127.0.0.1 or ::1)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks cross-field rules; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.partners.validate()?;
        self.audit.validate()?;
        self.tls.validate()?;
        let w = &self.wechat;
        if !w.route.starts_with('/') || w.route.contains(['?', '#', ' ']) {
            return Err(ConfigError(
                "wechat.route must be a path starting with `/`".into(),
            ));
        }
        if w.max_body_bytes == 0 || w.max_body_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError(
                "wechat.max_body_bytes must be between 1 and 16 MiB".into(),
            ));
        }
        if !(1..=3600).contains(&w.clock_skew_secs) {
            return Err(ConfigError(
                "wechat.clock_skew_secs must be between 1 and 3600".into(),
            ));
        }
        let least = crate::replay::nonce_memory_secs(w.clock_skew_secs);
        if w.replay_window_secs < least {
            return Err(ConfigError(format!(
                "wechat.replay_window_secs ({}) must be at least 2 × wechat.clock_skew_secs + {} \
                 = {least}, so a nonce outlives the accepted window on both sides",
                w.replay_window_secs,
                crate::replay::REPLAY_MARGIN_SECS
            )));
        }
        self.validate_key_admin()?;
        self.ops_listen()?;
        self.validate_distinct_listeners()?;
        if self.server.drain_secs > 300 {
            return Err(ConfigError(format!(
                "server.drain_secs must be 0–300 seconds, got {}",
                self.server.drain_secs
            )));
        }
        for (name, v) in [
            ("server.header_timeout_ms", self.server.header_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
        ] {
            if !(100..=120_000).contains(&v) {
                return Err(ConfigError(format!(
                    "{name} must be 100–120000 milliseconds, got {v}"
                )));
            }
        }
        if let Some(p) = &self.server.admin_token_file {
            if p.as_os_str().is_empty() {
                return Err(ConfigError(
                    "server.admin_token_file must be a file path (leave it unset to disable)"
                        .into(),
                ));
            }
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be at least 1".into(),
            ));
        }
        if self.database.acquire_timeout_ms == 0 {
            return Err(ConfigError(
                "database.acquire_timeout_ms must be at least 1".into(),
            ));
        }
        let pepper = self.id_pepper()?;
        if !self.server.demo
            && pepper.as_slice() == hex::decode(DEMO_PEPPER_HEX).unwrap_or_default().as_slice()
        {
            return Err(ConfigError(
                "accounts.id_pepper is the public demo pepper; set a secret one outside demo mode"
                    .into(),
            ));
        }
        if self.replay.timeout_ms == 0 {
            return Err(ConfigError("replay.timeout_ms must be at least 1".into()));
        }
        self.validate_redis()?;
        Ok(())
    }

    /// The Redis rules: URL schemes, the CA file only with TLS, the global limit only with a
    /// Redis replay store.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        let r = &self.replay;
        if self.limits.scope == LimitScope::Global && r.store != ReplayStoreKind::Redis {
            return Err(ConfigError::global_limit_without_redis());
        }
        if r.store != ReplayStoreKind::Redis {
            return Ok(());
        }
        let tls = if r.redis_cluster_nodes.is_empty() {
            redis_scheme_is_tls("replay.redis_url", &r.redis_url)?
        } else {
            let mut schemes = r
                .redis_cluster_nodes
                .iter()
                .map(|n| redis_scheme_is_tls("replay.redis_cluster_nodes", n))
                .collect::<Result<Vec<_>, _>>()?;
            schemes.dedup();
            if schemes.len() > 1 {
                return Err(ConfigError(
                    "replay.redis_cluster_nodes must all be redis:// or all rediss://".into(),
                ));
            }
            schemes.first().copied().unwrap_or(false)
        };
        if let Some(ca) = &r.redis_ca_file {
            if ca.as_os_str().is_empty() {
                return Err(ConfigError(
                    "replay.redis_ca_file must be a file path (leave it unset for the system roots)"
                        .into(),
                ));
            }
            if !tls {
                return Err(ConfigError(
                    "replay.redis_ca_file is set but Redis is reached without TLS; use a \
                     rediss:// URL"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// The listeners this configuration binds, each with the setting that names it: the public
    /// one always, the ops one unless disabled, the admin one when it has its token file.
    pub fn listeners(&self) -> Result<Vec<(&'static str, SocketAddr)>, ConfigError> {
        let mut out = vec![("server.listen", self.server.listen)];
        if let Some(a) = self.ops_listen()? {
            out.push(("server.ops_listen", a));
        }
        if self.server.admin_token_file.is_some() {
            if let Some(a) = self.admin_listen()? {
                out.push(("server.admin_listen", a));
            }
        }
        Ok(out)
    }

    /// Two listeners on one address would fail at bind time with a bare "address in use" (or,
    /// with `SO_REUSEPORT`, share the port silently): refused here, naming both settings. An
    /// unspecified address (`0.0.0.0`, `::`) overlaps the addresses it covers on its port;
    /// port 0 asks the system for a free port and never clashes.
    fn validate_distinct_listeners(&self) -> Result<(), ConfigError> {
        let all = self.listeners()?;
        for (i, (a_name, a)) in all.iter().enumerate() {
            for (b_name, b) in &all[i + 1..] {
                // `0.0.0.0` covers IPv4; `::` covers IPv6 and, dual-stack, IPv4 too.
                let covers = |x: &SocketAddr, y: &SocketAddr| {
                    x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4())
                };
                let overlap = a.port() == b.port()
                    && a.port() != 0
                    && (a.ip() == b.ip() || covers(a, b) || covers(b, a));
                if overlap {
                    return Err(ConfigError(format!(
                        "{a_name} ({a}) and {b_name} ({b}) would listen on the same address; \
                         give each listener its own port"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The admin listener address, or `None` when disabled.
    pub fn admin_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let a = self.server.admin_listen.trim();
        if a.is_empty() {
            return Ok(None);
        }
        a.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "server.admin_listen `{a}` is not an address like 127.0.0.1:9090"
            ))
        })
    }

    /// The ops listener address (`/metrics`, `/readyz`), or `None` when disabled.
    pub fn ops_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let a = self.server.ops_listen.trim();
        if a.is_empty() {
            return Ok(None);
        }
        a.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "server.ops_listen `{a}` is not an address like 127.0.0.1:9100"
            ))
        })
    }

    /// The admin listener and the file of its bearer token, or `None` when the listener is
    /// off: `server.admin_listen` is empty, or no `server.admin_token_file` is set (then a
    /// warning says so — the reload endpoint is never served without a token).
    pub fn admin_endpoint(&self) -> Result<Option<(SocketAddr, PathBuf)>, ConfigError> {
        let Some(addr) = self.admin_listen()? else {
            return Ok(None);
        };
        match &self.server.admin_token_file {
            Some(file) => Ok(Some((addr, file.clone()))),
            None => {
                tracing::warn!(
                    admin_listen = %addr,
                    "admin listener disabled: server.admin_token_file is not set \
                     (the reload endpoint requires a bearer token)"
                );
                Ok(None)
            }
        }
    }

    /// The decoded ID pepper.
    pub fn id_pepper(&self) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
        let bytes = Zeroizing::new(
            hex::decode(self.accounts.id_pepper.trim())
                .map_err(|_| ConfigError("accounts.id_pepper must be hex".into()))?,
        );
        if bytes.len() < 32 {
            return Err(ConfigError(
                "accounts.id_pepper must be at least 32 bytes (64 hex digits)".into(),
            ));
        }
        Ok(bytes)
    }
}

/// figment's error(s) as one message naming each key and where its value came from.
fn figment_error(e: figment::Error) -> ConfigError {
    let parts: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None if m.name == env::METADATA_NAME && !e.path.is_empty() => format!(
                        " (from environment variable {}{})",
                        env::PREFIX,
                        e.path.join("__").to_ascii_uppercase()
                    ),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{from}", e.kind)
            } else {
                format!("{key}: {}{from}", e.kind)
            }
        })
        .collect();
    ConfigError(parts.join("; "))
}

/// Whether a Redis URL asks for TLS (`rediss://`); any scheme but `redis://`/`rediss://` is
/// refused, naming `key`.
fn redis_scheme_is_tls(key: &str, url: &str) -> Result<bool, ConfigError> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("rediss://") {
        Ok(true)
    } else if lower.starts_with("redis://") {
        Ok(false)
    } else {
        Err(ConfigError(format!(
            "{key} `{}` must start with redis:// or rediss://",
            redact_url(url)
        )))
    }
}

/// A database URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("create_if_missing", &self.create_if_missing)
            .field("group_commit", &self.group_commit)
            .field("ca_file", &self.ca_file)
            .field("idle_check_ms", &self.idle_check_ms)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

impl fmt::Debug for ReplaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplaySettings")
            .field("store", &self.store)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field(
                "redis_cluster_nodes",
                &self
                    .redis_cluster_nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>(),
            )
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

impl fmt::Debug for AccountSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountSettings")
            .field("id_pepper", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::AuditSettings;

    #[test]
    fn the_default_instance_id_is_the_host_and_the_listener_port() {
        let named = AuditSettings {
            instance_id: "gw-a".into(),
            ..AuditSettings::default()
        };
        assert_eq!(named.resolved_instance_id(8443), "gw-a");
        let default = AuditSettings::default();
        let id = default.resolved_instance_id(8443);
        assert!(id.ends_with(":8443"), "{id}");
        assert!(crate::audit::chain::valid_instance_id(&id), "{id}");
        assert_ne!(id, default.resolved_instance_id(8444));
        // Ephemeral ports: every server of the process gets its own chain.
        let (a, b) = (
            default.resolved_instance_id(0),
            default.resolved_instance_id(0),
        );
        assert_ne!(a, b);
        assert!(crate::audit::chain::valid_instance_id(&a), "{a}");
    }
}
