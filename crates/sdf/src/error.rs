//! The client's one error type. Codes returned by the library are kept as numbers (and named
//! when the standard names them); nothing secret is ever in an error.

use std::path::PathBuf;

use crate::profile::ProfileError;

/// Why a module operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SdfError {
    /// The vendor's library could not be loaded.
    #[error("cannot load SDF library {path}: {source}")]
    Load {
        /// The library's path.
        path: PathBuf,
        /// The loader's reason.
        source: libloading::Error,
    },
    /// The library does not export a function the client needs.
    #[error("SDF library {path} has no function {symbol}")]
    MissingFunction {
        /// The library's path.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The vendor profile is not usable.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A function returned an error code.
    #[error("{function} returned {code:#010x} ({})", code_name(*.code))]
    Call {
        /// The SDF function.
        function: &'static str,
        /// Its return code.
        code: u32,
    },
    /// The device does not list SM2 signatures among its algorithms.
    #[error(
        "device does not offer SM2 signatures (algorithm {wanted:#010x}; it lists {listed:#010x})"
    )]
    NoSm2 {
        /// The profile's SM2 signature identifier.
        wanted: u32,
        /// The device's `AsymAlgAbility[0]`.
        listed: u32,
    },
    /// What the library wrote does not fit the profile's layout (wrong `bits`, a value in the
    /// upper half of a field, a point off the curve, r or s out of range).
    #[error("{function} wrote a value that does not fit profile `{profile}`: {what}")]
    Layout {
        /// The SDF function.
        function: &'static str,
        /// The profile in use.
        profile: String,
        /// What did not fit.
        what: &'static str,
    },
    /// The password file is missing, unreadable, or open to others.
    #[error("password file {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: PasswordFileError,
    },
}

/// Why a password file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    /// It could not be opened or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// Readable or writable by group or others (must be 0600 or stricter).
    #[error("mode {0:o} lets others read or write it (0600 required)")]
    OpenToOthers(u32),
    /// Owned by another user than the one running the gateway.
    #[error("owned by uid {owner}, not by the effective uid {euid}")]
    Owner {
        /// The file's owner.
        owner: u32,
        /// The process's effective uid.
        euid: u32,
    },
    /// Empty (after removing one trailing newline).
    #[error("empty")]
    Empty,
}

impl SdfError {
    /// The library's return code, when the error is one.
    pub fn code(&self) -> Option<u32> {
        match self {
            SdfError::Call { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The standard's name for a return code (GM/T 0018-2012 table A.1), or `vendor-specific`.
pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 31] = [
        "SDR_OK",
        "SDR_UNKNOWERR",
        "SDR_NOTSUPPORT",
        "SDR_COMMFAIL",
        "SDR_HARDFAIL",
        "SDR_OPENDEVICE",
        "SDR_OPENSESSION",
        "SDR_PARDENY",
        "SDR_KEYNOTEXIST",
        "SDR_ALGNOTSUPPORT",
        "SDR_ALGMODNOTSUPPORT",
        "SDR_PKOPERR",
        "SDR_SKOPERR",
        "SDR_SIGNERR",
        "SDR_VERIFYERR",
        "SDR_SYMOPERR",
        "SDR_STEPERR",
        "SDR_FILESIZEERR",
        "SDR_FILENOEXIST",
        "SDR_FILEOFSERR",
        "SDR_KEYTYPEERR",
        "SDR_KEYERR",
        "SDR_ENCDATAERR",
        "SDR_RANDERR",
        "SDR_PRKRERR",
        "SDR_MACERR",
        "SDR_FILEEXSITS",
        "SDR_FILEWERR",
        "SDR_NOBUFFER",
        "SDR_INARGERR",
        "SDR_OUTARGERR",
    ];
    let index = match code {
        0 => Some(0),
        c if c > 0x0100_0000 => usize::try_from(c - 0x0100_0000).ok(),
        _ => None,
    };
    index
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("vendor-specific")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_in_the_standard() {
        assert_eq!(code_name(0), "SDR_OK");
        assert_eq!(code_name(0x0100_0003), "SDR_COMMFAIL");
        assert_eq!(code_name(0x0100_0018), "SDR_PRKRERR");
        assert_eq!(code_name(0x0100_001E), "SDR_OUTARGERR");
        assert_eq!(code_name(0x0100_001F), "vendor-specific");
        assert_eq!(code_name(0x0101_0001), "vendor-specific");
        assert_eq!(code_name(0x0100_0000), "vendor-specific");
        let e = SdfError::Call {
            function: "SDF_InternalSign_ECC",
            code: 0x0100_0007,
        };
        assert_eq!(
            e.to_string(),
            "SDF_InternalSign_ECC returned 0x01000007 (SDR_PARDENY)"
        );
        assert_eq!(e.code(), Some(0x0100_0007));
    }
}
