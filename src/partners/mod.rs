//! The bank's other partner channels (docs/partner-channels.md), served by the same gateway core as
//! the WeChat channel — the same key ring (their secrets are versioned credentials in it), replay
//! guard, audit table and metrics — each with its own authenticator and envelope:
//!
//! - [`open_platform`]: WeBank-style open platform — `access_token` and `api_ticket` issuance and
//!   business calls signed with upper-case SHA-1 over the sorted values plus a ticket;
//! - [`callback`]: salted callbacks `{Plain, Signature, Timestamp, SeqNo, transName}` with
//!   `Signature = hex SHA-256(Plain + salt + Timestamp)`, both directions;
//! - [`hmac`]: sorted-parameter HMAC-SHA256 with an app token (`&fappToken=`), Base64, upper case.
//!
//! This module holds the pure parts (signing strings, codecs, codes, grant rules) with no I/O;
//! the HTTP handlers live in `http::handlers`, the stored grants in `store`, and the partner-side
//! clients in `client::partners`.

pub mod callback;
pub mod hmac;
pub mod open_platform;

use serde::{Deserialize, Serialize};

/// A partner channel; the first field of a partner credential in `keyring.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// The open platform: app secrets.
    OpenPlatform,
    /// Salted callbacks: salts.
    Callback,
    /// Sorted-parameter HMAC: app tokens (`fappToken`).
    Hmac,
}

impl Channel {
    /// The name used in the manifest, the CLI, metrics and audit rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::OpenPlatform => "open-platform",
            Channel::Callback => "callback",
            Channel::Hmac => "hmac",
        }
    }

    /// Parses a channel name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open-platform" => Some(Channel::OpenPlatform),
            "callback" => Some(Channel::Callback),
            "hmac" => Some(Channel::Hmac),
            _ => None,
        }
    }

    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::OpenPlatform, Channel::Callback, Channel::Hmac];
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Constant-time equality of two byte strings (lengths are public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
