//! The `pension-gateway` command: `serve` (production; `serve --demo`, or no arguments and no
//! configuration at all, for the demo), `db migrate`, `accounts seed-demo`, `accounts import`,
//! `accounts gen-csv`, `client query`, `keys …`, `tls self-signed`.
//!
//! Exit codes: 0 success; 1 error; 2 bad configuration, or none where one is required (also
//! what `serve --check-config` refuses); 3 `accounts import` finished but rejected some rows;
//! 4 `client query`/`call` got a verified answer that is not HTTP 200; 5 a signature did not
//! verify (`client query`/`call`/`verify`).
//! `audit prove` has its own (src/cli/audit.rs): 3 no such request, 4 a signature does not
//! verify, 5 cannot be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pension_gateway::config::{ConfigError, Invocation, Settings, StartMode};

mod cli;

/// Bank gateway for WeChat pension (微信养老金) account queries, SM2-with-SM3 signed both ways.
#[derive(Parser)]
#[command(name = "pension-gateway", version, about)]
struct Cli {
    /// TOML config file (docs/configuration.md); `GATEWAY__SECTION__KEY` variables override it.
    #[arg(long, short, global = true, env = "GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Run on the demo: published demo keys, public demo pepper, embedded SQLite. Never in
    /// production. Commands that touch bank data or keys refuse to run without either this or a
    /// configuration.
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// Check the configuration and the files it names (key ring, admin token file), print a
        /// one-line summary and exit: 0 when `serve` would accept them, 2 otherwise. Binds
        /// nothing and connects to no database.
        #[arg(long)]
        check_config: bool,
    },
    /// The audit trail as evidence: `audit prove <request-id>`.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Database tasks.
    Db {
        #[command(subcommand)]
        command: cli::db::DbCommand,
    },
    /// Account data tasks.
    Accounts {
        #[command(subcommand)]
        command: cli::accounts::AccountsCommand,
    },
    /// Key ring administration (validated, atomic writes); reload the server afterwards.
    Keys {
        /// Key directory (default: `keys.dir` of the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
    /// Measure: SM2 engine throughput (`crypto`) or a running gateway under load (`http`).
    Bench {
        #[command(subcommand)]
        command: cli::bench::BenchCommand,
    },
    /// Act as WeChat: send signed queries, verify the bank's signed answers.
    Client {
        #[command(subcommand)]
        command: cli::client::ClientCommand,
    },
    /// TLS helpers: `tls self-signed` writes a test CA and server certificate.
    Tls {
        #[command(subcommand)]
        command: cli::tls::TlsCommand,
    },
}

/// The process environment as UTF-8 pairs (a variable that is not UTF-8 is left out).
fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

impl Command {
    /// Whether the command reads or writes bank data or keys, so that it must be given a
    /// configuration or `--demo` (`config::StartMode` decides). Exhaustive on purpose: a new
    /// command must be classified here.
    fn touches_bank_data(&self) -> bool {
        match self {
            Command::Accounts {
                command:
                    cli::accounts::AccountsCommand::GenCsv { .. }
                    | cli::accounts::AccountsCommand::GenPepper { .. },
            } => false,
            Command::Db { .. }
            | Command::Accounts { .. }
            | Command::Keys { .. }
            | Command::Audit { .. } => true,
            Command::Serve { .. }
            | Command::Bench { .. }
            | Command::Client { .. }
            | Command::Tls { .. } => false,
        }
    }
}

/// The command's words as typed (`db migrate`, `keys list`), for messages.
fn command_words(matches: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name.to_owned());
        m = sub;
    }
    words.join(" ")
}

/// The start mode (see `config::StartMode`) and the settings of this run.
fn settings(cli: &Cli, words: &str) -> Result<Settings, ConfigError> {
    let invocation = match &cli.command {
        None if cli.demo => Invocation::Serve { demo: true },
        None => Invocation::Bare,
        Some(Command::Serve { .. }) => Invocation::Serve { demo: cli.demo },
        Some(c) if c.touches_bank_data() => Invocation::BankData {
            command: words.to_owned(),
            demo: cli.demo,
            // `keys --dir DIR` names everything a key command touches.
            target_given: matches!(c, Command::Keys { dir: Some(_), .. }),
        },
        Some(_) => Invocation::Other,
    };
    let env = environment();
    let mode = StartMode::decide(
        invocation,
        cli.config.as_deref(),
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    if matches!(cli.command, Some(Command::Keys { .. })) {
        // Key commands load only what they touch: the key directory, engine, signer ID and
        // admin endpoint — not the pepper or the database.
        Settings::load_keys_for(mode, cli.config.as_deref(), env)
    } else {
        Settings::load_for(mode, cli.config.as_deref(), env)
    }
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A one-shot command whose reader went away (`keys list | head`) ends as Unix tools do, by
    // SIGPIPE, instead of panicking in `println!`; its change is written before it prints. The
    // server keeps Rust's default (SIGPIPE ignored), and socket writes never raise it.
    #[cfg(unix)]
    if !matches!(cli.command, None | Some(Command::Serve { .. })) {
        sigpipe::reset();
    }
    let words = command_words(&matches);
    // No command and no configuration is the newcomer's `cargo run --release`: demo mode. The
    // client acts as WeChat and defaults to the demo keys too. With any configuration, `serve`
    // must be named; a command on bank data or keys needs a configuration or `--demo`.
    let settings = match settings(&cli, &words) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The import reports per batch on its own (progress bar, summary); the store's per-batch
    // info line would only tear the progress bar.
    let quiet_batches = matches!(
        &cli.command,
        Some(Command::Accounts {
            command: cli::accounts::AccountsCommand::Import { .. }
        })
    );
    if let Some(Command::Serve {
        check_config: true, ..
    }) = &cli.command
    {
        // No logging set up: the answer is the one line below (or the error).
        return match pension_gateway::ops::check_config(&settings) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    cli::init_logging(&settings, quiet_batches);
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            None | Some(Command::Serve { .. }) => pension_gateway::server::run(settings)
                .await
                .map_err(anyhow::Error::from)
                .map(|()| ExitCode::SUCCESS),
            Some(Command::Audit { command }) => cli::audit::run(command, &settings).await,
            Some(Command::Db { command }) => cli::db::run(command, &settings)
                .await
                .map(|()| ExitCode::SUCCESS),
            Some(Command::Accounts { command }) => cli::accounts::run(command, &settings).await,
            Some(Command::Client { command }) => cli::client::run(command, &settings).await,
            Some(Command::Keys { dir, command }) => {
                let how = cli::Invoked {
                    config: cli.config.clone(),
                    demo: cli.demo,
                    dir,
                };
                cli::keys::run(command, &how, &settings)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Some(Command::Bench { command }) => cli::bench::run(command, &settings)
                .await
                .map(|()| ExitCode::SUCCESS),
            Some(Command::Tls { command }) => cli::tls::run(command).map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: "what failed: why".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
