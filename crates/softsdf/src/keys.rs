//! The device's key store: a directory holding, per key index `i`,
//! - `sign-<i>.key`: the SM2 signing key, as 64 hex digits (the private scalar), or PEM
//!   (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`);
//! - `sign-<i>.pass`: the password that `SDF_GetPrivateKeyAccessRight` must be given (the file's
//!   bytes, one trailing newline removed).
//!
//! Both files must be readable by their owner only (mode 0600), as a module's key store would
//! be closed to others. This is a test device: its keys are plain files, and the `sm2` crate's
//! signing key does not zeroize itself on drop; the file text and the password are zeroized.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm2::pkcs8::DecodePrivateKey;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codes::SdfError;

/// The key files of one directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

/// An uncompressed SM2 public key: x and y, 32 bytes each, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicPoint {
    /// x coordinate.
    pub x: [u8; 32],
    /// y coordinate.
    pub y: [u8; 32],
}

impl PublicPoint {
    /// The point of an `sm2` public key.
    pub fn of(key: &sm2::PublicKey) -> Self {
        let point = key.to_encoded_point(false);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        // An uncompressed encoding of a non-identity point always has both coordinates.
        if let (Some(px), Some(py)) = (point.x(), point.y()) {
            x.copy_from_slice(px);
            y.copy_from_slice(py);
        }
        PublicPoint { x, y }
    }

    /// The `sm2` public key, or `None` when the point is not on the curve.
    pub fn to_key(&self) -> Option<sm2::PublicKey> {
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..33].copy_from_slice(&self.x);
        sec1[33..].copy_from_slice(&self.y);
        sm2::PublicKey::from_sec1_bytes(&sec1).ok()
    }
}

impl KeyDir {
    /// The key store in `dir`; `SdfError::OpenDevice` when it is not a directory.
    pub fn open(dir: &Path) -> Result<Self, SdfError> {
        if !dir.is_dir() {
            return Err(SdfError::OpenDevice);
        }
        Ok(KeyDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The signing key at `index`.
    pub fn secret_key(&self, index: u32) -> Result<sm2::SecretKey, SdfError> {
        let text = read_private(&self.dir.join(format!("sign-{index}.key")))?;
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return sm2::SecretKey::from_pkcs8_pem(text)
                .or_else(|_| sm2::SecretKey::from_sec1_pem(text))
                .map_err(|_| SdfError::Key);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, bytes.as_mut_slice()).map_err(|_| SdfError::Key)?;
        sm2::SecretKey::from_slice(bytes.as_slice()).map_err(|_| SdfError::Key)
    }

    /// The public key of the signing key at `index`.
    pub fn public_key(&self, index: u32) -> Result<PublicPoint, SdfError> {
        Ok(PublicPoint::of(&self.secret_key(index)?.public_key()))
    }

    /// Checks `password` against the key's password file, in constant time in its contents.
    pub fn check_password(&self, index: u32, password: &[u8]) -> Result<(), SdfError> {
        let stored = read_private(&self.dir.join(format!("sign-{index}.pass")))?;
        let stored = stored.strip_suffix('\n').unwrap_or(&stored);
        let stored = stored.strip_suffix('\r').unwrap_or(stored);
        if bool::from(stored.as_bytes().ct_eq(password)) {
            Ok(())
        } else {
            Err(SdfError::AccessRight)
        }
    }
}

impl KeyDir {
    /// Checks a PKCS#11 user PIN against `token.pin` (its bytes, one trailing newline removed),
    /// in constant time in its contents; a missing file refuses every PIN.
    pub fn check_token_pin(&self, pin: &[u8]) -> Result<(), SdfError> {
        let stored = match read_private(&self.dir.join(TOKEN_PIN_FILE)) {
            Ok(s) => s,
            Err(SdfError::KeyNotExist) => return Err(SdfError::AccessRight),
            Err(e) => return Err(e),
        };
        let stored = stored.strip_suffix('\n').unwrap_or(&stored);
        let stored = stored.strip_suffix('\r').unwrap_or(stored);
        if bool::from(stored.as_bytes().ct_eq(pin)) {
            Ok(())
        } else {
            Err(SdfError::AccessRight)
        }
    }

