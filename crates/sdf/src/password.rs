//! The private-key access password, read from a file that only the gateway's user can read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{PasswordFileError, SdfError};

/// A module password: zeroized on drop, never shown.
pub struct Password(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// A password from bytes (tests, or a caller with its own secret store).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Password(Zeroizing::new(bytes.to_vec()))
    }

    /// The password's bytes, for the module (or a PKCS#11 token's `C_Login`). Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Reads the password file at `path`: opened once, checked on the handle (a regular file,
    /// owned by the effective user, mode 0600 or stricter), its bytes with one trailing
    /// newline (`\n` or `\r\n`) removed; empty is refused.
    pub fn read_file(path: &Path) -> Result<Self, SdfError> {
        let refuse = |reason| SdfError::PasswordFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| refuse(e.into()))?;
        check_handle(&file).map_err(refuse)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(|e| refuse(e.into()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(refuse(PasswordFileError::Empty));
        }
        Ok(Password(bytes))
    }
}

#[cfg(unix)]
fn check_handle(file: &File) -> Result<(), PasswordFileError> {
    let stat = rustix::fs::fstat(file).map_err(std::io::Error::from)?;
    let mode = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if mode != rustix::fs::FileType::RegularFile {
        return Err(PasswordFileError::NotAFile);
    }
    let permissions = stat.st_mode & 0o777;
    if permissions & 0o077 != 0 {
        return Err(PasswordFileError::OpenToOthers(permissions));
    }
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(PasswordFileError::Owner {
            owner: stat.st_uid,
            euid,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_handle(file: &File) -> Result<(), PasswordFileError> {
    if !file.metadata()?.is_file() {
        return Err(PasswordFileError::NotAFile);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_0600_file_gives_its_bytes_without_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a", b"pass word\r\n", 0o600);
        assert_eq!(Password::read_file(&p).unwrap().expose(), b"pass word");
        let p = write(dir.path(), "b", b"x\n\n", 0o400);
        assert_eq!(Password::read_file(&p).unwrap().expose(), b"x\n");
        assert_eq!(
            format!("{:?}", Password::from_bytes(b"s3")),
            "Password(<redacted>)"
        );
    }

    #[test]
    fn open_empty_missing_or_odd_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a", b"pw", 0o640);
        let e = Password::read_file(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("mode 640 lets others read or write it (0600 required)"),
            "{e}"
        );
        let p = write(dir.path(), "b", b"\n", 0o600);
        assert!(Password::read_file(&p)
            .unwrap_err()
            .to_string()
            .ends_with("empty"));
        assert!(Password::read_file(&dir.path().join("none")).is_err());
        let e = Password::read_file(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
    }
}
