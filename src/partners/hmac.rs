//! The sorted-parameter HMAC channel (HMAC interface document §3.2; docs/partner-channels.md).
//!
//! 1. Take every parameter except `sign` whose value is not empty; sort by parameter name in
//!    ASCII (byte) order; join as `k1=v1&k2=v2…` — values raw, not URL-encoded — giving stringA.
//! 2. stringSignTemp = stringA + `&fappToken=` + token; sign = upper-case(Base64(HMAC-SHA256)).
//!
//! The spec does not name the HMAC key; as in every scheme of this family (WeChat Pay's
//! `HMAC-SHA256` sign type) the key is the app token itself. Requests carry a `timestamp` in Unix
//! seconds that must be within 5 minutes of the gateway's clock (docs/partner-channels.md).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The field that carries the signature; never part of the signed string.
pub const SIGN_FIELD: &str = "sign";
/// Accepted clock difference, seconds.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// stringA for `params` (name, value): every pair but `sign` with a non-empty value, sorted by
/// name in ASCII order, joined `k=v&k=v`.
pub fn string_a<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != SIGN_FIELD)
        .collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = String::new();
    for (k, v) in kept {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// stringSignTemp for `params` (name, value) — exposed so tools can print it.
pub fn string_to_sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    app_token: &str,
) -> String {
    let mut s = string_a(params);
    s.push_str(TOKEN_SUFFIX);
    s.push_str(app_token);
    s
}

/// What the spec appends to stringA before the token.
const TOKEN_SUFFIX: &str = "&fappToken=";

/// The replay guard's key for a request with `params`: SHA-256 of stringA, i.e. of exactly what
/// was signed (the token aside, which is the same for every request of the partner and secret).
/// Keyed on a parsed field instead, a field folded into another (`nonce=n&openid=o` vs
/// `nonce=n&openid=o` as one nonce) would pass as new.
pub fn replay_digest<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(string_a(params).as_bytes()).into()
}

/// Why a request's fields cannot be signed unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A name outside `A–Z a–z 0–9 _` (1–64 characters), or the reserved `fappToken`.
    #[error("field names must be 1–64 letters, digits or `_`, and not fappToken")]
    Name,
    /// A value carrying `&`, the separator of stringA.
    #[error("field values must not contain `&` (in paramJsons write it as \\u0026)")]
    Separator,
    /// A nonce outside `A–Z a–z 0–9 - _` (1–64 characters).
    #[error("nonce must be 1–64 letters, digits, `-` or `_`")]
    Nonce,
}

/// Checks that the signed string of `params` has exactly one parse: names in `A–Z a–z 0–9 _`
/// (so neither `=` nor `&`), no `&` in any value (a JSON text never needs a raw one: `\u0026`),
/// and the nonce in its alphabet. Then `k=v&…` splits at each `&`, and each piece at its first
/// `=`, one way only (docs/partner-channels.md, "Readings of the specs").
pub fn check_fields<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), FieldError> {
    for (k, v) in params {
        let name_ok = (1..=64).contains(&k.len())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && k != TOKEN_SUFFIX.trim_start_matches('&').trim_end_matches('=');
        if !name_ok {
            return Err(FieldError::Name);
        }
        if k == SIGN_FIELD {
            continue;
        }
        if v.contains('&') {
            return Err(FieldError::Separator);
        }
        if k == NONCE_FIELD
            && !((1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
        {
            return Err(FieldError::Nonce);
        }
    }
    Ok(())
}

/// The field that carries the nonce.
pub const NONCE_FIELD: &str = "nonce";

/// The `sign` value: upper-case Base64 of HMAC-SHA256(key = app token, stringSignTemp).
pub fn sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, app_token: &str) -> String {
    let text = string_to_sign(params, app_token);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(mac.finalize().into_bytes())
        .to_ascii_uppercase()
}

/// Whether `given` is the signature of `params` under `app_token` (constant-time compare).
pub fn verify<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    app_token: &str,
    given: &str,
) -> bool {
    super::ct_eq(sign(params, app_token).as_bytes(), given.as_bytes())
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not a decimal number of seconds.
    #[error("timestamp must be Unix seconds")]
    Malformed,
    /// More than 5 minutes away from the gateway's clock.
    #[error("timestamp is more than 5 minutes away from the bank's clock")]
    Expired,
}

