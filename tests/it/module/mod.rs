//! Cryptographic modules: the software SDF device checked by an independent client.

mod sdf_conformance;
