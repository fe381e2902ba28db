//! Reloads: the key ring, the public listener's TLS certificate and the admin token, read again
//! from their files by one [`Reloader`] whatever asked — SIGHUP, the file watch, or
//! `POST /admin/keyring/reload` on the loopback admin listener (admin bearer token). A refused
//! part leaves the running one in place; the answer and the log say which part was refused.
//!
//! One request, one reload: the reloader remembers each file's stamp (modification time, size,
//! inode) as it was when that file was last loaded, by any trigger, and the watch compares with
//! that. A `keys` command followed by SIGHUP therefore reloads once — the watch sees nothing new
//! — where it used to reload a second time on the watch's next tick and count two reloads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};

use crate::keyring::{KeyRing, KeyRingError};
use crate::ops::AdminToken;
use crate::server::watch::{file_stamp, FileStamp};
use crate::state::AppState;
use crate::tls::server::ServerTls;
use crate::tls::{CertInfo, TlsError};

/// What asked for a reload (logged with every reload as `trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// SIGHUP.
    Signal,
    /// The file watch saw a file change.
    FileWatch,
    /// `POST /admin/keyring/reload`.
    Admin,
    /// A direct call (tests, tools).
    Call,
}

impl ReloadTrigger {
    /// The name in logs: `sighup`, `file_watch`, `admin`, `call`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Signal => "sighup",
            ReloadTrigger::FileWatch => "file_watch",
            ReloadTrigger::Admin => "admin",
            ReloadTrigger::Call => "call",
        }
    }
}

/// The result of one reload, part by part (`None`: that part was not reloaded).
#[derive(Debug)]
pub struct ReloadReport {
    /// What asked.
    pub trigger: ReloadTrigger,
    /// The key ring.
    pub keys: Option<Result<Arc<KeyRing>, KeyRingError>>,
    /// The public listener's certificate (only with `[tls]`).
    pub tls: Option<Result<Arc<CertInfo>, TlsError>>,
    /// The admin token (only with an admin listener); `Ok(true)` when it changed.
    pub admin_token: Option<Result<bool, KeyRingError>>,
}

impl ReloadReport {
    /// The parts that were refused (`keys`, `tls`, `admin_token`), in that order.
    pub fn refused(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if matches!(self.keys, Some(Err(_))) {
            out.push("keys");
        }
        if matches!(self.tls, Some(Err(_))) {
            out.push("tls");
        }
        if matches!(self.admin_token, Some(Err(_))) {
            out.push("admin_token");
        }
        out
    }
}

/// The stamps of the files as they were when each part was last loaded.
struct Loaded {
    manifest: FileStamp,
    tls: Vec<FileStamp>,
    token: FileStamp,
}

/// Reloads the parts of a running gateway that live in files. Shared by the SIGHUP handler,
/// the file watch and the admin endpoint; calls are serialised.
pub struct Reloader {
    state: AppState,
    manifest: PathBuf,
    tls: Option<Arc<ServerTls>>,
    token: Option<Arc<AdminToken>>,
    loaded: Mutex<Loaded>,
}

impl Reloader {
    /// A reloader for `state`, whose key ring was loaded from `manifest` (`keys.dir`'s
    /// `keyring.toml`); the files' stamps are taken now, right after they were loaded.
    pub fn new(
        state: AppState,
        manifest: PathBuf,
        tls: Option<Arc<ServerTls>>,
        token: Option<Arc<AdminToken>>,
    ) -> Self {
        let loaded = Loaded {
            manifest: file_stamp(&manifest),
            tls: tls_stamps(tls.as_deref()),
            token: token.as_ref().and_then(|t| t.path()).and_then(file_stamp),
        };
        Self {
            state,
            manifest,
            tls,
            token,
            loaded: Mutex::new(loaded),
        }
    }

    /// The state whose key ring this reloads.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin token, when there is an admin listener.
    pub fn admin_token(&self) -> Option<&Arc<AdminToken>> {
        self.token.as_ref()
    }

    /// Reloads every part (SIGHUP, the admin call).
    pub fn reload_all(&self, trigger: ReloadTrigger) -> ReloadReport {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        // Stamps are taken before reading: a change made while loading shows at the next poll.
        loaded.manifest = file_stamp(&self.manifest);
        loaded.tls = tls_stamps(self.tls.as_deref());
        loaded.token = self.token_stamp();
        let report = ReloadReport {
            trigger,
            keys: Some(reload_keys_by(&self.state, trigger)),
            tls: self.tls.as_ref().map(|t| reload_tls(t, trigger)),
            admin_token: self.token.as_ref().map(|t| reload_token(t, trigger)),
        };
        drop(loaded);
        report
    }

