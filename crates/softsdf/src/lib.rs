//! A software GM/T 0018 (SDF) cryptographic device for tests.
//!
//! Built as a shared library (`libsoftsdf.so`), it is loaded exactly as a vendor's SDF library
//! would be — by the gateway, by GmSSL's `sdfutil` — and offers the functions a signing client
//! needs: open/close device and session, device info, random, private-key access right,
//! export of the signing public key, SM2 signing of a 32-byte digest, SM2 verification, and
//! SM3 hashing (with Z for a public key and ID). Structures and return codes follow the
//! standard ([`layout`], [`codes`]).
//!
//! Configuration, read at `SDF_OpenDevice`:
//! - `SOFTSDF_DIR`: the key directory ([`keys`]: `sign-<index>.key`, `sign-<index>.pass`);
//! - `SOFTSDF_CONTROL`, `SOFTSDF_LATENCY_US`, `SOFTSDF_HANG`, `SOFTSDF_FAIL`,
//!   `SOFTSDF_FAIL_CODE`: injected latency, hangs and failures ([`faults`]).
//!
//! Not a security boundary: the keys are files, and the process that loads the library holds
//! them in memory. It stands in for a module in tests only.

pub mod codes;
pub mod device;
pub mod faults;
pub mod ffi;
mod handles;
pub mod keys;
pub mod layout;
pub mod p11;

pub use codes::SdfError;
pub use device::{Config, Device, Session};
pub use keys::{provision, provision_token_pin};
