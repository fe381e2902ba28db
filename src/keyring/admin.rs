//! Key-ring administration: the operations behind `pension-gateway keys …`.
//!
//! Every operation reads the manifest, computes the new one, validates the *whole resulting
//! set* exactly as the server would load it (every key file parsed, modes checked), and only
//! then writes — key files first (created 0600), the manifest last, each through a temporary
//! file and `rename`, so a running gateway that reloads at any moment sees the old set or the
//! new one, never half of either.
//!
//! Ownership (docs/key-rotation.md "Who runs the key commands"): the key directory belongs to
//! the user the gateway runs as, and the key commands run as that user. Run as root instead,
//! they give every file they write to the key directory's owner (and group), with the modes
//! the gateway requires, so the service can read what root wrote.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::device::token_key;
use super::file_rules::{read_key_text, read_optional, utf8, KeyFileKind};
use super::load::build_keyring;
use super::manifest::{
    Backend, BankKeyEntry, BankKeyState, CredentialState, Manifest, ModuleEntry, ModuleKey,
    PartnerEntry, Rollout, WechatKeyEntry, WechatKeyState,
};
use super::KeyRingError;
use crate::crypto::{EngineKind, PublicKey, SecretKey};
use crate::partners::Channel;

/// A key directory being administered.
pub struct KeyDir {
    dir: PathBuf,
    engine: EngineKind,
    signer_id: Vec<u8>,
}

/// One row of `keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    /// `bank` or `wechat`.
    pub role: &'static str,
    /// Version.
    pub version: u32,
    /// Lifecycle state (`staged`, `active`, …, `trusted`, `untrusted`).
    pub state: String,
    /// Fingerprint of the public key ([`PublicKey::fingerprint`]: the first 8 bytes of
    /// SM3(04‖x‖y), hex), or `-` when the file cannot be used (then `refusal` says why).
    pub fingerprint: String,
    /// Why the key's file cannot be used, as a reload would say it; `None` when it loads.
    pub refusal: Option<String>,
    /// Share of responses this key signs, percent (bank keys).
    pub signs_percent: Option<u8>,
}

