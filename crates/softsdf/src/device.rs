//! The device's safe core: an open device, its sessions and what each session holds (the
//! private-key access rights it was granted, a hash in progress). The C functions in
//! [`crate::ffi`] only translate pointers to and from these calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rand_core::{OsRng, RngCore};
use sm2::dsa::signature::hazmat::PrehashVerifier;
use sm3::{Digest, Sm3};

use crate::codes::{SdfError, SGD_SM2_1, SGD_SM3};
use crate::faults::{Faults, Op, Switches};
use crate::keys::{KeyDir, PublicPoint};
use crate::layout::{text_field, widen, DeviceInfo, EccRefPublicKey, EccSignature};

/// The environment variable naming the key directory.
pub const ENV_DIR: &str = "SOFTSDF_DIR";
/// The environment variable naming the control file.
pub const ENV_CONTROL: &str = "SOFTSDF_CONTROL";

/// The signer ID used when none is given (GB/T 32918 default).
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// What a device is opened with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The key directory.
    pub key_dir: PathBuf,
    /// The fault switches.
    pub switches: Switches,
}

impl Config {
    /// The configuration from the environment: `SOFTSDF_DIR`, `SOFTSDF_CONTROL` and the
    /// `SOFTSDF_*` fault variables (see [`crate::faults`]).
    pub fn from_env() -> Result<Self, SdfError> {
        let key_dir = std::env::var_os(ENV_DIR).ok_or_else(|| {
            eprintln!("softsdf: {ENV_DIR} is not set");
            SdfError::OpenDevice
        })?;
        let base = Faults::from_env().map_err(|why| {
            eprintln!("softsdf: {why}");
            SdfError::Unknown
        })?;
        Ok(Config {
            key_dir: PathBuf::from(key_dir),
            switches: Switches {
                base,
                control_file: std::env::var_os(ENV_CONTROL).map(PathBuf::from),
            },
        })
    }
}

/// An open device.
#[derive(Debug)]
pub struct Device {
    keys: KeyDir,
    switches: Switches,
}

impl Device {
    /// Opens the device on `config`'s key directory.
    pub fn open(config: Config) -> Result<Arc<Self>, SdfError> {
        config.switches.gate(Op::OpenDevice)?;
        let keys = KeyDir::open(&config.key_dir)?;
        Ok(Arc::new(Device {
            keys,
            switches: config.switches,
        }))
    }

    /// Passes a call of `op` through the fault switches.
    pub fn gate(&self, op: Op) -> Result<(), SdfError> {
        self.switches.gate(op)
    }

    /// Checks a PKCS#11 user PIN against the token PIN file (`token.pin`), for the PKCS#11
    /// face's `C_Login`.
    pub fn check_token_pin(&self, pin: &[u8]) -> Result<(), SdfError> {
        self.gate(Op::AccessRight)?;
        self.keys.check_token_pin(pin)
    }

    /// The indices of the keys in the key directory (`sign-<i>.key`), ascending.
    pub fn key_indices(&self) -> Vec<u32> {
        self.keys.indices()
    }

    /// Opens a session.
    pub fn open_session(self: &Arc<Self>) -> Result<Session, SdfError> {
        self.gate(Op::OpenSession)?;
        Ok(Session {
            device: Arc::clone(self),
            state: Mutex::new(SessionState::default()),
        })
    }
}

/// What a session holds between calls.
#[derive(Default)]
struct SessionState {
    /// Signing keys this session was granted, by index.
    granted: HashMap<u32, sm2_fast::SigningKey>,
    /// The hash between `SDF_HashInit` and `SDF_HashFinal`.
    hash: Option<Sm3>,
}

/// An open session on a device. One caller uses a session at a time (the standard's rule);
/// the lock only keeps a misbehaving caller from corrupting it.
pub struct Session {
    device: Arc<Device>,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    fn state(&self) -> MutexGuard<'_, SessionState> {
        // A panic while the lock was held was caught at the C boundary; the state is still
        // consistent (each update is one assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device this session belongs to.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// `SDF_GetDeviceInfo`.
    pub fn device_info(&self) -> Result<DeviceInfo, SdfError> {
        self.device.gate(Op::DeviceInfo)?;
        Ok(DeviceInfo {
            issuer_name: text_field("pension-gateway softsdf (test device)"),
            device_name: text_field("softsdf"),
            // 8-character date, 3-character batch, 5-character number.
            device_serial: text_field("20261207SDF00001"),
            device_version: 1,
            standard_version: 1,
            asym_alg_ability: [SGD_SM2_1, 256],
            sym_alg_ability: 0,
            hash_alg_ability: SGD_SM3,
            buffer_size: 64 * 1024,
        })
    }

