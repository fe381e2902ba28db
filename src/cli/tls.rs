//! `tls …`: test certificates for trying HTTPS (docs/tls.md has the production runbook).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TlsCommand {
    /// Write a throw-away CA (`ca.pem`) and a server certificate it issued (`cert.pem`, `key.pem`
    /// with mode 0600) into a directory. For local tries and tests, never for production.
    SelfSigned {
        /// Host name or IP address the certificate is for (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Directory to write into (created if missing; existing files are not overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// Runs a `tls` command.
pub fn run(cmd: TlsCommand) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::SelfSigned { hosts, out, days } => {
            let bundle = pension_gateway::tls::self_signed::generate(
                &hosts,
                chrono::Utc::now().timestamp(),
                days,
            )?;
            let [ca, cert, key] = pension_gateway::tls::self_signed::write(&bundle, &out)
                .with_context(|| format!("writing into {}", out.display()))?;
            println!("CA certificate (clients: --ca-file): {}", ca.display());
            println!("server certificate (tls.cert_file):  {}", cert.display());
            println!("server key, mode 0600 (tls.key_file): {}", key.display());
            Ok(())
        }
    }
}