impl KeyDir {
    /// Administers `dir` with the engine and signer ID the gateway uses.
    pub fn new(dir: impl Into<PathBuf>, engine: EngineKind, signer_id: &[u8]) -> Self {
        Self {
            dir: dir.into(),
            engine,
            signer_id: signer_id.to_vec(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory holds a manifest (`keys init` has run).
    pub fn is_initialised(&self) -> bool {
        self.dir.join("keyring.toml").exists()
    }

    /// Reads the manifest. An absent one is an error naming the directory and `keys init`: a
    /// mistyped directory must not look like an empty key ring.
    pub fn manifest(&self) -> Result<Manifest, KeyRingError> {
        let path = self.dir.join("keyring.toml");
        match read_optional(&path, KeyFileKind::Manifest)? {
            Some(bytes) => Manifest::parse(&utf8(&path, &bytes)?),
            None => Err(KeyRingError::Invalid(format!(
                "{} has no keyring.toml: not a key directory (create one with `keys init`)",
                self.dir.display()
            ))),
        }
    }

    /// Whether the key set on disk loads as a reload would load it: `Ok(())`, or the refusal
    /// the server would log and answer with.
    pub fn check_reload(&self) -> Result<(), KeyRingError> {
        let m = self.manifest()?;
        build_keyring(&self.dir, &m, self.engine, &self.signer_id, m.demo).map(|_| ())
    }

    /// Validates `next` as the server would load it, then writes it atomically.
    fn commit(&self, next: &Manifest) -> Result<(), KeyRingError> {
        build_keyring(&self.dir, next, self.engine, &self.signer_id, next.demo)?;
        let text = next.to_toml()?;
        write_atomic(&self.dir.join("keyring.toml"), text.as_bytes(), false)
    }

    /// Creates a new key directory's first set in one validated step: bank key v1 (active)
    /// and WeChat's public key `wechat_version` (trusted). Refused if a manifest exists.
    pub fn init(&self, wechat_version: u32, wechat_key_text: &str) -> Result<(), KeyRingError> {
        if self.dir.join("keyring.toml").exists() {
            return Err(KeyRingError::Invalid(format!(
                "{} already has a keyring.toml",
                self.dir.display()
            )));
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            // Only the gateway's user reads a key directory.
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(|e| KeyRingError::io(&self.dir, e))?;
        let wechat = PublicKey::parse(wechat_key_text)
            .map_err(|e| KeyRingError::Invalid(format!("WeChat key v{wechat_version}: {e}")))?;
        let wechat_file = format!("wechat-v{wechat_version}.pub");
        write_atomic(
            &self.dir.join(&wechat_file),
            format!("{}\n", wechat.to_hex()).as_bytes(),
            false,
        )?;
        let key_file = self.write_new_bank_key(1)?;
        let m = Manifest {
            demo: false,
            bank: vec![BankKeyEntry::file(1, BankKeyState::Active, key_file)],
            wechat: vec![WechatKeyEntry {
                version: wechat_version,
                state: WechatKeyState::Trusted,
                public_key: wechat_file,
            }],
            rollout: None,
            partner: Vec::new(),
            module: Vec::new(),
        };
        self.commit(&m)
    }

    fn write_new_bank_key(&self, version: u32) -> Result<String, KeyRingError> {
        let key = SecretKey::generate();
        let key_file = format!("bank-v{version}.key");
        let pem = key
            .to_pem()
            .map_err(|e| KeyRingError::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join(&key_file), pem.as_bytes(), true)?;
        write_atomic(
            &self.dir.join(format!("bank-v{version}.pub")),
            format!("{}\n", key.public_key().to_hex()).as_bytes(),
            false,
        )?;
        Ok(key_file)
    }

    /// Generates bank key version `max + 1` as `staged` (exported to WeChat, not yet signing).
    /// Returns the version.
    pub fn generate(&self) -> Result<u32, KeyRingError> {
        let mut m = self.manifest()?;
        if m.bank.is_empty() {
            return Err(KeyRingError::Invalid(
                "no key set here yet; start with `keys init`".into(),
            ));
        }
        let version = m.bank.iter().map(|b| b.version).max().unwrap_or(0) + 1;
        let key_file = self.write_new_bank_key(version)?;
        m.bank
            .push(BankKeyEntry::file(version, BankKeyState::Staged, key_file));
        self.commit(&m)?;
        Ok(version)
    }

    /// Adds bank key version `max + 1` as `staged`, kept at `key_index` inside module `name`:
    /// the module's exported signing public key is recorded as `bank-v<n>.pub` (what WeChat is
    /// given and what every load compares the module against). `declare` adds the `[[module]]`
    /// section when the manifest has none of that name yet. The whole resulting set is
    /// validated as a load would (module opened, keys equal, a test signature verified) before
    /// the manifest is written. Nothing secret is written: the key stays in the module.
    pub fn add_module_key(
        &self,
        name: &str,
        key_index: u32,
        declare: Option<ModuleEntry>,
    ) -> Result<u32, KeyRingError> {
        self.add_module_key_at(name, &ModuleKey::Index(key_index), declare)
    }

    /// [`Self::add_module_key`] for a key named by its index (`sdf`) or by its `CKA_LABEL` or
    /// `CKA_ID` (`pkcs11`).
    pub fn add_module_key_at(
        &self,
        name: &str,
        key: &ModuleKey,
        declare: Option<ModuleEntry>,
    ) -> Result<u32, KeyRingError> {
        let mut m = self.manifest()?;
        if m.bank.is_empty() {
            return Err(KeyRingError::Invalid(
                "no key set here yet; start with `keys init`".into(),
            ));
        }
        if let Some(new) = declare {
            if m.module.iter().any(|x| x.name == new.name) {
                return Err(KeyRingError::Invalid(format!(
                    "module `{}` is already declared in keyring.toml; name it without --library",
                    new.name
                )));
            }
            m.module.push(new);
        }
        let spec = m.module.iter().find(|x| x.name == name).ok_or_else(|| {
            KeyRingError::Invalid(format!(
                "there is no [[module]] named `{name}`: declare it with --library and \
                 --password-file"
            ))
        })?;
        let public = module_public_key(spec, key)?;
        let version = m.bank.iter().map(|b| b.version).max().unwrap_or(0) + 1;
        let public_file = format!("bank-v{version}.pub");
        write_atomic(
            &self.dir.join(&public_file),
            format!("{}\n", public.to_hex()).as_bytes(),
            false,
        )?;
        let backend = spec.backend;
        m.bank.push(BankKeyEntry::module_key(
            version,
            BankKeyState::Staged,
            backend,
            name.to_owned(),
            key,
            public_file,
        ));
        self.commit(&m)?;
        Ok(version)
    }

    /// Makes bank key `version` (staged or retiring) the active one; the previous active key
    /// becomes `retiring`; a rollout of that version ends.
    pub fn activate(&self, version: u32) -> Result<(), KeyRingError> {
        let mut m = self.manifest()?;
        let target = m
            .bank
            .iter()
            .find(|b| b.version == version)
            .map(|b| b.state);
        match target {
            None => {
                return Err(KeyRingError::Invalid(format!(
                    "there is no bank key version {version}"
                )))
            }
            Some(BankKeyState::Active) => {
                return Err(KeyRingError::Invalid(format!(
                    "bank key v{version} is already active"
                )))
            }
            Some(BankKeyState::Retired) => {
                return Err(KeyRingError::Invalid(format!(
                    "bank key v{version} is retired; generate a new version instead"
                )))
            }
            Some(_) => {}
        }
        for b in &mut m.bank {
            if b.state == BankKeyState::Active {
                b.state = BankKeyState::Retiring;
            }
            if b.version == version {
                b.state = BankKeyState::Active;
            }
        }
        if m.rollout.is_some_and(|r| r.version == version) {
            m.rollout = None;
        }
        self.commit(&m)
    }

    /// Retires bank key `version` (must not be active; a rollout of it ends).
    pub fn retire(&self, version: u32) -> Result<(), KeyRingError> {
        let mut m = self.manifest()?;
        let entry = m
            .bank
            .iter_mut()
            .find(|b| b.version == version)
            .ok_or_else(|| {
                KeyRingError::Invalid(format!("there is no bank key version {version}"))
            })?;
        if entry.state == BankKeyState::Active {
            return Err(KeyRingError::Invalid(format!(
                "bank key v{version} is active; activate another version first (zero active keys is refused)"
            )));
        }
        entry.state = BankKeyState::Retired;
        if m.rollout.is_some_and(|r| r.version == version) {
            m.rollout = None;
        }
        self.commit(&m)
    }

    /// Starts, changes or (with 0 %) ends a gray rollout of staged bank key `version`.
    pub fn rollout(&self, version: u32, percent: u8) -> Result<(), KeyRingError> {
        let mut m = self.manifest()?;
        m.rollout = (percent > 0).then_some(Rollout { version, percent });
        self.commit(&m)
    }

    /// Trusts WeChat public key `version` (hex `04…` or PEM), replacing the file of that version.
    pub fn trust_wechat(&self, version: u32, key_text: &str) -> Result<(), KeyRingError> {
        let key = PublicKey::parse(key_text)
            .map_err(|e| KeyRingError::Invalid(format!("WeChat key v{version}: {e}")))?;
        let mut m = self.manifest()?;
        let file = format!("wechat-v{version}.pub");
        write_atomic(
            &self.dir.join(&file),
            format!("{}\n", key.to_hex()).as_bytes(),
            false,
        )?;
        match m.wechat.iter_mut().find(|w| w.version == version) {
            Some(w) => {
                w.state = WechatKeyState::Trusted;
                w.public_key = file;
            }
            None => m.wechat.push(WechatKeyEntry {
                version,
                state: WechatKeyState::Trusted,
                public_key: file,
            }),
        }
        m.wechat.sort_by_key(|w| w.version);
        self.commit(&m)
    }

    /// Stops trusting WeChat key `version` (refused if it is the last trusted one).
    pub fn untrust_wechat(&self, version: u32) -> Result<(), KeyRingError> {
        let mut m = self.manifest()?;
        let w = m
            .wechat
            .iter_mut()
            .find(|w| w.version == version)
            .ok_or_else(|| {
                KeyRingError::Invalid(format!("there is no WeChat key version {version}"))
            })?;
        w.state = WechatKeyState::Untrusted;
        self.commit(&m)
    }

    /// The public key of bank version `version`, for WeChat.
    pub fn export_public(&self, version: u32) -> Result<PublicKey, KeyRingError> {
        let m = self.manifest()?;
        let entry = m
            .bank
            .iter()
            .find(|b| b.version == version)
            .ok_or_else(|| {
                KeyRingError::Invalid(format!("there is no bank key version {version}"))
            })?;
        if let Some(public) = entry
            .public_key
            .as_ref()
            .filter(|_| entry.backend != Backend::File)
        {
            // A module version: the public key recorded when it was added (the load checks the
            // module still exports it).
            let text = read_key_text(&self.dir.join(public), KeyFileKind::PublicKey)?;
            return PublicKey::parse(&text)
                .map_err(|e| KeyRingError::Invalid(format!("bank key v{version}: {e}")));
        }
        let text = read_key_text(&self.dir.join(&entry.private_key), KeyFileKind::Secret)?;
        let sk = SecretKey::parse(&text)
            .map_err(|e| KeyRingError::Invalid(format!("bank key v{version}: {e}")))?;
        Ok(sk.public_key())
    }

    /// Every key with its state and fingerprint.
    pub fn list(&self) -> Result<Vec<KeyListing>, KeyRingError> {
        let m = self.manifest()?;
        let mut out = Vec::new();
        for b in &m.bank {
            // A retired key is not loaded by a reload: its file may be archived or destroyed.
            let (fingerprint, refusal) = match self.export_public(b.version) {
                Ok(k) => (k.fingerprint(), None),
                Err(_) if b.state == BankKeyState::Retired => ("-".into(), None),
                Err(e) => ("-".into(), Some(e.to_string())),
            };
            let rollout = m
                .rollout
                .filter(|r| r.version == b.version)
                .map(|r| r.percent);
            let active_share = 100 - m.rollout.map_or(0, |r| r.percent);
            let signs_percent = match b.state {
                BankKeyState::Active => Some(active_share),
                _ => rollout,
            };
            out.push(KeyListing {
                role: "bank",
                version: b.version,
                state: state_name(b.state),
                fingerprint,
                refusal,
                signs_percent,
            });
        }
        for w in &m.wechat {
            let key = read_key_text(&self.dir.join(&w.public_key), KeyFileKind::PublicKey)
                .and_then(|t| {
                    PublicKey::parse(&t).map_err(|e| {
                        KeyRingError::Invalid(format!("WeChat key v{}: {e}", w.version))
                    })
                });
            let (fingerprint, refusal) = match key {
                Ok(k) => (k.fingerprint(), None),
                Err(_) if w.state == WechatKeyState::Untrusted => ("-".into(), None),
                Err(e) => ("-".into(), Some(e.to_string())),
            };
            let state = match w.state {
                WechatKeyState::Trusted => "trusted",
                WechatKeyState::Untrusted => "untrusted",
            };
            out.push(KeyListing {
                role: "wechat",
                version: w.version,
                state: state.into(),
                fingerprint,
                refusal,
                signs_percent: None,
            });
        }
        Ok(out)
    }
}

/// The refusal of a start on a key directory without `keyring.toml`: names `setting` (the
/// setting or option that chose the directory) and the command that creates a key set, instead
/// of a bare "No such file or directory". `Ok` when the manifest is there.
pub fn require_manifest(dir: &Path, setting: &str) -> Result<(), KeyRingError> {
    if dir.join("keyring.toml").exists() {
        return Ok(());
    }
    Err(KeyRingError::Invalid(format!(
        "{} ({setting}) has no keyring.toml; create the key set with `pension-gateway --config \
         <file> keys init --wechat-key <WeChat public key>` (docs/key-rotation.md)",
        dir.display()
    )))
}

/// One row of `keys partner list` (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerListing {
    /// Channel.
    pub channel: Channel,
    /// Partner id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// `active`, `accepted` or `retired`.
    pub state: CredentialState,
    /// The secret file, relative to the key directory.
    pub file: String,
}

impl KeyDir {
    /// Adds the next version of partner `id`'s secret on `channel` and makes it the active one:
    /// `secret` if given (from a file the partner's onboarding produced), else 48 random letters
    /// and digits. The previous active version becomes `accepted` (callback salts and HMAC app
    /// tokens keep verifying during the switch-over) or, for open-platform app secrets, `retired`
    /// (the spec: changing the secret invalidates its tokens and tickets). Returns the version
    /// and the secret file's path (mode 0600; the secret is never printed).
    pub fn partner_set(
        &self,
        channel: Channel,
        id: &str,
        secret: Option<zeroize::Zeroizing<String>>,
    ) -> Result<(u32, PathBuf), KeyRingError> {
        let mut m = self.manifest()?;
        let version = m
            .partner
            .iter()
            .filter(|p| p.channel == channel && p.id == id)
            .map(|p| p.version)
            .max()
            .unwrap_or(0)
            + 1;
        let value = match secret {
            Some(s) => s,
            None => zeroize::Zeroizing::new(format!(
                "{}{}",
                crate::crypto::nonce::generate(),
                &crate::crypto::nonce::generate()[..16]
            )),
        };
        for p in m
            .partner
            .iter_mut()
            .filter(|p| p.channel == channel && p.id == id && p.state == CredentialState::Active)
        {
            p.state = if channel == Channel::OpenPlatform {
                CredentialState::Retired
            } else {
                CredentialState::Accepted
            };
        }
        let file = format!("{channel}-{id}-v{version}.secret");
        m.partner.push(PartnerEntry {
            channel,
            id: id.to_owned(),
            version,
            state: CredentialState::Active,
            secret: file.clone(),
        });
        m.check()?;
        let path = self.dir.join(&file);
        write_atomic(&path, format!("{}\n", value.as_str()).as_bytes(), true)?;
        if let Err(e) = self.commit(&m) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((version, path))
    }

    /// Retires a non-active version of a partner secret (it stops verifying).
    pub fn partner_retire(
        &self,
        channel: Channel,
        id: &str,
        version: u32,
    ) -> Result<(), KeyRingError> {
        let mut m = self.manifest()?;
        let entry = m
            .partner
            .iter_mut()
            .find(|p| p.channel == channel && p.id == id && p.version == version)
            .ok_or_else(|| {
                KeyRingError::Invalid(format!("{channel} partner `{id}` has no version {version}"))
            })?;
        if entry.state == CredentialState::Active {
            return Err(KeyRingError::Invalid(format!(
                "{channel} partner `{id}` v{version} is the active secret; set a new one first \
                 (`keys partner set {channel} {id}`)"
            )));
        }
        entry.state = CredentialState::Retired;
        self.commit(&m)
    }

    /// Every partner credential version (no secrets).
    pub fn partner_list(&self) -> Result<Vec<PartnerListing>, KeyRingError> {
        Ok(self
            .manifest()?
            .partner
            .into_iter()
            .map(|p| PartnerListing {
                channel: p.channel,
                id: p.id,
                version: p.version,
                state: p.state,
                file: p.secret,
            })
            .collect())
    }
}

fn state_name(s: BankKeyState) -> String {
    format!("{s:?}").to_lowercase()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and `rename`
/// (`tempfile`'s `persist`), then syncs the directory so the rename survives a crash. Private
/// files are created with mode 0600 from the start (never briefly readable), the others 0644.
/// Run as root, the file is given to the directory's owner and group before it is renamed into
/// place, so the gateway (which runs as that owner) can read it.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), KeyRingError> {
    let io = |e: std::io::Error| KeyRingError::io(path, e);
    let dir = path
        .parent()
        .ok_or_else(|| KeyRingError::Invalid(format!("{} has no directory", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(if private {
            0o600
        } else {
            0o644
        }));
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    #[cfg(unix)]
    give_to_directory_owner(tmp.as_file(), dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// When this process is root and the directory belongs to someone else, hands `file` to the
/// directory's owner and group: root writes on the service user's behalf, never files the
/// service cannot read. As any other user the file is already the caller's.
#[cfg(unix)]
fn give_to_directory_owner(file: &std::fs::File, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let meta = std::fs::metadata(dir)?;
    if meta.uid() == 0 && meta.gid() == 0 {
        return Ok(());
    }
    rustix::fs::fchown(
        file,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    )
    .map_err(std::io::Error::from)
}

/// The owner of `path` (a file or the key directory), as `name (uid N)` when the user database
/// names it, else `uid N`.
#[cfg(unix)]
pub fn owner_of(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    Ok(describe_user(std::fs::metadata(path)?.uid()))
}

/// `name (uid N)` from `/etc/passwd`, or `uid N` when it has no such line (users known only
/// to NSS services such as LDAP are shown by number).
pub fn describe_user(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|t| {
        t.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_owned())
        })
    });
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The signing public key of `key` as module `spec` exports it (no password or PIN needed).
fn module_public_key(spec: &ModuleEntry, key: &ModuleKey) -> Result<PublicKey, KeyRingError> {
    let fail = |cause: String| {
        KeyRingError::Invalid(format!(
            "{} module `{}` ({}): {key}: {cause}",
            spec.backend.name(),
            spec.name,
            spec.library.display()
        ))
    };
    let sec1 = match (spec.backend, key, token_key(key)) {
        (Backend::Sdf, ModuleKey::Index(index), _) => {
            let module = sdf::Module::open(&spec.library, spec.profile.clone())
                .map_err(|e| fail(e.to_string()))?;
            let mut session = module.session().map_err(|e| fail(e.to_string()))?;
            session
                .export_sign_public_key(*index)
                .map_err(|e| fail(e.to_string()))?
        }
        (Backend::Pkcs11, _, Some(key_ref)) => {
            let token = spec
                .token()
                .ok_or_else(|| fail("the module names no token_label or token_serial".into()))?;
            pkcs11::Token::open(
                &spec.library,
                token,
                spec.pkcs11_profile.clone().unwrap_or_default(),
            )
            .and_then(|t| t.public_key(&key_ref))
            .map_err(|e| fail(e.to_string()))?
        }
        (backend, _, _) => {
            return Err(fail(format!(
                "a {} key is named by {}",
                backend.name(),
                if backend == Backend::Sdf {
                    "--key-index"
                } else {
                    "--key-label or --key-id"
                }
            )))
        }
    };
    PublicKey::from_sec1(&sec1).map_err(|e| fail(e.to_string()))
}
