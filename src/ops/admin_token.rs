//! The bearer token of the admin listener: read at start-up from a file that only its owner may
//! read (the key ring's secret-file rules), read again by every reload (SIGHUP, the file watch,
//! the admin call) so a replaced token file takes effect without a restart, compared in constant
//! time.
//!
//! The token must be at least 32 random bytes written as text — the one rule, here
//! ([`check_token_strength`]): at least [`MIN_TOKEN_CHARS`] visible ASCII characters (32 bytes
//! are 43 characters of unpadded Base64, 44 padded, 64 hex digits) and at least
//! [`MIN_DISTINCT_CHARS`] distinct characters (a repeated word is refused; random Base64 or hex
//! of that length has far more). Make one with
//! `head -c 32 /dev/urandom | base64 > admin-token && chmod 600 admin-token`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keyring::{KeyRingError, SecretRule};

/// Fewest characters of an admin token: 32 random bytes in unpadded Base64.
pub const MIN_TOKEN_CHARS: usize = 43;

/// Fewest distinct characters of an admin token (random Base64 or hex of
/// [`MIN_TOKEN_CHARS`] characters practically always has more than this).
pub const MIN_DISTINCT_CHARS: usize = 10;

/// The admin token rule: [`MIN_TOKEN_CHARS`] or more characters, [`MIN_DISTINCT_CHARS`] or
/// more of them distinct. The file reader has already limited it to one line of at most 256
/// visible ASCII characters.
pub fn check_token_strength(token: &str) -> Result<(), SecretRule> {
    const WHAT: &str = "the admin token";
    let len = token.chars().count();
    if len < MIN_TOKEN_CHARS {
        return Err(SecretRule::Length {
            what: WHAT,
            min: MIN_TOKEN_CHARS,
            max: crate::keyring::MAX_PARTNER_SECRET,
            len,
        });
    }
    let distinct = token
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < MIN_DISTINCT_CHARS {
        return Err(SecretRule::NotRandom {
            what: WHAT,
            distinct,
            min: MIN_DISTINCT_CHARS,
        });
    }
    Ok(())
}

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
    /// Reads the token file: one line of visible ASCII, mode 0600/0400, owned by us or root,
    /// one hard link, and strong enough ([`check_token_strength`]).
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
        check_token_strength(&text).map_err(|rule| KeyRingError::WeakSecret {
            path: path.to_path_buf(),
            rule,
        })?;
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

    #[test]
    fn weak_tokens_are_refused_and_random_ones_pass() {
        // 1 byte, 42 characters, a repeated word: refused.
        assert!(matches!(
            check_token_strength("x"),
            Err(SecretRule::Length { len: 1, .. })
        ));
        assert!(check_token_strength(&"aB3".repeat(14)).is_err());
        assert!(matches!(
            check_token_strength(&"password".repeat(6)),
            Err(SecretRule::NotRandom { distinct: 7, .. })
        ));
        // `head -c 32 /dev/urandom | base64` and `| xxd -p -c 64` shapes.
        assert!(check_token_strength("q7Vd0cS2mX9bK4tY1pWz8nR3eL6hJ5gF0aC2uI9oE+M=").is_ok());
        assert!(check_token_strength(
            "3f9a1c7e5b2d8f40a6c3e1b97d5f2a8c0e4b6d1f3a5c7e9b2d4f6a8c0e1b3d5f"
        )
        .is_ok());
    }
}
