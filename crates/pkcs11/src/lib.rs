//! A PKCS#11 client for signing with SM2 keys kept inside a token, through the vendor's library
//! loaded at run time (the `cryptoki` binding).
//!
//! PKCS#11 has no SM2 mechanism: the mechanism code, and whether it takes the 32-byte digest
//! e = SM3(Z‖M) or the message, come from a [`Profile`] (data; one code path for every vendor).
//! A token is chosen by label or serial ([`TokenSelector`]); a key by `CKA_LABEL` or `CKA_ID`
//! ([`KeyRef`]). [`Token::open`] refuses a token that does not offer the profile's mechanism for
//! signing, naming it. The private key never leaves the token: this crate only sees the public
//! key (`CKA_EC_POINT`), the digest or message, and the signature.
//!
//! A library is loaded and initialised once per process (PKCS#11 allows one `C_Initialize` per
//! application) and kept; a [`Token`] opened again (a reload) opens new sessions on it. Every
//! call blocks (a token may be a network HSM); callers keep it off their async workers. A
//! [`SigningSession`] is used by one thread at a time.

mod error;
pub mod profile;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;

pub use error::P11Error;
pub use profile::{Input, Profile};
pub use sdf::Password as Pin;

/// Which token of the library's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// The token whose label (blank-padded in `CK_TOKEN_INFO`) is this.
    Label(String),
    /// The token whose serial number is this.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "token label `{l}`"),
            TokenSelector::Serial(s) => write!(f, "token serial `{s}`"),
        }
    }
}

/// Which key on the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// `CKA_LABEL`.
    Label(String),
    /// `CKA_ID` (bytes).
    Id(Vec<u8>),
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Label(l) => write!(f, "CKA_LABEL `{l}`"),
            KeyRef::Id(id) => {
                f.write_str("CKA_ID ")?;
                id.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl KeyRef {
    fn attribute(&self) -> Attribute {
        match self {
            KeyRef::Label(l) => Attribute::Label(l.as_bytes().to_vec()),
            KeyRef::Id(id) => Attribute::Id(id.clone()),
        }
    }
}

/// An SM2 signature as the token made it: r and s, 32 bytes each, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSignature {
    /// r.
    pub r: [u8; 32],
    /// s.
    pub s: [u8; 32],
}

/// The library at `path`, loaded and initialised once per process.
pub fn context(path: &Path) -> Result<Pkcs11, P11Error> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(ctx) = loaded.get(path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|source| P11Error::Load {
        path: path.to_path_buf(),
        source,
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in the process initialised it: usable as it is.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(P11Error::call("C_Initialize", e)),
    }
    loaded.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A token: its library loaded, its slot found, the profile's mechanism checked.
#[derive(Debug, Clone)]
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    library: PathBuf,
    selector: TokenSelector,
    mechanism: MechanismType,
    profile: Arc<Profile>,
}

