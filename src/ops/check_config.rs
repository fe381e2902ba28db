//! `serve --check-config`: everything `serve` would refuse at start-up that can be known
//! without binding a socket or connecting to a database — the settings (already validated by
//! the loader), the key ring and every file it names, the admin token file, the TLS certificate
//! pair, the database and Redis URLs — answered with one summary line. A deployment runs it before a restart
//! (`ExecStartPre` or a configuration-management hook), and CI runs it on the example
//! configuration.

use std::fmt::Write as _;

use crate::config::{ReplayStoreKind, Settings};
use crate::keyring::{load_keyring, BankKeyState};
use crate::ops::AdminToken;
use crate::server::{signing_engine, StartError};

/// Checks `settings` and the files they name as `serve` would read them, without binding,
/// connecting or writing anything. Returns a one-line summary (no secrets) on success.
pub fn check_config(settings: &Settings) -> Result<String, StartError> {
    let mut summary = String::from("configuration ok:");
    let s = &settings.server;
    let _ = write!(summary, " public {}", s.listen);
    match settings.ops_listen()? {
        Some(a) => {
            let _ = write!(summary, ", ops {a}");
        }
        None => summary.push_str(", ops off"),
    }

    // The admin listener runs only with its token file, which must obey the secret-file rules.
    match (settings.admin_listen()?, &s.admin_token_file) {
        (Some(addr), Some(file)) => {
            AdminToken::from_file(file)?;
            let _ = write!(summary, ", admin {addr} (token file ok)");
        }
        _ => summary.push_str(", admin off"),
    }

    let (backend, shown) = crate::store::check_url(&settings.database.url)?;
    sqlite_file_missing(settings)?;
    let _ = write!(summary, ", database {backend} {shown}");

    match settings.replay.store {
        ReplayStoreKind::Redis => {
            // The URL(s) and the CA file as `serve` reads them; nothing is dialled.
            crate::server::redis_link(&settings.replay)?;
            let _ = write!(
                summary,
                ", replay redis {}",
                crate::config::redact_url(&settings.replay.redis_url)
            );
        }
        ReplayStoreKind::Memory => summary.push_str(", replay memory (one instance only)"),
    }
    // Whether the per-identity limit is per instance or for the fleet changes what it means.
    let _ = write!(
        summary,
        ", limits.scope {} ({}/min per ID number)",
        settings.limits.scope, settings.limits.per_identity_per_minute
    );

    // The certificate pair under the same checks as a start or a reload: parses, the key
    // matches, valid now, the client CA readable.
    match crate::tls::server::ServerTls::check_settings(&settings.tls)? {
        Some((_, None)) => summary.push_str(", tls on (certificate and key ok)"),
        Some((_, Some(policy))) => {
            let _ = write!(
                summary,
                ", tls on (certificate, key and client CA ok; {} CRL{}, {})",
                policy.crls,
                if policy.crls == 1 { "" } else { "s" },
                match policy.pins {
                    Some(n) => format!("{n} client pin{}", if n == 1 { "" } else { "s" }),
                    None => "no client pins".into(),
                }
            );
        }
        None => summary.push_str(", tls off"),
    }

    if settings.server.demo {
        // The demo prepares (and may write) its own published key ring at start; nothing to
        // check that a deployment would care about.
        summary.push_str(", demo mode (key ring not checked)");
        return Ok(summary);
    }
    let engine = signing_engine(&settings.keys)?;
    crate::keyring::admin::require_manifest(&settings.keys.dir, "keys.dir")?;
    let ring = load_keyring(
        &settings.keys.dir,
        engine,
        settings.wechat.signer_id.as_bytes(),
        false,
    )?;
    let staged: Vec<String> = ring
        .bank_keys()
        .filter(|k| k.state == BankKeyState::Staged)
        .map(|k| format!("v{}", k.version))
        .collect();
    let trusted: Vec<String> = ring
        .trusted_wechat_keys()
        .map(|k| format!("v{}", k.version))
        .collect();
    let _ = write!(
        summary,
        ", key ring {} (engine {engine}, bank v{} active{}, WeChat {} trusted)",
        settings.keys.dir.display(),
        ring.active_version(),
        if staged.is_empty() {
            String::new()
        } else {
            format!(", {} staged", staged.join(" "))
        },
        trusted.join(" "),
    );
    Ok(summary)
}

/// `serve` refuses a SQLite file that does not exist unless `database.create_if_missing`.
fn sqlite_file_missing(settings: &Settings) -> Result<(), StartError> {
    let url = settings.database.url.trim();
    let Some(path) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    if path == ":memory:" || settings.database.create_if_missing {
        return Ok(());
    }
    if std::path::Path::new(path).is_file() {
        Ok(())
    } else {
        Err(StartError::SqliteFileMissing {
            path: path.to_string(),
        })
    }
}
