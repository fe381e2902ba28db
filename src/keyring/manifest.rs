//! `keyring.toml`: the one manifest naming every key version and its lifecycle state.
//!
//! ```toml
//! demo = false                 # true only for keys/demo; refused outside demo mode
//! [[bank]]                     # the bank's signing key pairs
//! version = 1
//! state = "active"             # staged | active | retiring | retired
//! private_key = "bank-v1.key"  # PKCS#8 PEM or hex, file mode 0600
//! [[wechat]]                   # WeChat's verifying public keys
//! version = 1
//! state = "trusted"            # trusted | untrusted
//! public_key = "wechat-v1.pub" # hex 04‖x‖y or SPKI PEM
//! [rollout]                    # optional gray rollout of a staged bank key
//! version = 2
//! percent = 10
//! [[partner]]                  # a partner channel credential (docs/partner-channels.md)
//! channel = "hmac"             # open-platform (app secret) | callback (salt) | hmac (fappToken)
//! id = "fapp0001"              # app_id / partner id / fappid
//! version = 1
//! state = "active"             # active | accepted | retired
//! secret = "hmac-fapp0001-v1.secret"  # the secret text, file mode 0600
//! ```

use serde::{Deserialize, Serialize};

use super::KeyRingError;
use crate::partners::Channel;

/// Lifecycle of a bank signing key (docs/protocol.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BankKeyState {
    /// Generated and exported to WeChat; not signing yet (except a rollout share).
    Staged,
    /// Signs responses.
    Active,
    /// Kept loadable for rollback; does not sign.
    Retiring,
    /// Kept in the manifest for history only; not loaded.
    Retired,
}

/// Whether the gateway accepts signatures made with a WeChat key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatKeyState {
    /// Signatures verify against this key.
    Trusted,
    /// Known but refused.
    Untrusted,
}

/// One bank key entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankKeyEntry {
    /// Version number, ≥ 1, as sent in `WxIns-Version`.
    pub version: u32,
    /// Lifecycle state.
    pub state: BankKeyState,
    /// File name of the private key, relative to the key directory.
    pub private_key: String,
}

/// One WeChat public key entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatKeyEntry {
    /// Version number WeChat names in `Authorization`.
    pub version: u32,
    /// Trusted or not.
    pub state: WechatKeyState,
    /// File name of the public key, relative to the key directory.
    pub public_key: String,
}

/// A gray rollout: `percent` of responses are signed by staged bank key `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The staged version being rolled out.
    pub version: u32,
    /// Share of responses it signs, 0–100.
    pub percent: u8,
}

/// Lifecycle of a partner credential version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialState {
    /// Signs what the gateway sends and verifies what it receives; exactly one per partner.
    Active,
    /// Still verifies what the partner sends (during a switch-over); never signs. Not allowed
    /// for open-platform app secrets: changing the secret invalidates everything at once.
    Accepted,
    /// Kept for history only; not loaded.
    Retired,
}

/// One partner credential version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerEntry {
    /// The channel the credential belongs to.
    pub channel: Channel,
    /// The partner's id on that channel: `app_id`, callback partner id, or `fappid`.
    pub id: String,
    /// Version number, ≥ 1.
    pub version: u32,
    /// Lifecycle state.
    pub state: CredentialState,
    /// File holding the secret text, relative to the key directory, mode 0600.
    pub secret: String,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Demo keys (published in the repository): refused unless the server runs in demo mode.
    #[serde(default)]
    pub demo: bool,
    /// Bank signing keys.
    #[serde(default)]
    pub bank: Vec<BankKeyEntry>,
    /// WeChat verifying keys.
    #[serde(default)]
    pub wechat: Vec<WechatKeyEntry>,
    /// Optional gray rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Partner channel credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partner: Vec<PartnerEntry>,
}

