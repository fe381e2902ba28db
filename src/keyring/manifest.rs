//! `keyring.toml`: the one manifest naming every key version and its lifecycle state.
//!
//! ```toml
//! demo = false                 # true only for keys/demo; refused outside demo mode
//! [[bank]]                     # the bank's signing key pairs
//! version = 1
//! state = "active"             # staged | active | retiring | retired
//! private_key = "bank-v1.key"  # PKCS#8 PEM or hex, file mode 0600
//! [[bank]]                     # a bank key kept inside a cryptographic module (docs/hsm.md)
//! version = 2
//! state = "staged"
//! backend = "sdf"              # file (the default) | sdf | pkcs11
//! module = "hsm1"              # the [[module]] below
//! key_index = 1                # the key's index in the module
//! public_key = "bank-v2.pub"   # the public key recorded when the version was added
//! [[module]]                   # a GM/T 0018 (SDF) module
//! name = "hsm1"
//! library = "/opt/vendor/lib/libsdf.so"
//! password_file = "hsm1.pass"  # the key access password, mode 0600 (relative: in this directory)
//! sessions = 4                 # sessions kept open = signatures in flight at most
//! timeout_ms = 2000            # one signature's deadline, queueing included
//! [module.profile]             # the vendor profile (default: the standard's layouts)
//! ecc_field_len = 64
//! [[bank]]                     # a bank key kept in a PKCS#11 token
//! version = 3
//! state = "staged"
//! backend = "pkcs11"
//! module = "token1"
//! key_label = "bank-sign-3"    # CKA_LABEL, or key_id = "a101" (CKA_ID, hex)
//! public_key = "bank-v3.pub"
//! [[module]]                   # a PKCS#11 token
//! name = "token1"
//! backend = "pkcs11"
//! library = "/opt/vendor/lib/libp11.so"
//! pin_file = "token1.pin"      # the user PIN, mode 0600
//! token_label = "bank-signing" # or token_serial
//! [module.pkcs11_profile]      # SM2 mechanism code and input (default 0x80020200, digest)
//! mechanism = 0x80020200
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

/// Where a bank key version's private key lives and signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A 0600 file in the key directory, signed with in the gateway's memory.
    #[default]
    File,
    /// Inside a GM/T 0018 (SDF) cryptographic module; the gateway sends it 32-byte digests.
    Sdf,
    /// Inside a PKCS#11 token; the gateway sends it the digest (or the message, per the
    /// vendor profile).
    Pkcs11,
}

impl Backend {
    /// The name used in the manifest, metrics and errors.
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Sdf => "sdf",
            Backend::Pkcs11 => "pkcs11",
        }
    }
}

/// One bank key entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankKeyEntry {
    /// Version number, ≥ 1, as sent in `WxIns-Version`.
    pub version: u32,
    /// Lifecycle state.
    pub state: BankKeyState,
    /// Where the private key lives.
    #[serde(default, skip_serializing_if = "is_file_backend")]
    pub backend: Backend,
    /// File name of the private key, relative to the key directory (`file` backend only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// Name of the `[[module]]` holding the key (module backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The key's index inside the module (`sdf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_index: Option<u32>,
    /// The key's `CKA_LABEL` on the token (`pkcs11`; this or `key_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// The key's `CKA_ID` on the token, hex (`pkcs11`; this or `key_label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// File name of the public key recorded when the version was added (module backends):
    /// the module's exported key must equal it at every load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

fn is_file_backend(b: &Backend) -> bool {
    *b == Backend::File
}

impl BankKeyEntry {
    /// A version whose private key is the file `private_key` in the key directory.
    pub fn file(version: u32, state: BankKeyState, private_key: String) -> Self {
        Self {
            version,
            state,
            backend: Backend::File,
            private_key,
            module: None,
            key_index: None,
            key_label: None,
            key_id: None,
            public_key: None,
        }
    }

