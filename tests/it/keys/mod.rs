//! The key ring: loading and file rules, the `keys` administration, rotations under load.

mod admin;
mod files;
mod ring;
mod rotation;
