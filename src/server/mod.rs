//! Process start-up: settings → database → key ring → state → HTTP servers. The stop and reload
//! signals are in [`signals`], the file polling in [`watch`], demo mode's chores in [`demo`].

pub mod demo;
pub mod signals;
pub mod watch;

pub use demo::prepare_demo_keys;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{App, HttpServer};

use crate::accounts::{demo as demo_accounts, AccountDirectory};
use crate::clock::{Clock, SystemClock};
use crate::config::LimitScope;
use crate::config::{KeySettings, Settings};
use crate::crypto::EngineKind;
use crate::keyring::{load_keyring, KeyRingError, KeyRingHandle};
use crate::limits::{ConcurrencyLimit, GlobalRateLimit, IdentityLimit, IdentityRateLimit};
use crate::metrics::Metrics;
use crate::ops::reload::{ReloadTrigger, Reloader};
use crate::replay::{
    read_ca_file, MemoryReplayStore, RedisLink, RedisReplayStore, RedisTarget, ReplayError,
    ReplayGuard,
};
use crate::state::AppState;
use crate::store::{Store, StoreOptions};

/// Why the gateway could not start. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Key ring refused.
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    /// Database unreachable or migrations failed. (The message includes the cause, so the cause
    /// is not also reported as the source: an error chain would print it twice.)
    #[error("database: {0}")]
    Store(crate::store::StoreError),
    /// Listener or runtime failure (cause in the message, as for `Store`).
    #[error("server: {0}")]
    Io(std::io::Error),
    /// The configured engine signs in variable time and that was not explicitly allowed.
    #[error(
        "keys.engine = \"{0}\" signs in variable time: its timing can reveal the bank's private \
         key. Use keys.engine = \"fast\" or \"rustcrypto\", or set \
         keys.allow_variable_time_signing = true to accept the risk (tests and comparisons only)"
    )]
    VariableTimeSigning(crate::crypto::EngineKind),
    /// A file that must be UTF-8 text is not.
    #[error("{}: not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the bytes stop being UTF-8.
        source: std::str::Utf8Error,
    },
    /// The metrics registry refused a metric (a programming error: names collide).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The `[replay]` Redis settings cannot be used (the message names the setting).
    #[error(transparent)]
    Redis(crate::replay::ReplayError),
    /// The Redis server's TLS certificate does not verify.
    #[error(
        "Redis TLS: the certificate of {redis} does not verify against {} ({source})",
        match ca_file {
            Some(p) => format!("the CA in replay.redis_ca_file ({})", p.display()),
            None => "the system's root certificates (set replay.redis_ca_file to trust a private CA)".to_string(),
        }
    )]
    RedisUntrusted {
        /// The Redis server (or cluster) as described in logs.
        redis: String,
        /// `replay.redis_ca_file`, if set.
        ca_file: Option<PathBuf>,
        /// The refusal.
        source: crate::replay::ReplayError,
    },
    /// An admin listener was handed in without `server.admin_token_file`.
    #[error(
        "an admin listener was handed in but server.admin_token_file is not set; the admin \
         endpoints are never served without a token"
    )]
    AdminWithoutToken,
    /// `database.url` names a SQLite file that does not exist and may not be created.
    #[error(
        "database.url names the SQLite file {path}, which does not exist (set \
         database.create_if_missing = true to create it)"
    )]
    SqliteFileMissing {
        /// The file named by `database.url`.
        path: String,
    },
    /// The stop signals (SIGTERM, SIGINT, SIGQUIT) could not be registered.
    #[error("cannot listen for stop signals: {0}")]
    Signals(std::io::Error),
    /// The TLS certificate, key or CA file was refused.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// `audit.witness_file` cannot be opened for appending.
    #[error("audit.witness_file {}: cannot be opened for appending: {source}", path.display())]
    Witness {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `audit.witness_syslog` does not answer.
    #[error("audit.witness_syslog {}: cannot send to the syslog socket: {source}", socket.display())]
    WitnessSyslog {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: Box<syslog::Error>,
    },
}

