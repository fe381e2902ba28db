//! `GET /admin/keyring/traffic` (admin listener, bearer token): per key version, how much
//! traffic this instance saw since it started and when the last — what `keys list` shows and
//! what `keys untrust-wechat`, `retire` and `rollout` check before taking a version away.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::ops::reload::Reloader;

/// One key version's traffic on this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTraffic {
    /// The key version.
    pub version: u32,
    /// Its state in the loaded ring (`trusted`; `staged`, `active`, `retiring`, `rollout`).
    pub state: String,
    /// WeChat: requests verified under it; bank: responses signed with it — since start.
    pub count: u64,
    /// Unix time of the last such request or response (`None`: none since start).
    pub last_seen: Option<i64>,
}

/// The answer of `GET /admin/keyring/traffic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTraffic {
    /// The instance's clock, unix seconds, when it answered.
    pub now: i64,
    /// Unix time this instance started counting (its start).
    pub since: i64,
    /// Trusted WeChat key versions.
    pub wechat: Vec<VersionTraffic>,
    /// Loaded bank key versions.
    pub bank: Vec<VersionTraffic>,
}

impl KeyTraffic {
    /// The traffic the `state`'s metrics counted for the versions of its loaded ring.
    pub fn of(state: &crate::state::AppState) -> Self {
        let ring = state.keyring().snapshot();
        let metrics = state.metrics();
        let wechat = ring
            .trusted_wechat_keys()
            .map(|k| {
                let (count, last_seen) = metrics.key_traffic("wechat", k.version);
                VersionTraffic {
                    version: k.version,
                    state: "trusted".into(),
                    count,
                    last_seen,
                }
            })
            .collect();
        let bank = ring
            .bank_keys()
            .map(|k| {
                let (count, last_seen) = metrics.key_traffic("bank", k.version);
                let state = if ring.rollout().is_some_and(|r| r.version == k.version) {
                    "rollout".to_string()
                } else {
                    format!("{:?}", k.state).to_lowercase()
                };
                VersionTraffic {
                    version: k.version,
                    state,
                    count,
                    last_seen,
                }
            })
            .collect();
        Self {
            now: state.clock().now(),
            since: metrics.started_at(),
            wechat,
            bank,
        }
    }
}

/// Per-version traffic (401 without the admin bearer token).
pub async fn traffic(req: HttpRequest, reloader: Data<Reloader>) -> HttpResponse {
    if let Some(refusal) = super::require_admin(&req, &reloader) {
        return refusal;
    }
    HttpResponse::Ok().json(KeyTraffic::of(reloader.state()))
}
