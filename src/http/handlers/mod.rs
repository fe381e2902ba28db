//! One handler per file.

pub mod account_query;
pub mod callback_receive;
pub mod health;
pub mod hmac_account;
pub mod keyring_reload;
pub mod op_access_token;
pub mod op_api_ticket;
pub mod op_service;
pub mod openapi;