    /// A version kept at `key_index` inside module `module`, its public key recorded in the file
    /// `public_key`.
    pub fn in_module(
        version: u32,
        state: BankKeyState,
        backend: Backend,
        module: String,
        key_index: u32,
        public_key: String,
    ) -> Self {
        Self::module_key(
            version,
            state,
            backend,
            module,
            &ModuleKey::Index(key_index),
            public_key,
        )
    }

    /// A version kept as `key` inside module `module` (an index for `sdf`, a label or id for
    /// `pkcs11`), its public key recorded in the file `public_key`.
    pub fn module_key(
        version: u32,
        state: BankKeyState,
        backend: Backend,
        module: String,
        key: &ModuleKey,
        public_key: String,
    ) -> Self {
        let (key_index, key_label, key_id) = match key {
            ModuleKey::Index(i) => (Some(*i), None, None),
            ModuleKey::Label(l) => (None, Some(l.clone()), None),
            ModuleKey::Id(id) => (None, None, Some(hex::encode(id))),
        };
        Self {
            version,
            state,
            backend,
            private_key: String::new(),
            module: Some(module),
            key_index,
            key_label,
            key_id,
            public_key: Some(public_key),
        }
    }

    /// Where the key is inside its module, when the entry names it (module backends).
    pub fn module_key_ref(&self) -> Option<ModuleKey> {
        match (self.key_index, &self.key_label, &self.key_id) {
            (Some(i), None, None) => Some(ModuleKey::Index(i)),
            (None, Some(l), None) => Some(ModuleKey::Label(l.clone())),
            (None, None, Some(id)) => hex::decode(id).ok().map(ModuleKey::Id),
            _ => None,
        }
    }
}

/// Where a key is inside its module: an SDF key index, or a PKCS#11 `CKA_LABEL` or `CKA_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleKey {
    /// The key's index (`sdf`).
    Index(u32),
    /// `CKA_LABEL` (`pkcs11`).
    Label(String),
    /// `CKA_ID` (`pkcs11`).
    Id(Vec<u8>),
}

impl std::fmt::Display for ModuleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleKey::Index(i) => write!(f, "key index {i}"),
            ModuleKey::Label(l) => write!(f, "key CKA_LABEL `{l}`"),
            ModuleKey::Id(id) => write!(f, "key CKA_ID {}", hex::encode(id)),
        }
    }
}

/// A cryptographic module the bank keys of module backends live in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleEntry {
    /// The name bank entries refer to.
    pub name: String,
    /// The kind of module (`sdf`).
    #[serde(default = "sdf_backend")]
    pub backend: Backend,
    /// Absolute path of the vendor's shared library.
    pub library: std::path::PathBuf,
    /// The password file (SDF: private-key access right; PKCS#11: the user PIN, also spelt
    /// `pin_file`): a plain name inside the key directory or an absolute path; mode 0600, owned
    /// by the gateway's user.
    #[serde(alias = "pin_file")]
    pub password_file: std::path::PathBuf,
    /// The SDF vendor profile (struct layouts, algorithm identifier); the standard's by default.
    #[serde(default, skip_serializing_if = "is_standard_profile")]
    pub profile: sdf::Profile,
    /// The PKCS#11 token's label (`pkcs11`; this or `token_serial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// The PKCS#11 token's serial number (`pkcs11`; this or `token_label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_serial: Option<String>,
    /// The PKCS#11 vendor profile (SM2 mechanism code, digest or message input); the
    /// documented default when absent (docs/hsm.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_profile: Option<pkcs11::Profile>,
    /// Sessions kept open, i.e. signatures in flight at most (1–256).
    #[serde(default = "default_sessions")]
    pub sessions: u16,
    /// Deadline of one signature, waiting for a session included, milliseconds (1–60000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn is_standard_profile(p: &sdf::Profile) -> bool {
    *p == sdf::Profile::standard()
}

impl ModuleEntry {
    /// An SDF module with the standard profile.
    pub fn sdf(
        name: String,
        library: std::path::PathBuf,
        password_file: std::path::PathBuf,
        sessions: u16,
        timeout_ms: u64,
    ) -> Self {
        Self {
            name,
            backend: Backend::Sdf,
            library,
            password_file,
            profile: sdf::Profile::default(),
            token_label: None,
            token_serial: None,
            pkcs11_profile: None,
            sessions,
            timeout_ms,
        }
    }

