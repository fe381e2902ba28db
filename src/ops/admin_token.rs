//! The bearer token of the admin listener: read at start-up from a file that only its owner may
//! read (the key ring's secret-file rules), read again by every reload (SIGHUP, the file watch,
//! the admin call) so a replaced token file takes effect without a restart, compared in constant
//! time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keyring::KeyRingError;

/// The admin token. `Debug` never shows it.
pub struct AdminToken {
    /// SHA-256 of the token: comparing digests keeps the comparison's time independent of
    /// where, and whether by length, a guess differs.
    digest: ArcSwap<Zeroizing<[u8; 32]>>,
    /// The file it was read from (`None`: built from bytes, nothing to reload).
    path: Option<PathBuf>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl AdminToken {
    /// Reads the token file: one line of visible ASCII, mode 0600/0400, owned by us or root.
    pub fn from_file(path: &Path) -> Result<Self, KeyRingError> {
        Ok(Self {
            digest: ArcSwap::from_pointee(Self::read_digest(path)?),
            path: Some(path.to_path_buf()),
        })
    }

    /// A token from its bytes.
    pub fn new(token: &[u8]) -> Self {
        Self {
            digest: ArcSwap::from_pointee(Zeroizing::new(Sha256::digest(token).into())),
            path: None,
        }
    }

    /// The file the token is read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the token file again (same rules as at start-up) and swaps the new token in; on
    /// any refusal the previous token stays in force. Returns whether the token changed. A token
    /// built from bytes has nothing to reload (`Ok(false)`).
    pub fn reload(&self) -> Result<bool, KeyRingError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let fresh = Self::read_digest(path)?;
        let changed = !bool::from(fresh.ct_eq(self.digest.load().as_slice()));
        if changed {
            self.digest.store(Arc::new(fresh));
        }
        Ok(changed)
    }

    fn read_digest(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyRingError> {
        let text = crate::keyring::read_partner_secret(path)?;
        Ok(Zeroizing::new(Sha256::digest(text.as_bytes()).into()))
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`, in constant time.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(self.digest.load().as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let t = AdminToken::new(b"s3cret-token");
        assert!(t.accepts(Some(b"Bearer s3cret-token")));
        assert!(!t.accepts(Some(b"Bearer s3cret-tokeN")));
        assert!(!t.accepts(Some(b"Bearer s3cret-token ")));
        assert!(!t.accepts(Some(b"bearer s3cret-token")));
        assert!(!t.accepts(Some(b"s3cret-token")));
        assert!(!t.accepts(None));
        assert_eq!(format!("{t:?}"), "AdminToken(***)");
    }
}
