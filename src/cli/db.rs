//! `db …`: database tasks.

use clap::Subcommand;
use pension_gateway::config::Settings;
use pension_gateway::server::open_store;

/// `db …`
#[derive(Subcommand)]
pub enum DbCommand {
    /// Apply the embedded migrations of the configured backend.
    Migrate,
}

/// Runs a `db` command.
pub async fn run(cmd: DbCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Migrate => {
            let store = open_store(settings).await?;
            let applied = store.run_migrations().await?;
            println!(
                "applied {} migration(s) to {}: {}",
                applied.len(),
                pension_gateway::config::redact_url(&settings.database.url),
                applied.join(", ")
            );
            Ok(())
        }
    }
}
