//! Cryptographic modules: the software SDF device checked by an independent client, and the
//! gateway signing through it.

mod cli;
mod load;
mod rotation_load;
mod sdf_conformance;
mod signer;
