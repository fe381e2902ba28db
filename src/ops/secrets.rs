//! The secrets the gateway asks for, made by the gateway: the admin bearer token and the ID
//! pepper, from the operating system's random source, written to new files with mode 0600 and
//! never printed unless asked (`keys gen-token`, `accounts gen-pepper`).

use std::io::Write;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// 32 random bytes as 64 lower-case hex digits.
fn random_hex() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *bytes);
    Zeroizing::new(hex::encode(*bytes))
}

/// A new admin bearer token (256 bits, hex).
pub fn new_token() -> Zeroizing<String> {
    random_hex()
}

/// A new ID pepper (256 bits, hex, as `accounts.id_pepper` takes it).
pub fn new_pepper() -> Zeroizing<String> {
    random_hex()
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the same directory, so
/// the file never exists with other contents or a wider mode. An existing file is refused
/// (`AlreadyExists`) unless `replace`, which swaps it atomically. With `owner` (uid, gid) the
/// file is handed to that user and group before it takes the name (root writing a secret the
/// service user must read).
pub fn write_secret_file(
    path: &Path,
    bytes: &[u8],
    replace: bool,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !replace && path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the file exists",
        ));
    }
    // `NamedTempFile` creates the file with mode 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(
            tmp.as_file(),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(std::io::Error::from)?;
    }
    #[cfg(not(unix))]
    let _ = owner;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_hex_in_new_0600_files() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(*a, *b);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        write_secret_file(&path, b"one\n", false, None).unwrap();
        let err = write_secret_file(&path, b"two\n", false, None).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        write_secret_file(&path, b"two\n", true, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