impl From<crate::store::StoreError> for StartError {
    fn from(e: crate::store::StoreError) -> Self {
        StartError::Store(e)
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Replay store capacity: at 10k verified requests/s over a 600 s window, 6 M entries; the
/// default bound leaves room and fails closed (503) beyond it.
pub const REPLAY_CAPACITY: usize = 8_000_000;

/// Connections the kernel queues on the public listener before the acceptor takes them
/// (actix's own default when it binds; the kernel caps it at `net.core.somaxconn`).
pub const ACCEPT_BACKLOG: i32 = 1024;

/// Opens the database named in settings.
pub async fn open_store(settings: &Settings) -> Result<Store, StartError> {
    let db = &settings.database;
    if db.create_if_missing {
        if let Some(path) = db.url.strip_prefix("sqlite://") {
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)?;
            }
        }
    }
    let opts = StoreOptions {
        max_connections: db.max_connections,
        acquire_timeout: std::time::Duration::from_millis(db.acquire_timeout_ms),
        create_if_missing: db.create_if_missing,
    };
    let store = Store::open_with_ca(&db.url, db.ca_file.as_deref(), opts).await?;
    store.set_idle_check(std::time::Duration::from_millis(db.idle_check_ms));
    Ok(if db.group_commit {
        store
    } else {
        store.without_group_commit()
    })
}

/// The engine the bank's responses are signed with: a variable-time engine is refused unless
/// `keys.allow_variable_time_signing` is set, and then a warning is logged.
pub fn signing_engine(keys: &KeySettings) -> Result<EngineKind, StartError> {
    if !keys.engine.signs_in_constant_time() {
        if !keys.allow_variable_time_signing {
            return Err(StartError::VariableTimeSigning(keys.engine));
        }
        tracing::warn!(
            engine = %keys.engine,
            "keys.allow_variable_time_signing = true: responses are signed by a variable-time \
             engine whose timing can reveal the bank's private key; do not run this in production"
        );
    }
    Ok(keys.engine)
}

/// Loads the key ring (with the engine [`signing_engine`] allows) and wraps it in a reloadable
/// handle.
pub fn load_keys(settings: &Settings) -> Result<Arc<KeyRingHandle>, StartError> {
    let dir = settings.keys.dir.clone();
    let engine = signing_engine(&settings.keys)?;
    let id = settings.wechat.signer_id.clone().into_bytes();
    let demo = settings.server.demo;
    crate::keyring::admin::require_manifest(&dir, "keys.dir")?;
    let ring = load_keyring(&dir, engine, &id, demo)?;
    let loader = Box::new(move || load_keyring(&dir, engine, &id, demo));
    Ok(Arc::new(KeyRingHandle::new(ring, loader)))
}

/// Builds the application state from settings (database opened and migrated by the caller).
pub fn build_state(
    settings: &Settings,
    store: Store,
    keyring: Arc<KeyRingHandle>,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartError> {
    let pepper = settings.id_pepper()?;
    let metrics = Metrics::new()?;
    metrics.record_build_info(settings.keys.engine.name(), store.backend().name());
    metrics.export_routes(&exported_routes(&settings.partners));
    metrics.record_keyring(&keyring.snapshot());
    metrics.record_staged_since(&keyring.staged_since());
    store.observe_audit_batches(metrics.audit_batch_rows.clone());
    store.count_witness_failures(metrics.audit_witness_failures.clone());
    store.count_witness_syslog_failures(metrics.audit_witness_syslog_failures.clone());
    store.count_checkpoint_failures(metrics.audit_checkpoint_failures.clone());
    let replay = match settings.replay.store {
        crate::config::ReplayStoreKind::Redis => {
            if settings.replay.fail_open {
                tracing::warn!("replay.fail_open = true: if Redis is unreachable, replayed requests will be ACCEPTED");
            }
            let link = Arc::new(redis_link(&settings.replay)?);
            ReplayGuard::Redis {
                store: RedisReplayStore::new(link, &settings.replay.key_prefix),
                fail_open: settings.replay.fail_open,
            }
        }
        crate::config::ReplayStoreKind::Memory => {
            ReplayGuard::Memory(MemoryReplayStore::new(REPLAY_CAPACITY))
        }
    };
    let limits = &settings.limits;
    let rate = match (limits.scope, replay.redis_link()) {
        (LimitScope::Global, Some(link)) => IdentityLimit::Global(GlobalRateLimit::new(
            limits.per_identity_per_minute,
            Arc::clone(link),
            &settings.replay.key_prefix,
            settings.replay.fail_open,
        )),
        // `Settings::validate` refuses this already; settings built in code meet the same rule.
        (LimitScope::Global, None) => {
            return Err(StartError::Config(
                crate::config::ConfigError::global_limit_without_redis(),
            ))
        }
        (LimitScope::Instance, _) => {
            IdentityLimit::Instance(IdentityRateLimit::new(limits.per_identity_per_minute))
        }
    };
    Ok(AppState::new(
        settings.wechat.clone(),
        settings.keys.engine,
        keyring,
        replay,
        AccountDirectory::new(store, pepper),
        metrics,
        clock,
        rate,
        ConcurrencyLimit::new(limits.max_concurrent),
        settings.partners.clone(),
        std::time::Duration::from_millis(settings.server.body_timeout_ms),
    ))
}

/// The `route` labels of the answers this configuration can give: the WeChat channel and the
/// enabled partner channels (exported at 0 from the start).
fn exported_routes(p: &crate::config::PartnerSettings) -> Vec<&'static str> {
    use crate::http::partners;
    let mut routes = vec![crate::http::wechat::get_account::ROUTE];
    if p.open_platform {
        routes.extend([
            partners::op_access_token::ROUTE,
            partners::op_api_ticket::ROUTE,
            partners::op_service::ROUTE,
        ]);
    }
    if p.callback {
        routes.push(partners::callback_receive::ROUTE);
    }
    if p.hmac {
        routes.push(partners::hmac_account::ROUTE);
    }
    routes
}

