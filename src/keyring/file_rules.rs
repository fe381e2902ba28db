//! How every key-ring file is read: opened once without following a symbolic link, checked on
//! the open handle, then read from that same handle with a size cap.
//!
//! Checking a path and then opening it again by path leaves a window in which the file can be
//! swapped (a symbolic link to another user's file, a FIFO, `/dev/zero`). Here the checks run on
//! the descriptor that is then read, so what was checked is what is read:
//!
//! 1. `open(O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)`: a symbolic link in place of the
//!    file is refused by the kernel; a FIFO does not block the open; a terminal is never adopted.
//! 2. `fstat` on the handle: a regular file; owned by the process's effective user or root;
//!    secrets (bank private keys, partner secrets) mode 0600 or 0400 exactly; the manifest and
//!    public keys not writable by group or others (they decide who may sign requests);
//!    exactly one hard link (a second name elsewhere lets whoever controls that directory
//!    replace or read the same file); at most [`MAX_KEY_FILE_BYTES`].
//! 3. The read is capped at [`MAX_KEY_FILE_BYTES`] + 1 bytes whatever `fstat` said, so a file
//!    that grows meanwhile cannot exhaust memory. Secrets are read into a buffer sized up front
//!    (no reallocation leaves copies behind) and zeroized on drop.
//!
//! The key directory itself is opened once too ([`KeyDirHandle`]: `O_DIRECTORY | O_NOFOLLOW`) and
//! checked on that handle — owned by the gateway's user or root, not writable by group or
//! others (whoever may write the directory may rename `wechat-v1.pub` over `bank-v1.pub`) —
//! and the files the manifest names are opened relative to that handle (`openat`), so the
//! directory that was checked is the one read.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::KeyRingError;

/// Largest key-ring file accepted, bytes (64 KiB; real key files are well under 1 KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// What a key-ring file holds; decides the mode rule applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileKind {
    /// `keyring.toml`: must not be writable by group or others.
    Manifest,
    /// A public key (WeChat's or the bank's): must not be writable by group or others.
    PublicKey,
    /// A bank private key or a partner secret: mode 0600 or 0400 exactly.
    Secret,
}

/// A rule a key-ring file breaks. Shown after the file's path, e.g.
/// `keys/prod/keyring.toml: is a symbolic link; …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileRule {
    /// The path names a symbolic link (refused by `O_NOFOLLOW`).
    #[error(
        "is a symbolic link; key-ring files are opened without following links \
         (put the file itself in the key directory)"
    )]
    SymbolicLink,
    /// Not a regular file (directory, FIFO, device, socket).
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// Owned by a user that is neither the gateway's effective user nor root.
    #[error(
        "is owned by {}, but this process runs as {}; a key-ring file must be owned by the \
         user the gateway runs as, or root — run the gateway and the `keys` commands as {} \
         (e.g. `sudo -u <that user> pension-gateway keys …`), or as root",
        super::admin::describe_user(*.owner),
        super::admin::describe_user(*.euid),
        super::admin::describe_user(*.owner)
    )]
    Owner {
        /// The file's owner.
        owner: u32,
        /// The process's effective uid.
        euid: u32,
    },
    /// The manifest or a public key is writable by group or others.
    #[error(
        "mode {mode:04o} lets group or others write it; the manifest and public keys must not \
         be group- or world-writable (run `chmod go-w` on it)"
    )]
    WritableByOthers {
        /// The file's permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_KEY_FILE_BYTES`].
    #[error("is larger than {MAX_KEY_FILE_BYTES} bytes; a key-ring file is at most 64 KiB")]
    TooLarge,
    /// The file has more than one name (hard link): whoever controls the other name's
    /// directory can read or replace what the key ring loads.
    #[error(
        "has {links} hard links; a key-ring file must have exactly one name (copy it into the \
         key directory instead of linking it)"
    )]
    HardLinks {
        /// The link count `fstat` reported.
        links: u64,
    },
    /// The key directory is not a directory.
    #[error("is not a directory; keys.dir must name the key directory itself")]
    NotDirectory,
    /// The key directory is writable by group or others: files in it could be renamed over
    /// each other (e.g. `wechat-v1.pub` over `bank-v1.pub`) or replaced.
    #[error(
        "is a key directory with mode {mode:04o}, writable by group or others; files in it \
         could be replaced or renamed over each other (run `chmod go-w` on it)"
    )]
    DirectoryWritableByOthers {
        /// The directory's permission bits.
        mode: u32,
    },
}