    /// The file watch: reloads the parts whose files changed since they were last loaded (by
    /// any trigger); `None` when nothing changed.
    pub fn poll(&self) -> Option<ReloadReport> {
        let trigger = ReloadTrigger::FileWatch;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport {
            trigger,
            keys: None,
            tls: None,
            admin_token: None,
        };
        let manifest = file_stamp(&self.manifest);
        if manifest != loaded.manifest {
            loaded.manifest = manifest;
            tracing::info!(manifest = %self.manifest.display(), "key manifest changed");
            report.keys = Some(reload_keys_by(&self.state, trigger));
        }
        if let Some(t) = &self.tls {
            let now = tls_stamps(Some(t));
            if now != loaded.tls {
                loaded.tls = now;
                tracing::info!("TLS certificate or key file changed");
                report.tls = Some(reload_tls(t, trigger));
            }
        }
        if let Some(t) = &self.token {
            let now = self.token_stamp();
            if now != loaded.token {
                loaded.token = now;
                tracing::info!("admin token file changed");
                report.admin_token = Some(reload_token(t, trigger));
            }
        }
        let any = report.keys.is_some() || report.tls.is_some() || report.admin_token.is_some();
        any.then_some(report)
    }

    fn token_stamp(&self) -> FileStamp {
        self.token
            .as_ref()
            .and_then(|t| t.path())
            .and_then(file_stamp)
    }
}

fn tls_stamps(tls: Option<&ServerTls>) -> Vec<FileStamp> {
    tls.map(|t| t.watched_files().iter().map(|p| file_stamp(p)).collect())
        .unwrap_or_default()
}

fn reload_tls(tls: &ServerTls, trigger: ReloadTrigger) -> Result<Arc<CertInfo>, TlsError> {
    // `ServerTls::reload` logs and counts the result itself; the trigger is logged here.
    tracing::info!(trigger = trigger.as_str(), "TLS certificate reload");
    tls.reload()
}

fn reload_token(token: &AdminToken, trigger: ReloadTrigger) -> Result<bool, KeyRingError> {
    let result = token.reload();
    match &result {
        Ok(changed) => tracing::info!(
            trigger = trigger.as_str(),
            changed = *changed,
            "admin token reloaded"
        ),
        Err(e) => tracing::error!(
            trigger = trigger.as_str(),
            error = %e,
            "admin token reload refused; the previous token stays in force"
        ),
    }
    result
}

/// `POST /admin/keyring/reload`: reloads every part (401 without the admin bearer token). 200
/// `{"status":"reloaded", …}` when every part loaded; 409 `{"status":"refused","refused":[…]}`
/// naming the refused parts otherwise, each part with its own `status`.
pub async fn reload(req: HttpRequest, reloader: Data<Reloader>) -> HttpResponse {
    if let Some(refusal) = super::require_admin(&req, &reloader) {
        return refusal;
    }
    let report = reloader.reload_all(ReloadTrigger::Admin);
    let state = reloader.state();
    let ring = state.keyring().snapshot();
    let refused = report.refused();
    let mut body = serde_json::json!({
        "status": if refused.is_empty() { "reloaded" } else { "refused" },
        "refused": refused,
        "active_bank_key_version": ring.active_version(),
        "rollout": ring.rollout().map(|r| serde_json::json!({"version": r.version, "percent": r.percent})),
        "trusted_wechat_key_versions": ring.trusted_wechat_keys().map(|k| k.version).collect::<Vec<_>>(),
    });
    body["keys"] = match &report.keys {
        Some(Err(e)) => serde_json::json!({"status": "refused", "error": e.to_string()}),
        _ => serde_json::json!({"status": "reloaded"}),
    };
    if let Some(r) = &report.tls {
        body["tls"] = match r {
            Ok(leaf) => serde_json::json!({
                "status": "reloaded", "serial": leaf.serial_hex, "not_after": leaf.not_after,
            }),
            Err(e) => serde_json::json!({
                "status": "refused", "code": e.code(), "error": e.to_string(),
                "serial": reloader.tls.as_ref().map(|t| t.served().serial_hex.clone()),
            }),
        };
    }
    if let Some(r) = &report.admin_token {
        body["admin_token"] = match r {
            Ok(changed) => serde_json::json!({"status": "reloaded", "changed": changed}),
            Err(e) => serde_json::json!({"status": "refused", "error": e.to_string()}),
        };
    }
    if refused.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Conflict().json(body)
    }
}

/// Reloads the key ring, logging and counting the result; a refused set keeps the old one.
pub fn reload_keys(state: &AppState) -> Result<(), KeyRingError> {
    reload_keys_by(state, ReloadTrigger::Call).map(|_| ())
}

fn reload_keys_by(state: &AppState, trigger: ReloadTrigger) -> Result<Arc<KeyRing>, KeyRingError> {
    match state.keyring().reload() {
        Ok(ring) => {
            state.metrics().record_keyring(&ring);
            state
                .metrics()
                .record_staged_since(&state.keyring().staged_since());
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["ok"])
                .inc();
            let rollout = ring.rollout();
            tracing::info!(
                trigger = trigger.as_str(),
                active = ring.active_version(),
                rollout_version = rollout.map(|r| r.version),
                rollout_percent = rollout.map(|r| r.percent),
                "key ring reloaded"
            );
            Ok(ring)
        }
        Err(e) => {
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["refused"])
                .inc();
            tracing::error!(
                trigger = trigger.as_str(),
                error = %e,
                "key ring reload refused; still serving the previous set"
            );
            Err(e)
        }
    }
}
