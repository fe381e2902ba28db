//! The guard of the `keys` commands that take a version out of use (`untrust-wechat`, `retire`)
//! or start signing with one (`rollout`, `activate`): they refuse, unless `--force`, a version the running
//! gateway saw traffic under in the last minutes, or a bank version whose public key was never
//! exported for WeChat. The traffic comes from the admin endpoint
//! ([`traffic`](super::traffic)); an export leaves a marker file beside the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::traffic::{KeyTraffic, VersionTraffic};

/// Which key a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// A WeChat public key (requests verify under it).
    Wechat,
    /// A bank key (responses are signed with it).
    Bank,
}

impl KeyRole {
    /// What taking a version of this role away while it still carries traffic puts at risk.
    fn what_removal_risks(self) -> &'static str {
        match self {
            KeyRole::Wechat => "untrusting it now fails the requests still signed with it",
            KeyRole::Bank => {
                "an instance that has not reloaded yet may still sign with it, and it is the \
                 rollback (`keys activate` of it) until the new key has proven itself"
            }
        }
    }

    /// `WeChat` / `bank`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            KeyRole::Wechat => "WeChat",
            KeyRole::Bank => "bank",
        }
    }
}

/// Why a guarded command was refused (each message says what `--force` would override).
#[derive(Debug, thiserror::Error)]
pub enum GuardRefusal {
    /// The version carried traffic within the window.
    #[error(
        "{} key v{version} carried traffic {ago} s ago ({count} since the gateway started), \
         within the last {window_minutes} minute(s): {}. Check the version (`keys list`), wait, \
         or pass --force",
        role.label(),
        role.what_removal_risks()
    )]
    RecentTraffic {
        /// The key's role.
        role: KeyRole,
        /// The version.
        version: u32,
        /// Seconds since its last use.
        ago: i64,
        /// Uses since the gateway started.
        count: u64,
        /// The window, minutes.
        window_minutes: u64,
    },
    /// The bank version's public key was never exported (`keys export-public`).
    #[error(
        "bank key v{version} was never exported (`pension-gateway keys export-public \
         {version}`), so WeChat cannot verify what it signs; export it, have WeChat install it, \
         then roll it out or activate it — or pass --force"
    )]
    NeverExported {
        /// The version.
        version: u32,
    },
    /// The admin endpoint is configured but did not answer, so traffic could not be checked.
    #[error(
        "cannot read the gateway's key traffic from the admin endpoint http://{addr} ({cause}); \
         is the gateway running? Pass --force to go ahead without the check"
    )]
    TrafficUnknown {
        /// The admin address.
        addr: SocketAddr,
        /// What went wrong.
        cause: TrafficFetchError,
    },
}

