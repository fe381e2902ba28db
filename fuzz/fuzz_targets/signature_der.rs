//! Fuzz the strict DER/Base64 signature decoder: never panic; accepted input re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pension_gateway::crypto::Signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = Signature::from_der(data) {
        assert_eq!(sig.to_der(), data, "strict DER has one encoding per value");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sig) = Signature::from_base64(text) {
            assert_eq!(sig.to_base64(), text);
        }
    }
});