    /// `SDF_GenerateRandom`.
    pub fn generate_random(&self, out: &mut [u8]) -> Result<(), SdfError> {
        self.device.gate(Op::Random)?;
        OsRng.try_fill_bytes(out).map_err(|_| SdfError::Random)
    }

    /// `SDF_GetPrivateKeyAccessRight`: grants this session the use of key `index`.
    pub fn get_access_right(&self, index: u32, password: &[u8]) -> Result<(), SdfError> {
        self.device.gate(Op::AccessRight)?;
        self.device.keys.check_password(index, password)?;
        self.grant(index)
    }

    /// Loads key `index` into this session's granted keys.
    fn grant(&self, index: u32) -> Result<(), SdfError> {
        let secret = self.device.keys.secret_key(index)?;
        let bytes = zeroize::Zeroizing::new(<[u8; 32]>::from(secret.to_bytes()));
        let key = sm2_fast::SigningKey::from_bytes(&bytes).map_err(|_| SdfError::Key)?;
        self.state().granted.insert(index, key);
        Ok(())
    }

    /// Grants this session the use of key `index` without a key password: for the PKCS#11
    /// face, whose user logged in with the token PIN ([`Device::check_token_pin`]). A key the
    /// session already holds is kept, not loaded again: `C_SignInit` grants before every
    /// signature, and reading and checking the key file each time cost the host ≈ 340 µs of
    /// CPU per signature — a cost of this test device that no token puts on its client. (The
    /// call still passes the fault gate: latency, hangs and failures apply as before.)
    pub fn grant_after_login(&self, index: u32) -> Result<(), SdfError> {
        self.device.gate(Op::AccessRight)?;
        if self.state().granted.contains_key(&index) {
            return Ok(());
        }
        self.grant(index)
    }

    /// The public key of key `index` (the export operation's switches apply).
    pub fn public_point(&self, index: u32) -> Result<PublicPoint, SdfError> {
        self.device.gate(Op::ExportPublicKey)?;
        self.device.keys.public_key(index)
    }

    /// Signs `message` with key `index`: e = SM3(Z‖M) computed here, Z with the default signer
    /// ID (the PKCS#11 face's message-input mechanism). Returns r‖s.
    pub fn sign_message(&self, index: u32, message: &[u8]) -> Result<[u8; 64], SdfError> {
        let point = self.device.keys.public_key(index)?;
        let mut hash = Sm3::new();
        hash.update(z(&point, DEFAULT_ID)?);
        hash.update(message);
        let e: [u8; 32] = hash.finalize().into();
        self.sign_digest_raw(index, &e)
    }

    /// Signs the 32-byte digest with key `index`; returns r‖s.
    pub fn sign_digest_raw(&self, index: u32, digest: &[u8]) -> Result<[u8; 64], SdfError> {
        let signature = self.internal_sign(index, digest)?;
        let mut out = [0u8; 64];
        let r = crate::layout::narrow(&signature.r).ok_or(SdfError::Unknown)?;
        let s = crate::layout::narrow(&signature.s).ok_or(SdfError::Unknown)?;
        out[..32].copy_from_slice(&r);
        out[32..].copy_from_slice(&s);
        Ok(out)
    }

    /// `SDF_ReleasePrivateKeyAccessRight`.
    pub fn release_access_right(&self, index: u32) -> Result<(), SdfError> {
        self.device.gate(Op::ReleaseAccessRight)?;
        self.state().granted.remove(&index);
        Ok(())
    }

    /// `SDF_ExportSignPublicKey_ECC`.
    pub fn export_sign_public_key(&self, index: u32) -> Result<EccRefPublicKey, SdfError> {
        self.device.gate(Op::ExportPublicKey)?;
        let point = self.device.keys.public_key(index)?;
        Ok(EccRefPublicKey {
            bits: 256,
            x: widen(&point.x),
            y: widen(&point.y),
        })
    }