impl Manifest {
    /// Parses manifest text.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        toml::from_str(text)
            .map_err(|e| KeyRingError::Invalid(format!("keyring.toml is invalid: {}", e.message())))
    }

    /// Serialises the manifest.
    pub fn to_toml(&self) -> Result<String, KeyRingError> {
        toml::to_string_pretty(self)
            .map_err(|e| KeyRingError::Invalid(format!("cannot write keyring.toml: {e}")))
    }

    /// Structural rules that hold for every manifest, before any file is read: unique versions
    /// ≥ 1, exactly one active bank key, at least one trusted WeChat key, a rollout only of a
    /// staged key with 0–100 %.
    pub fn check(&self) -> Result<(), KeyRingError> {
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.bank {
            if b.version == 0 || !seen.insert(b.version) {
                return Err(KeyRingError::Invalid(format!(
                    "bank key version {} is zero or repeated",
                    b.version
                )));
            }
            check_file_name(&b.private_key)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &self.wechat {
            if w.version == 0 || !seen.insert(w.version) {
                return Err(KeyRingError::Invalid(format!(
                    "WeChat key version {} is zero or repeated",
                    w.version
                )));
            }
            check_file_name(&w.public_key)?;
        }
        let active = self
            .bank
            .iter()
            .filter(|b| b.state == BankKeyState::Active)
            .count();
        if active != 1 {
            return Err(KeyRingError::Invalid(format!(
                "exactly one bank key must be active, found {active}"
            )));
        }
        if !self
            .wechat
            .iter()
            .any(|w| w.state == WechatKeyState::Trusted)
        {
            return Err(KeyRingError::Invalid(
                "at least one WeChat key must be trusted".into(),
            ));
        }
        self.check_partners()?;
        if let Some(r) = self.rollout {
            if r.percent > 100 {
                return Err(KeyRingError::Invalid(format!(
                    "rollout percent {} is above 100",
                    r.percent
                )));
            }
            match self.bank.iter().find(|b| b.version == r.version) {
                Some(b) if b.state == BankKeyState::Staged => {}
                Some(_) => {
                    return Err(KeyRingError::Invalid(format!(
                        "rollout version {} must be a staged bank key",
                        r.version
                    )))
                }
                None => {
                    return Err(KeyRingError::Invalid(format!(
                        "rollout version {} is not a bank key",
                        r.version
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// Partner rules: ids of 1–64 letters, digits, `_ . -`; versions unique and ≥ 1 per partner;
    /// exactly one active version per partner that has any loaded version; no `accepted`
    /// open-platform secrets.
    fn check_partners(&self) -> Result<(), KeyRingError> {
        use std::collections::{BTreeMap, BTreeSet};
        let mut versions: BTreeMap<(Channel, &str), BTreeSet<u32>> = BTreeMap::new();
        let mut active: BTreeMap<(Channel, &str), usize> = BTreeMap::new();
        for p in &self.partner {
            let name = format!("{} partner `{}`", p.channel, p.id);
            if p.id.is_empty()
                || p.id.len() > 64
                || !p
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                return Err(KeyRingError::Invalid(format!(
                    "{name}: ids are 1–64 letters, digits, `_`, `.` or `-`"
                )));
            }
            check_file_name(&p.secret)?;
            let key = (p.channel, p.id.as_str());
            if p.version == 0 || !versions.entry(key).or_default().insert(p.version) {
                return Err(KeyRingError::Invalid(format!(
                    "{name}: version {} is zero or repeated",
                    p.version
                )));
            }
            match p.state {
                CredentialState::Active => *active.entry(key).or_default() += 1,
                CredentialState::Accepted if p.channel == Channel::OpenPlatform => {
                    return Err(KeyRingError::Invalid(format!(
                        "{name}: an open-platform secret cannot be `accepted` — changing the \
                         secret invalidates the old one with its tokens and tickets"
                    )))
                }
                CredentialState::Accepted => {
                    active.entry(key).or_default();
                }
                CredentialState::Retired => {}
            }
        }
        for ((channel, id), n) in active {
            if n != 1 {
                return Err(KeyRingError::Invalid(format!(
                    "{channel} partner `{id}` must have exactly one active version, found {n}"
                )));
            }
        }
        Ok(())
    }
}

/// Key files live in the key directory itself: no separators, no `..`, no hidden files.
fn check_file_name(name: &str) -> Result<(), KeyRingError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(KeyRingError::Invalid(format!(
            "key file name `{name}` must be a plain file name inside the key directory"
        )));
    }
    Ok(())
}
