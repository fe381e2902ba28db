//! The partner channels' parsers of outside input: the callback envelope and its Plain
//! (URL-decoding), the HMAC channel's JSON body and signing string, the open-platform signature
//! and grant-value shape. Asserts: no panic; what decodes re-encodes to the same value; a sealed
//! envelope opens to exactly its JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pension_gateway::partners::callback::{url_decode, url_encode, Envelope};
use pension_gateway::partners::open_platform::{self, GrantValue};
use pension_gateway::partners::hmac;

fuzz_target!(|data: &[u8]| {
    let now = 1_661_776_967_000;
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.open(["fuzz-salt"], now);
    }
    let text = String::from_utf8_lossy(data);
    if let Some(decoded) = url_decode(&text) {
        assert_eq!(url_decode(&url_encode(&decoded)).as_deref(), Some(decoded.as_str()));
    }
    if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
        let env = Envelope::seal(&text, "fuzz-salt", now, "seq", "trans");
        assert_eq!(env.open(["fuzz-salt"], now).as_deref(), Ok(text.as_ref()));
    }
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(data) {
        let pairs: Vec<(&str, &str)> = obj
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
            .collect();
        let sig = hmac::sign(pairs.iter().copied(), "fuzz-token");
        assert!(hmac::verify(pairs.iter().copied(), "fuzz-token", &sig));
    }
    let parts: Vec<Option<&str>> = text.split('\u{0}').map(Some).collect();
    let sig = open_platform::sign(&parts, "ticket");
    assert!(open_platform::verify(&parts, "ticket", &sig));
    let _ = GrantValue::id_of(&text);
    let _ = hmac::check_timestamp(&text, 1_661_776_967);
});
