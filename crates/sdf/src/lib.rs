//! A GM/T 0018 (SDF) client for signing with SM2 keys kept inside a cryptographic module.
//!
//! The vendor's library is loaded at run time ([`Module::open`]); keys are addressed by index;
//! the caller computes the 32-byte digest e = SM3(Z‖M) itself and the module signs e
//! ([`Session::sign_digest`]), so the signer ID and Z are handled once, identically for every
//! backend. What differs between vendors — field sizes, algorithm identifiers — is a
//! [`Profile`] (data); the default follows the standard. The private key never leaves the
//! module: this crate only ever sees the public key, the digest and the signature.
//!
//! Every module call blocks (a module is a remote device); callers keep it off their async
//! workers. A [`Session`] is used by one thread at a time.

mod error;
mod ffi;
mod password;
pub mod profile;

use std::path::Path;
use std::sync::Arc;

pub use error::{code_name, PasswordFileError, SdfError};
pub use password::Password;
pub use profile::Profile;

use ffi::{Api, DeviceHandle, SessionHandle};

/// A module: its library loaded and its device open. Open sessions from it, from any thread.
#[derive(Debug)]
pub struct Module {
    device: Arc<DeviceHandle>,
    api: Arc<Api>,
    profile: Arc<Profile>,
}

impl Module {
    /// Loads the library at `library` and opens its device. Errors name the library, the
    /// missing function, or the code `SDF_OpenDevice` returned.
    pub fn open(library: &Path, profile: Profile) -> Result<Self, SdfError> {
        profile.validate()?;
        let api = Api::load(library)?;
        let device = Arc::new(DeviceHandle::open(&api)?);
        Ok(Module {
            device,
            api,
            profile: Arc::new(profile),
        })
    }

    /// The library's path.
    pub fn library(&self) -> &Path {
        self.api.path()
    }

    /// The vendor profile in use.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Opens a session.
    pub fn session(&self) -> Result<Session, SdfError> {
        Ok(Session {
            handle: self.device.open_session()?,
            profile: Arc::clone(&self.profile),
            granted: Vec::new(),
        })
    }
}

/// `DEVICEINFO`, as the module reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Manufacturer.
    pub issuer: String,
    /// Device model.
    pub name: String,
    /// Serial number.
    pub serial: String,
    /// Device (hardware) version.
    pub device_version: u32,
    /// Version of the standard.
    pub standard_version: u32,
    /// `[0]`: asymmetric algorithms (OR of identifiers); `[1]`: key lengths.
    pub asym_alg_ability: [u32; 2],
    /// Symmetric algorithms.
    pub sym_alg_ability: u32,
    /// Hash algorithms.
    pub hash_alg_ability: u32,
    /// Largest buffer one call accepts.
    pub buffer_size: u32,
}

impl DeviceInfo {
    fn parse(raw: &[u8]) -> Self {
        let text = |range: std::ops::Range<usize>| {
            let field = raw.get(range).unwrap_or_default();
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
        };
        let number = |at: usize| {
            raw.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_ne_bytes)
                .unwrap_or(0)
        };
        DeviceInfo {
            issuer: text(0..40),
            name: text(40..56),
            serial: text(56..72),
            device_version: number(72),
            standard_version: number(76),
            asym_alg_ability: [number(80), number(84)],
            sym_alg_ability: number(88),
            hash_alg_ability: number(92),
            buffer_size: number(96),
        }
    }
}

/// An SM2 signature as the module made it: r and s, 32 bytes each, big-endian, both checked
/// to lie in [1, n-1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSignature {
    /// r.
    pub r: [u8; 32],
    /// s.
    pub s: [u8; 32],
}

/// A session on a module. Access rights it obtained are released when it is dropped.
#[derive(Debug)]
pub struct Session {
    handle: SessionHandle,
    profile: Arc<Profile>,
    granted: Vec<u32>,
}

impl Session {
    /// `SDF_GetDeviceInfo`; `None` when the library does not export it.
    pub fn device_info(&mut self) -> Option<Result<DeviceInfo, SdfError>> {
        self.handle
            .device_info()
            .map(|raw| raw.map(|raw| DeviceInfo::parse(&raw)))
    }

    /// Refuses a device whose `DEVICEINFO` does not list the profile's SM2 signature
    /// algorithm (a library without `SDF_GetDeviceInfo` is given the benefit of the doubt).
    pub fn check_sm2(&mut self) -> Result<(), SdfError> {
        let wanted = self.profile.sm2_sign_algorithm;
        match self.device_info() {
            None => Ok(()),
            Some(Err(e)) => Err(e),
            Some(Ok(info)) if info.asym_alg_ability[0] & wanted == wanted => Ok(()),
            Some(Ok(info)) => Err(SdfError::NoSm2 {
                wanted,
                listed: info.asym_alg_ability[0],
            }),
        }
    }