    /// `SDF_InternalSign_ECC`: signs the 32-byte digest `e` (= SM3(Z‖M), computed by the
    /// caller) with key `index`, which this session must hold the access right for.
    pub fn internal_sign(&self, index: u32, digest: &[u8]) -> Result<EccSignature, SdfError> {
        self.device.gate(Op::Sign)?;
        if digest.len() != 32 {
            return Err(SdfError::InArg);
        }
        let state = self.state();
        let key = state
            .granted
            .get(&index)
            .ok_or(SdfError::PermissionDenied)?;
        let mut e = [0u8; 32];
        e.copy_from_slice(digest);
        // A fresh random k from the OS, rejection-sampled in [1, n).
        let (r, s) = key.sign_prehash(&e, &mut OsRng);
        Ok(EccSignature {
            r: widen(&r),
            s: widen(&s),
        })
    }

    /// `SDF_InternalVerify_ECC`: verifies `signature` over the digest with key `index`'s
    /// public key.
    pub fn internal_verify(
        &self,
        index: u32,
        digest: &[u8],
        signature: &EccSignature,
    ) -> Result<(), SdfError> {
        self.device.gate(Op::Verify)?;
        let point = self.device.keys.public_key(index)?;
        verify(&point, digest, signature)
    }

    /// `SDF_ExternalVerify_ECC`: verifies `signature` over the digest with `public_key`.
    pub fn external_verify(
        &self,
        algorithm: u32,
        public_key: &EccRefPublicKey,
        digest: &[u8],
        signature: &EccSignature,
    ) -> Result<(), SdfError> {
        self.device.gate(Op::Verify)?;
        if algorithm != SGD_SM2_1 {
            return Err(SdfError::AlgNotSupported);
        }
        verify(&point_in(public_key)?, digest, signature)
    }

    /// `SDF_HashInit`: starts an SM3 hash; with a public key, Z = SM3(ENTL‖ID‖a‖b‖G‖P) is
    /// hashed first (ID defaults to 1234567812345678 when empty).
    pub fn hash_init(
        &self,
        algorithm: u32,
        public_key: Option<&EccRefPublicKey>,
        id: &[u8],
    ) -> Result<(), SdfError> {
        self.device.gate(Op::Hash)?;
        if algorithm != SGD_SM3 {
            return Err(SdfError::AlgNotSupported);
        }
        let mut hash = Sm3::new();
        if let Some(public_key) = public_key {
            let id = if id.is_empty() { DEFAULT_ID } else { id };
            hash.update(z(&point_in(public_key)?, id)?);
        }
        self.state().hash = Some(hash);
        Ok(())
    }

    /// `SDF_HashUpdate`.
    pub fn hash_update(&self, data: &[u8]) -> Result<(), SdfError> {
        self.device.gate(Op::Hash)?;
        self.state()
            .hash
            .as_mut()
            .ok_or(SdfError::Step)?
            .update(data);
        Ok(())
    }

    /// `SDF_HashFinal`: the 32-byte digest; the session's hash is consumed.
    pub fn hash_final(&self) -> Result<[u8; 32], SdfError> {
        self.device.gate(Op::Hash)?;
        let hash = self.state().hash.take().ok_or(SdfError::Step)?;
        Ok(hash.finalize().into())
    }
}

/// The ID the `sm2` crate's key types carry; unused here, as the device signs and verifies
/// digests that already contain Z.
const CRATE_ID: &str = "1234567812345678";

/// The point of a caller's `ECCrefPublicKey`: 256 bits, right-aligned, on the curve.
fn point_in(public_key: &EccRefPublicKey) -> Result<PublicPoint, SdfError> {
    if public_key.bits != 256 {
        return Err(SdfError::InArg);
    }
    let point = PublicPoint {
        x: crate::layout::narrow(&public_key.x).ok_or(SdfError::InArg)?,
        y: crate::layout::narrow(&public_key.y).ok_or(SdfError::InArg)?,
    };
    point.to_key().ok_or(SdfError::InArg)?;
    Ok(point)
}

