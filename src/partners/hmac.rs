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

/// stringSignTemp for `params` (name, value) — exposed so tools can print it.
pub fn string_to_sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    app_token: &str,
) -> String {
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
    s.push_str("&fappToken=");
    s.push_str(app_token);
    s
}

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