fn refused(path: &Path, rule: FileRule) -> KeyRingError {
    KeyRingError::File {
        path: path.display().to_string(),
        rule,
    }
}

fn io_err(path: &Path, e: std::io::Error) -> KeyRingError {
    KeyRingError::io(path, e)
}

/// Opens `path` without following a final symbolic link, without blocking on a FIFO and
/// without adopting a terminal. The raw OS error is returned; [`open_checked`] names the rule.
#[cfg(unix)]
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Without `O_NOFOLLOW` the file is opened plainly; the handle checks still apply.
#[cfg(not(unix))]
pub(crate) fn open_no_follow(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Whether an open error means the final component is a symbolic link (`ELOOP` under
/// `O_NOFOLLOW`; confirmed with `lstat`, as `ELOOP` can also mean a loop further up the path).
fn is_symlink_refusal(path: &Path, e: &std::io::Error) -> bool {
    #[cfg(unix)]
    let looped = e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    #[cfg(not(unix))]
    let looped = false;
    looped
        && std::fs::symlink_metadata(path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
}

/// The kind of a non-regular file, for the refusal message.
fn file_type_name(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// The rules of step 2 on the handle's metadata; returns the size `fstat` reported.
fn check_handle(path: &Path, file: &File, kind: KeyFileKind) -> Result<u64, KeyRingError> {
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.file_type().is_file() {
        return Err(refused(
            path,
            FileRule::NotRegular(file_type_name(meta.file_type())),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let euid = rustix::process::geteuid().as_raw();
        let owner = meta.uid();
        // Root (running `keys` on the service's behalf) also accepts files of the key
        // directory's owner: that user could replace any file in it anyway.
        let dir_owner = || {
            path.parent()
                .and_then(|d| std::fs::metadata(d).ok())
                .map(|m| m.uid())
        };
        if owner != euid && owner != 0 && !(euid == 0 && dir_owner() == Some(owner)) {
            return Err(refused(path, FileRule::Owner { owner, euid }));
        }
        if meta.nlink() != 1 {
            return Err(refused(
                path,
                FileRule::HardLinks {
                    links: meta.nlink(),
                },
            ));
        }
        let mode = meta.mode() & 0o7777;
        match kind {
            KeyFileKind::Secret => {
                if mode != 0o600 && mode != 0o400 {
                    return Err(KeyRingError::Permissions(path.display().to_string()));
                }
            }
            KeyFileKind::Manifest | KeyFileKind::PublicKey => {
                if mode & 0o022 != 0 {
                    return Err(refused(path, FileRule::WritableByOthers { mode }));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = kind;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(refused(path, FileRule::TooLarge));
    }
    Ok(meta.len())
}

/// Reads at most [`MAX_KEY_FILE_BYTES`] + 1 bytes from `file` into a buffer sized from
/// `size_hint` (so a file that does not grow is read without reallocating).
fn read_capped(
    path: &Path,
    file: &mut File,
    size_hint: u64,
) -> Result<Zeroizing<Vec<u8>>, KeyRingError> {
    let cap = usize::try_from(size_hint.min(MAX_KEY_FILE_BYTES) + 1).unwrap_or(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(refused(path, FileRule::TooLarge));
    }
    Ok(buf)
}

/// Opens a key-ring file once and checks it on the open handle (module doc), then reads it
/// from that handle. Each refusal names the file and the rule it breaks.
pub fn open_checked(path: &Path, kind: KeyFileKind) -> Result<Zeroizing<Vec<u8>>, KeyRingError> {
    read_optional(path, kind)?
        .ok_or_else(|| io_err(path, std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// [`open_checked`], but an absent file is `Ok(None)` (a fresh key directory has no manifest).
pub fn read_optional(
    path: &Path,
    kind: KeyFileKind,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyRingError> {
    checked_read(path, open_no_follow(path), kind)
}

/// The handle half of [`read_optional`]: maps the open's error to a rule, checks the handle,
/// reads it with the cap.
fn checked_read(
    path: &Path,
    opened: std::io::Result<File>,
    kind: KeyFileKind,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyRingError> {
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_symlink_refusal(path, &e) => {
            return Err(refused(path, FileRule::SymbolicLink))
        }
        Err(e) => return Err(io_err(path, e)),
    };
    let size = check_handle(path, &file, kind)?;
    read_capped(path, &mut file, size).map(Some)
}

/// A key directory opened once (`O_DIRECTORY | O_NOFOLLOW`) and checked on that handle; the
/// files the manifest names are opened relative to it. See the module doc.
#[derive(Debug)]
pub struct KeyDirHandle {
    path: PathBuf,
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
}

impl KeyDirHandle {
    /// Opens `path` as a key directory: not a symbolic link, a directory, owned by the
    /// gateway's effective user or root. With `writable_rule`, also refused when group or
    /// others may write it (the demo's published directory is exempt: its keys are public).
    pub fn open(path: &Path, writable_rule: bool) -> Result<Self, KeyRingError> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            use std::os::unix::fs::MetadataExt;
            let fd = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                let e = std::io::Error::from(e);
                let is_link = std::fs::symlink_metadata(path)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false);
                if is_link {
                    // ELOOP (or ENOTDIR on some kernels) from O_NOFOLLOW on a link.
                    refused(path, FileRule::SymbolicLink)
                } else if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
                    refused(path, FileRule::NotDirectory)
                } else {
                    io_err(path, e)
                }
            })?;
            let dir = File::from(fd);
            let meta = dir.metadata().map_err(|e| io_err(path, e))?;
            if !meta.is_dir() {
                return Err(refused(path, FileRule::NotDirectory));
            }
            let euid = rustix::process::geteuid().as_raw();
            // Root administers the service user's directory (`keys` run as root hands the files
            // it writes to the directory's owner); anyone else needs a directory of their own or
            // root's.
            if meta.uid() != euid && meta.uid() != 0 && euid != 0 {
                return Err(refused(
                    path,
                    FileRule::Owner {
                        owner: meta.uid(),
                        euid,
                    },
                ));
            }
            let mode = meta.mode() & 0o7777;
            if writable_rule && mode & 0o022 != 0 {
                return Err(refused(path, FileRule::DirectoryWritableByOthers { mode }));
            }
            Ok(Self {
                path: path.to_path_buf(),
                fd: dir.into(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = writable_rule;
            Ok(Self {
                path: path.to_path_buf(),
            })
        }
    }

    /// The directory's path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads file `name` (a plain name, as the manifest's rules guarantee) of this directory,
    /// opened relative to the checked handle, under the rules of `kind`.
    pub fn read(&self, name: &str, kind: KeyFileKind) -> Result<Zeroizing<Vec<u8>>, KeyRingError> {
        let path = self.path.join(name);
        checked_read(&path, self.open_file(name), kind)?
            .ok_or_else(|| io_err(&path, std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    /// [`read`](Self::read) for a text file (UTF-8, zeroized on drop).
    pub fn read_text(
        &self,
        name: &str,
        kind: KeyFileKind,
    ) -> Result<Zeroizing<String>, KeyRingError> {
        let bytes = self.read(name, kind)?;
        utf8(&self.path.join(name), &bytes)
    }

    #[cfg(unix)]
    fn open_file(&self, name: &str) -> std::io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    #[cfg(not(unix))]
    fn open_file(&self, name: &str) -> std::io::Result<File> {
        File::open(self.path.join(name))
    }
}

/// [`open_checked`] for a text file: the bytes must be UTF-8. The text is zeroized on drop.
pub fn read_key_text(path: &Path, kind: KeyFileKind) -> Result<Zeroizing<String>, KeyRingError> {
    let bytes = open_checked(path, kind)?;
    utf8(path, &bytes)
}

/// Copies checked bytes into a zeroizing `String`, refusing anything but UTF-8.
pub(crate) fn utf8(path: &Path, bytes: &[u8]) -> Result<Zeroizing<String>, KeyRingError> {
    std::str::from_utf8(bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| KeyRingError::Invalid(format!("{}: not UTF-8 text", path.display())))
}

/// Demo mode only: the published demo keys come out of version control with whatever mode the
/// checkout gave them. Tightens one file through a handle opened without following links —
/// secrets to 0600, anything else loses group and other write — and returns its content, read
/// with the size cap. A missing file, a symbolic link or a non-regular file is left alone
/// (`Ok(None)`; loading refuses it by name). Owner and size rules are left to loading.
#[cfg(unix)]
pub(crate) fn tighten_demo_file(
    path: &Path,
    kind: KeyFileKind,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyRingError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut file = match open_no_follow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_symlink_refusal(path, &e) => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let mode = meta.mode() & 0o7777;
    let wanted = match kind {
        KeyFileKind::Secret => 0o600,
        KeyFileKind::Manifest | KeyFileKind::PublicKey => mode & !0o022,
    };
    if wanted != mode {
        // fchmod on the handle: the file that was opened is the file changed.
        file.set_permissions(std::fs::Permissions::from_mode(wanted))
            .map_err(|e| io_err(path, e))?;
    }
    read_capped(path, &mut file, meta.len()).map(Some)
}
