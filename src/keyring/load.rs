//! Reading a key directory into a [`KeyRing`], refusing anything unsafe or inconsistent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::device::{token_key, ModuleDevice, Pkcs11Device, SdfDevice};
use super::file_rules::{read_key_text, FileRule, KeyDirHandle, KeyFileKind};
use super::manifest::{
    Backend, BankKeyEntry, BankKeyState, CredentialState, Manifest, ModuleEntry, ModuleKey,
    WechatKeyState,
};
use super::published::{published_key, published_secret};
use super::signer::{BankSigner, ModuleSettings, ModuleSigner, PROBE_MESSAGE};
use super::{BankKey, KeyRing, PartnerCredential, PartnerSecret, WechatKey};
use crate::crypto::{EngineKind, PublicKey, SecretKey, Sm2Engine};
use crate::partners::Channel;

/// Why a key set was refused. Messages name files and versions, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A file or directory could not be read or written.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error (from `std::fs` or, through its conversion, `rustix`).
        #[source]
        source: std::io::Error,
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
    /// A key or secret published in the repository (or in a document it reproduces), refused
    /// outside demo mode whatever the manifest says ([`super::published`]).
    #[error(
        "{}: is a published key — {origin}; anyone can sign with it, so it is refused outside \
         demo mode (generate a new key or secret with `pension-gateway keys`)",
        path.display()
    )]
    Published {
        /// The file holding it.
        path: PathBuf,
        /// Where it is published.
        origin: &'static str,
    },
    /// A secret (partner secret, admin token) too short or of the wrong alphabet.
    #[error("{}: {rule}", path.display())]
    WeakSecret {
        /// The file holding it.
        path: PathBuf,
        /// The rule it breaks.
        rule: SecretRule,
    },
    /// A cryptographic module could not be opened or used (library missing, device error).
    #[error(transparent)]
    Module(Box<ModuleFailure>),
    /// The set breaks a rule (manifest, key material, demo keys outside demo mode).
    #[error("key set refused: {0}")]
    Invalid(String),
}

/// A module-backed bank version that could not be used: which, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("bank key v{version}: {backend} module `{module}` ({}): {cause}", library.display())]
pub struct ModuleFailure {
    /// The bank key version.
    pub version: u32,
    /// The backend (`sdf` or `pkcs11`).
    pub backend: &'static str,
    /// The module's name in the manifest.
    pub module: String,
    /// The vendor library.
    pub library: PathBuf,
    /// What failed (codes and names only; never the password).
    pub cause: String,
}

impl KeyRingError {
    /// An I/O failure on `path`, keeping the OS error as the source.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A rule a secret breaks. Shown after the file's path; never quotes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRule {
    /// Shorter or longer than the rule of its kind.
    #[error("{what} must be {min}–{max} characters, found {len}")]
    Length {
        /// What the secret is.
        what: &'static str,
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
        /// Characters found.
        len: usize,
    },
    /// A character outside the alphabet of its kind.
    #[error("{what} must consist of {alphabet}")]
    Alphabet {
        /// What the secret is.
        what: &'static str,
        /// The alphabet, in words.
        alphabet: &'static str,
    },
    /// Long enough but plainly not random (a repeated or patterned text).
    #[error(
        "{what} uses only {distinct} distinct characters; it must be random (at least \
         {min} distinct characters)"
    )]
    NotRandom {
        /// What the secret is.
        what: &'static str,
        /// Distinct characters found.
        distinct: usize,
        /// Fewest distinct characters accepted.
        min: usize,
    },
}