/// The Redis connection `[replay]` describes (single node or Cluster, plain or TLS), with the CA
/// file read and checked. Nothing is connected yet.
pub fn redis_link(replay: &crate::config::ReplaySettings) -> Result<RedisLink, StartError> {
    let ca_pem = match &replay.redis_ca_file {
        Some(path) => Some(read_ca_file(path).map_err(StartError::Redis)?),
        None => None,
    };
    RedisLink::new(&RedisTarget {
        url: replay.redis_url.clone(),
        cluster_nodes: replay.redis_cluster_nodes.clone(),
        ca_pem,
        timeout: std::time::Duration::from_millis(replay.timeout_ms),
    })
    .map_err(StartError::Redis)
}

/// At start-up, one `PING` to the replay store's Redis. A TLS certificate that does not verify
/// (wrong `replay.redis_ca_file`, wrong host name, expired) stops the start with an error naming
/// the settings; an unreachable Redis is only logged — the gateway starts, answers 503 (or fails
/// open as configured) and connects once Redis is back.
pub async fn check_redis(settings: &Settings, replay: &ReplayGuard) -> Result<(), StartError> {
    let Some(link) = replay.redis_link() else {
        return Ok(());
    };
    match link.probe().await {
        Ok(()) => {
            tracing::info!(redis = %link.description(), tls = link.is_tls(), "Redis answers");
            Ok(())
        }
        Err(source @ ReplayError::Untrusted(_)) => Err(StartError::RedisUntrusted {
            redis: link.description().to_string(),
            ca_file: settings.replay.redis_ca_file.clone(),
            source,
        }),
        Err(e) => {
            tracing::warn!(redis = %link.description(), error = %e, "Redis does not answer at start-up; requests needing it fail until it does");
            Ok(())
        }
    }
}

/// The sockets the gateway serves on. [`Listeners::bind`] takes them from the settings; tests
/// bind `127.0.0.1:0` themselves and hand them to [`serve`], which starts the process exactly as
/// production does.
#[derive(Debug)]
pub struct Listeners {
    /// The public listener: the WeChat channel, the partner channels, `/healthz`.
    pub public: std::net::TcpListener,
    /// The ops listener: `/readyz`, `/metrics`, `/healthz`.
    pub ops: Option<std::net::TcpListener>,
    /// The admin listener (`POST /admin/keyring/reload`, bearer token), loopback only.
    pub admin: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the listeners the settings name. The admin listener is bound only when an admin
    /// token file is configured: an admin endpoint never runs without authentication.
    pub fn bind(settings: &Settings) -> Result<Self, StartError> {
        // A busy port names the listener (the setting) that wanted it.
        let bind = |setting: &str, addr: std::net::SocketAddr| {
            std::net::TcpListener::bind(addr).map_err(|e| {
                StartError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} ({setting}): {e}"),
                ))
            })
        };
        let public = bind("server.listen", settings.server.listen)?;
        let ops = match settings.ops_listen()? {
            Some(addr) => Some(bind("server.ops_listen", addr)?),
            None => None,
        };
        let admin = match settings.admin_endpoint()? {
            Some((addr, _token_file)) => Some(bind("server.admin_listen", addr)?),
            None => None,
        };
        Ok(Self { public, ops, admin })
    }
}

