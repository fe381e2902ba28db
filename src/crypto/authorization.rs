//! The `Authorization` header: a tolerant reader and a strict writer (docs/protocol.md §5).
//!
//! Read: an optional scheme token (e.g. `WECHATPAY2-SM2-WITH-SM3`), then comma-separated
//! `key=value` pairs, values quoted or bare, in any order, whitespace tolerated around
//! separators. Recognised keys: `nonce` (alias `nonce_str`), `timestamp`, `signature`,
//! `version` (alias `serial_no`), `bank_id`. Unknown keys are ignored; a recognised key given
//! twice is refused (two readings of one header must never differ). The tolerance costs no
//! security: the signature covers the same nonce and timestamp that were parsed.
//!
//! The reader never panics, refuses headers over [`MAX_HEADER_LEN`] bytes before looking at
//! them, and allocates only the few fields it returns.

use std::fmt;

/// Longest header accepted; a real one is about 250 bytes.
pub const MAX_HEADER_LEN: usize = 2048;
/// Most `key=value` pairs read before the header is refused.
pub const MAX_PARAMS: usize = 16;

/// The scheme this gateway writes on outbound requests unless configured otherwise.
pub const DEFAULT_SCHEME: &str = "WECHATPAY2-SM2-WITH-SM3";

/// Why an `Authorization` header was refused. `Display` is safe to send to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// Longer than [`MAX_HEADER_LEN`] or more than [`MAX_PARAMS`] pairs.
    #[error("Authorization header is too long")]
    TooLong,
    /// Not visible ASCII, or not `key=value` pairs.
    #[error("Authorization header is malformed: {0}")]
    Syntax(&'static str),
    /// A scheme token that is not in the accepted list.
    #[error("Authorization scheme is not accepted")]
    Scheme,
    /// A required field is absent.
    #[error("Authorization header lacks `{0}`")]
    Missing(&'static str),
    /// A recognised field appears twice (aliases count as the same field).
    #[error("Authorization header repeats `{0}`")]
    Duplicate(&'static str),
    /// A field's value has the wrong form.
    #[error("Authorization `{0}` has an invalid value")]
    Invalid(&'static str),
}

/// The fields of an `Authorization` header. Values are kept exactly as sent, because the
/// signing string must use the same text (e.g. the timestamp digits).
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The scheme token, if one was given.
    pub scheme: Option<String>,
    /// Key version the signer used (`version`/`serial_no`), if named.
    pub version: Option<u32>,
    /// The requesting bank's identifier (bank-initiated requests only).
    pub bank_id: Option<String>,
    /// The nonce: 1–64 letters or digits.
    pub nonce: String,
    /// Unix seconds as sent: 1–18 digits.
    pub timestamp: String,
    /// Base64 DER signature, as sent.
    pub signature: String,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("scheme", &self.scheme)
            .field("version", &self.version)
            .field("bank_id", &self.bank_id)
            .field("nonce", &self.nonce)
            .field("timestamp", &self.timestamp)
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

#[derive(Clone, Copy)]
enum Field {
    Nonce,
    Timestamp,
    Signature,
    Version,
    BankId,
}

impl Field {
    fn from_key(key: &str) -> Option<Self> {
        const KEYS: [(&str, Field); 7] = [
            ("nonce", Field::Nonce),
            ("nonce_str", Field::Nonce),
            ("timestamp", Field::Timestamp),
            ("signature", Field::Signature),
            ("version", Field::Version),
            ("serial_no", Field::Version),
            ("bank_id", Field::BankId),
        ];
        KEYS.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|&(_, f)| f)
    }

    fn name(self) -> &'static str {
        match self {
            Field::Nonce => "nonce",
            Field::Timestamp => "timestamp",
            Field::Signature => "signature",
            Field::Version => "version",
            Field::BankId => "bank_id",
        }
    }
}

impl Authorization {
    /// Reads a header value. `accepted_schemes` lists the scheme tokens allowed (compared
    /// case-insensitively); a header without a scheme token is accepted regardless.
    pub fn parse(header: &[u8], accepted_schemes: &[String]) -> Result<Self, AuthorizationError> {
        if header.len() > MAX_HEADER_LEN {
            return Err(AuthorizationError::TooLong);
        }
        if !header
            .iter()
            .all(|&b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
        {
            return Err(AuthorizationError::Syntax("only visible ASCII is allowed"));
        }
        // All bytes are ASCII, so this cannot fail; the error arm keeps the reader total.
        let text =
            std::str::from_utf8(header).map_err(|_| AuthorizationError::Syntax("not ASCII"))?;
        let text = text.trim_matches(|c| c == ' ' || c == '\t');

        let (scheme, mut rest) = split_scheme(text);
        if let Some(s) = scheme {
            if !accepted_schemes.iter().any(|a| a.eq_ignore_ascii_case(s)) {
                return Err(AuthorizationError::Scheme);
            }
        }

        let mut slots: [Option<&str>; 5] = [None; 5];
        let mut pairs = 0usize;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if rest.is_empty() {
                break;
            }
            pairs += 1;
            if pairs > MAX_PARAMS {
                return Err(AuthorizationError::TooLong);
            }
            let (key, value, tail) = read_pair(rest)?;
            if let Some(field) = Field::from_key(key) {
                let slot = slots
                    .get_mut(field as usize)
                    .ok_or(AuthorizationError::Syntax("internal"))?;
                if slot.replace(value).is_some() {
                    return Err(AuthorizationError::Duplicate(field.name()));
                }
            }
            rest = tail.trim_start_matches([' ', '\t']);
            match rest.strip_prefix(',') {
                Some(after) => rest = after,
                None if rest.is_empty() => break,
                None => {
                    return Err(AuthorizationError::Syntax(
                        "pairs must be separated by commas",
                    ))
                }
            }
        }

        let get = |f: Field| slots.get(f as usize).copied().flatten();
        let nonce = get(Field::Nonce).ok_or(AuthorizationError::Missing("nonce"))?;
        let timestamp = get(Field::Timestamp).ok_or(AuthorizationError::Missing("timestamp"))?;
        let signature = get(Field::Signature).ok_or(AuthorizationError::Missing("signature"))?;
        if !super::nonce::is_valid(nonce) {
            return Err(AuthorizationError::Invalid("nonce"));
        }
        if !(1..=18).contains(&timestamp.len()) || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthorizationError::Invalid("timestamp"));
        }
        if signature.is_empty()
            || signature.len() > super::signature::MAX_BASE64_LEN
            || !signature
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            return Err(AuthorizationError::Invalid("signature"));
        }
        let version = match get(Field::Version) {
            None => None,
            Some(v) => Some(parse_version(v).ok_or(AuthorizationError::Invalid("version"))?),
        };
        let bank_id = match get(Field::BankId) {
            None => None,
            Some(b)
                if (1..=64).contains(&b.len())
                    && b.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') =>
            {
                Some(b.to_owned())
            }
            Some(_) => return Err(AuthorizationError::Invalid("bank_id")),
        };
        Ok(Self {
            scheme: scheme.map(str::to_owned),
            version,
            bank_id,
            nonce: nonce.to_owned(),
            timestamp: timestamp.to_owned(),
            signature: signature.to_owned(),
        })
    }

    /// The timestamp as unix seconds (always parses: `parse` checked it is 1–18 digits).
    pub fn timestamp_secs(&self) -> i64 {
        self.timestamp.parse().unwrap_or(i64::MIN)
    }

    /// The strict written form:
    /// `SCHEME version="1",bank_id="…",nonce="…",timestamp="…",signature="…"`
    /// (scheme, version and bank_id only when set; values always quoted, fixed order).
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(200);
        if let Some(s) = &self.scheme {
            out.push_str(s);
            out.push(' ');
        }
        if let Some(v) = self.version {
            out.push_str(&format!("version=\"{v}\","));
        }
        if let Some(b) = &self.bank_id {
            out.push_str(&format!("bank_id=\"{b}\","));
        }
        out.push_str(&format!(
            "nonce=\"{}\",timestamp=\"{}\",signature=\"{}\"",
            self.nonce, self.timestamp, self.signature
        ));
        out
    }
}