/// Loads and validates the key set in `dir` (its `keyring.toml` and the files it names).
/// `demo_mode` must be true to accept a manifest marked `demo = true`.
pub fn load_keyring(
    dir: &Path,
    engine: EngineKind,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<KeyRing, KeyRingError> {
    let keys = KeyDirHandle::open(dir, !demo_mode)?;
    let text = keys.read_text("keyring.toml", KeyFileKind::Manifest)?;
    let manifest = Manifest::parse(&text)?;
    build_from(&keys, &manifest, engine, signer_id, demo_mode)
}

/// Builds a key ring from `manifest` and the key files in `dir`: the full validation, used both
/// by loading and by every `keys` command before it writes anything. Outside `demo_mode` the
/// directory must not be writable by group or others, and no published key or secret
/// ([`super::published`]) is accepted.
pub fn build_keyring(
    dir: &Path,
    manifest: &Manifest,
    engine: EngineKind,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<KeyRing, KeyRingError> {
    let keys = KeyDirHandle::open(dir, !demo_mode)?;
    build_from(&keys, manifest, engine, signer_id, demo_mode)
}

/// Outside demo mode, refuses `key` (read from `path`) when it is published.
fn refuse_published_key(path: &Path, key: &PublicKey, demo_mode: bool) -> Result<(), KeyRingError> {
    match published_key(key) {
        Some(p) if !demo_mode => Err(KeyRingError::Published {
            path: path.to_path_buf(),
            origin: p.origin,
        }),
        _ => Ok(()),
    }
}

fn build_from(
    keys: &KeyDirHandle,
    manifest: &Manifest,
    engine: EngineKind,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<KeyRing, KeyRingError> {
    let dir = keys.path();
    manifest.check()?;
    if manifest.demo && !demo_mode {
        return Err(KeyRingError::Invalid(format!(
            "{} holds the published demo keys; they are refused unless the server runs in demo mode",
            dir.display()
        )));
    }
    let eng = engine.engine();
    let mut bank = BTreeMap::new();
    let mut modules = ModuleCache::default();
    for entry in &manifest.bank {
        if entry.state == BankKeyState::Retired {
            continue;
        }
        let signer = match entry.backend {
            Backend::File => file_signer(keys, entry, eng.as_ref(), signer_id, demo_mode)?,
            Backend::Sdf | Backend::Pkcs11 => {
                module_signer(keys, manifest, entry, &mut modules, eng.as_ref(), signer_id)?
            }
        };
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
        let text = keys.read_text(&entry.public_key, KeyFileKind::PublicKey)?;
        let pk = PublicKey::parse(&text).map_err(|e| {
            KeyRingError::Invalid(format!(
                "WeChat key v{} ({}): {e}",
                entry.version,
                path.display()
            ))
        })?;
        refuse_published_key(&path, &pk, demo_mode)?;
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
    let partners = load_partners(keys, manifest, demo_mode)?;
    KeyRing::new(
        bank,
        manifest.rollout,
        trusted,
        partners,
        manifest.demo,
        dir.to_path_buf(),
    )
}

fn file_signer(
    keys: &KeyDirHandle,
    entry: &BankKeyEntry,
    eng: &dyn Sm2Engine,
    signer_id: &[u8],
    demo_mode: bool,
) -> Result<BankSigner, KeyRingError> {
    let path = keys.path().join(&entry.private_key);
    let text = keys.read_text(&entry.private_key, KeyFileKind::Secret)?;
    let sk = SecretKey::parse(&text).map_err(|e| {
        KeyRingError::Invalid(format!(
            "bank key v{} ({}): {e}",
            entry.version,
            path.display()
        ))
    })?;
    refuse_published_key(&path, &sk.public_key(), demo_mode)?;
    let signer = eng
        .signer(&sk, signer_id)
        .map_err(|e| KeyRingError::Invalid(format!("bank key v{}: {e}", entry.version)))?;
    Ok(BankSigner::File(signer))
}

/// Modules opened during one load, by name: a reload opens them afresh (new device handle or
/// token slot lookup, new sessions), the old ring's close when its last request ends.
#[derive(Default)]
struct ModuleCache(BTreeMap<String, OpenModule>);

/// A module opened for this load.
#[derive(Clone)]
enum OpenModule {
    Sdf(Arc<sdf::Module>),
    Pkcs11(Arc<pkcs11::Token>),
}

/// Opens module `spec` (its library loaded, its device opened or its token found with the
/// profile's mechanism).
fn open_module(spec: &ModuleEntry) -> Result<OpenModule, String> {
    match spec.backend {
        Backend::Pkcs11 => {
            let token = spec
                .token()
                .ok_or("a pkcs11 module names its token by label or serial")?;
            pkcs11::Token::open(
                &spec.library,
                token,
                spec.pkcs11_profile.clone().unwrap_or_default(),
            )
            .map(|t| OpenModule::Pkcs11(Arc::new(t)))
            .map_err(|e| e.to_string())
        }
        _ => sdf::Module::open(&spec.library, spec.profile.clone())
            .map(|m| OpenModule::Sdf(Arc::new(m)))
            .map_err(|e| e.to_string()),
    }
}

/// A module-backed version: the module opened, the key's access right taken (or the token
/// logged in and the key found), its exported public key equal to the recorded one and a test
/// signature verified — or the version (and with it the set) is refused, naming why.
fn module_signer(
    keys: &KeyDirHandle,
    manifest: &Manifest,
    entry: &BankKeyEntry,
    modules: &mut ModuleCache,
    eng: &dyn Sm2Engine,
    signer_id: &[u8],
) -> Result<BankSigner, KeyRingError> {
    let version = entry.version;
    // `Manifest::check` guarantees these are present and the module declared.
    let (Some(name), Some(key), Some(public_file)) =
        (&entry.module, entry.module_key_ref(), &entry.public_key)
    else {
        return Err(KeyRingError::Invalid(format!(
            "bank key v{version}: module, the key's place and public_key are required"
        )));
    };
    let spec: &ModuleEntry = manifest
        .module
        .iter()
        .find(|m| &m.name == name)
        .ok_or_else(|| KeyRingError::Invalid(format!("bank key v{version}: no module `{name}`")))?;
    let fail = |cause: String| {
        KeyRingError::Module(Box::new(ModuleFailure {
            version,
            backend: entry.backend.name(),
            module: name.clone(),
            library: spec.library.clone(),
            cause,
        }))
    };
    let module = match modules.0.get(name) {
        Some(m) => m.clone(),
        None => {
            let m = open_module(spec).map_err(&fail)?;
            modules.0.insert(name.clone(), m.clone());
            m
        }
    };
    let password_path = if spec.password_file.is_absolute() {
        spec.password_file.clone()
    } else {
        keys.path().join(&spec.password_file)
    };
    let password = sdf::Password::read_file(&password_path).map_err(|e| fail(e.to_string()))?;
    let recorded_path = keys.path().join(public_file);
    let recorded = PublicKey::parse(&keys.read_text(public_file, KeyFileKind::PublicKey)?)
        .map_err(|e| {
            KeyRingError::Invalid(format!(
                "bank key v{version} ({}): {e}",
                recorded_path.display()
            ))
        })?;
    let settings = ModuleSettings {
        name: name.clone(),
        library: spec.library.clone(),
        key: key.to_string(),
        sessions: usize::from(spec.sessions),
        timeout: std::time::Duration::from_millis(spec.timeout_ms),
    };
    let opened = match (&module, &key) {
        (OpenModule::Sdf(m), ModuleKey::Index(index)) => {
            SdfDevice::open(Arc::clone(m), password, *index).map(|(d, s)| {
                let d: Box<dyn ModuleDevice> = Box::new(d);
                (d, s)
            })
        }
        (OpenModule::Pkcs11(t), key) => {
            let Some(key_ref) = token_key(key) else {
                return Err(fail(format!("{key}: a pkcs11 key is named by label or id")));
            };
            Pkcs11Device::open(Arc::clone(t), password, key_ref).map(|(d, s)| {
                let d: Box<dyn ModuleDevice> = Box::new(d);
                (d, s)
            })
        }
        (OpenModule::Sdf(_), key) => {
            return Err(fail(format!("{key}: an sdf key is named by its index")));
        }
    };
    let signer = opened
        .and_then(|(device, session)| ModuleSigner::open(settings, device, session, signer_id))
        .map_err(|e| fail(format!("{key}: {e}")))?;
    if signer.public_key() != &recorded {
        return Err(KeyRingError::Invalid(format!(
            "bank key v{version}: the public key {} module `{name}` exports for {key} \
             (fingerprint {}) is not the one recorded in {} (fingerprint {}); refusing the \
             version",
            entry.backend.name(),
            signer.public_key().fingerprint(),
            recorded_path.display(),
            recorded.fingerprint()
        )));
    }
    let signer = BankSigner::Module(Arc::new(signer));
    let signature = signer
        .sign(PROBE_MESSAGE)
        .map_err(|e| fail(format!("{key}: test signature: {e}")))?;
    let verifier = eng
        .verifier(&recorded, signer_id)
        .map_err(|e| KeyRingError::Invalid(format!("bank key v{version}: {e}")))?;
    verifier.verify(PROBE_MESSAGE, &signature).map_err(|_| {
        fail(format!(
            "{key}: the test signature does not verify under the recorded public key; \
             refusing the version"
        ))
    })?;
    Ok(signer)
}

/// Longest partner secret accepted, bytes.
pub const MAX_PARTNER_SECRET: usize = 256;

/// Reads a partner secret file (the key-ring file rules, mode 0600 or 0400): one line of
/// 1–256 visible ASCII characters. The rule of the secret's channel
/// ([`check_partner_secret`]) is applied when the key ring loads it.
pub fn read_partner_secret(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyRingError> {
    let text = read_key_text(path, KeyFileKind::Secret)?;
    secret_line(path, &text)
}

/// The one line of a secret file: 1–256 visible ASCII characters.
fn secret_line(path: &Path, text: &str) -> Result<zeroize::Zeroizing<String>, KeyRingError> {
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

/// Fewest characters of any partner secret: 16 (the floor whatever a spec allows).
pub const MIN_PARTNER_SECRET: usize = 16;

/// The rule of a partner secret on `channel` (docs/partner-channels.md, "Readings of the
/// specs"): an open-platform app secret is 32–64 letters and digits (the guide's own app
/// secrets are 62 and 64 letters and digits, sent in a URL query); a callback salt or an HMAC
/// app token, whose documents give no length, at least [`MIN_PARTNER_SECRET`] visible ASCII
/// characters.
pub fn check_partner_secret(channel: Channel, value: &str) -> Result<(), SecretRule> {
    let (what, min, max) = match channel {
        Channel::OpenPlatform => ("an open-platform app secret", 32, 64),
        Channel::Callback => ("a callback salt", MIN_PARTNER_SECRET, MAX_PARTNER_SECRET),
        Channel::Hmac => ("an HMAC app token", MIN_PARTNER_SECRET, MAX_PARTNER_SECRET),
    };
    let len = value.chars().count();
    if len < min || len > max {
        return Err(SecretRule::Length {
            what,
            min,
            max,
            len,
        });
    }
    if channel == Channel::OpenPlatform && !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SecretRule::Alphabet {
            what,
            alphabet: "ASCII letters and digits",
        });
    }
    Ok(())
}

fn load_partners(
    keys: &KeyDirHandle,
    manifest: &Manifest,
    demo_mode: bool,
) -> Result<BTreeMap<(Channel, String), PartnerCredential>, KeyRingError> {
    let mut active = BTreeMap::new();
    let mut accepted: BTreeMap<_, Vec<PartnerSecret>> = BTreeMap::new();
    for p in manifest
        .partner
        .iter()
        .filter(|p| p.state != CredentialState::Retired)
    {
        let path = keys.path().join(&p.secret);
        let value = secret_line(&path, &keys.read_text(&p.secret, KeyFileKind::Secret)?)?;
        check_partner_secret(p.channel, &value).map_err(|rule| KeyRingError::WeakSecret {
            path: path.clone(),
            rule,
        })?;
        if let Some(published) = published_secret(value.as_bytes()).filter(|_| !demo_mode) {
            return Err(KeyRingError::Published {
                path,
                origin: published.origin,
            });
        }
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
