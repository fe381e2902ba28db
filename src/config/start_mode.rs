//! Which defaults a run starts from: the demo's or production's. Decided from the command line
//! and the presence of any configuration, never from a configuration's content.
//!
//! - No subcommand and no configuration at all (no `--config`, no `GATEWAY_CONFIG`, no
//!   `GATEWAY__*` variable): the newcomer's demo.
//! - No subcommand but some configuration: refused — that is someone deploying, and they must
//!   say `serve` (production) or `serve --demo`.
//! - `serve`: production defaults, whatever else is given; `serve --demo`: the demo.
//! - Any other command: the demo's defaults when no configuration is given (the client acts as
//!   WeChat against a local demo), otherwise production defaults plus the configuration.

use std::path::Path;

use super::env::PREFIX;
use super::ConfigError;

/// The variable naming the configuration file (also `--config`).
pub const CONFIG_VAR: &str = "GATEWAY_CONFIG";

/// What the command line asked for, as far as the start mode is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// No subcommand.
    Bare,
    /// `serve`, with or without `--demo`.
    Serve {
        /// `--demo` was given.
        demo: bool,
    },
    /// Any other subcommand (client, keys, bench, db, accounts).
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
    /// A bare invocation with any configuration is refused with a message naming `serve`.
    pub fn decide<'a>(
        invocation: Invocation,
        config_path: Option<&Path>,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<StartMode, ConfigError> {
        let given = configuration_given(config_path, env);
        match (invocation, given) {
            (Invocation::Serve { demo: true }, _) => Ok(StartMode::Demo),
            (Invocation::Serve { demo: false }, _) => Ok(StartMode::Production),
            (Invocation::Bare | Invocation::Other, None) => Ok(StartMode::Demo),
            (Invocation::Other, Some(_)) => Ok(StartMode::Production),
            (Invocation::Bare, Some(what)) => Err(ConfigError(format!(
                "a configuration was given ({what}) but no command; run `pension-gateway serve` \
                 for production or `pension-gateway serve --demo` for the demo"
            ))),
        }
    }
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
