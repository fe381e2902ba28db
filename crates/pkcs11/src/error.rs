//! The client's one error type. Return values are named (`CKR_…` as the binding names them);
//! nothing secret is ever in an error.

use std::path::PathBuf;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum P11Error {
    /// The vendor's library could not be loaded (or has no `C_GetFunctionList`).
    #[error("cannot load PKCS#11 library {}: {source}", path.display())]
    Load {
        /// The library's path.
        path: PathBuf,
        /// The binding's reason.
        source: cryptoki::error::Error,
    },
    /// A function returned an error.
    #[error("{function} failed: {}", describe(.source))]
    Call {
        /// The PKCS#11 function.
        function: &'static str,
        /// The binding's error.
        source: cryptoki::error::Error,
    },
    /// No slot holds the configured token.
    #[error("no {selector} among the library's tokens (found: {found})")]
    NoToken {
        /// The configured label or serial.
        selector: String,
        /// The tokens present.
        found: String,
    },
    /// The token does not offer the profile's mechanism for signing.
    #[error(
        "{token} does not offer mechanism {mechanism:#010x} (SM2 signature of profile \
         `{profile}`) for signing; it lists {listed} — not an SM2 token, or the profile is \
         not this vendor's"
    )]
    NoMechanism {
        /// The profile's mechanism code.
        mechanism: u64,
        /// The profile's name.
        profile: String,
        /// The token.
        token: String,
        /// The mechanisms it lists (those the binding can name).
        listed: String,
    },
    /// A mechanism code below the vendor range that the binding does not know.
    #[error("mechanism {0:#x} is neither vendor-defined (≥ 0x80000000) nor a standard one")]
    UnknownMechanism(u64),
    /// `C_Login` refused the PIN.
    #[error("{token} refused the PIN (CKR_PIN_INCORRECT); check the PIN file")]
    WrongPin {
        /// The token.
        token: String,
    },
    /// No object of the key's label or id.
    #[error("{token} holds no {what} with {key}")]
    KeyNotFound {
        /// `private key` or `public key`.
        what: &'static str,
        /// The key's label or id.
        key: String,
        /// The token.
        token: String,
    },
    /// More than one object of the key's label or id and class.
    #[error("{token} holds {count} keys with {key}; a key must be named uniquely")]
    AmbiguousKey {
        /// The key's label or id.
        key: String,
        /// The token.
        token: String,
        /// How many.
        count: usize,
    },
    /// A value the token returned does not have the expected layout.
    #[error("{0}")]
    Layout(&'static str),
}

impl P11Error {
    pub(crate) fn call(function: &'static str, source: cryptoki::error::Error) -> Self {
        P11Error::Call { function, source }
    }
}

/// A binding error in a few words: the return value's name, not its page of explanation.
fn describe(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => format!("{rv:?}"),
        other => other.to_string(),
    }
}
