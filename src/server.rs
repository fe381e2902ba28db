//! Process start-up: settings → database → key ring → state → HTTP server, plus the demo
//! preparation and key-ring reload on SIGHUP.

use std::path::Path;
use std::sync::Arc;

use actix_web::{App, HttpServer};

use crate::accounts::{demo, AccountDirectory};
use crate::clock::{Clock, SystemClock};
use crate::config::LimitScope;
use crate::config::{KeySettings, Settings};
use crate::crypto::EngineKind;
use crate::keyring::{load_keyring, KeyRingError, KeyRingHandle, Manifest};
use crate::limits::{ConcurrencyLimit, GlobalRateLimit, IdentityLimit, IdentityRateLimit};
use crate::metrics::Metrics;
use crate::ops::reload::reload_keys;
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
    /// Anything else at start-up.
    #[error("{0}")]
    Other(String),
    /// The TLS certificate, key or CA file was refused.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
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

/// In demo mode the published demo keys come out of git with whatever mode the checkout gave
/// them (git keeps no modes): tighten secrets to 0600 and take group and other write off the
/// manifest and public keys, so the same file rules apply as in production. Every file is
/// changed through a handle opened without following links (`keyring::file_rules`).
pub fn prepare_demo_keys(dir: &Path) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use crate::keyring::file_rules::tighten_demo_file;
        use crate::keyring::KeyFileKind;
        let manifest_path = dir.join("keyring.toml");
        let Some(bytes) = tighten_demo_file(&manifest_path, KeyFileKind::Manifest)? else {
            // Missing or not a regular file: loading refuses it with the file's name.
            return Ok(());
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            StartError::Other(format!("{}: not UTF-8 text", manifest_path.display()))
        })?;
        let manifest = Manifest::parse(text)?;
        if !manifest.demo {
            return Ok(());
        }
        let mut files: Vec<(std::path::PathBuf, KeyFileKind)> = Vec::new();
        files.extend(
            manifest
                .bank
                .iter()
                .map(|b| (dir.join(&b.private_key), KeyFileKind::Secret)),
        );
        files.extend(
            manifest
                .wechat
                .iter()
                .map(|w| (dir.join(&w.public_key), KeyFileKind::PublicKey)),
        );
        files.extend(
            manifest
                .partner
                .iter()
                .map(|p| (dir.join(&p.secret), KeyFileKind::Secret)),
        );
        // Files the manifest does not name but the demo client reads (`wechat-v1.key`, …).
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                match path.extension().and_then(|x| x.to_str()) {
                    Some("key" | "secret") => files.push((path, KeyFileKind::Secret)),
                    Some("pub") => files.push((path, KeyFileKind::PublicKey)),
                    _ => {}
                }
            }
        }
        for (path, kind) in files {
            tighten_demo_file(&path, kind)?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
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
    let metrics = Metrics::new().map_err(|e| StartError::Other(format!("metrics: {e}")))?;
    metrics.record_keyring(&keyring.snapshot());
    metrics.record_staged_since(&keyring.staged_since());
    store.observe_audit_batches(metrics.audit_batch_rows.clone());
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
        (LimitScope::Global, None) => {
            return Err(StartError::Other(
                "limits.scope = \"global\" requires replay.store = \"redis\"".into(),
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

/// The Redis connection `[replay]` describes (single node or Cluster, plain or TLS), with the CA
/// file read and checked. Nothing is connected yet.
pub fn redis_link(replay: &crate::config::ReplaySettings) -> Result<RedisLink, StartError> {
    let ca_pem = match &replay.redis_ca_file {
        Some(path) => Some(read_ca_file(path).map_err(|e| StartError::Other(e.to_string()))?),
        None => None,
    };
    RedisLink::new(&RedisTarget {
        url: replay.redis_url.clone(),
        cluster_nodes: replay.redis_cluster_nodes.clone(),
        ca_pem,
        timeout: std::time::Duration::from_millis(replay.timeout_ms),
    })
    .map_err(|e| StartError::Other(e.to_string()))
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
        Err(ReplayError::Untrusted(cause)) => {
            let trust = match &settings.replay.redis_ca_file {
                Some(p) => format!("the CA in replay.redis_ca_file ({})", p.display()),
                None => "the system's root certificates (set replay.redis_ca_file to trust a \
                         private CA)"
                    .to_string(),
            };
            Err(StartError::Other(format!(
                "Redis TLS: the certificate of {} does not verify against {trust}: {cause}",
                link.description()
            )))
        }
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
        prepare_demo_keys(&settings.keys.dir)?;
    }
    let store = open_store(settings).await?;
    if settings.database.migrate_on_start {
        let applied = store.run_migrations().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrations applied");
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = build_state(settings, store, keyring, Arc::clone(&clock))?;
    check_redis(settings, state.replay()).await?;
    if settings.server.demo {
        let n = demo::seed_demo(state.accounts(), clock.now()).await?;
        tracing::info!(accounts = n, "demo accounts seeded");
    }
    Ok(state)
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
/// deadlines, key-ring reload on SIGHUP and on manifest change, the demo banner.
pub async fn serve_state(
    settings: &Settings,
    state: AppState,
    listeners: Listeners,
) -> Result<(), StartError> {
    let token = match (&listeners.admin, &settings.server.admin_token_file) {
        (Some(_), Some(path)) => Some(Arc::new(crate::ops::AdminToken::from_file(path)?)),
        // A bound admin socket that nobody serves would leave reload calls hanging.
        (Some(_), None) => {
            return Err(StartError::Other(
                "an admin listener was handed in but server.admin_token_file is not set; the                  reload endpoint is never served without a token"
                    .into(),
            ))
        }
        (None, _) => None,
    };
    let tls = crate::tls::server::ServerTls::from_settings(&settings.tls, state.metrics())?;
    spawn_sighup_reload(state.clone(), tls.clone());
    spawn_manifest_watch(
        state.clone(),
        settings.keys.dir.join("keyring.toml"),
        settings.keys.watch_interval_secs,
        tls.clone(),
    );
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
    if let (Some(l), Some(token)) = (listeners.admin, token) {
        let addr = l.local_addr()?;
        let st = state.clone();
        let admin_tls = tls.clone();
        servers.push(
            HttpServer::new(move || {
                let (st, token) = (st.clone(), Arc::clone(&token));
                let mut app = App::new();
                if let Some(t) = &admin_tls {
                    // The admin reload call reloads the certificate too.
                    app = app.app_data(actix_web::web::Data::from(Arc::clone(t)));
                }
                app.configure(move |cfg| crate::ops::configure_admin(cfg, st, token))
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
        print_demo_banner(settings, listen, tls.is_some());
    }
    spawn_stop_on_signal(
        state.clone(),
        servers.iter().map(|s| s.handle()).collect(),
        std::time::Duration::from_secs(settings.server.drain_secs),
    );
    futures_util::future::try_join_all(servers).await?;
    tracing::info!("pension-gateway stopped");
    Ok(())
}

/// How the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    /// SIGTERM (or Ctrl-C where there are no Unix signals): drain, then stop gracefully.
    Terminate,
    /// SIGINT or SIGQUIT: stop at once, in-flight requests are cut.
    Interrupt,
}

/// The stop signals, registered once so that a second signal during the drain is not lost.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    quit: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                quit: signal(SignalKind::quit())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => StopSignal::Terminate,
                _ = self.int.recv() => StopSignal::Interrupt,
                _ = self.quit.recv() => StopSignal::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Terminate
        }
    }
}

/// Stops the servers behind `handles` on a signal. SIGTERM: first `drain` — `/readyz` answers
/// 503 `draining` so the load balancer's health check takes the instance out, while every
/// request that still arrives is served — then the listeners close and in-flight requests get
/// `server.shutdown_timeout_secs` to finish. A second signal ends the drain early. SIGINT and
/// SIGQUIT stop at once (the interactive Ctrl-C).
fn spawn_stop_on_signal(
    state: AppState,
    handles: Vec<actix_web::dev::ServerHandle>,
    drain: std::time::Duration,
) {
    let mut signals = match StopSignals::register() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot listen for stop signals; the process must be killed");
            return;
        }
    };
    actix_web::rt::spawn(async move {
        let how = signals.next().await;
        let graceful = how == StopSignal::Terminate;
        if graceful && !drain.is_zero() {
            state.readiness().start_draining();
            tracing::info!(
                drain_secs = drain.as_secs(),
                "SIGTERM: draining (/readyz answers 503, requests are still served)"
            );
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                _ = signals.next() => tracing::info!("second signal: drain ended early"),
            }
        }
        tracing::info!(
            graceful,
            "stopping: listeners closed, in-flight requests finish within shutdown_timeout_secs"
        );
        futures_util::future::join_all(handles.iter().map(|h| h.stop(graceful))).await;
    });
}

/// The served certificate, when the public listener speaks TLS.
type Tls = Option<Arc<crate::tls::server::ServerTls>>;

fn spawn_sighup_reload(state: AppState, tls: Tls) {
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; key ring reload by signal disabled");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reload_keys(&state);
            if let Some(t) = &tls {
                let _ = t.reload();
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (state, tls);
}

/// A file's modification time, size and inode: a change (also a rename over it) shows.
fn file_stamp(p: &Path) -> Option<(Option<std::time::SystemTime>, u64, u64)> {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok(), m.len(), ino))
}

