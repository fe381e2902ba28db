//! Versioned key material (docs/protocol.md §11, docs/key-rotation.md): the bank's signing keys and
//! WeChat's verifying keys, loaded from a key directory as one validated set and swapped
//! atomically.
//!
//! Following rustls' `TicketRotator`: a new set is built completely outside the swap; if any
//! part fails the old set keeps serving. Requests hold an `Arc` of the snapshot they started
//! with, so a swap never changes keys under a request in flight.

pub mod admin;
pub mod demo;
pub mod device;
pub mod file_rules;
mod load;
mod manifest;
pub mod published;
pub mod signer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use file_rules::{
    open_checked, read_key_text, FileRule, KeyDirHandle, KeyFileKind, MAX_KEY_FILE_BYTES,
};
pub use load::{
    build_keyring, check_partner_secret, load_keyring, read_partner_secret, KeyRingError,
    ModuleFailure, SecretRule, MAX_PARTNER_SECRET, MIN_PARTNER_SECRET,
};
pub use manifest::{
    Backend, BankKeyEntry, BankKeyState, CredentialState, Manifest, ModuleEntry, ModuleKey,
    PartnerEntry, Rollout, WechatKeyEntry, WechatKeyState,
};
pub use signer::{BankSignError, BankSigner, ModuleSignError, ModuleSigner};

use crate::crypto::{PreparedVerifier, PublicKey};
use crate::partners::Channel;

/// One version of a partner secret (app secret, salt, app token). Zeroized on drop; `Debug`
/// shows the version only.
pub struct PartnerSecret {
    /// Version in the manifest.
    pub version: u32,
    value: zeroize::Zeroizing<String>,
}

impl PartnerSecret {
    /// Wraps a secret text.
    pub fn new(version: u32, value: String) -> Self {
        Self {
            version,
            value: zeroize::Zeroizing::new(value),
        }
    }
    /// The secret text. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for PartnerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartnerSecret(v{}, ***)", self.version)
    }
}

/// The loaded credential of one partner: the active version and any still accepted.
#[derive(Debug)]
pub struct PartnerCredential {
    /// Signs and verifies.
    pub active: PartnerSecret,
    /// Verify only (newest first).
    pub accepted: Vec<PartnerSecret>,
}

impl PartnerCredential {
    /// Every secret that verifies what the partner sends, active first.
    pub fn verifying(&self) -> impl Iterator<Item = &PartnerSecret> {
        std::iter::once(&self.active).chain(self.accepted.iter())
    }
}

/// A bank key loaded for signing.
pub struct BankKey {
    /// Version sent in `WxIns-Version`.
    pub version: u32,
    /// Lifecycle state.
    pub state: BankKeyState,
    /// Who signs: the engine with a key file, or a module.
    pub signer: BankSigner,
}

/// A WeChat key loaded for verifying.
pub struct WechatKey {
    /// Version WeChat names.
    pub version: u32,
    /// Prepared verifier.
    pub verifier: Box<dyn PreparedVerifier>,
}

/// One immutable, validated key set.
pub struct KeyRing {
    bank: BTreeMap<u32, BankKey>,
    active: u32,
    rollout: Option<Rollout>,
    trusted_wechat: BTreeMap<u32, WechatKey>,
    partners: BTreeMap<(Channel, String), PartnerCredential>,
    demo: bool,
    source: PathBuf,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("bank_versions", &self.bank.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .field("rollout", &self.rollout)
            .field(
                "trusted_wechat",
                &self.trusted_wechat.keys().collect::<Vec<_>>(),
            )
            .field("partners", &self.partners.keys().collect::<Vec<_>>())
            .field("demo", &self.demo)
            .finish()
    }
}

impl KeyRing {
    /// Assembles a key ring from loaded parts; `load_keyring` is the usual way in.
    pub(crate) fn new(
        bank: BTreeMap<u32, BankKey>,
        rollout: Option<Rollout>,
        trusted_wechat: BTreeMap<u32, WechatKey>,
        partners: BTreeMap<(Channel, String), PartnerCredential>,
        demo: bool,
        source: PathBuf,
    ) -> Result<Self, KeyRingError> {
        let active = bank
            .values()
            .find(|k| k.state == BankKeyState::Active)
            .map(|k| k.version)
            .ok_or_else(|| KeyRingError::Invalid("no active bank key".into()))?;
        if trusted_wechat.is_empty() {
            return Err(KeyRingError::Invalid("no trusted WeChat key".into()));
        }
        Ok(Self {
            bank,
            active,
            rollout,
            trusted_wechat,
            partners,
            demo,
            source,
        })
    }

