//! The bearer token of the admin listener: read once at start-up from a file that only its
//! owner may read (the key ring's secret-file rules), compared in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keyring::KeyRingError;

/// The admin token. `Debug` never shows it.
pub struct AdminToken {
    /// SHA-256 of the token: comparing digests keeps the comparison's time independent of
    /// where, and whether by length, a guess differs.
    digest: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl AdminToken {
    /// Reads the token file: one line of visible ASCII, mode 0600/0400, owned by us or root.
    pub fn from_file(path: &Path) -> Result<Self, KeyRingError> {
        let text = crate::keyring::read_partner_secret(path)?;
        Ok(Self::new(text.as_bytes()))
    }

    /// A token from its bytes.
    pub fn new(token: &[u8]) -> Self {
        Self {
            digest: Zeroizing::new(Sha256::digest(token).into()),
        }
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`, in constant time.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(&*self.digest))
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