    /// `SDF_GetPrivateKeyAccessRight` for key `index`.
    pub fn get_access_right(&mut self, index: u32, password: &Password) -> Result<(), SdfError> {
        self.handle.get_access_right(index, password.expose())?;
        if !self.granted.contains(&index) {
            self.granted.push(index);
        }
        Ok(())
    }

    /// `SDF_ReleasePrivateKeyAccessRight` for key `index`.
    pub fn release_access_right(&mut self, index: u32) -> Result<(), SdfError> {
        self.granted.retain(|&i| i != index);
        self.handle.release_access_right(index)
    }

    /// `SDF_ExportSignPublicKey_ECC`: the signing public key of `index`, SEC1 uncompressed
    /// (`04‖x‖y`), checked to be a point on the SM2 curve.
    pub fn export_sign_public_key(&mut self, index: u32) -> Result<[u8; 65], SdfError> {
        const FUNCTION: &str = "SDF_ExportSignPublicKey_ECC";
        let raw = self.handle.export_sign_public_key(index)?;
        let layout = |what| self.layout_error(FUNCTION, what);
        let len = self.profile.ecc_field_len;
        let bits = raw
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_ne_bytes);
        if bits != Some(256) {
            return Err(layout("bits is not 256"));
        }
        let x = narrow(raw.get(4..4 + len)).ok_or_else(|| layout("x does not fit 32 bytes"))?;
        let y = narrow(raw.get(4 + len..4 + 2 * len))
            .ok_or_else(|| layout("y does not fit 32 bytes"))?;
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..33].copy_from_slice(&x);
        sec1[33..].copy_from_slice(&y);
        sm2::PublicKey::from_sec1_bytes(&sec1)
            .map_err(|_| layout("not a point on the SM2 curve"))?;
        Ok(sec1)
    }

    /// `SDF_InternalSign_ECC`: key `index` signs the digest e = SM3(Z‖M) that the caller
    /// computed. The session must hold the key's access right.
    pub fn sign_digest(&mut self, index: u32, digest: &[u8; 32]) -> Result<RawSignature, SdfError> {
        const FUNCTION: &str = "SDF_InternalSign_ECC";
        let raw = self.handle.internal_sign(index, digest)?;
        let layout = |what| self.layout_error(FUNCTION, what);
        let len = self.profile.ecc_field_len;
        let r = narrow(raw.get(..len)).ok_or_else(|| layout("r does not fit 32 bytes"))?;
        let s = narrow(raw.get(len..2 * len)).ok_or_else(|| layout("s does not fit 32 bytes"))?;
        sm2::dsa::Signature::from_scalars(r, s).map_err(|_| layout("r or s is not in [1, n-1]"))?;
        Ok(RawSignature { r, s })
    }

    fn layout_error(&self, function: &'static str, what: &'static str) -> SdfError {
        SdfError::Layout {
            function,
            profile: self.profile.name.clone(),
            what,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the session drops its rights too; releasing first is for modules that keep
        // rights per application rather than per session. Failures change nothing here.
        for index in std::mem::take(&mut self.granted) {
            let _ = self.handle.release_access_right(index);
        }
    }
}

/// The 32-byte number in a right-aligned big-endian field of 32 or 64 bytes, or `None` when the
/// field is missing or its upper part is not zero.
fn narrow(field: Option<&[u8]>) -> Option<[u8; 32]> {
    let field = field?;
    let (high, low) = field.split_at(field.len().checked_sub(32)?);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    low.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_right_aligned_big_endian() {
        let mut f = [0u8; 64];
        f[32] = 1;
        f[63] = 2;
        let v = narrow(Some(&f)).unwrap();
        assert_eq!((v[0], v[31]), (1, 2));
        f[0] = 9;
        assert_eq!(narrow(Some(&f)), None);
        assert_eq!(narrow(Some(&f[32..])), Some(v));
        assert_eq!(narrow(Some(&f[..31])), None);
        assert_eq!(narrow(None), None);
    }

    #[test]
    fn device_info_is_read_at_the_standards_offsets() {
        let mut raw = [0u8; 100];
        raw[..6].copy_from_slice(b"Vendor");
        raw[40..44].copy_from_slice(b"Card");
        raw[56..72].copy_from_slice(b"20240101ABC00042");
        raw[80..84].copy_from_slice(&0x0002_0200u32.to_ne_bytes());
        raw[96..100].copy_from_slice(&65536u32.to_ne_bytes());
        let info = DeviceInfo::parse(&raw);
        assert_eq!(info.issuer, "Vendor");
        assert_eq!(info.name, "Card");
        assert_eq!(info.serial, "20240101ABC00042");
        assert_eq!(info.asym_alg_ability, [0x0002_0200, 0]);
        assert_eq!(info.buffer_size, 65536);
    }
}