impl Token {
    /// Loads `library` (once per process), finds the token `selector` names and checks it
    /// offers the profile's mechanism for signing.
    pub fn open(
        library: &Path,
        selector: TokenSelector,
        profile: Profile,
    ) -> Result<Self, P11Error> {
        let ctx = context(library)?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| P11Error::call("C_GetSlotList", e))?;
        let mut found = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| P11Error::call("C_GetTokenInfo", e))?;
            let (label, serial) = (info.label().trim_end(), info.serial_number().trim_end());
            let matches = match &selector {
                TokenSelector::Label(l) => label == l,
                TokenSelector::Serial(s) => serial == s,
            };
            if matches && chosen.is_none() {
                chosen = Some(slot);
            } else {
                found.push(format!("`{label}` (serial `{serial}`)"));
            }
        }
        let Some(slot) = chosen else {
            return Err(P11Error::NoToken {
                selector: selector.to_string(),
                found: if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                },
            });
        };
        let mechanism = mechanism_type(profile.mechanism)?;
        let offered = match ctx.get_mechanism_info(slot, mechanism) {
            Ok(info) => info.sign(),
            Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => false,
            Err(e) => return Err(P11Error::call("C_GetMechanismInfo", e)),
        };
        if !offered {
            let listed = ctx
                .get_mechanism_list(slot)
                .map_err(|e| P11Error::call("C_GetMechanismList", e))?
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            return Err(P11Error::NoMechanism {
                mechanism: profile.mechanism,
                profile: profile.name.clone(),
                token: selector.to_string(),
                listed: if listed.is_empty() {
                    "no standard mechanism".to_owned()
                } else {
                    listed.join(", ")
                },
            });
        }
        Ok(Token {
            ctx,
            slot,
            library: library.to_path_buf(),
            selector,
            mechanism,
            profile: Arc::new(profile),
        })
    }

    /// The library's path.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The profile in use.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The signing public key of `key` (SEC1 uncompressed, `04‖x‖y`), read without logging in
    /// (`CKA_EC_POINT` of the public key object; of the private key object when the token keeps
    /// no public one).
    pub fn public_key(&self, key: &KeyRef) -> Result<[u8; 65], P11Error> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| P11Error::call("C_OpenSession", e))?;
        public_key(&session, key, None, &self.selector)
    }

    /// Opens a session, logs the user in with `pin` and finds the private key `key` (exactly
    /// one object of class `CKO_PRIVATE_KEY` with that label or id).
    pub fn session(&self, pin: &Pin, key: &KeyRef) -> Result<SigningSession, P11Error> {
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| P11Error::call("C_OpenSession", e))?;
        let raw = RawAuthPin::new(Box::new(pin.expose().to_vec()));
        match session.login_with_raw(UserType::User, &raw) {
            // Login is per application: another open session logged it in already.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(P11Error::WrongPin {
                    token: self.selector.to_string(),
                })
            }
            Err(e) => return Err(P11Error::call("C_Login", e)),
        }
        let private = find_one(&session, ObjectClass::PRIVATE_KEY, key, &self.selector)?
            .ok_or_else(|| P11Error::KeyNotFound {
                what: "private key",
                key: key.to_string(),
                token: self.selector.to_string(),
            })?;
        Ok(SigningSession {
            session,
            private,
            key: key.clone(),
            selector: self.selector.clone(),
            mechanism: self.mechanism,
            profile: Arc::clone(&self.profile),
        })
    }
}

/// The `MechanismType` of a code: vendor-defined, or one the binding knows.
fn mechanism_type(code: u64) -> Result<MechanismType, P11Error> {
    if code >= profile::CKM_VENDOR_DEFINED {
        MechanismType::new_vendor_defined(code)
    } else {
        MechanismType::try_from(code)
    }
    .map_err(|_| P11Error::UnknownMechanism(code))
}

/// The one object of `class` with `key`'s label or id, `None` when there is none.
fn find_one(
    session: &Session,
    class: ObjectClass,
    key: &KeyRef,
    selector: &TokenSelector,
) -> Result<Option<ObjectHandle>, P11Error> {
    let found = session
        .find_objects(&[Attribute::Class(class), key.attribute()])
        .map_err(|e| P11Error::call("C_FindObjects", e))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(P11Error::AmbiguousKey {
            key: key.to_string(),
            token: selector.to_string(),
            count: many.len(),
        }),
    }
}

/// `CKA_EC_POINT` of `key`'s public key object, or of `private` when there is none.
fn public_key(
    session: &Session,
    key: &KeyRef,
    private: Option<ObjectHandle>,
    selector: &TokenSelector,
) -> Result<[u8; 65], P11Error> {
    let object =
        match find_one(session, ObjectClass::PUBLIC_KEY, key, selector)? {
            Some(o) => o,
            None => match private {
                Some(p) => p,
                None => find_one(session, ObjectClass::PRIVATE_KEY, key, selector)?.ok_or_else(
                    || P11Error::KeyNotFound {
                        what: "public key",
                        key: key.to_string(),
                        token: selector.to_string(),
                    },
                )?,
            },
        };
    let attributes = session
        .get_attributes(object, &[AttributeType::EcPoint])
        .map_err(|e| P11Error::call("C_GetAttributeValue", e))?;
    let point = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or(P11Error::Layout("the key has no CKA_EC_POINT"))?;
    ec_point(&point)
}

/// A `CKA_EC_POINT` value: the standard's DER OCTET STRING around `04‖x‖y`, or (some vendors)
/// the 65 bytes bare. The lengths (67 and 65) tell them apart.
pub fn ec_point(value: &[u8]) -> Result<[u8; 65], P11Error> {
    let raw = match value {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare if bare.len() == 65 => bare,
        _ => {
            return Err(P11Error::Layout(
                "CKA_EC_POINT is not an uncompressed 256-bit point",
            ))
        }
    };
    if raw[0] != 0x04 {
        return Err(P11Error::Layout(
            "CKA_EC_POINT is not an uncompressed point",
        ));
    }
    let mut out = [0u8; 65];
    out.copy_from_slice(raw);
    Ok(out)
}

