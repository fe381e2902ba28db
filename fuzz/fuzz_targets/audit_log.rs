//! Fuzz the audit log's parsers (leaf encoding, checkpoint note, witness line): they must never
//! panic, and whatever they accept must be exactly what the writer produces for it (one parse).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pension_gateway::audit::{AuditLeaf, SignedCheckpoint};

fuzz_target!(|data: &[u8]| {
    if let Ok(leaf) = AuditLeaf::decode(data) {
        assert_eq!(leaf.encode().expect("decoded leaf must encode"), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cp) = SignedCheckpoint::from_note(text) {
            assert_eq!(cp.to_note().expect("parsed note must print"), text);
        }
        if let Ok(cp) = SignedCheckpoint::from_witness_line(text) {
            let line = cp.witness_line().expect("parsed line must print");
            assert_eq!(line.trim_end_matches('\n'), text.strip_suffix('\n').unwrap_or(text));
        }
    }
});
