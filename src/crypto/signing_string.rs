//! The exact byte strings that get signed (WeChat pension guide §3.2.1 and §3.3.1).
//!
//! Both are built from the bytes as they travel: the path and query exactly as received (no
//! host, no re-encoding), the timestamp and nonce texts exactly as sent, and the raw body.
//! Nothing is parsed and re-serialised on the way, so a signature covers what was on the wire.

/// The five-line request signing string:
/// `METHOD\n` `path?query\n` `timestamp\n` `nonce\n` `body\n` (the body line is empty for GET).
pub fn request_signing_string(
    method: &str,
    path_and_query: &[u8],
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        method.len() + path_and_query.len() + timestamp.len() + nonce.len() + body.len() + 5,
    );
    for part in [
        method.as_bytes(),
        path_and_query,
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    out
}

/// The three-line response signing string: `timestamp\n` `nonce\n` `body\n` (empty body for 204).
pub fn response_signing_string(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for part in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    out
}

/// Renders a signing string for people: every `\n` shown as the two characters `\n` followed
/// by a real line break, so the self-test tool (guide §3.5) shows exactly what was signed.
pub fn display_signing_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\n', "\\n\n")
}
