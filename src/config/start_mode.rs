//! Which defaults a run starts from: the demo's or production's. Decided from the command line
//! and the presence of any configuration, never from a configuration's content. This is the one
//! place the rule lives; `main.rs` only says which kind of command was given.
//!
//! - No subcommand and no configuration at all (no `--config`, no `GATEWAY_CONFIG`, no
//!   `GATEWAY__*` variable): the newcomer's demo.
//! - No subcommand but some configuration: refused — that is someone deploying, and they must
//!   say `serve` (production) or `serve --demo`.
//! - `serve`: production defaults, whatever else is given; `serve --demo`: the demo.
//! - A command that reads or writes bank data or keys (`db`, `accounts`, `keys`, `audit` …):
//!   `--demo` runs it on the demo; otherwise a configuration is required — without one it is
//!   refused, naming the demo database, pepper and key directory it would have used, because
//!   a silent demo there writes real account data into a stray SQLite file under a public
//!   pepper. With a configuration: production defaults plus the configuration.
//! - A tool that touches no bank data (`client`, `bench`, `tls`): the demo's defaults when no
//!   configuration is given (the client acts as WeChat against a local demo), otherwise
//!   production defaults plus the configuration.

use std::path::Path;

use super::env::PREFIX;
use super::{ConfigError, Settings, DEMO_PEPPER_HEX};

/// The variable naming the configuration file (also `--config`).
pub const CONFIG_VAR: &str = "GATEWAY_CONFIG";

/// What the command line asked for, as far as the start mode is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No subcommand.
    Bare,
    /// `serve`, with or without `--demo`.
    Serve {
        /// `--demo` was given.
        demo: bool,
    },
    /// A command that reads or writes bank data or keys (`db`, `accounts`, `keys`, `audit`).
    BankData {
        /// The command as the operator typed it, for the refusal (`db migrate`).
        command: String,
        /// `--demo` was given.
        demo: bool,
        /// The command line itself names everything the command touches (`keys --dir DIR`),
        /// which stands in for a configuration.
        target_given: bool,
    },
    /// A tool that touches no bank data or keys (`client`, `bench`, `tls`).
    Other,
}

/// The defaults a run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Demo defaults: public demo keys and pepper, embedded SQLite, demo accounts seeded.
    Demo,
    /// Production defaults: nothing demo, every secret must be configured.
    Production,
}

impl StartMode {
    /// Decides the mode. `config_path` is the file given by `--config` or `GATEWAY_CONFIG`;
    /// `env` is the process environment (only `GATEWAY_CONFIG` and `GATEWAY__*` are looked at).
    /// A bare invocation with any configuration is refused with a message naming `serve`; a
    /// bank-data command with none (and no `--demo`) is refused naming what it would have used.
    pub fn decide<'a>(
        invocation: Invocation,
        config_path: Option<&Path>,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<StartMode, ConfigError> {
        let given = configuration_given(config_path, env);
        match (invocation, given) {
            (Invocation::Serve { demo: true }, _) => Ok(StartMode::Demo),
            (Invocation::Serve { demo: false }, _) => Ok(StartMode::Production),
            (Invocation::BankData { demo: true, .. }, _) => Ok(StartMode::Demo),
            (
                Invocation::BankData {
                    target_given: false,
                    command,
                    ..
                },
                None,
            ) => Err(no_configuration(&command)),
            (Invocation::BankData { .. } | Invocation::Other, Some(_))
            | (Invocation::BankData { .. }, None) => Ok(StartMode::Production),
            (Invocation::Bare | Invocation::Other, None) => Ok(StartMode::Demo),
            (Invocation::Bare, Some(what)) => Err(ConfigError(format!(
                "a configuration was given ({what}) but no command; run `pension-gateway serve` \
                 for production or `pension-gateway serve --demo` for the demo"
            ))),
        }
    }
}

/// The refusal of a bank-data command run with no configuration: what it would have used
/// (the demo's database, public pepper and key directory) and the two ways on.
fn no_configuration(command: &str) -> ConfigError {
    let demo = Settings::demo();
    ConfigError(format!(
        "`pension-gateway {command}` reads or writes bank data or keys, and no configuration \
         was given (no --config, no {CONFIG_VAR}, no {PREFIX}* variable). Without one it would \
         use the demo: database {}, the public demo pepper accounts.id_pepper = {}…, key \
         directory {}. Run `pension-gateway --config /etc/pension-gateway/gateway.toml \
         {command}`, or add --demo to use the demo on purpose",
        demo.database.url,
        &DEMO_PEPPER_HEX[..16],
        demo.keys.dir.display(),
    ))
}

/// What configuration is present, described for the refusal message (no values: they may be
/// secrets), or `None` when there is none.
fn configuration_given<'a>(
    config_path: Option<&Path>,
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let mut found = Vec::new();
    let mut config_var = None;
    for (k, v) in env {
        if k == CONFIG_VAR {
            found.push(format!("{k}={v}"));
            config_var = Some(v);
        } else if k.starts_with(PREFIX) {
            found.push(k.to_string());
        }
    }
    if let Some(p) = config_path {
        // The path clap took from `GATEWAY_CONFIG` is already named; otherwise `--config` gave it.
        if config_var.is_none_or(|v| Path::new(v) != p) {
            found.push(format!("--config {}", p.display()));
        }
    }
    if found.is_empty() {
        None
    } else {
        found.sort();
        found.dedup();
        Some(found.join(", "))
    }
}