/// Polls the manifest (and the TLS certificate and key files) for a change of modification
/// time, size or inode; a change triggers the matching reload.
fn spawn_manifest_watch(
    state: AppState,
    manifest: std::path::PathBuf,
    interval_secs: u64,
    tls: Tls,
) {
    if interval_secs == 0 {
        return;
    }
    let tls_files = tls.as_ref().map(|t| t.watched_files()).unwrap_or_default();
    let tls_stamps = move || tls_files.iter().map(|p| file_stamp(p)).collect::<Vec<_>>();
    // The baseline is taken now, right after the files were loaded, not when the task first
    // runs: a change made before the task is first polled must still count as a change.
    let mut last = file_stamp(&manifest);
    let mut last_tls = tls_stamps();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval_secs));
        loop {
            tick.tick().await;
            let now = file_stamp(&manifest);
            if now != last {
                last = now;
                tracing::info!(manifest = %manifest.display(), "key manifest changed; reloading");
                let _ = reload_keys(&state);
            }
            if let Some(t) = &tls {
                let now_tls = tls_stamps();
                if now_tls != last_tls {
                    last_tls = now_tls;
                    tracing::info!("TLS certificate or key file changed; reloading");
                    let _ = t.reload();
                }
            }
        }
    });
}

fn print_demo_banner(settings: &Settings, listen: std::net::SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{listen}{}", settings.wechat.route);
    let p = &demo::DEMO_PEOPLE[0];
    // Under `cargo run` the newcomer types cargo commands; an installed binary is run by name.
    let run = if std::env::var_os("CARGO").is_some() {
        "cargo run --release --"
    } else {
        "pension-gateway"
    };
    println!();
    println!("  pension-gateway is running in DEMO mode (published demo keys, demo accounts).");
    println!("  Send a query signed with the demo WeChat key, in another terminal:");
    println!();
    println!(
        "    {run} client query --url {url} --name {} --id-number {}",
        p.name, p.id_number
    );
    println!();
    println!(
        "  Other demo people: {}",
        demo::DEMO_PEOPLE
            .iter()
            .skip(1)
            .map(|p| format!("{} {} (status {})", p.name, p.id_number, p.status))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if settings.partners.open_platform || settings.partners.callback || settings.partners.hmac {
        println!(
            "  Partner channels (docs/partner-channels.md): {run} client open-platform|callback|hmac --name {} --id-number {}",
            p.name, p.id_number
        );
    }
    println!();
}