    /// The indices `i` of the `sign-<i>.key` files, ascending.
    pub fn indices(&self) -> Vec<u32> {
        let mut out: Vec<u32> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                let name = name.to_str()?;
                name.strip_prefix("sign-")?
                    .strip_suffix(".key")?
                    .parse()
                    .ok()
            })
            .collect();
        out.sort_unstable();
        out
    }
}

/// The PKCS#11 face's user PIN file in the key directory.
pub const TOKEN_PIN_FILE: &str = "token.pin";

/// Writes the PKCS#11 face's user PIN file (`token.pin`, mode 0600) into `dir`.
pub fn provision_token_pin(dir: &Path, pin: &[u8]) -> std::io::Result<()> {
    write_private(&dir.join(TOKEN_PIN_FILE), pin)
}

/// Reads a key-store file opened once and checked on the handle: missing → no such key;
/// open to group or others, or not a regular file → key error.
fn read_private(path: &Path) -> Result<Zeroizing<String>, SdfError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SdfError::KeyNotExist),
        Err(_) => return Err(SdfError::Key),
    };
    let meta = file.metadata().map_err(|_| SdfError::Key)?;
    if !meta.is_file() || is_open_to_others(&meta) {
        return Err(SdfError::Key);
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(|_| SdfError::Key)?;
    Ok(text)
}

#[cfg(unix)]
fn is_open_to_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o077 != 0
}

#[cfg(not(unix))]
fn is_open_to_others(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Writes the key and password files of `index` into `dir` with mode 0600 (for tests and the
/// runbook's provisioning step). The key is written as 64 hex digits.
pub fn provision(
    dir: &Path,
    index: u32,
    secret: &sm2::SecretKey,
    password: &[u8],
) -> std::io::Result<()> {
    let hex_key = Zeroizing::new(hex::encode(secret.to_bytes()));
    write_private(&dir.join(format!("sign-{index}.key")), hex_key.as_bytes())?;
    write_private(&dir.join(format!("sign-{index}.pass")), password)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB/T 32918.5-2017 / GM/T 0003.5 Annex A signing example on the recommended curve.
    pub(crate) const STD_D: &str =
        "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    pub(crate) const STD_X: &str =
        "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
    pub(crate) const STD_Y: &str =
        "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_standards_key_has_the_standards_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(STD_D)).unwrap();
        provision(dir.path(), 1, &secret, b"pw").unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let public = keys.public_key(1).unwrap();
        assert_eq!(public.x, hex32(STD_X));
        assert_eq!(public.y, hex32(STD_Y));
        assert_eq!(public.to_key().unwrap(), secret.public_key());
    }

    #[test]
    fn pem_key_files_are_read_too() {
        use sm2::pkcs8::EncodePrivateKey;
        let dir = tempfile::tempdir().unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(STD_D)).unwrap();
        let pem = secret.to_pkcs8_pem(Default::default()).unwrap();
        write_private(&dir.path().join("sign-3.key"), pem.as_bytes()).unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        assert_eq!(keys.public_key(3).unwrap().x, hex32(STD_X));
    }

    #[test]
    fn passwords_and_missing_or_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(STD_D)).unwrap();
        provision(dir.path(), 2, &secret, b"secret\n").unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        assert_eq!(keys.check_password(2, b"secret"), Ok(()));
        assert_eq!(
            keys.check_password(2, b"secret\n"),
            Err(SdfError::AccessRight)
        );
        assert_eq!(
            keys.check_password(2, b"secreT"),
            Err(SdfError::AccessRight)
        );
        assert_eq!(keys.check_password(2, b""), Err(SdfError::AccessRight));
        assert_eq!(keys.public_key(9), Err(SdfError::KeyNotExist));
        write_private(&dir.path().join("sign-4.key"), b"not hex").unwrap();
        assert_eq!(keys.public_key(4), Err(SdfError::Key));
        // The zero scalar is not a key.
        write_private(&dir.path().join("sign-5.key"), &[b'0'; 64]).unwrap();
        assert_eq!(keys.public_key(5), Err(SdfError::Key));
        assert_eq!(
            KeyDir::open(&dir.path().join("nowhere")).unwrap_err(),
            SdfError::OpenDevice
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = sm2::SecretKey::from_slice(&hex32(STD_D)).unwrap();
        provision(dir.path(), 1, &secret, b"pw").unwrap();
        let path = dir.path().join("sign-1.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        assert_eq!(keys.public_key(1), Err(SdfError::Key));
    }
}
