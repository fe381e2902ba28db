//! Sub-commands other than `serve`, one module per command group.

pub mod accounts;
pub mod audit;
pub mod bench;
pub mod client;
pub mod db;
pub mod keys;
pub mod partners;
pub mod tls;

use std::path::{Path, PathBuf};

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

/// How the command was invoked, so that the commands it prints as next steps can be pasted
/// back as they are: with the same `--config` (or `--demo`) and `--dir`.
pub struct Invoked {
    /// `--config` (or `GATEWAY_CONFIG`).
    pub config: Option<PathBuf>,
    /// `--demo`.
    pub demo: bool,
    /// `keys --dir`.
    pub dir: Option<PathBuf>,
}

impl Invoked {
    /// `pension-gateway [--config FILE | --demo]`.
    pub fn program(&self) -> String {
        let mut s = String::from("pension-gateway");
        if let Some(c) = &self.config {
            s.push_str(" --config ");
            s.push_str(&shell_word(&c.display().to_string()));
        } else if self.demo {
            s.push_str(" --demo");
        }
        s
    }

    /// `pension-gateway [--config FILE] keys [--dir DIR]`: the prefix of a follow-up key command.
    pub fn keys(&self) -> String {
        let mut s = self.program();
        s.push_str(" keys");
        if let Some(d) = &self.dir {
            s.push_str(" --dir ");
            s.push_str(&shell_word(&d.display().to_string()));
        }
        s
    }
}

/// `w` as one shell word: as it is when it holds only safe characters, else single-quoted.
pub fn shell_word(w: &str) -> String {
    let safe = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b));
    if safe {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
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
