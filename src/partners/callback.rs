//! Salted callbacks (open-platform guide §5; docs/partner-channels.md): every message in either
//! direction is a JSON body `{Plain, Signature, Timestamp, SeqNo, transName}` where
//!
//! - `Plain` = Java `URLEncoder.encode(json, "UTF-8")` of the business JSON (space → `+`,
//!   `A–Z a–z 0–9 . - * _` kept, every other byte `%XX` upper-case);
//! - `Signature` = lower-case hex SHA-256 of the UTF-8 string `Plain + salt + Timestamp`;
//! - `Timestamp` = Unix milliseconds as a decimal string; `SeqNo` = the request's unique serial,
//!   echoed in the reply; `transName` = the interface name agreed with the partner.
//!
//! Replies carry `{"CODE": "...", "DESC": "..."}` in their Plain with the [`ReplyCode`]s of §5.5.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Accepted clock difference for a callback's `Timestamp`, milliseconds (5 minutes).
pub const TIMESTAMP_WINDOW_MS: i64 = 300_000;

/// The wire body of a callback request or reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// URL-encoded business JSON.
    #[serde(rename = "Plain")]
    pub plain: String,
    /// Lower-case hex SHA-256 of Plain + salt + Timestamp.
    #[serde(rename = "Signature")]
    pub signature: String,
    /// Unix milliseconds, decimal.
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    /// Unique serial of the request.
    #[serde(rename = "SeqNo")]
    pub seq_no: String,
    /// Interface name.
    #[serde(rename = "transName")]
    pub trans_name: String,
}

/// The reply codes of spec §5.5, in the reply's Plain as `CODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCode {
    /// 0000 系统处理成功.
    Success,
    /// 0001 报文格式错误: the body is not the envelope.
    BadFormat,
    /// 0002 未满足接口输入要求: the business fields are missing or invalid.
    InputRequirement,
    /// 0103 报文解析失败: Plain does not URL-decode to JSON.
    ParseFailed,
    /// 0010 签名验证失败.
    SignatureFailed,
    /// 0012 时间戳过期.
    TimestampExpired,
    /// 0016 SSL认证失败 (TLS terminates in front of the gateway; recognised in replies only).
    SslFailed,
}

impl ReplyCode {
    /// Every code, in the spec's order.
    pub const ALL: [ReplyCode; 7] = [
        ReplyCode::Success,
        ReplyCode::BadFormat,
        ReplyCode::InputRequirement,
        ReplyCode::ParseFailed,
        ReplyCode::SignatureFailed,
        ReplyCode::TimestampExpired,
        ReplyCode::SslFailed,
    ];

    /// `CODE` on the wire.
    pub fn code(self) -> &'static str {
        match self {
            ReplyCode::Success => "0000",
            ReplyCode::BadFormat => "0001",
            ReplyCode::InputRequirement => "0002",
            ReplyCode::ParseFailed => "0103",
            ReplyCode::SignatureFailed => "0010",
            ReplyCode::TimestampExpired => "0012",
            ReplyCode::SslFailed => "0016",
        }
    }

    /// `DESC` on the wire, exactly as the spec lists it.
    pub fn desc(self) -> &'static str {
        match self {
            ReplyCode::Success => "系统处理成功",
            ReplyCode::BadFormat => "报文格式错误",
            ReplyCode::InputRequirement => "未满足接口输入要求",
            ReplyCode::ParseFailed => "报文解析失败",
            ReplyCode::SignatureFailed => "签名验证失败",
            ReplyCode::TimestampExpired => "时间戳过期",
            ReplyCode::SslFailed => "SSL认证失败",
        }
    }

    /// Parses a `CODE`.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// Java `URLEncoder.encode(s, "UTF-8")`: the `application/x-www-form-urlencoded` byte