fn parse_version(v: &str) -> Option<u32> {
    if !(1..=9).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u32>().ok().filter(|&n| n >= 1)
}

/// Splits off a leading scheme token: the first word, if it holds no `=` or `,`.
fn split_scheme(text: &str) -> (Option<&str>, &str) {
    let end = text.find([' ', '\t']).unwrap_or(text.len());
    let (first, rest) = text.split_at(end);
    if !first.is_empty() && !first.contains(['=', ',']) {
        (Some(first), rest)
    } else {
        (None, text)
    }
}

/// Reads `key = value` or `key = "value"` from the front of `s`; returns the rest.
fn read_pair(s: &str) -> Result<(&str, &str, &str), AuthorizationError> {
    let key_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(key_end);
    if key.is_empty() {
        return Err(AuthorizationError::Syntax("expected a key"));
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = rest
        .strip_prefix('=')
        .ok_or(AuthorizationError::Syntax("expected `=` after a key"))?;
    let rest = rest.trim_start_matches([' ', '\t']);
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or(AuthorizationError::Syntax("unterminated quoted value"))?;
        let (value, tail) = quoted.split_at(end);
        Ok((key, value, tail.get(1..).unwrap_or("")))
    } else {
        let end = rest.find([',', ' ', '\t', '"']).unwrap_or(rest.len());
        let (value, tail) = rest.split_at(end);
        if tail.starts_with('"') {
            return Err(AuthorizationError::Syntax("stray quote"));
        }
        Ok((key, value, tail))
    }
}
