//! Fuzz the tolerant Authorization reader: it must never panic, and whatever it accepts must
//! survive a write → read round trip unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pension_gateway::crypto::Authorization;

fuzz_target!(|data: &[u8]| {
    let schemes = vec!["WECHATPAY2-SM2-WITH-SM3".to_string()];
    if let Ok(a) = Authorization::parse(data, &schemes) {
        let again = Authorization::parse(a.to_header_value().as_bytes(), &schemes).expect("writer output must parse");
        assert_eq!(a, again);
    }
});