    /// A PKCS#11 token chosen by `token`, the default vendor profile.
    pub fn pkcs11(
        name: String,
        library: std::path::PathBuf,
        pin_file: std::path::PathBuf,
        token: &pkcs11::TokenSelector,
        sessions: u16,
        timeout_ms: u64,
    ) -> Self {
        let (token_label, token_serial) = match token {
            pkcs11::TokenSelector::Label(l) => (Some(l.clone()), None),
            pkcs11::TokenSelector::Serial(s) => (None, Some(s.clone())),
        };
        Self {
            backend: Backend::Pkcs11,
            token_label,
            token_serial,
            ..Self::sdf(name, library, pin_file, sessions, timeout_ms)
        }
    }

    /// The token a `pkcs11` module names (label or serial).
    pub fn token(&self) -> Option<pkcs11::TokenSelector> {
        match (&self.token_label, &self.token_serial) {
            (Some(l), None) => Some(pkcs11::TokenSelector::Label(l.clone())),
            (None, Some(s)) => Some(pkcs11::TokenSelector::Serial(s.clone())),
            _ => None,
        }
    }
}

fn sdf_backend() -> Backend {
    Backend::Sdf
}

fn default_sessions() -> u16 {
    4
}

fn default_timeout_ms() -> u64 {
    2000
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
    /// Cryptographic modules holding bank keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module: Vec<ModuleEntry>,
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
        self.check_modules()?;
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.bank {
            if b.version == 0 || !seen.insert(b.version) {
                return Err(KeyRingError::Invalid(format!(
                    "bank key version {} is zero or repeated",
                    b.version
                )));
            }
            self.check_backend(b)?;
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
    /// A file version names its private key and nothing of a module; a module version names a
    /// declared module of its backend, a key index and its recorded public key, and no private
    /// key file.
    fn check_backend(&self, b: &BankKeyEntry) -> Result<(), KeyRingError> {
        let v = b.version;
        match b.backend {
            Backend::File => {
                if b.module.is_some()
                    || b.key_index.is_some()
                    || b.key_label.is_some()
                    || b.key_id.is_some()
                    || b.public_key.is_some()
                {
                    return Err(KeyRingError::Invalid(format!(
                        "bank key v{v}: `module`, `key_index`, `key_label`, `key_id` and \
                         `public_key` belong to module backends; a file version names only \
                         `private_key`"
                    )));
                }
                check_file_name(&b.private_key)
            }
            backend => {
                if !b.private_key.is_empty() {
                    return Err(KeyRingError::Invalid(format!(
                        "bank key v{v}: a {} version has no `private_key` file (the key stays \
                         inside the module)",
                        backend.name()
                    )));
                }
                let key_ok = matches!(
                    (backend, b.module_key_ref()),
                    (Backend::Sdf, Some(ModuleKey::Index(_)))
                        | (
                            Backend::Pkcs11,
                            Some(ModuleKey::Label(_) | ModuleKey::Id(_))
                        )
                );
                let key_fields = if backend == Backend::Sdf {
                    "`key_index`"
                } else {
                    "one of `key_label` or `key_id` (hex)"
                };
                let (Some(module), true, Some(public_key)) = (&b.module, key_ok, &b.public_key)
                else {
                    return Err(KeyRingError::Invalid(format!(
                        "bank key v{v}: a {} version needs `module`, {key_fields} and \
                         `public_key`",
                        backend.name()
                    )));
                };
                check_file_name(public_key)?;
                match self.module.iter().find(|m| &m.name == module) {
                    Some(m) if m.backend == backend => Ok(()),
                    Some(m) => Err(KeyRingError::Invalid(format!(
                        "bank key v{v}: module `{module}` is a {} module, not {}",
                        m.backend.name(),
                        backend.name()
                    ))),
                    None => Err(KeyRingError::Invalid(format!(
                        "bank key v{v}: there is no [[module]] named `{module}`"
                    ))),
                }
            }
        }
    }

    /// Module rules: unique names, a module backend, an absolute library path, sane pool
    /// numbers.
    fn check_modules(&self) -> Result<(), KeyRingError> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.module {
            let name = &m.name;
            if name.is_empty() || !seen.insert(name.as_str()) {
                return Err(KeyRingError::Invalid(format!(
                    "module name `{name}` is empty or repeated"
                )));
            }
            if m.backend == Backend::File {
                return Err(KeyRingError::Invalid(format!(
                    "module `{name}`: backend `file` is not a module"
                )));
            }
            if !m.library.is_absolute() {
                return Err(KeyRingError::Invalid(format!(
                    "module `{name}`: library {} must be an absolute path",
                    m.library.display()
                )));
            }
            let token_fields = m.token_label.is_some() || m.token_serial.is_some();
            match m.backend {
                Backend::Pkcs11 if m.token().is_none() => {
                    return Err(KeyRingError::Invalid(format!(
                        "module `{name}`: a pkcs11 module names its token by exactly one of \
                         `token_label` or `token_serial`"
                    )))
                }
                Backend::Sdf if token_fields || m.pkcs11_profile.is_some() => {
                    return Err(KeyRingError::Invalid(format!(
                        "module `{name}`: `token_label`, `token_serial` and `pkcs11_profile` \
                         belong to pkcs11 modules"
                    )))
                }
                _ => {}
            }
            if !(1..=256).contains(&m.sessions) || !(1..=60_000).contains(&m.timeout_ms) {
                return Err(KeyRingError::Invalid(format!(
                    "module `{name}`: sessions must be 1–256 and timeout_ms 1–60000"
                )));
            }
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\
                        [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"w.pub\"\n";
    const MODULE: &str = "[[module]]\nname = \"hsm\"\nlibrary = \"/opt/v/libsdf.so\"\n\
                          password_file = \"hsm.pass\"\n";

    fn check(extra: &str) -> Result<Manifest, String> {
        let m = Manifest::parse(&format!("{BASE}{extra}")).map_err(|e| e.to_string())?;
        m.check().map_err(|e| e.to_string())?;
        Ok(m)
    }

    const V2: &str = "[[bank]]\nversion = 2\nstate = \"staged\"\nbackend = \"sdf\"\n\
                      module = \"hsm\"\nkey_index = 3\npublic_key = \"bank-v2.pub\"\n";

    #[test]
    fn a_module_version_round_trips_with_its_module() {
        let m = check(&format!("{V2}{MODULE}")).unwrap();
        let v2 = &m.bank[1];
        assert_eq!(v2.backend, Backend::Sdf);
        assert_eq!((v2.key_index, v2.private_key.as_str()), (Some(3), ""));
        assert_eq!(m.module[0].sessions, 4);
        assert_eq!(m.module[0].timeout_ms, 2000);
        assert_eq!(m.module[0].profile, sdf::Profile::standard());
        let again = Manifest::parse(&m.to_toml().unwrap()).unwrap();
        assert_eq!(again, m);
        // A file version is written as before: no backend line, no module fields.
        let text = m.to_toml().unwrap();
        assert_eq!(text.matches("backend").count(), 2, "{text}");
    }

    const TOKEN: &str = "[[module]]\nname = \"tok\"\nbackend = \"pkcs11\"\n\
                         library = \"/opt/v/libp11.so\"\npin_file = \"tok.pin\"\n\
                         token_label = \"bank\"\n";
    const V3: &str = "[[bank]]\nversion = 3\nstate = \"staged\"\nbackend = \"pkcs11\"\n\
                      module = \"tok\"\nkey_id = \"a101\"\npublic_key = \"bank-v3.pub\"\n";

    #[test]
    fn a_token_version_round_trips_with_its_profile() {
        let m = check(&format!(
            "{V3}{TOKEN}[module.pkcs11_profile]\nmechanism = 0x80000A01\ninput = \"message\"\n"
        ))
        .unwrap();
        let v3 = &m.bank[1];
        assert_eq!(v3.backend, Backend::Pkcs11);
        assert_eq!(v3.module_key_ref(), Some(ModuleKey::Id(vec![0xa1, 0x01])));
        assert_eq!(m.module[0].password_file.to_str(), Some("tok.pin"));
        assert_eq!(
            m.module[0].token(),
            Some(pkcs11::TokenSelector::Label("bank".into()))
        );
        let profile = m.module[0].pkcs11_profile.clone().unwrap();
        assert_eq!(
            (profile.mechanism, profile.input),
            (0x8000_0A01, pkcs11::Input::Message)
        );
        let again = Manifest::parse(&m.to_toml().unwrap()).unwrap();
        assert_eq!(again, m);
        // The defaults: no profile written, the documented one used.
        let m = check(&format!("{V3}{TOKEN}")).unwrap();
        assert_eq!(m.module[0].pkcs11_profile, None);
        assert!(!m.to_toml().unwrap().contains("profile"));
    }

    #[test]
    fn token_rules_are_enforced_before_any_file_is_read() {
        let refused = |extra: &str, why: &str| {
            let err = check(extra).unwrap_err();
            assert!(err.contains(why), "{err} (expected: {why})");
        };
        refused(
            &format!(
                "{}{TOKEN}",
                V3.replace("key_id = \"a101\"", "key_index = 1")
            ),
            "needs `module`, one of `key_label` or `key_id` (hex) and `public_key`",
        );
        refused(
            &format!("{}{TOKEN}", V3.replace("a101", "not-hex")),
            "one of `key_label` or `key_id`",
        );
        refused(
            &format!("{}key_label = \"x\"\n{TOKEN}", V3),
            "one of `key_label` or `key_id`",
        );
        refused(
            &format!("{V3}{}", TOKEN.replace("token_label = \"bank\"\n", "")),
            "exactly one of `token_label` or `token_serial`",
        );
        refused(
            &format!("{V3}{TOKEN}token_serial = \"1\"\n"),
            "exactly one of `token_label` or `token_serial`",
        );
        refused(
            &format!("{V2}{MODULE}token_label = \"bank\"\n"),
            "belong to pkcs11 modules",
        );
        refused(
            &format!(
                "{}{MODULE}",
                V2.replace("module = \"hsm\"", "module = \"tok\"")
            ),
            "no [[module]] named `tok`",
        );
        refused(
            &format!(
                "{}{TOKEN}",
                V2.replace("module = \"hsm\"", "module = \"tok\"")
            ),
            "module `tok` is a pkcs11 module, not sdf",
        );
    }

    #[test]
    fn module_rules_are_enforced_before_any_file_is_read() {
        let refused = |extra: &str, why: &str| {
            let err = check(extra).unwrap_err();
            assert!(err.contains(why), "{err} (expected: {why})");
        };
        refused(V2, "no [[module]] named `hsm`");
        refused(
            &format!("{}private_key = \"k\"\n{MODULE}", V2),
            "has no `private_key` file",
        );
        refused(
            "[[bank]]\nversion = 2\nstate = \"staged\"\nbackend = \"sdf\"\nmodule = \"hsm\"\n",
            "needs `module`, `key_index` and `public_key`",
        );
        refused(
            "[[bank]]\nversion = 2\nstate = \"staged\"\nprivate_key = \"k\"\nkey_index = 1\n",
            "belong to module backends",
        );
        refused(
            &format!("{V2}{}", MODULE.replace("/opt/v/libsdf.so", "libsdf.so")),
            "must be an absolute path",
        );
        refused(
            &format!("{V2}{MODULE}sessions = 0\n"),
            "sessions must be 1–256",
        );
        refused(&format!("{V2}{MODULE}{MODULE}"), "is empty or repeated");
        refused(
            &format!(
                "{V2}{}",
                MODULE.replace("name = \"hsm\"", "name = \"hsm\"\nbackend = \"file\"")
            ),
            "is not a module",
        );
    }
}