    /// The bank key that signs a response. `pick` is any uniformly distributed number (e.g.
    /// drawn per response); during a rollout, `pick % 100 < percent` selects the new version.
    pub fn response_signer(&self, pick: u64) -> Option<&BankKey> {
        if let Some(r) = self.rollout {
            if pick % 100 < u64::from(r.percent) {
                if let Some(k) = self.bank.get(&r.version) {
                    return Some(k);
                }
            }
        }
        self.bank.get(&self.active)
    }

    /// The active bank key version.
    pub fn active_version(&self) -> u32 {
        self.active
    }

    /// The bank key of `version` if loaded (staged, active or retiring).
    pub fn bank_key(&self, version: u32) -> Option<&BankKey> {
        self.bank.get(&version)
    }

    /// All loaded bank keys.
    pub fn bank_keys(&self) -> impl Iterator<Item = &BankKey> {
        self.bank.values()
    }

    /// The trusted WeChat key of `version`, or `None` if unknown or untrusted.
    pub fn wechat_key(&self, version: u32) -> Option<&WechatKey> {
        self.trusted_wechat.get(&version)
    }

    /// Every trusted WeChat key, newest version first (the likeliest match when no hint is given).
    pub fn trusted_wechat_keys(&self) -> impl Iterator<Item = &WechatKey> {
        self.trusted_wechat.values().rev()
    }

    /// The credential of partner `id` on `channel`, if configured.
    pub fn partner(&self, channel: Channel, id: &str) -> Option<&PartnerCredential> {
        self.partners.get(&(channel, id.to_owned()))
    }

    /// Every configured partner id of `channel`.
    pub fn partner_ids(&self, channel: Channel) -> impl Iterator<Item = &str> {
        self.partners
            .keys()
            .filter(move |(c, _)| *c == channel)
            .map(|(_, id)| id.as_str())
    }

    /// The current gray rollout, if any.
    pub fn rollout(&self) -> Option<Rollout> {
        self.rollout
    }

    /// Whether these are the published demo keys.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// The directory the set was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The modules behind loaded bank versions (for readiness).
    pub fn modules(&self) -> impl Iterator<Item = &Arc<ModuleSigner>> {
        self.bank.values().filter_map(|k| k.signer.module())
    }

    /// The public key of bank version `version`, for exporting to WeChat or checking responses.
    pub fn bank_public_key(&self, version: u32) -> Option<PublicKey> {
        self.bank.get(&version).map(|k| *k.signer.public_key())
    }
}

/// The live key ring: readers take a snapshot, reloads swap in a fully validated new set.
pub struct KeyRingHandle {
    current: ArcSwap<KeyRing>,
    loader: Box<dyn Fn() -> Result<KeyRing, KeyRingError> + Send + Sync>,
    /// Staged bank key version → unix time it was first seen staged (see [`Self::staged_since`]).
    staged_since: std::sync::Mutex<BTreeMap<u32, i64>>,
}

impl KeyRingHandle {
    /// Wraps a loaded ring and the function that reloads it.
    pub fn new(
        initial: KeyRing,
        loader: Box<dyn Fn() -> Result<KeyRing, KeyRingError> + Send + Sync>,
    ) -> Self {
        let handle = Self {
            current: ArcSwap::from_pointee(initial),
            loader,
            staged_since: std::sync::Mutex::new(BTreeMap::new()),
        };
        handle.track_staged(&handle.snapshot());
        handle
    }

    /// The snapshot a request should use from start to finish.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.current.load_full()
    }

    /// Rebuilds the set from disk. On success it replaces the live set; on failure the live
    /// set is untouched and the error is returned for logs and metrics.
    pub fn reload(&self) -> Result<Arc<KeyRing>, KeyRingError> {
        let fresh = Arc::new((self.loader)()?);
        self.current.store(Arc::clone(&fresh));
        self.track_staged(&fresh);
        Ok(fresh)
    }

    /// Each staged bank key version and the unix time it was first seen staged: by this process
    /// (at start-up or a reload), or earlier when the manifest was last written earlier — a
    /// staged key is in the manifest since at least that moment, so a restart does not make an
    /// old staged key look new. A version leaves the map when it stops being staged (activated,
    /// retired, removed). Feeds `gateway_key_staged_since_seconds` (rotation left half-done).
    pub fn staged_since(&self) -> BTreeMap<u32, i64> {
        self.staged_since
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn track_staged(&self, ring: &KeyRing) {
        let staged: Vec<u32> = ring
            .bank_keys()
            .filter(|k| k.state == BankKeyState::Staged)
            .map(|k| k.version)
            .collect();
        let mut map = self
            .staged_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.retain(|v, _| staged.contains(v));
        if staged.iter().all(|v| map.contains_key(v)) {
            return;
        }
        let now = unix_now();
        // Only the manifest's time stamp is read (no content): it bounds when the key was staged.
        let manifest_written = std::fs::metadata(ring.source().join("keyring.toml"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        let since = manifest_written.map_or(now, |m| m.min(now));
        for v in staged {
            map.entry(v).or_insert(since);
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}