/// Why the traffic could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum TrafficFetchError {
    /// The admin token file could not be read (owner, mode, content).
    #[error("admin token: {0}")]
    Token(#[from] crate::keyring::KeyRingError),
    /// The connection or the request failed.
    #[error("request: {0}")]
    Request(#[source] awc::error::SendRequestError),
    /// The endpoint answered with another status.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The body was not the expected JSON.
    #[error("answer: {0}")]
    Body(#[source] awc::error::JsonPayloadError),
}

/// Asks the admin endpoint at `addr` (token in `token_file`) for the per-version traffic.
pub async fn fetch_traffic(
    addr: SocketAddr,
    token_file: &Path,
) -> Result<KeyTraffic, TrafficFetchError> {
    let token = crate::keyring::read_partner_secret(token_file)?;
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .finish();
    let mut resp = client
        .get(format!("http://{addr}/admin/keyring/traffic"))
        .bearer_auth(token.as_str())
        .send()
        .await
        .map_err(TrafficFetchError::Request)?;
    if resp.status() != 200 {
        return Err(TrafficFetchError::Status(resp.status().as_u16()));
    }
    resp.json::<KeyTraffic>()
        .await
        .map_err(TrafficFetchError::Body)
}

/// The traffic entry of `version` of `role`, if the gateway has that version loaded.
pub fn find(traffic: &KeyTraffic, role: KeyRole, version: u32) -> Option<&VersionTraffic> {
    let list = match role {
        KeyRole::Wechat => &traffic.wechat,
        KeyRole::Bank => &traffic.bank,
    };
    list.iter().find(|t| t.version == version)
}

/// Refuses when `version` of `role` was used within `window_minutes` of `traffic.now`.
pub fn check_recent(
    traffic: &KeyTraffic,
    role: KeyRole,
    version: u32,
    window_minutes: u64,
) -> Result<(), GuardRefusal> {
    let Some(t) = find(traffic, role, version) else {
        return Ok(());
    };
    let Some(last) = t.last_seen else {
        return Ok(());
    };
    let ago = traffic.now.saturating_sub(last).max(0);
    let window = i64::try_from(window_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    if ago < window {
        return Err(GuardRefusal::RecentTraffic {
            role,
            version,
            ago,
            count: t.count,
            window_minutes,
        });
    }
    Ok(())
}

/// The marker `keys export-public` leaves beside bank key `version`: `bank-v<N>.exported`.
pub fn export_marker(dir: &Path, version: u32) -> PathBuf {
    dir.join(format!("bank-v{version}.exported"))
}

/// Records that bank key `version`'s public key was exported (at `now`, unix seconds, with its
/// fingerprint), so a later `rollout` knows WeChat could have it.
pub fn mark_exported(dir: &Path, version: u32, fingerprint: &str, now: i64) -> std::io::Result<()> {
    std::fs::write(
        export_marker(dir, version),
        format!("exported_at = {now}\nfingerprint = \"{fingerprint}\"\n"),
    )
}

/// Refuses a rollout or activation of a bank `version` that was never exported.
pub fn check_exported(dir: &Path, version: u32) -> Result<(), GuardRefusal> {
    if export_marker(dir, version).is_file() {
        Ok(())
    } else {
        Err(GuardRefusal::NeverExported { version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(last_seen: Option<i64>) -> KeyTraffic {
        KeyTraffic {
            now: 10_000,
            since: 1_000,
            wechat: vec![VersionTraffic {
                version: 1,
                state: "trusted".into(),
                count: 21,
                last_seen,
            }],
            bank: Vec::new(),
        }
    }

    #[test]
    fn recent_traffic_is_refused_and_old_or_no_traffic_is_not() {
        let err = check_recent(&traffic(Some(9_990)), KeyRole::Wechat, 1, 15).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("WeChat key v1") && text.contains("10 s ago"),
            "{text}"
        );
        assert!(text.contains("--force"), "{text}");
        assert!(text.contains("fails the requests still signed"), "{text}");
        // A bank key that just signed: retiring it fails no request (it is no longer the one
        // signing here), so the message names what is really at stake.
        let mut bank = traffic(None);
        bank.bank = bank.wechat.drain(..).collect();
        bank.bank[0].last_seen = Some(9_979);
        let text = check_recent(&bank, KeyRole::Bank, 1, 15)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("bank key v1 carried traffic 21 s ago")
                && text.contains("rollback")
                && !text.contains("fails"),
            "{text}"
        );
        // Exactly at the window's edge it is old enough.
        assert!(check_recent(&traffic(Some(10_000 - 900)), KeyRole::Wechat, 1, 15).is_ok());
        assert!(check_recent(&traffic(Some(10_000 - 899)), KeyRole::Wechat, 1, 15).is_err());
        assert!(check_recent(&traffic(None), KeyRole::Wechat, 1, 15).is_ok());
        // Another version, or another role, is not this one.
        assert!(check_recent(&traffic(Some(9_990)), KeyRole::Wechat, 2, 15).is_ok());
        assert!(check_recent(&traffic(Some(9_990)), KeyRole::Bank, 1, 15).is_ok());
    }

    #[test]
    fn a_rollout_needs_the_export_marker() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_exported(dir.path(), 2),
            Err(GuardRefusal::NeverExported { version: 2 })
        ));
        mark_exported(dir.path(), 2, "ab:cd", 5).unwrap();
        assert!(check_exported(dir.path(), 2).is_ok());
        assert!(check_exported(dir.path(), 3).is_err());
    }
}
