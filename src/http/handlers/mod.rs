//! One handler per file.

pub mod account_query;
pub mod health;
pub mod keyring_reload;
pub mod openapi;