/// serialisation (space → `+`, `A–Z a–z 0–9 . - * _` kept, every other byte `%XX` upper-case),
/// which is exactly what `form_urlencoded` writes.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether `plain` uses only the characters Java's `URLEncoder` writes — `A–Z a–z 0–9 . - * _ +`
/// and `%` followed by two hex digits — and does not end with a digit. A message whose Plain
/// passes has exactly one split of the signed string `Plain + salt + Timestamp` (Timestamp is
/// all digits; see docs/partner-channels.md, "Readings of the specs").
pub fn plain_is_well_formed(plain: &str) -> bool {
    let b = plain.as_bytes();
    let alphabet = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'*' | b'_' | b'+' | b'%'));
    let escapes = plain
        .split('%')
        .skip(1)
        .all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    alphabet && escapes && b.last().is_some_and(|c| !c.is_ascii_digit())
}

/// Java `URLDecoder.decode(s, "UTF-8")`, strict: a malformed escape or bytes that are not UTF-8
/// are refused (Java would throw or substitute U+FFFD; a signed message should never need either).
pub fn url_decode(s: &str) -> Option<String> {
    let malformed = s
        .split('%')
        .skip(1)
        .any(|rest| rest.len() < 2 || !rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if malformed {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

fn digest(plain: &str, salt: &str, timestamp: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(plain.as_bytes());
    h.update(salt.as_bytes());
    h.update(timestamp.as_bytes());
    h.finalize().into()
}

/// Lower-case hex SHA-256 of `plain + salt + timestamp` (what the gateway sends).
pub fn signature(plain: &str, salt: &str, timestamp: &str) -> String {
    hex::encode(digest(plain, salt, timestamp))
}

/// Whether `given` is the signature of the envelope under `salt`. The spec's verifier compares
/// lower-case hex; upper-case (or mixed) hex of the same digest is accepted too: `given` is
/// decoded to its 32 bytes first, and those are compared with the digest in constant time.
pub fn verify_signature(plain: &str, salt: &str, timestamp: &str, given: &str) -> bool {
    let mut decoded = [0u8; 32];
    if hex::decode_to_slice(given, &mut decoded).is_err() {
        return false;
    }
    super::ct_eq(&digest(plain, salt, timestamp), &decoded)
}

impl Envelope {
    /// Seals the business JSON text `json` under `salt` at `timestamp_ms`.
    pub fn seal(json: &str, salt: &str, timestamp_ms: i64, seq_no: &str, trans_name: &str) -> Self {
        let plain = url_encode(json);
        let timestamp = timestamp_ms.to_string();
        let signature = signature(&plain, salt, &timestamp);
        Self {
            plain,
            signature,
            timestamp,
            seq_no: seq_no.to_owned(),
            trans_name: trans_name.to_owned(),
        }
    }

    /// Checks the signature against every salt in `salts` (newest first) and the timestamp
    /// against `now_ms`, then decodes Plain. Returns the business JSON text.
    pub fn open<'a>(
        &self,
        salts: impl IntoIterator<Item = &'a str>,
        now_ms: i64,
    ) -> Result<String, ReplyCode> {
        if !salts
            .into_iter()
            .any(|salt| verify_signature(&self.plain, salt, &self.timestamp, &self.signature))
        {
            return Err(ReplyCode::SignatureFailed);
        }
        let ts: i64 = if !self.timestamp.is_empty()
            && self.timestamp.len() <= 15
            && self.timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            self.timestamp.parse().map_err(|_| ReplyCode::BadFormat)?
        } else {
            return Err(ReplyCode::BadFormat);
        };
        if (now_ms - ts).abs() > TIMESTAMP_WINDOW_MS {
            return Err(ReplyCode::TimestampExpired);
        }
        let json = url_decode(&self.plain).ok_or(ReplyCode::ParseFailed)?;
        serde_json::from_str::<serde_json::Value>(&json).map_err(|_| ReplyCode::ParseFailed)?;
        Ok(json)
    }

    /// Parses a wire body; anything that is not the envelope is [`ReplyCode::BadFormat`].
    pub fn parse(body: &[u8]) -> Result<Self, ReplyCode> {
        let env: Envelope = serde_json::from_slice(body).map_err(|_| ReplyCode::BadFormat)?;
        if env.plain.is_empty() || env.signature.is_empty() || env.seq_no.len() > 64 {
            return Err(ReplyCode::BadFormat);
        }
        // One parse of the signed string: Plain in URLEncoder's alphabet, not ending in a digit,
        // and Timestamp all digits (docs/partner-channels.md, "Readings of the specs").
        let timestamp_ok = (1..=15).contains(&env.timestamp.len())
            && env.timestamp.bytes().all(|b| b.is_ascii_digit());
        if !plain_is_well_formed(&env.plain) || !timestamp_ok {
            return Err(ReplyCode::BadFormat);
        }
        Ok(env)
    }
}

/// The member every reply's Plain carries (`{"CODE", "DESC", …}`, spec §5.5) and no request's
/// business JSON does.
pub const REPLY_MARKER: &str = "CODE";

/// Whether the business JSON `json` is shaped like a reply (an object with a `CODE` member).
/// The salt signs both directions the same way, so the direction is told by the content: the
/// gateway refuses such a message as a request, before it counts as authenticated, so nothing
/// the bank signed can come back as a request (docs/partner-channels.md, "Readings of the specs").
pub fn is_reply(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key(REPLY_MARKER)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_the_spec_example() {
        // The open-platform guide's §5.5 step 2 example (printed there across two lines).
        assert_eq!(
            url_encode(r#"{"merchantno":"00000006","product_cd":"230001","req_nbr":"tbt001"}"#),
            "%7B%22merchantno%22%3A%2200000006%22%2C%22product_cd%22%3A%22230001%22%2C%22req_nbr%22%3A%22tbt001%22%7D"
        );
        assert_eq!(url_encode("a b*~中"), "a+b*%7E%E4%B8%AD");
        assert_eq!(url_decode("a+b*%7E%E4%B8%AD").as_deref(), Some("a b*~中"));
        assert_eq!(url_decode("%E4%B8"), None);
        assert_eq!(url_decode("%G0"), None);
        assert_eq!(url_decode("%4"), None);
        assert_eq!(url_decode("%2B+%25").as_deref(), Some("+ %"));
    }

    #[test]
    fn plain_alphabet_and_its_last_character() {
        assert!(plain_is_well_formed(&url_encode(r#"{"a":"b c"}"#)));
        assert!(!plain_is_well_formed("%7B%7D1"), "ends with a digit");
        assert!(
            !plain_is_well_formed("a&b"),
            "outside URLEncoder's alphabet"
        );
        assert!(!plain_is_well_formed("%7"), "short escape");
        assert!(!plain_is_well_formed("%G0x"), "not hex");
        assert!(!plain_is_well_formed(""));
    }

    #[test]
    fn replies_are_told_by_their_code_member() {
        assert!(is_reply(r#"{"CODE":"0000","DESC":"系统处理成功"}"#));
        assert!(!is_reply(r#"{"user_true_name":"张三"}"#));
        assert!(!is_reply("[1]"));
        assert!(!is_reply("not json"));
    }

    proptest::proptest! {
        /// Two different (Plain, Timestamp) pairs accepted by `parse` never give the same
        /// signed string under one salt.
        #[test]
        fn the_signed_string_has_one_split(
            a in "[A-Za-z0-9.*_+-]{0,6}[A-Za-z.*_+-]",
            b in "[A-Za-z0-9.*_+-]{0,6}[A-Za-z.*_+-]",
            ta in "[1-9][0-9]{0,4}",
            tb in "[1-9][0-9]{0,4}",
            salt in "[a-z0-9]{1,6}",
        ) {
            proptest::prop_assume!(plain_is_well_formed(&a) && plain_is_well_formed(&b));
            proptest::prop_assume!((&a, &ta) != (&b, &tb));
            proptest::prop_assert_ne!(format!("{a}{salt}{ta}"), format!("{b}{salt}{tb}"));
        }
    }
}
