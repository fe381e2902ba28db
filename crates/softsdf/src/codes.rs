//! GM/T 0018 return codes and algorithm identifiers (GM/T 0006), with the error type of the
//! device's safe core.

/// Success.
pub const SDR_OK: u32 = 0;
/// Base of every error code.
pub const SDR_BASE: u32 = 0x0100_0000;
/// Unknown error.
pub const SDR_UNKNOWERR: u32 = SDR_BASE + 0x01;
/// Function not supported.
pub const SDR_NOTSUPPORT: u32 = SDR_BASE + 0x02;
/// Communication with the device failed.
pub const SDR_COMMFAIL: u32 = SDR_BASE + 0x03;
/// The hardware does not answer.
pub const SDR_HARDFAIL: u32 = SDR_BASE + 0x04;
/// Opening the device failed.
pub const SDR_OPENDEVICE: u32 = SDR_BASE + 0x05;
/// Opening a session failed (also: the session handle is not open).
pub const SDR_OPENSESSION: u32 = SDR_BASE + 0x06;
/// No permission (here: signing without the private-key access right).
pub const SDR_PARDENY: u32 = SDR_BASE + 0x07;
/// The key does not exist.
pub const SDR_KEYNOTEXIST: u32 = SDR_BASE + 0x08;
/// Algorithm not supported.
pub const SDR_ALGNOTSUPPORT: u32 = SDR_BASE + 0x09;
/// Algorithm mode not supported.
pub const SDR_ALGMODNOTSUPPORT: u32 = SDR_BASE + 0x0A;
/// Public-key operation failed.
pub const SDR_PKOPERR: u32 = SDR_BASE + 0x0B;
/// Private-key operation failed.
pub const SDR_SKOPERR: u32 = SDR_BASE + 0x0C;
/// Signing failed.
pub const SDR_SIGNERR: u32 = SDR_BASE + 0x0D;
/// The signature does not verify.
pub const SDR_VERIFYERR: u32 = SDR_BASE + 0x0E;
/// Symmetric operation failed.
pub const SDR_SYMOPERR: u32 = SDR_BASE + 0x0F;
/// Steps called out of order (here: hash update or final without init).
pub const SDR_STEPERR: u32 = SDR_BASE + 0x10;
/// File size error.
pub const SDR_FILESIZEERR: u32 = SDR_BASE + 0x11;
/// File does not exist.
pub const SDR_FILENOEXIST: u32 = SDR_BASE + 0x12;
/// File offset error.
pub const SDR_FILEOFSERR: u32 = SDR_BASE + 0x13;
/// Wrong key type.
pub const SDR_KEYTYPEERR: u32 = SDR_BASE + 0x14;
/// Key error (here: a key file that does not hold a valid SM2 key, or is open to others).
pub const SDR_KEYERR: u32 = SDR_BASE + 0x15;
/// Encrypted data error.
pub const SDR_ENCDATAERR: u32 = SDR_BASE + 0x16;
/// The random number generator failed.
pub const SDR_RANDERR: u32 = SDR_BASE + 0x17;
/// Getting the private-key access right failed (here: wrong password).
pub const SDR_PRKRERR: u32 = SDR_BASE + 0x18;
/// MAC error.
pub const SDR_MACERR: u32 = SDR_BASE + 0x19;
/// File exists.
pub const SDR_FILEEXSITS: u32 = SDR_BASE + 0x1A;
/// File write error.
pub const SDR_FILEWERR: u32 = SDR_BASE + 0x1B;
/// Buffer too small.
pub const SDR_NOBUFFER: u32 = SDR_BASE + 0x1C;
/// Bad input argument.
pub const SDR_INARGERR: u32 = SDR_BASE + 0x1D;
/// Bad output argument.
pub const SDR_OUTARGERR: u32 = SDR_BASE + 0x1E;

/// SM2 signature algorithm (GM/T 0006 `SGD_SM2_1`).
pub const SGD_SM2_1: u32 = 0x0002_0200;
/// SM3 hash algorithm (GM/T 0006 `SGD_SM3`).
pub const SGD_SM3: u32 = 0x0000_0001;

/// Why a call to the device failed; [`SdfError::code`] is the standard's return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdfError {
    /// An internal failure (a panic caught at the C boundary, a malformed control file).
    #[error("unknown error")]
    Unknown,
    /// `SDF_OpenDevice` could not open the key directory (`SOFTSDF_DIR` unset or not a directory).
    #[error("cannot open the device")]
    OpenDevice,
    /// The device or session handle is not open.
    #[error("no such open device or session")]
    OpenSession,
    /// Signing with a key whose access right this session does not hold.
    #[error("no access right to this private key")]
    PermissionDenied,
    /// No key file at this index.
    #[error("no key at this index")]
    KeyNotExist,
    /// An algorithm identifier the device does not implement.
    #[error("algorithm not supported")]
    AlgNotSupported,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Verify,
    /// Hash update or final without a hash init on this session.
    #[error("hash steps out of order")]
    Step,
    /// A key file that does not hold a valid SM2 key, or that others can read.
    #[error("key file is malformed or open to others")]
    Key,
    /// The random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// Wrong password for the private-key access right.
    #[error("private-key access right refused")]
    AccessRight,
    /// A bad input argument (null pointer, wrong length, value out of range).
    #[error("bad input argument")]
    InArg,
    /// A bad output argument (null pointer, buffer too small).
    #[error("bad output argument")]
    OutArg,
    /// A failure injected by the control switches; the code is the one configured.
    #[error("injected failure {0:#010x}")]
    Injected(u32),
}

impl SdfError {
    /// The GM/T 0018 return code for this error.
    pub fn code(self) -> u32 {
        match self {
            SdfError::Unknown => SDR_UNKNOWERR,
            SdfError::OpenDevice => SDR_OPENDEVICE,
            SdfError::OpenSession => SDR_OPENSESSION,
            SdfError::PermissionDenied => SDR_PARDENY,
            SdfError::KeyNotExist => SDR_KEYNOTEXIST,
            SdfError::AlgNotSupported => SDR_ALGNOTSUPPORT,
            SdfError::Verify => SDR_VERIFYERR,
            SdfError::Step => SDR_STEPERR,
            SdfError::Key => SDR_KEYERR,
            SdfError::Random => SDR_RANDERR,
            SdfError::AccessRight => SDR_PRKRERR,
            SdfError::InArg => SDR_INARGERR,
            SdfError::OutArg => SDR_OUTARGERR,
            SdfError::Injected(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_standards() {
        // GM/T 0018-2012 table A.1, spot checks at both ends and in between.
        assert_eq!(SDR_BASE, 0x0100_0000);
        assert_eq!(SDR_UNKNOWERR, 0x0100_0001);
        assert_eq!(SDR_KEYNOTEXIST, 0x0100_0008);
        assert_eq!(SDR_VERIFYERR, 0x0100_000E);
        assert_eq!(SDR_PRKRERR, 0x0100_0018);
        assert_eq!(SDR_OUTARGERR, 0x0100_001E);
        assert_eq!(SdfError::AccessRight.code(), SDR_PRKRERR);
        assert_eq!(SdfError::Injected(SDR_COMMFAIL).code(), 0x0100_0003);
        assert_eq!(SGD_SM2_1, 0x0002_0200);
    }
}
