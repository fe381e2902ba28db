//! `accounts …`: demo seeding, the CSV import and its fictional-data generator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pension_gateway::accounts::{demo, import, AccountDirectory};
use pension_gateway::config::Settings;
use pension_gateway::server::open_store;

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Insert or refresh the demo accounts and demo session (idempotent).
    SeedDemo,
    /// Import the bank's account extract (CSV; see docs/accounts-import.md). Exit code 0 when
    /// every row was imported, 3 when some rows were rejected, 1 on a fatal error.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Rows per batch; each batch is one transaction.
        #[arg(long, default_value_t = pension_gateway::accounts::import::DEFAULT_BATCH_SIZE as u32,
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Parse and validate only; the database is not touched.
        #[arg(long)]
        dry_run: bool,
        /// Write every rejected line as `line,reason` CSV to this file.
        #[arg(long)]
        rejects: Option<PathBuf>,
    },
    /// Write a CSV extract of fictional, valid accounts (for load tests).
    GenCsv {
        /// Number of rows.
        #[arg(long)]
        rows: u64,
        /// Seed of the fictional data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        file: PathBuf,
    },
    /// Write a new random ID pepper (32 bytes, hex) to a new file, mode 0600, as the line
    /// `GATEWAY__ACCOUNTS__ID_PEPPER=<hex>` (a systemd `EnvironmentFile`). Never replaces a file:
    /// a changed pepper orphans every digest already imported. Not printed unless `--print`.
    GenPepper {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
        /// Also print the pepper on standard output.
        #[arg(long)]
        print: bool,
    },
}

pub const EXIT_REJECTED: u8 = 3;

/// How many rejected lines the summary prints (all of them go to `--rejects FILE`).
const SHOW_REJECTED: usize = 20;

/// Runs an `accounts` command.
pub async fn run(cmd: AccountsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountsCommand::Import {
            file,
            batch_size,
            dry_run,
            rejects,
        } => {
            import(
                settings,
                &file,
                batch_size as usize,
                dry_run,
                rejects.as_deref(),
            )
            .await
        }
        AccountsCommand::GenCsv { rows, seed, file } => {
            let out = std::fs::File::create(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            import::write_sample_csv(out, rows, seed)
                .with_context(|| format!("writing {}", file.display()))?;
            println!("wrote {rows} fictional accounts to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        AccountsCommand::GenPepper { out, print } => {
            let pepper = pension_gateway::ops::secrets::new_pepper();
            let line = zeroize::Zeroizing::new(format!(
                "GATEWAY__ACCOUNTS__ID_PEPPER={}\n",
                pepper.as_str()
            ));
            if let Err(e) =
                pension_gateway::ops::secrets::write_secret_file(&out, line.as_bytes(), false, None)
            {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::bail!(
                        "{} exists: gen-pepper never writes over a file (a new pepper orphans \
                         every ID digest already imported). Let it create the environment file \
                         (then add the other lines to it), or write to a new file and append its \
                         line by hand",
                        out.display()
                    );
                }
                return Err(anyhow::Error::new(e).context(format!("writing {}", out.display())));
            }
            println!(
                "ID pepper written to {} (mode 0600) as GATEWAY__ACCOUNTS__ID_PEPPER; every \
                 instance needs the same one, and it must never change once accounts are imported",
                out.display()
            );
            if print {
                println!("{}", pepper.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountsCommand::SeedDemo => {
            let store = open_store(settings).await?;
            store.run_migrations().await?;
            let pepper = settings.id_pepper()?;
            let dir = AccountDirectory::new(store, pepper);
            let n = demo::seed_demo(&dir, chrono::Utc::now().timestamp()).await?;
            println!(
                "seeded {n} demo accounts and session {}",
                demo::DEMO_SESSION_ID
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn import(
    settings: &Settings,
    file: &Path,
    batch_size: usize,
    dry_run: bool,
    rejects: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;

    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pepper = settings.id_pepper()?;
    // A dry run never connects to the configured database: it only parses and validates, and
    // the directory it needs (for the digest) sits on a throw-away in-memory store.
    let store = if dry_run {
        pension_gateway::store::Store::open("sqlite::memory:", Default::default()).await?
    } else {
        open_store(settings).await?
    };
    let dir = AccountDirectory::new(store, pepper);

    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} | {msg}",
    )?);
    let started = std::time::Instant::now();
    let mut on_progress = |p: import::ImportProgress| {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_position(p.bytes_read);
        bar.set_message(format!(
            "{} rows ({:.0} rows/s), {} inserted, {} updated, {} rejected",
            p.rows_read,
            p.rows_read as f64 / secs,
            p.inserted,
            p.updated,
            p.rejected
        ));
    };
    let now = chrono::Utc::now().timestamp();
    let result = import::import_csv(
        std::io::BufReader::with_capacity(1 << 16, f),
        &dir,
        batch_size,
        now,
        dry_run,
        &mut on_progress,
    )
    .await;
    bar.finish_and_clear();
    let report = result.with_context(|| format!("{}", file.display()))?;
    let secs = started.elapsed().as_secs_f64();

    println!(
        "{}{}: {} rows in {:.1} s ({:.0} rows/s), {} batches",
        if dry_run {
            "DRY RUN, nothing written — "
        } else {
            ""
        },
        file.display(),
        report.rows,
        secs,
        report.rows as f64 / secs.max(1e-3),
        report.batches,
    );
    if dry_run {
        println!("valid: {}", report.valid);
    } else {
        println!(
            "database: {}",
            pension_gateway::config::redact_url(&settings.database.url)
        );
        println!("inserted: {}", report.inserted);
        println!("updated: {}", report.updated);
    }
    println!("rejected: {}", report.rejected.len());
    for (line, reason) in report.rejected.iter().take(SHOW_REJECTED) {
        println!("  line {line}: {reason}");
    }
    if report.rejected.len() > SHOW_REJECTED {
        println!(
            "  … and {} more{}",
            report.rejected.len() - SHOW_REJECTED,
            if rejects.is_some() {
                ""
            } else {
                " (all of them with --rejects FILE)"
            }
        );
    }
    if let Some(path) = rejects {
        let mut w = csv::Writer::from_path(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let write = |w: &mut csv::Writer<std::fs::File>| -> Result<(), csv::Error> {
            w.write_record(["line", "reason"])?;
            for (line, reason) in &report.rejected {
                w.write_record([line.to_string().as_str(), reason.as_str()])?;
            }
            w.flush()?;
            Ok(())
        };
        write(&mut w).with_context(|| format!("writing {}", path.display()))?;
        println!("rejected lines written to {}", path.display());
    }
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}
