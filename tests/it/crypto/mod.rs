//! SM2/SM3 and the wire formats: known vectors, engines against each other and OpenSSL, the Authorization codec.

mod engines;
mod vectors;
mod wire;
