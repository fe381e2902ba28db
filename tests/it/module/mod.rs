//! Cryptographic modules: the software SDF device checked by an independent client, and the
//! gateway signing through it, as an SDF device and as a PKCS#11 token (and SoftHSM refused).

mod checkpoint;
mod cli;
mod load;
mod rotation_load;
mod sdf_conformance;
mod setup;
mod signer;
mod token;
