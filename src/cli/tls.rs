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
        /// Keep the test CA in this directory (`ca.pem`, `ca-key.pem` mode 0600) and reuse it
        /// when it is there: the new certificate chains to the CA clients already trust, so a
        /// certificate rotation without downtime can be rehearsed. Must differ from `--out`.
        #[arg(long)]
        ca_dir: Option<PathBuf>,
    },
}

/// Runs a `tls` command.
pub fn run(cmd: TlsCommand) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::SelfSigned {
            hosts,
            out,
            days,
            ca_dir,
        } => {
            use pension_gateway::tls::self_signed::{generate, generate_with_ca};
            let now = chrono::Utc::now().timestamp();
            let bundle = match &ca_dir {
                None => generate(&hosts, now, days)?,
                Some(d) => {
                    anyhow::ensure!(
                        d != &out,
                        "--ca-dir and --out must be different directories (the CA's key stays \
                         out of the server's certificate directory)"
                    );
                    let (bundle, created) = generate_with_ca(&hosts, now, days, d)?;
                    println!(
                        "{} test CA in {} (its key: ca-key.pem, mode 0600)",
                        if created { "created the" } else { "reused the" },
                        d.display()
                    );
                    bundle
                }
            };
            let [ca, cert, key] = pension_gateway::tls::self_signed::write(&bundle, &out)
                .with_context(|| format!("writing into {}", out.display()))?;
            println!("CA certificate (clients: --ca-file): {}", ca.display());
            println!("server certificate (tls.cert_file):  {}", cert.display());
            println!("server key, mode 0600 (tls.key_file): {}", key.display());
            Ok(())
        }
    }
}
