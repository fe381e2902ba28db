//! MySQL/MariaDB specifics: pool behaviour, least-privilege accounts, TLS to the database.

mod pool;
mod privileges;
mod tls;
