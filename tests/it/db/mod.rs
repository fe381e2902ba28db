//! The store on SQLite and MySQL: statements, faults, the account import, the account domain's pure parts.

mod accounts;
mod fault;
mod import;
mod store;