/// A signature as a token returns it: r‖s (64 bytes, the PKCS#11 convention for EC), or a DER
/// `SEQUENCE { INTEGER r, INTEGER s }` (some vendors).
pub fn signature(value: &[u8]) -> Result<RawSignature, P11Error> {
    const BAD: P11Error = P11Error::Layout("the signature is neither r‖s nor a DER sequence");
    if value.len() == 64 {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&value[..32]);
        s.copy_from_slice(&value[32..]);
        return Ok(RawSignature { r, s });
    }
    let body = match value {
        [0x30, len, body @ ..] if usize::from(*len) == body.len() => body,
        _ => return Err(BAD),
    };
    let (r, rest) = der_integer(body).ok_or(BAD)?;
    let (s, rest) = der_integer(rest).ok_or(BAD)?;
    if !rest.is_empty() {
        return Err(BAD);
    }
    Ok(RawSignature { r, s })
}

/// One positive DER INTEGER of at most 32 significant bytes, right-aligned, and what follows.
fn der_integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
    let [0x02, len, rest @ ..] = input else {
        return None;
    };
    let len = usize::from(*len);
    if len == 0 || len > 33 || rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    if value[0] & 0x80 != 0 {
        return None;
    }
    let value = match value {
        [0, tail @ ..] if len == 33 => tail,
        v if v.len() <= 32 => v,
        _ => return None,
    };
    let mut out = [0u8; 32];
    out[32 - value.len()..].copy_from_slice(value);
    Some((out, rest))
}

/// A logged-in session with its private key found; signs with the profile's mechanism.
#[derive(Debug)]
pub struct SigningSession {
    session: Session,
    private: ObjectHandle,
    key: KeyRef,
    selector: TokenSelector,
    mechanism: MechanismType,
    profile: Arc<Profile>,
}

impl SigningSession {
    /// The key's public key (SEC1 uncompressed).
    pub fn public_key(&self) -> Result<[u8; 65], P11Error> {
        public_key(&self.session, &self.key, Some(self.private), &self.selector)
    }

    /// Signs with the profile's mechanism: the digest e = SM3(Z‖M) the caller computed, or
    /// `message` when the profile says the token hashes.
    pub fn sign(&mut self, digest: &[u8; 32], message: &[u8]) -> Result<RawSignature, P11Error> {
        let data = match self.profile.input {
            Input::Digest => digest.as_slice(),
            Input::Message => message,
        };
        let mechanism =
            Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(self.mechanism, None));
        let out = self
            .session
            .sign(&mechanism, self.private, data)
            .map_err(|e| P11Error::call("C_Sign", e))?;
        signature(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_in_both_encodings() {
        let mut bare = [7u8; 65];
        bare[0] = 4;
        assert_eq!(ec_point(&bare).unwrap(), bare);
        let mut der = vec![0x04, 0x41];
        der.extend_from_slice(&bare);
        assert_eq!(ec_point(&der).unwrap(), bare);
        assert!(ec_point(&bare[..33]).is_err());
        let mut compressed = bare;
        compressed[0] = 2;
        assert!(ec_point(&compressed).is_err());
    }

    #[test]
    fn signatures_raw_or_der() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 1;
        raw[63] = 2;
        let sig = signature(&raw).unwrap();
        assert_eq!((sig.r[0], sig.r[31], sig.s[31]), (0x80, 1, 2));
        // r with a leading zero (high bit set), s short.
        let mut der = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        der.extend_from_slice(&sig.r);
        der.extend_from_slice(&[0x02, 0x01, 0x02]);
        assert_eq!(
            signature(&der).unwrap(),
            RawSignature { r: sig.r, s: sig.s }
        );
        assert!(signature(&der[..der.len() - 1]).is_err());
        assert!(signature(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn keys_and_tokens_are_named_in_errors() {
        assert_eq!(KeyRef::Id(vec![0, 1, 0xab]).to_string(), "CKA_ID 0001ab");
        assert_eq!(KeyRef::Label("k".into()).to_string(), "CKA_LABEL `k`");
        assert_eq!(
            TokenSelector::Serial("42".into()).to_string(),
            "token serial `42`"
        );
    }

    #[test]
    fn a_missing_library_is_named() {
        let e = Token::open(
            Path::new("/nonexistent/libp11.so"),
            TokenSelector::Label("x".into()),
            Profile::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cannot load PKCS#11 library /nonexistent/libp11.so"),
            "{e}"
        );
    }
}
