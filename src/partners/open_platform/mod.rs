//! The open-platform channel (open-platform guide §4; docs/partner-channels.md): the pure
//! parts — the SHA-1 request signature, the platform codes and the envelope, and the rules of
//! issued grants (access tokens and tickets).

pub mod codes;
pub mod grants;

use sha1::{Digest, Sha1};

pub use codes::OpCode;
pub use grants::{GrantKind, GrantRecord, GrantRules, GrantValue};

/// The only protocol version the spec defines.
pub const VERSION: &str = "2.0.0";

/// The spec's `SignUtils.sign(values, ticket)`: drop nulls, add the ticket, sort as Java's
/// `Collections.sort` sorts strings (by UTF-16 code units), concatenate, SHA-1 over the UTF-8
/// bytes, upper-case hex.
pub fn sign(values: &[Option<&str>], ticket: &str) -> String {
    let mut all: Vec<&str> = values.iter().flatten().copied().collect();
    all.push(ticket);
    all.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    let mut h = Sha1::new();
    for v in &all {
        h.update(v.as_bytes());
    }
    hex::encode_upper(h.finalize())
}

/// The values a business request signs, in the spec's order (the order does not matter: they
/// are sorted): `app_id`, `version`, `nonce`, `type` (absent → null), and the raw body, which
/// must be UTF-8 (the spec's `hashString(…, UTF_8)` of a Java string).
pub fn request_values<'a>(
    app_id: &'a str,
    version: &'a str,
    nonce: &'a str,
    kind: Option<&'a str>,
    body: &'a str,
) -> [Option<&'a str>; 5] {
    [Some(app_id), Some(version), Some(nonce), kind, Some(body)]
}

/// Whether `given` is the signature of `values` under `ticket` (upper-case hex; compared in
/// constant time).
pub fn verify(values: &[Option<&str>], ticket: &str, given: &str) -> bool {
    super::ct_eq(sign(values, ticket).as_bytes(), given.as_bytes())
}

/// A nonce as the spec requires: 32 letters or digits.
pub fn nonce_ok(nonce: &str) -> bool {
    nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `transactionTime`: Beijing time (UTC+8) as `yyyyMMddHHmmss`, as in the spec's examples
/// (token issued at `transactionTime` 20180117154021 expires at 1516178421000 = 16:40:21 +08:00).
pub fn transaction_time(now_ms: i64) -> String {
    let secs = now_ms.div_euclid(1000) + 8 * 3600;
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format("%Y%m%d%H%M%S").to_string(),
        None => "19700101080000".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_order_is_utf16_order() {
        // U+FF21 (Ａ, one UTF-16 unit 0xFF21) sorts after U+1F600 (😀, units 0xD83D 0xDE00) in
        // Java, although its UTF-8 bytes sort before.
        let a = sign(&[Some("\u{FF21}"), Some("\u{1F600}")], "t");
        let mut h = Sha1::new();
        h.update("t\u{1F600}\u{FF21}".as_bytes());
        assert_eq!(a, hex::encode_upper(h.finalize()));
    }

    #[test]
    fn transaction_time_is_beijing_time() {
        assert_eq!(transaction_time(1_516_174_821_000), "20180117154021");
    }
}
