//! Sub-commands other than `serve`, one module per command group.

pub mod accounts;
pub mod audit;
pub mod bench;
pub mod client;
pub mod db;
pub mod keys;
pub mod partners;
pub mod tls;

use std::path::Path;

use anyhow::Context;
use clap::Args;
use pension_gateway::config::Settings;
use serde_json::{json, Value};

/// tracing to stderr: JSON lines in production, readable text in demo.
pub fn init_logging(settings: &Settings, quiet_batches: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let f = tracing_subscriber::EnvFilter::new(&settings.log.level);
        match "pension_gateway::store::upsert=warn".parse() {
            Ok(d) if quiet_batches => f.add_directive(d),
            _ => f,
        }
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if settings.log.format == pension_gateway::config::LogFormat::Json {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
}

/// A key given on the command line: the text itself, or a file holding it.
pub fn key_text(arg: &str) -> anyhow::Result<String> {
    let p = Path::new(arg);
    if p.is_file() {
        std::fs::read_to_string(p).with_context(|| p.display().to_string())
    } else {
        Ok(arg.to_string())
    }
}

/// The account query (docs/protocol.md §9.1) every `client` command sends: `client query` as
/// WeChat, and the partner commands.
#[derive(Args)]
pub struct QueryArgs {
    /// user_true_name.
    #[arg(long)]
    name: String,
    /// user_identify_card_num.
    #[arg(long = "id-number")]
    id_number: String,
    /// session_id (optional).
    #[arg(long)]
    session: Option<String>,
}

impl QueryArgs {
    /// The request body, with one `extra` string field if given (`USER_ID` for user tickets).
    pub fn json(&self, extra: Option<(&str, &str)>) -> String {
        let mut v = json!({
            "user_true_name": self.name,
            "user_identify_card_num": self.id_number,
            "corpno": "weibao",
        });
        if let Some(s) = &self.session {
            v["session_id"] = Value::String(s.clone());
        }
        if let Some((k, val)) = extra {
            v[k] = Value::String(val.to_owned());
        }
        v.to_string()
    }
}
