//! Cryptographic modules: the software SDF device checked by an independent client, and the
//! gateway signing through it.

mod sdf_conformance;
mod signer;
