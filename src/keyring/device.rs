//! The cryptographic modules a [`super::signer::ModuleSigner`] signs through, behind one small
//! trait: an SDF device (GM/T 0018, `crates/sdf`) or a PKCS#11 token (`crates/pkcs11`). The
//! signer's pool, deadline, health and probes are the same for both; only opening a session and
//! the two calls on it differ.

use std::sync::Arc;

use super::manifest::ModuleKey;

/// Why a module call failed: the client's typed error, kept.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An SDF call failed.
    #[error(transparent)]
    Sdf(#[from] sdf::SdfError),
    /// A PKCS#11 call failed.
    #[error(transparent)]
    Pkcs11(#[from] pkcs11::P11Error),
    /// The module's public key is not a point on the SM2 curve.
    #[error("the exported public key is not a point on the SM2 curve")]
    NotSm2Point,
}

/// A module holding one bank key: opens sessions ready to sign with it.
pub trait ModuleDevice: Send + Sync {
    /// `sdf` or `pkcs11` (metrics, errors).
    fn backend(&self) -> &'static str;
    /// Opens a session able to sign with the key (access right taken, or logged in and the key
    /// found).
    fn open_session(&self) -> Result<Box<dyn DeviceSession>, DeviceError>;
}

/// An open session of a [`ModuleDevice`], used by one thread at a time.
pub trait DeviceSession: Send {
    /// The key's public key as the module exports it, SEC1 uncompressed.
    fn public_key(&mut self) -> Result<[u8; 65], DeviceError>;
    /// Signs: the module takes the digest e = SM3(Z‖M) (or, for a PKCS#11 profile whose
    /// mechanism hashes, the message). Returns r and s.
    fn sign(&mut self, e: &[u8; 32], message: &[u8]) -> Result<([u8; 32], [u8; 32]), DeviceError>;
}

/// A key at an index of an SDF device, with its access password.
pub struct SdfDevice {
    module: Arc<sdf::Module>,
    password: sdf::Password,
    index: u32,
}

impl SdfDevice {
    /// The device and a first session: the device must list the profile's SM2 algorithm and
    /// grant the key's access right with `password`.
    pub fn open(
        module: Arc<sdf::Module>,
        password: sdf::Password,
        index: u32,
    ) -> Result<(Self, Box<dyn DeviceSession>), DeviceError> {
        let mut session = module.session()?;
        session.check_sm2()?;
        session.get_access_right(index, &password)?;
        Ok((
            SdfDevice {
                module,
                password,
                index,
            },
            Box::new(SdfSession { session, index }),
        ))
    }
}

impl ModuleDevice for SdfDevice {
    fn backend(&self) -> &'static str {
        "sdf"
    }

    fn open_session(&self) -> Result<Box<dyn DeviceSession>, DeviceError> {
        let mut session = self.module.session()?;
        session.get_access_right(self.index, &self.password)?;
        Ok(Box::new(SdfSession {
            session,
            index: self.index,
        }))
    }
}

struct SdfSession {
    session: sdf::Session,
    index: u32,
}

impl DeviceSession for SdfSession {
    fn public_key(&mut self) -> Result<[u8; 65], DeviceError> {
        Ok(self.session.export_sign_public_key(self.index)?)
    }

    fn sign(&mut self, e: &[u8; 32], _message: &[u8]) -> Result<([u8; 32], [u8; 32]), DeviceError> {
        let raw = self.session.sign_digest(self.index, e)?;
        Ok((raw.r, raw.s))
    }
}

/// A key on a PKCS#11 token, with the user PIN.
pub struct Pkcs11Device {
    token: Arc<pkcs11::Token>,
    pin: pkcs11::Pin,
    key: pkcs11::KeyRef,
}

impl Pkcs11Device {
    /// The token and a first session: logged in with `pin`, the private key found.
    pub fn open(
        token: Arc<pkcs11::Token>,
        pin: pkcs11::Pin,
        key: pkcs11::KeyRef,
    ) -> Result<(Self, Box<dyn DeviceSession>), DeviceError> {
        let session = token.session(&pin, &key)?;
        Ok((
            Pkcs11Device { token, pin, key },
            Box::new(Pkcs11Session(session)),
        ))
    }
}

impl ModuleDevice for Pkcs11Device {
    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    fn open_session(&self) -> Result<Box<dyn DeviceSession>, DeviceError> {
        Ok(Box::new(Pkcs11Session(
            self.token.session(&self.pin, &self.key)?,
        )))
    }
}

struct Pkcs11Session(pkcs11::SigningSession);

impl DeviceSession for Pkcs11Session {
    fn public_key(&mut self) -> Result<[u8; 65], DeviceError> {
        Ok(self.0.public_key()?)
    }

    fn sign(&mut self, e: &[u8; 32], message: &[u8]) -> Result<([u8; 32], [u8; 32]), DeviceError> {
        let raw = self.0.sign(e, message)?;
        Ok((raw.r, raw.s))
    }
}

/// The PKCS#11 key reference of a manifest key (a label or an id), `None` for an index.
pub fn token_key(key: &ModuleKey) -> Option<pkcs11::KeyRef> {
    match key {
        ModuleKey::Index(_) => None,
        ModuleKey::Label(l) => Some(pkcs11::KeyRef::Label(l.clone())),
        ModuleKey::Id(id) => Some(pkcs11::KeyRef::Id(id.clone())),
    }
}