fn verify(point: &PublicPoint, digest: &[u8], signature: &EccSignature) -> Result<(), SdfError> {
    if digest.len() != 32 {
        return Err(SdfError::InArg);
    }
    let key = point.to_key().ok_or(SdfError::InArg)?;
    let key = sm2::dsa::VerifyingKey::new(CRATE_ID, key).map_err(|_| SdfError::InArg)?;
    let (Some(r), Some(s)) = (
        crate::layout::narrow(&signature.r),
        crate::layout::narrow(&signature.s),
    ) else {
        return Err(SdfError::Verify);
    };
    // r or s zero or ≥ n: not a signature.
    let signature = sm2::dsa::Signature::from_scalars(r, s).map_err(|_| SdfError::Verify)?;
    key.verify_prehash(digest, &signature)
        .map_err(|_| SdfError::Verify)
}

/// The SM2 curve's a, b, Gx, Gy (GB/T 32918.5), as hashed into Z.
const CURVE_A_B_G: [[u8; 32]; 4] = [
    hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"),
    hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"),
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"),
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"),
];

const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not an upper-case hex digit"),
        }
    }
    let bytes = text.as_bytes();
    assert!(bytes.len() == 64, "not 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(bytes[2 * i]) << 4 | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// Z = SM3(ENTL‖ID‖a‖b‖Gx‖Gy‖x‖y), ENTL the ID's length in bits on two bytes.
pub fn z(point: &PublicPoint, id: &[u8]) -> Result<[u8; 32], SdfError> {
    let bits = u16::try_from(id.len() * 8).map_err(|_| SdfError::InArg)?;
    let mut hash = Sm3::new();
    hash.update(bits.to_be_bytes());
    hash.update(id);
    for constant in &CURVE_A_B_G {
        hash.update(constant);
    }
    hash.update(point.x);
    hash.update(point.y);
    Ok(hash.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Faults;
    use crate::keys::provision;
    use crate::layout::narrow;

    const ANNEX_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const ANNEX_E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
    const ANNEX_Z: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
    const ANNEX_R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
    const ANNEX_S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

    fn open_with_annex_key(dir: &std::path::Path) -> Session {
        let secret = sm2::SecretKey::from_slice(&hex32(ANNEX_D)).unwrap();
        provision(dir, 1, &secret, b"pw").unwrap();
        let device = Device::open(Config {
            key_dir: dir.to_path_buf(),
            switches: Switches::default(),
        })
        .unwrap();
        device.open_session().unwrap()
    }

    #[test]
    fn hash_with_the_public_key_and_id_gives_the_annex_digest() {
        let dir = tempfile::tempdir().unwrap();
        let session = open_with_annex_key(dir.path());
        let public = session.export_sign_public_key(1).unwrap();
        let point = point_in(&public).unwrap();
        assert_eq!(z(&point, DEFAULT_ID).unwrap(), hex32(ANNEX_Z));
        session
            .hash_init(SGD_SM3, Some(&public), b"1234567812345678")
            .unwrap();
        session.hash_update(b"message ").unwrap();
        session.hash_update(b"digest").unwrap();
        assert_eq!(session.hash_final().unwrap(), hex32(ANNEX_E));
        // Without a key: plain SM3 ("abc", GB/T 32905 example 1).
        session.hash_init(SGD_SM3, None, b"").unwrap();
        session.hash_update(b"abc").unwrap();
        assert_eq!(
            hex::encode(session.hash_final().unwrap()),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(session.hash_final(), Err(SdfError::Step));
        assert_eq!(session.hash_update(b"x"), Err(SdfError::Step));
        assert_eq!(
            session.hash_init(0x0000_0002, None, b""),
            Err(SdfError::AlgNotSupported)
        );
    }

    #[test]
    fn the_annex_signature_verifies_externally_and_internally() {
        let dir = tempfile::tempdir().unwrap();
        let session = open_with_annex_key(dir.path());
        let public = session.export_sign_public_key(1).unwrap();
        let signature = EccSignature {
            r: widen(&hex32(ANNEX_R)),
            s: widen(&hex32(ANNEX_S)),
        };
        let e = hex32(ANNEX_E);
        assert_eq!(
            session.external_verify(SGD_SM2_1, &public, &e, &signature),
            Ok(())
        );
        assert_eq!(session.internal_verify(1, &e, &signature), Ok(()));
        let mut other = e;
        other[31] ^= 1;
        assert_eq!(
            session.external_verify(SGD_SM2_1, &public, &other, &signature),
            Err(SdfError::Verify)
        );
        assert_eq!(
            session.external_verify(SGD_SM2_1 + 1, &public, &e, &signature),
            Err(SdfError::AlgNotSupported)
        );
        let mut off_curve = public;
        off_curve.y[63] ^= 1;
        assert_eq!(
            session.external_verify(SGD_SM2_1, &off_curve, &e, &signature),
            Err(SdfError::InArg)
        );
    }

    #[test]
    fn signing_needs_the_access_right_and_signs_the_digest_given() {
        let dir = tempfile::tempdir().unwrap();
        let session = open_with_annex_key(dir.path());
        let e = hex32(ANNEX_E);
        assert_eq!(
            session.internal_sign(1, &e),
            Err(SdfError::PermissionDenied)
        );
        assert_eq!(
            session.get_access_right(1, b"wrong"),
            Err(SdfError::AccessRight)
        );
        assert_eq!(
            session.internal_sign(1, &e),
            Err(SdfError::PermissionDenied)
        );
        session.get_access_right(1, b"pw").unwrap();
        let signature = session.internal_sign(1, &e).unwrap();
        assert_eq!(session.internal_sign(1, &e[..31]), Err(SdfError::InArg));
        // The signature verifies for the message under the default ID with the RustCrypto
        // verifier that hashes Z itself: the digest was taken as e, not hashed again.
        let secret = sm2::SecretKey::from_slice(&hex32(ANNEX_D)).unwrap();
        let verifier =
            sm2::dsa::VerifyingKey::new("1234567812345678", secret.public_key()).unwrap();
        let sig = sm2::dsa::Signature::from_scalars(
            narrow(&signature.r).unwrap(),
            narrow(&signature.s).unwrap(),
        )
        .unwrap();
        use sm2::dsa::signature::Verifier;
        assert!(verifier.verify(b"message digest", &sig).is_ok());
        // Two signatures of one digest differ (fresh k).
        assert_ne!(session.internal_sign(1, &e).unwrap(), signature);
        session.release_access_right(1).unwrap();
        assert_eq!(
            session.internal_sign(1, &e),
            Err(SdfError::PermissionDenied)
        );
    }

    proptest::proptest! {
        /// Arbitrary caller structures are refused with a code, never a panic or a pass.
        #[test]
        fn arbitrary_signatures_and_keys_do_not_verify(
            r in proptest::array::uniform32(proptest::num::u8::ANY),
            s in proptest::array::uniform32(proptest::num::u8::ANY),
            high in proptest::num::u8::ANY,
            bits in proptest::num::u32::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let session = open_with_annex_key(dir.path());
            let public = session.export_sign_public_key(1).unwrap();
            let mut signature = EccSignature { r: widen(&r), s: widen(&s) };
            signature.r[0] = high;
            let e = hex32(ANNEX_E);
            let result = session.external_verify(SGD_SM2_1, &public, &e, &signature);
            proptest::prop_assert_eq!(result, Err(SdfError::Verify));
            let odd = EccRefPublicKey { bits, ..public };
            if bits != 256 {
                proptest::prop_assert_eq!(
                    session.external_verify(SGD_SM2_1, &odd, &e, &signature),
                    Err(SdfError::InArg)
                );
            }
        }
    }

    #[test]
    fn device_info_names_the_device_and_its_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let info = open_with_annex_key(dir.path()).device_info().unwrap();
        assert_eq!(&info.device_name[..8], b"softsdf\0");
        assert_eq!(info.device_serial.len(), 16);
        assert_eq!(info.asym_alg_ability, [SGD_SM2_1, 256]);
        assert_eq!(info.hash_alg_ability, SGD_SM3);
    }

    #[test]
    fn injected_failures_reach_the_calls_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(ANNEX_D)).unwrap();
        provision(dir.path(), 1, &secret, b"pw").unwrap();
        let control = dir.path().join("control");
        let device = Device::open(Config {
            key_dir: dir.path().to_path_buf(),
            switches: Switches {
                base: Faults::default(),
                control_file: Some(control.clone()),
            },
        })
        .unwrap();
        let session = device.open_session().unwrap();
        session.get_access_right(1, b"pw").unwrap();
        std::fs::write(&control, "fail = sign\nfail_code = 0x01000004\n").unwrap();
        assert_eq!(
            session.internal_sign(1, &[7; 32]),
            Err(SdfError::Injected(0x0100_0004))
        );
        assert!(session.export_sign_public_key(1).is_ok());
        std::fs::remove_file(&control).unwrap();
        assert!(session.internal_sign(1, &[7; 32]).is_ok());
    }
}
