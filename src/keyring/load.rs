//! Reading a key directory into a [`KeyRing`], refusing anything unsafe or inconsistent.

use std::collections::BTreeMap;
use std::path::Path;

use super::file_rules::{read_key_text, FileRule, KeyFileKind};
use super::manifest::{BankKeyState, CredentialState, Manifest, WechatKeyState};
use super::{BankKey, KeyRing, PartnerCredential, PartnerSecret, WechatKey};
use crate::crypto::{EngineKind, PublicKey, SecretKey};

/// Why a key set was refused. Messages name files and versions, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        cause: String,
    },
    /// A private key or partner secret file is not mode 0600 or 0400 (the file's path).
    #[error(
        "{0}: a private key or partner secret must have mode 0600 or 0400, no group or other \
         access (run `chmod 600 {0}`)"
    )]
    Permissions(String),
    /// A key-ring file breaks a file rule (link, type, owner, mode, size).
    #[error("{path}: {rule}")]
    File {
        /// The file.
        path: String,
        /// The rule it breaks.
        rule: FileRule,
    },
    /// The set breaks a rule (manifest, key material, demo keys outside demo mode).
    #[error("key set refused: {0}")]
    Invalid(String),
}

/// Loads and validates the key set in `dir` (its `keyring.toml` and the files it names).
/// `demo_mode` must be true to accept a manifest marked `demo = true`.
pub fn load_keyring(
    dir: &Path,
    engine: EngineKind,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<KeyRing, KeyRingError> {
    let text = read_key_text(&dir.join("keyring.toml"), KeyFileKind::Manifest)?;
    let manifest = Manifest::parse(&text)?;
    build_keyring(dir, &manifest, engine, signer_id, demo_mode)
}

/// Builds a key ring from `manifest` and the key files in `dir`: the full validation, used both
/// by loading and by every `keys` command before it writes anything.
pub fn build_keyring(
    dir: &Path,
    manifest: &Manifest,
    engine: EngineKind,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<KeyRing, KeyRingError> {
    manifest.check()?;
    if manifest.demo && !demo_mode {
        return Err(KeyRingError::Invalid(format!(
            "{} holds the published demo keys; they are refused unless the server runs in demo mode",
            dir.display()
        )));
    }
    let eng = engine.engine();
    let mut bank = BTreeMap::new();
    for entry in &manifest.bank {
        if entry.state == BankKeyState::Retired {
            continue;
        }
        let path = dir.join(&entry.private_key);
        let text = read_key_text(&path, KeyFileKind::Secret)?;
        let sk = SecretKey::parse(&text).map_err(|e| {
            KeyRingError::Invalid(format!(
                "bank key v{} ({}): {e}",
                entry.version,
                path.display()
            ))
        })?;
        let signer = eng
            .signer(&sk, signer_id)
            .map_err(|e| KeyRingError::Invalid(format!("bank key v{}: {e}", entry.version)))?;
        bank.insert(
            entry.version,
            BankKey {
                version: entry.version,
                state: entry.state,
                signer,
            },
        );
    }
    let mut trusted = BTreeMap::new();
    for entry in manifest
        .wechat
        .iter()
        .filter(|w| w.state == WechatKeyState::Trusted)
    {
        let path = dir.join(&entry.public_key);
        let text = read_key_text(&path, KeyFileKind::PublicKey)?;
        let pk = PublicKey::parse(&text).map_err(|e| {
            KeyRingError::Invalid(format!(
                "WeChat key v{} ({}): {e}",
                entry.version,
                path.display()
            ))
        })?;
        let verifier = eng
            .verifier(&pk, signer_id)
            .map_err(|e| KeyRingError::Invalid(format!("WeChat key v{}: {e}", entry.version)))?;
        trusted.insert(
            entry.version,
            WechatKey {
                version: entry.version,
                verifier,
            },
        );
    }
    let partners = load_partners(dir, manifest)?;
    KeyRing::new(
        bank,
        manifest.rollout,
        trusted,
        partners,
        manifest.demo,
        dir.to_path_buf(),
    )
}

/// Longest partner secret accepted, bytes.
pub const MAX_PARTNER_SECRET: usize = 256;

/// Reads a partner secret file (the key-ring file rules, mode 0600 or 0400): one line of
/// 1–256 visible ASCII characters.
pub fn read_partner_secret(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyRingError> {
    let text = read_key_text(path, KeyFileKind::Secret)?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty()
        || value.len() > MAX_PARTNER_SECRET
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(KeyRingError::Invalid(format!(
            "{}: a partner secret is one line of 1–{MAX_PARTNER_SECRET} visible ASCII characters",
            path.display()
        )));
    }
    Ok(zeroize::Zeroizing::new(value.to_owned()))
}

fn load_partners(
    dir: &Path,
    manifest: &Manifest,
) -> Result<BTreeMap<(crate::partners::Channel, String), PartnerCredential>, KeyRingError> {
    let mut active = BTreeMap::new();
    let mut accepted: BTreeMap<_, Vec<PartnerSecret>> = BTreeMap::new();
    for p in manifest
        .partner
        .iter()
        .filter(|p| p.state != CredentialState::Retired)
    {
        let value = read_partner_secret(&dir.join(&p.secret))?;
        let secret = PartnerSecret::new(p.version, value.to_string());
        let key = (p.channel, p.id.clone());
        if p.state == CredentialState::Active {
            active.insert(key, secret);
        } else {
            accepted.entry(key).or_default().push(secret);
        }
    }
    let mut out = BTreeMap::new();
    for (key, secret) in active {
        let mut acc = accepted.remove(&key).unwrap_or_default();
        acc.sort_by_key(|s| std::cmp::Reverse(s.version));
        out.insert(
            key,
            PartnerCredential {
                active: secret,
                accepted: acc,
            },
        );
    }
    Ok(out)
}