/// Opens the database, loads the key ring and builds the state the settings describe (demo
/// preparation included).
pub async fn prepare(settings: &Settings) -> Result<AppState, StartError> {
    if settings.server.demo {
        demo::prepare_demo_keys(&settings.keys.dir)?;
    }
    let store = open_store(settings).await?;
    if settings.database.migrate_on_start {
        let applied = store.run_migrations().await?;
        if !applied.is_empty() {
            tracing::info!(applied = %applied.join(" "), "database migrations applied");
        }
    } else {
        // No DDL from the runtime account: a schema that is behind is the operator's to migrate.
        let pending = store.pending_migrations().await?;
        if !pending.is_empty() {
            return Err(StartError::Config(crate::config::ConfigError(format!(
                "database.migrate_on_start is false and the schema lacks migration(s) {}; run \
                 `pension-gateway --config <file> db migrate` with the migration account first",
                pending.join(", ")
            ))));
        }
    }
    let keyring = load_keys(settings)?;
    chain_audit(settings, &store, &keyring)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = build_state(settings, store, keyring, Arc::clone(&clock))?;
    check_redis(settings, state.replay()).await?;
    if settings.server.demo {
        let n = demo_accounts::seed_demo(state.accounts(), clock.now()).await?;
        tracing::info!(accounts = n, "demo accounts seeded");
    }
    Ok(state)
}

