//! Process start-up: settings → database → key ring → state → HTTP server, plus the demo
//! preparation and key-ring reload on SIGHUP.

use std::path::Path;
use std::sync::Arc;

use actix_web::{App, HttpServer};

use crate::accounts::{demo, AccountDirectory};
use crate::config::{KeySettings, Settings};
use crate::crypto::EngineKind;
use crate::http::metrics::Metrics;
use crate::http::{AppState, Clock, SystemClock};
use crate::keyring::{load_keyring, KeyRingError, KeyRingHandle, Manifest};
use crate::replay::{MemoryReplayStore, RedisReplayStore, ReplayGuard};
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
    /// Database unreachable or migrations failed.
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Listener or runtime failure.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
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
    Ok(Store::open(&db.url, opts).await?)
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
        let manifest = Manifest::parse(text).map_err(StartError::Other)?;
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
    let pepper = settings.id_pepper().map_err(StartError::Other)?;
    let metrics = Metrics::new().map_err(|e| StartError::Other(format!("metrics: {e}")))?;
    metrics.record_keyring(&keyring.snapshot());
    let replay = match settings.replay.store.as_str() {
        "redis" => {
            if settings.replay.fail_open {
                tracing::warn!("replay.fail_open = true: if Redis is unreachable, replayed requests will be ACCEPTED");
            }
            ReplayGuard::Redis {
                store: RedisReplayStore::new(
                    &settings.replay.redis_url,
                    &settings.replay.key_prefix,
                    std::time::Duration::from_millis(settings.replay.timeout_ms),
                )
                .map_err(|e| StartError::Other(e.to_string()))?,
                fail_open: settings.replay.fail_open,
            }
        }
        _ => ReplayGuard::Memory(MemoryReplayStore::new(REPLAY_CAPACITY)),
    };
    Ok(AppState::new(
        settings.wechat.clone(),
        settings.keys.engine,
        keyring,
        replay,
        AccountDirectory::new(store, pepper),
        metrics,
        clock,
        &settings.limits,
        settings.partners.clone(),
    ))
}

/// Reloads the key ring, logging and counting the result; a refused set keeps the old one.
pub fn reload_keys(state: &AppState) -> Result<(), KeyRingError> {
    match state.keyring().reload() {
        Ok(ring) => {
            state.metrics().record_keyring(&ring);
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["ok"])
                .inc();
            tracing::info!(active = ring.active_version(), rollout = ?ring.rollout(), "key ring reloaded");
            Ok(())
        }
        Err(e) => {
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["refused"])
                .inc();
            tracing::error!(error = %e, "key ring reload refused; still serving the previous set");
            Err(e)
        }
    }
}

/// Runs the gateway until SIGTERM/SIGINT (graceful: in-flight requests finish).
pub async fn run(settings: Settings) -> Result<(), StartError> {
    if settings.server.demo {
        prepare_demo_keys(&settings.keys.dir)?;
    }
    let store = open_store(&settings).await?;
    let applied = store.run_migrations().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrations applied");
    }
    let keyring = load_keys(&settings)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = build_state(&settings, store, keyring, Arc::clone(&clock))?;
    if settings.server.demo {
        let n = demo::seed_demo(state.accounts(), clock.now()).await?;
        tracing::info!(accounts = n, "demo accounts seeded");
    }
    spawn_sighup_reload(state.clone());
    spawn_manifest_watch(
        state.clone(),
        settings.keys.dir.join("keyring.toml"),
        settings.keys.watch_interval_secs,
    );

    let listen = settings.server.listen;
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        let st = app_state.clone();
        App::new().configure(move |cfg| crate::http::configure(cfg, st))
    })
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    .bind(listen)?;
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let ring = state.keyring().snapshot();
    tracing::info!(
        %listen, route = %settings.wechat.route, engine = %settings.keys.engine,
        database = %crate::config::redact_url(&settings.database.url),
        bank_key = ring.active_version(), demo = settings.server.demo,
        "pension-gateway listening"
    );
    if settings.server.demo {
        print_demo_banner(&settings);
    }
    let main = server.run();
    match settings.admin_listen().map_err(StartError::Other)? {
        None => main.await?,
        Some(addr) => {
            let admin_state = state.clone();
            let admin = HttpServer::new(move || {
                let st = admin_state.clone();
                App::new().configure(move |cfg| crate::http::configure_admin(cfg, st))
            })
            .workers(1)
            .shutdown_timeout(settings.server.shutdown_timeout_secs)
            .bind(addr)?
            .run();
            tracing::info!(%addr, "admin listener (POST /admin/keyring/reload)");
            futures_util::future::try_join(main, admin).await?;
        }
    }
    tracing::info!("pension-gateway stopped");
    Ok(())
}

fn spawn_sighup_reload(state: AppState) {
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; key ring reload by signal disabled");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reload_keys(&state);
        }
    });
}

/// Polls the manifest's modification time and size; a change triggers a reload.
fn spawn_manifest_watch(state: AppState, manifest: std::path::PathBuf, interval_secs: u64) {
    if interval_secs == 0 {
        return;
    }
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    actix_web::rt::spawn(async move {
        let mut last = stamp(&manifest);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval_secs));
        loop {
            tick.tick().await;
            let now = stamp(&manifest);
            if now != last {
                last = now;
                tracing::info!(manifest = %manifest.display(), "key manifest changed; reloading");
                let _ = reload_keys(&state);
            }
        }
    });
}

fn print_demo_banner(settings: &Settings) {
    let url = format!("http://{}{}", settings.server.listen, settings.wechat.route);
    let p = &demo::DEMO_PEOPLE[0];
    println!();
    println!("  pension-gateway is running in DEMO mode (published demo keys, demo accounts).");
    println!("  Send a query signed with the demo WeChat key, in another terminal:");
    println!();
    println!(
        "    cargo run --release -- client query --url {url} --name {} --id-number {}",
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
            "  Partner channels (docs/partner-channels.md): cargo run --release -- client open-platform|callback|hmac --name {} --id-number {}",
            p.name, p.id_number
        );
    }
    println!();
}