/// Checks the request's `timestamp` (Unix seconds) against `now`.
pub fn check_timestamp(timestamp: &str, now: i64) -> Result<i64, TimestampError> {
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(TimestampError::Malformed);
    }
    let ts: i64 = timestamp.parse().map_err(|_| TimestampError::Malformed)?;
    if (now - ts).abs() > TIMESTAMP_WINDOW_SECS {
        return Err(TimestampError::Expired);
    }
    Ok(ts)
}

/// The field of the account reply that carries the ID number.
pub const ID_NUMBER_FIELD: &str = "user_identify_card_num";

/// An ID number as this channel writes it: the spec asks for the check letter in lower case
/// ("身份证号码的x字母，统一用小写"). Only the form on the wire changes — the keyed digest is taken
/// of the normalised (upper-case) number, so lookups and audit rows are the same.
pub fn id_number_on_wire(id: &str) -> String {
    id.replace('X', "x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_carry_a_lower_case_x() {
        assert_eq!(
            id_number_on_wire("11010519491231002X"),
            "11010519491231002x"
        );
        assert_eq!(
            id_number_on_wire("11010519491231002x"),
            "11010519491231002x"
        );
        assert_eq!(
            id_number_on_wire("110105194912310021"),
            "110105194912310021"
        );
    }

    #[test]
    fn fields_that_would_make_a_second_parse_are_refused() {
        assert_eq!(check_fields([("nonce", "n1"), ("openid", "o1")]), Ok(()));
        assert_eq!(
            check_fields([("nonce", "n1&openid=o1")]),
            Err(FieldError::Separator)
        );
        assert_eq!(
            check_fields([("paramJsons", "{\"a\":\"x&y=1\"}")]),
            Err(FieldError::Separator)
        );
        assert_eq!(check_fields([("a=b", "1")]), Err(FieldError::Name));
        assert_eq!(check_fields([("fappToken", "1")]), Err(FieldError::Name));
        assert_eq!(check_fields([("nonce", "n 1")]), Err(FieldError::Nonce));
        // The signature itself is Base64 (may carry `=`, never `&`) and is not signed.
        assert_eq!(check_fields([("sign", "AB+/=")]), Ok(()));
    }

    #[test]
    fn the_replay_digest_is_of_the_signed_string() {
        let a = replay_digest([("nonce", "n1"), ("openid", "o1"), ("sign", "X")]);
        let b = replay_digest([("nonce", "n1&openid=o1"), ("sign", "Y")]);
        assert_eq!(a, b, "the same signed string is the same replay key");
        assert_ne!(a, replay_digest([("nonce", "n2"), ("openid", "o1")]));
    }

    proptest::proptest! {
        /// Two different sets of signed fields (non-empty values, `sign` aside) that pass
        /// `check_fields` never give the same signing string.
        #[test]
        fn accepted_field_sets_have_distinct_signing_strings(
            a in proptest::collection::btree_map("[a-zA-Z0-9_]{1,4}", "[ -~]{1,5}", 1..5),
            b in proptest::collection::btree_map("[a-zA-Z0-9_]{1,4}", "[ -~]{1,5}", 1..5),
        ) {
            let fa = || a.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let fb = || b.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            proptest::prop_assume!(check_fields(fa()).is_ok() && check_fields(fb()).is_ok());
            let signed = |m: &std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
                m.iter().filter(|(k, _)| k.as_str() != SIGN_FIELD).map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            proptest::prop_assume!(signed(&a) != signed(&b));
            proptest::prop_assert_ne!(string_to_sign(fa(), "tok"), string_to_sign(fb(), "tok"));
        }

        /// The folding attack of the review, generated: a field moved into the value before
        /// it is refused by `check_fields`.
        #[test]
        fn a_folded_field_is_refused(n in "[a-z0-9]{1,8}", k in "[a-z]{1,6}", v in "[a-z0-9]{1,8}") {
            let folded = format!("{n}&{k}={v}");
            proptest::prop_assert!(check_fields([("nonce", folded.as_str())]).is_err());
            proptest::prop_assert!(check_fields([("fuin", folded.as_str())]).is_err());
        }
    }

    #[test]
    fn empty_values_and_sign_are_left_out_and_keys_sorted_by_ascii() {
        let s = string_to_sign(
            [
                ("version", "2"),
                ("Zeta", "z"),
                ("fappid", "app"),
                ("empty", ""),
                ("sign", "XXX"),
            ],
            "tok",
        );
        assert_eq!(s, "Zeta=z&fappid=app&version=2&fappToken=tok");
    }
}