/// Opens `audit.witness_file` for appending (a missing directory is created), and connects
/// its copy to `audit.witness_syslog` when one is set.
pub fn open_witness(settings: &Settings) -> Result<crate::store::Witness, StartError> {
    let path = &settings.audit.witness_file;
    let err = |source| StartError::Witness {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut witness = crate::store::Witness::open(path).map_err(err)?;
    let socket = &settings.audit.witness_syslog;
    if !socket.as_os_str().is_empty() {
        witness
            .copy_to_syslog(socket)
            .map_err(|source| StartError::WitnessSyslog {
                socket: socket.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(witness)
}

/// Chains the audit rows of `store` (`[audit]`): checkpoints signed by the key ring's active
/// bank key of the moment — through the same signer as the answers — and witnessed in
/// `audit.witness_file`, which must open for appending. Nothing when `audit.chain` is off.
pub fn chain_audit(
    settings: &Settings,
    store: &Store,
    keyring: &Arc<KeyRingHandle>,
) -> Result<(), StartError> {
    let a = &settings.audit;
    if !a.chain {
        tracing::warn!("audit.chain is off: audit rows are written without the hash chain");
        return Ok(());
    }
    let witness = open_witness(settings)?;
    let ring = Arc::clone(keyring);
    let setup = crate::store::ChainSetup {
        instance_id: a.resolved_instance_id(settings.server.listen.port()),
        checkpoint_rows: a.checkpoint_rows,
        checkpoint_every: std::time::Duration::from_secs(a.checkpoint_secs),
        sign: Box::new(move |cp: crate::audit::Checkpoint| {
            let snapshot = ring.snapshot();
            let version = snapshot.active_version();
            let key = snapshot
                .bank_key(version)
                .ok_or(crate::audit::CheckpointError::UnknownKey(version))?;
            cp.sign(key)
        }),
        witness,
        sign_failures: Default::default(),
    };
    let instance = setup.instance_id.clone();
    if store.chain_audit(setup) {
        tracing::info!(%instance, witness = %a.witness_file.display(), "audit rows are chained");
    } else {
        tracing::warn!(
            "audit rows are written without the hash chain: this store has no group-commit \
             writer (database.group_commit = false or in-memory SQLite)"
        );
    }
    Ok(())
}

/// Runs the gateway until SIGTERM/SIGINT (graceful: in-flight requests finish).
pub async fn run(settings: Settings) -> Result<(), StartError> {
    let listeners = Listeners::bind(&settings)?;
    serve(settings, listeners).await
}

/// Runs the gateway on `listeners` until SIGTERM/SIGINT.
pub async fn serve(mut settings: Settings, listeners: Listeners) -> Result<(), StartError> {
    if settings.server.demo {
        // An installed binary run outside the repository uses the built-in demo ring.
        settings.keys.dir = crate::keyring::demo::resolve(&settings.keys.dir)?;
    }
    let state = prepare(&settings).await?;
    serve_state(&settings, state, listeners).await
}

/// Serves an already built `state` on `listeners` until SIGTERM/SIGINT: the listeners'
/// deadlines, reload on SIGHUP and on a file change, the demo banner.
pub async fn serve_state(
    settings: &Settings,
    state: AppState,
    listeners: Listeners,
) -> Result<(), StartError> {
    let signals = signals::UnixStopSignals::register().map_err(StartError::Signals)?;
    serve_state_until(settings, state, listeners, signals).await
}

/// [`serve_state`] with the stop signals taken from `signals` instead of the process's own: a
/// test hands in a channel and drives the drain in process.
pub async fn serve_state_until<S: signals::StopSignalWatch>(
    settings: &Settings,
    state: AppState,
    listeners: Listeners,
    stop: S,
) -> Result<(), StartError> {
    let token = match (&listeners.admin, &settings.server.admin_token_file) {
        (Some(_), Some(path)) => Some(Arc::new(crate::ops::AdminToken::from_file(path)?)),
        // A bound admin socket that nobody serves would leave admin calls hanging.
        (Some(_), None) => return Err(StartError::AdminWithoutToken),
        (None, _) => None,
    };
    let tls = crate::tls::server::ServerTls::from_settings(&settings.tls, state.metrics())?;
    let reloader = Arc::new(Reloader::new(
        state.clone(),
        settings.keys.dir.join("keyring.toml"),
        tls.clone(),
        token,
    ));
    let on_hup = Arc::clone(&reloader);
    signals::spawn_sighup(move || {
        on_hup.reload_all(ReloadTrigger::Signal);
    });
    let on_tick = Arc::clone(&reloader);
    watch::spawn_poll(settings.keys.watch_interval_secs, move || {
        on_tick.poll();
    });
    let shutdown = settings.server.shutdown_timeout_secs;
    let header_deadline = std::time::Duration::from_millis(settings.server.header_timeout_ms);
    let listen = listeners.public.local_addr()?;

    let public_state = state.clone();
    let mut public = HttpServer::new(move || {
        let st = public_state.clone();
        App::new().configure(move |cfg| crate::http::configure(cfg, st))
    })
    // The head must arrive within this deadline (actix answers 408 and closes otherwise); the
    // body has its own deadline in `http::body`.
    .client_request_timeout(header_deadline)
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .shutdown_timeout(shutdown)
    // Signals are handled below (drain first, then stop), for every listener at once.
    .disable_signals();
    // With `[tls]` the public listener (WeChat and partner routes) speaks only TLS; the ops and
    // admin listeners stay plain on their loopback or internal addresses (docs/tls.md).
    // A listener bound by `std` queues 128 connections; a burst beyond what the acceptor takes
    // in time would see resets (a flood of slow clients did: a quarter of 1,200 connects).
    socket2::SockRef::from(&listeners.public).listen(ACCEPT_BACKLOG)?;
    public = match &tls {
        Some(t) => public.listen_rustls_0_23(listeners.public, t.server_config()?)?,
        None => public.listen(listeners.public)?,
    };
    if settings.server.workers > 0 {
        public = public.workers(settings.server.workers);
    }
    let mut servers = vec![public.run()];
    if let Some(l) = listeners.ops {
        let addr = l.local_addr()?;
        let st = state.clone();
        servers.push(
            HttpServer::new(move || {
                let st = st.clone();
                App::new().configure(move |cfg| crate::ops::configure_ops(cfg, st))
            })
            .workers(1)
            .client_request_timeout(header_deadline)
            .shutdown_timeout(shutdown)
            .disable_signals()
            .listen(l)?
            .run(),
        );
        tracing::info!(%addr, "ops listener (/readyz, /metrics, /healthz)");
    }
    if let Some(l) = listeners.admin {
        let addr = l.local_addr()?;
        servers.push(
            HttpServer::new(move || {
                let reloader = Arc::clone(&reloader);
                App::new().configure(move |cfg| crate::ops::configure_admin(cfg, reloader))
            })
            .workers(1)
            .client_request_timeout(header_deadline)
            .shutdown_timeout(shutdown)
            .disable_signals()
            .listen(l)?
            .run(),
        );
        tracing::info!(%addr, "admin listener (POST /admin/keyring/reload, bearer token)");
    }
    let ring = state.keyring().snapshot();
    tracing::info!(
        %listen, route = %settings.wechat.route, engine = %settings.keys.engine,
        database = %crate::config::redact_url(&settings.database.url),
        bank_key = ring.active_version(), demo = settings.server.demo, tls = tls.is_some(),
        "pension-gateway listening"
    );
    if settings.server.demo {
        demo::print_demo_banner(settings, listen, tls.is_some());
    }
    let handles = servers.iter().map(|s| s.handle()).collect();
    let drain = std::time::Duration::from_secs(settings.server.drain_secs);
    let drainer = state.clone();
    actix_web::rt::spawn(async move {
        signals::stop_on_signal(stop, drainer.readiness(), handles, drain).await;
    });
    futures_util::future::try_join_all(servers).await?;
    tracing::info!("pension-gateway stopped");
    Ok(())
}
