//! The partner channels (open platform, callback, HMAC): flows, floods, hostile input, review findings, vectors.

mod flood;
mod flows;
mod hostile;
mod review;
mod vectors;
