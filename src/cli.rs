//! Sub-commands other than `serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use pension_gateway::accounts::{demo, import, AccountDirectory};
use pension_gateway::client::WechatClient;
use pension_gateway::config::Settings;
use pension_gateway::crypto::signing_string::display_signing_string;
use pension_gateway::crypto::{nonce, EngineKind, PublicKey, SecretKey};
use pension_gateway::server::open_store;

/// `db …`
#[derive(Subcommand)]
pub enum DbCommand {
    /// Apply the embedded migrations of the configured backend.
    Migrate,
}

/// `accounts …`
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
}

/// `bench …`
#[derive(Subcommand)]
pub enum BenchCommand {
    /// SM2 sign/verify throughput per engine, with `openssl speed sm2` as the same-run baseline.
    Crypto {
        /// Only this engine (default: every engine).
        #[arg(long)]
        engine: Option<EngineKind>,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Load a running gateway with pre-signed unique requests; verify every response.
    Http {
        /// Full URL of the account-query API (send load only to servers you run, e.g. 127.0.0.1).
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/pension/account")]
        url: String,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Unique requests to send.
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
        /// Hard stop, seconds (pre-signed timestamps must stay within the server's skew).
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
        /// Directory with `wechat-v<N>.key` and `bank-v<N>.pub`.
        #[arg(long, default_value = "keys/demo")]
        keys_dir: PathBuf,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: String,
    },
}

pub async fn bench(cmd: BenchCommand, settings: &Settings) -> Result<(), String> {
    use pension_gateway::bench;
    match cmd {
        BenchCommand::Crypto {
            engine,
            threads,
            seconds,
            output,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let engines: Vec<EngineKind> =
                engine.map_or_else(|| EngineKind::ALL.to_vec(), |e| vec![e]);
            let openssl = bench::crypto::openssl_speed(seconds);
            let mut rows = Vec::new();
            for kind in engines {
                rows.push(bench::crypto::measure_engine(
                    kind,
                    threads,
                    seconds as f64,
                )?);
            }
            if output == "json" {
                let v = serde_json::json!({"threads": threads, "seconds": seconds, "openssl_one_core": openssl, "engines": rows});
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            match openssl {
                Some(o) => println!(
                    "baseline  openssl speed sm2 (1 core): {:>9.0} sign/s {:>9.0} verify/s",
                    o.sign_per_sec, o.verify_per_sec
                ),
                None => println!("baseline  openssl not found or unparseable: ratios omitted"),
            }
            println!(
                "{:<11} {:>7} {:>11} {:>11} {:>13} {:>13} {:>9} {:>9}",
                "engine",
                "threads",
                "sign/s",
                "verify/s",
                "sign/s/core",
                "verify/s/core",
                "sign×ossl",
                "vrfy×ossl"
            );
            for r in rows {
                let ratio = |x: f64, base: Option<f64>| {
                    base.map_or("-".to_string(), |b| format!("{:.2}", x / b))
                };
                println!(
                    "{:<11} {:>7} {:>11.0} {:>11.0} {:>13.0} {:>13.0} {:>9} {:>9}",
                    r.engine,
                    r.threads,
                    r.sign_per_sec,
                    r.verify_per_sec,
                    r.sign_per_sec_per_core,
                    r.verify_per_sec_per_core,
                    ratio(r.sign_per_sec_per_core, openssl.map(|o| o.sign_per_sec)),
                    ratio(r.verify_per_sec_per_core, openssl.map(|o| o.verify_per_sec)),
                );
            }
        }
        BenchCommand::Http {
            url,
            concurrency,
            requests,
            max_seconds,
            keys_dir,
            output,
        } => {
            let client = wechat_client(&keys_dir, settings)?;
            let opts = bench::http::HttpBenchOptions {
                url,
                concurrency,
                requests,
                max_seconds,
                progress: output != "json",
            };
            let r = bench::http::run(&opts, std::sync::Arc::new(client)).await?;
            if output == "json" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
                );
            } else {
                println!("requests {}  in {:.2} s  → {:.0} req/s  (pre-signing took {:.2} s, not counted)", r.requests, r.seconds, r.req_per_sec, r.presign_seconds);
                println!(
                    "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                    r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
                );
                println!(
                    "status {:?}  transport errors {}  bad signatures {}",
                    r.by_status, r.transport_errors, r.bad_signatures
                );
            }
            if r.bad_signatures > 0 || r.transport_errors > 0 {
                return Err(format!(
                    "{} bad signatures, {} transport errors",
                    r.bad_signatures, r.transport_errors
                ));
            }
        }
    }
    Ok(())
}

/// `keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Start a new key directory: bank key v1 (active) and WeChat's public key (trusted).
    Init {
        /// WeChat's key version.
        #[arg(long, default_value_t = 1)]
        wechat_version: u32,
        /// WeChat's public key: hex `04…`, PEM, or a file holding either.
        #[arg(long)]
        wechat_key: String,
    },
    /// Generate the next bank key version as `staged`.
    Generate,
    /// List versions, states, fingerprints and which key signs.
    List,
    /// Print a bank public key as WeChat needs it (hex `04‖x‖y` and PEM).
    ExportPublic {
        /// Bank key version.
        version: u32,
    },
    /// Make a staged (or retiring) bank key the active one; the old active key becomes `retiring`.
    Activate {
        /// Bank key version.
        version: u32,
    },
    /// Retire a bank key that is not active.
    Retire {
        /// Bank key version.
        version: u32,
    },
    /// Trust a WeChat public key version.
    TrustWechat {
        /// WeChat key version.
        version: u32,
        /// Hex `04…`, PEM, or a file holding either.
        key: String,
    },
    /// Stop trusting a WeChat key version (refused for the last trusted one).
    UntrustWechat {
        /// WeChat key version.
        version: u32,
    },
    /// Partner channel credentials (open-platform app secrets, callback salts, HMAC app tokens).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Sign `--percent` of responses with a staged bank key (0 ends the rollout).
    Rollout {
        /// Staged bank key version.
        version: u32,
        /// Share of responses, 0–100.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
    },
}

/// `keys partner …`
#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Add the next version of a partner's secret and make it active. The previous version stays
    /// `accepted` (callback, hmac: it still verifies until retired) or is retired at once
    /// (open-platform: a new app secret invalidates its tokens and tickets).
    Set {
        /// `open-platform`, `callback` or `hmac`.
        channel: String,
        /// app_id / partner id / fappid.
        id: String,
        /// File holding the secret agreed with the partner; without it one is generated.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Retire a version that is not active: it stops verifying.
    Retire {
        /// `open-platform`, `callback` or `hmac`.
        channel: String,
        /// app_id / partner id / fappid.
        id: String,
        /// Version.
        version: u32,
    },
    /// List partner credential versions and states (never the secrets).
    List,
}

fn channel_arg(s: &str) -> Result<pension_gateway::partners::Channel, String> {
    pension_gateway::partners::Channel::parse(s)
        .ok_or_else(|| format!("unknown channel `{s}`: open-platform, callback or hmac"))
}

fn key_text(arg: &str) -> Result<String, String> {
    let p = Path::new(arg);
    if p.is_file() {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    } else {
        Ok(arg.to_string())
    }
}

pub fn keys(cmd: KeysCommand, dir: Option<PathBuf>, settings: &Settings) -> Result<(), String> {
    use pension_gateway::keyring::admin::KeyDir;
    let dir = KeyDir::new(
        dir.unwrap_or_else(|| settings.keys.dir.clone()),
        settings.keys.engine,
        settings.wechat.signer_id.as_bytes(),
    );
    let reload_hint = || {
        println!("validated and written. Reload the gateway: `kill -HUP <pid>` or `curl -X POST http://{}/admin/keyring/reload` (it also notices the manifest change by itself).",
            if settings.server.admin_listen.is_empty() { "<admin_listen>" } else { &settings.server.admin_listen });
    };
    let e = |e: pension_gateway::keyring::KeyRingError| e.to_string();
    match cmd {
        KeysCommand::Init {
            wechat_version,
            wechat_key,
        } => {
            dir.init(wechat_version, &key_text(&wechat_key)?)
                .map_err(e)?;
            println!(
                "initialised {}: bank v1 active, WeChat v{wechat_version} trusted",
                dir.path().display()
            );
            println!("send WeChat the bank public key: pension-gateway keys export-public 1");
        }
        KeysCommand::Generate => {
            let v = dir.generate().map_err(e)?;
            println!("bank key v{v} generated as staged; export it to WeChat with: pension-gateway keys export-public {v}");
            reload_hint();
        }
        KeysCommand::List => {
            println!(
                "{:<7} {:>7} {:<10} {:<17} signs",
                "role", "version", "state", "fingerprint"
            );
            for k in dir.list().map_err(e)? {
                let signs = k.signs_percent.map_or(String::new(), |p| format!("{p}%"));
                println!(
                    "{:<7} {:>7} {:<10} {:<17} {signs}",
                    k.role, k.version, k.state, k.fingerprint
                );
            }
        }
        KeysCommand::ExportPublic { version } => {
            let pk = dir.export_public(version).map_err(e)?;
            println!("bank key version {version}");
            println!("hex: {}", pk.to_hex());
            print!("{}", pk.to_pem().map_err(|e| e.to_string())?);
        }
        KeysCommand::Activate { version } => {
            dir.activate(version).map_err(e)?;
            println!("bank key v{version} is active; the previous active key is retiring");
            reload_hint();
        }
        KeysCommand::Retire { version } => {
            dir.retire(version).map_err(e)?;
            println!("bank key v{version} retired");
            reload_hint();
        }
        KeysCommand::TrustWechat { version, key } => {
            dir.trust_wechat(version, &key_text(&key)?).map_err(e)?;
            println!("WeChat key v{version} trusted");
            reload_hint();
        }
        KeysCommand::UntrustWechat { version } => {
            dir.untrust_wechat(version).map_err(e)?;
            println!("WeChat key v{version} no longer trusted");
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::Set {
            channel,
            id,
            from_file,
        }) => {
            let channel = channel_arg(&channel)?;
            let secret = match from_file {
                None => None,
                Some(p) => Some(zeroize::Zeroizing::new(
                    pension_gateway::keyring::read_partner_secret(&p)
                        .map_err(e)?
                        .to_string(),
                )),
            };
            let generated = secret.is_none();
            let (v, path) = dir.partner_set(channel, &id, secret).map_err(e)?;
            println!(
                "{channel} partner `{id}` v{v} is active; secret in {} (mode 0600){}",
                path.display(),
                if generated {
                    " — generated: hand it to the partner over a secure channel"
                } else {
                    ""
                }
            );
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::Retire {
            channel,
            id,
            version,
        }) => {
            let channel = channel_arg(&channel)?;
            dir.partner_retire(channel, &id, version).map_err(e)?;
            println!("{channel} partner `{id}` v{version} retired");
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::List) => {
            println!(
                "{:<14} {:<24} {:>7}  {:<9} file",
                "channel", "id", "version", "state"
            );
            for p in dir.partner_list().map_err(e)? {
                println!(
                    "{:<14} {:<24} {:>7}  {:<9} {}",
                    p.channel.as_str(),
                    p.id,
                    p.version,
                    format!("{:?}", p.state).to_lowercase(),
                    p.file
                );
            }
        }
        KeysCommand::Rollout { version, percent } => {
            dir.rollout(version, percent).map_err(e)?;
            println!("bank key v{version} now signs {percent}% of responses");
            reload_hint();
        }
    }
    Ok(())
}

/// `client …`
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Send a signed account query as WeChat would and verify the signed answer.
    Query {
        /// Full URL of the account-query API.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/pension/account")]
        url: String,
        #[command(flatten)]
        query: crate::partner_cli::QueryArgs,
        /// Directory with `wechat-v<N>.key` (WeChat's private key) and `bank-v<N>.pub` files.
        #[arg(long, default_value = "keys/demo")]
        keys_dir: PathBuf,
        /// Print the exact signing strings.
        #[arg(long)]
        verbose: bool,
    },
    /// Bank-initiated request: sign with the bank's active key (naming the bank and key version),
    /// POST to WeChat, verify WeChat's signed response against its trusted keys.
    Call {
        /// Full URL at WeChat.
        #[arg(long)]
        url: String,
        /// JSON body to send.
        #[arg(long)]
        body: String,
        /// The bank's identifier as registered with WeChat.
        #[arg(long)]
        bank_id: String,
        /// Key directory (bank key ring: active bank key, trusted WeChat keys); default `keys.dir`.
        #[arg(long)]
        keys_dir: Option<PathBuf>,
    },
    /// Act as an open-platform app: get an access token and a ticket, then make a signed
    /// account query through `/api/s/{service}/{code}` (DESIGN.md §6).
    OpenPlatform(crate::partner_cli::OpenPlatformArgs),
    /// Act as a callback partner: send a salted, signed account query and verify the reply.
    Callback(crate::partner_cli::CallbackArgs),
    /// Act as an HMAC partner: send a sorted-parameter HMAC-SHA256 signed account query.
    Hmac(crate::partner_cli::HmacArgs),
    /// Self-test tool (guide §3.5): build a signing string and sign it; prints it with visible `\n`.
    Sign {
        #[command(flatten)]
        msg: SigningInput,
        /// Private key: hex, PEM, or a file holding either (default: the demo WeChat key).
        #[arg(long, default_value = "keys/demo/wechat-v1.key")]
        key: String,
        /// Key version to name in the Authorization header.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Self-test tool (guide §3.5): check a signature over a signing string.
    Verify {
        #[command(flatten)]
        msg: SigningInput,
        /// Base64 DER signature.
        #[arg(long)]
        signature: String,
        /// Public key: hex `04…`, PEM, or a file holding either.
        #[arg(long)]
        public_key: String,
    },
}

/// The pieces of a signing string.
#[derive(clap::Args)]
pub struct SigningInput {
    /// Response (3 lines: timestamp, nonce, body) instead of request (5 lines).
    #[arg(long)]
    response: bool,
    /// Request method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Path and query exactly as sent, e.g. `/v1/pension/account?x=1`.
    #[arg(long, default_value = "/v1/pension/account")]
    url: String,
    /// Unix seconds, exactly as sent.
    #[arg(long)]
    timestamp: String,
    /// Nonce, exactly as sent.
    #[arg(long)]
    nonce: String,
    /// Body text (empty for GET / 204).
    #[arg(long, default_value = "", conflicts_with = "body_file")]
    body: String,
    /// Read the body bytes from a file instead (exact bytes, no trailing newline added).
    #[arg(long)]
    body_file: Option<PathBuf>,
}

impl SigningInput {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        use pension_gateway::crypto::signing_string::{
            request_signing_string, response_signing_string,
        };
        let body = match &self.body_file {
            Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
            None => self.body.as_bytes().to_vec(),
        };
        Ok(if self.response {
            response_signing_string(&self.timestamp, &self.nonce, &body)
        } else {
            request_signing_string(
                &self.method,
                self.url.as_bytes(),
                &self.timestamp,
                &self.nonce,
                &body,
            )
        })
    }
}

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
    if settings.log.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.compact().init();
    }
}

pub async fn db(cmd: DbCommand, settings: &Settings) -> Result<(), String> {
    match cmd {
        DbCommand::Migrate => {
            let store = open_store(settings).await.map_err(|e| e.to_string())?;
            let applied = store.run_migrations().await.map_err(|e| e.to_string())?;
            println!(
                "applied {} migration(s): {}",
                applied.len(),
                applied.join(", ")
            );
            Ok(())
        }
    }
}

/// Exit code of `accounts import` when some rows were rejected.
pub const EXIT_REJECTED: u8 = 3;

/// How many rejected lines the summary prints (all of them go to `--rejects FILE`).
const SHOW_REJECTED: usize = 20;

pub async fn accounts(cmd: AccountsCommand, settings: &Settings) -> Result<ExitCode, String> {
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
                .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
            import::write_sample_csv(out, rows, seed)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            println!("wrote {rows} fictional accounts to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        AccountsCommand::SeedDemo => {
            let store = open_store(settings).await.map_err(|e| e.to_string())?;
            store.run_migrations().await.map_err(|e| e.to_string())?;
            let pepper = settings.id_pepper()?;
            let dir = AccountDirectory::new(store, pepper);
            let n = demo::seed_demo(&dir, chrono::Utc::now().timestamp())
                .await
                .map_err(|e| e.to_string())?;
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
) -> Result<ExitCode, String> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;

    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let pepper = settings.id_pepper()?;
    // A dry run never connects to the configured database: it only parses and validates, and
    // the directory it needs (for the digest) sits on a throw-away in-memory store.
    let store = if dry_run {
        pension_gateway::store::Store::open("sqlite::memory:", Default::default())
            .await
            .map_err(|e| e.to_string())?
    } else {
        open_store(settings).await.map_err(|e| e.to_string())?
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
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} | {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
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
    let report = result.map_err(|e| format!("{}: {e}", file.display()))?;
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
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let write = |w: &mut csv::Writer<std::fs::File>| -> Result<(), csv::Error> {
            w.write_record(["line", "reason"])?;
            for (line, reason) in &report.rejected {
                w.write_record([line.to_string().as_str(), reason.as_str()])?;
            }
            w.flush()?;
            Ok(())
        };
        write(&mut w).map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("rejected lines written to {}", path.display());
    }
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REJECTED)
    })
}

/// Highest-numbered `PREFIX<N>.EXT` in `dir`.
fn versioned_files(dir: &Path, prefix: &str, ext: &str) -> Result<Vec<(u32, PathBuf)>, String> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(ext))
            .and_then(|v| v.parse().ok())
        {
            out.push((v, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// `client call`: the bank's outbound request, keys from the key ring's manifest.
async fn call(
    url: &str,
    body: Vec<u8>,
    bank_id: &str,
    dir: PathBuf,
    settings: &Settings,
) -> Result<(), String> {
    use pension_gateway::keyring::{read_key_text, BankKeyState, KeyFileKind, WechatKeyState};
    let kd = pension_gateway::keyring::admin::KeyDir::new(
        &dir,
        settings.keys.engine,
        settings.wechat.signer_id.as_bytes(),
    );
    let m = kd.manifest().map_err(|e| e.to_string())?;
    let active = m
        .bank
        .iter()
        .find(|b| b.state == BankKeyState::Active)
        .ok_or("no active bank key")?;
    let key_path = dir.join(&active.private_key);
    let text = read_key_text(&key_path, KeyFileKind::Secret).map_err(|e| e.to_string())?;
    let bank_key = SecretKey::parse(&text).map_err(|e| e.to_string())?;
    let mut wechat = Vec::new();
    for w in m
        .wechat
        .iter()
        .filter(|w| w.state == WechatKeyState::Trusted)
    {
        let t = read_key_text(&dir.join(&w.public_key), KeyFileKind::PublicKey)
            .map_err(|e| e.to_string())?;
        wechat.push((w.version, PublicKey::parse(&t).map_err(|e| e.to_string())?));
    }
    let client = WechatClient::bank_outbound(
        settings.keys.engine,
        &bank_key,
        active.version,
        bank_id,
        &wechat,
        settings.wechat.signer_id.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let uri: actix_web::http::Uri = url.parse().map_err(|e| format!("--url: {e}"))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let signed = client
        .sign_request(
            "POST",
            &pq,
            &body,
            chrono::Utc::now().timestamp(),
            &nonce::generate(),
        )
        .map_err(|e| e.to_string())?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = awc::Client::default()
        .post(url)
        .insert_header(("Authorization", signed.authorization))
        .insert_header(("Request-ID", request_id.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Accept", "application/json"))
        .send_body(body)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let resp_body = resp
        .body()
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    let headers = resp.headers().clone();
    println!("HTTP {}  Request-ID {}", resp.status(), request_id);
    println!("{}", String::from_utf8_lossy(&resp_body));
    match client.verify_response(|n| headers.get(n).and_then(|v| v.to_str().ok()), &resp_body) {
        Ok(v) => {
            println!("response signature: VERIFIED (WeChat key version {v})");
            Ok(())
        }
        Err(e) => Err(format!("response signature: NOT VERIFIED ({e})")),
    }
}

/// The WeChat-side client from a key directory's `wechat-v<N>.key` (highest N) and `bank-v<N>.pub`.
fn wechat_client(keys_dir: &Path, settings: &Settings) -> Result<WechatClient, String> {
    let (wechat_version, wechat_key_path) = versioned_files(keys_dir, "wechat-v", ".key")?
        .pop()
        .ok_or_else(|| format!("no wechat-v<N>.key in {}", keys_dir.display()))?;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&wechat_key_path).map_err(|e| e.to_string())?,
    );
    let wechat_key =
        SecretKey::parse(&text).map_err(|e| format!("{}: {e}", wechat_key_path.display()))?;
    let mut bank_keys = Vec::new();
    for (v, path) in versioned_files(keys_dir, "bank-v", ".pub")? {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        bank_keys.push((
            v,
            PublicKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        ));
    }
    WechatClient::new(
        settings.keys.engine,
        &wechat_key,
        Some(wechat_version),
        &bank_keys,
        settings.wechat.signer_id.as_bytes(),
    )
    .map_err(|e| e.to_string())
}

pub async fn client(cmd: ClientCommand, settings: &Settings) -> Result<(), String> {
    let id = settings.wechat.signer_id.as_bytes();
    let (url, query, keys_dir, verbose) = match cmd {
        ClientCommand::Query {
            url,
            query,
            keys_dir,
            verbose,
        } => (url, query, keys_dir, verbose),
        ClientCommand::Call {
            url,
            body,
            bank_id,
            keys_dir,
        } => {
            return call(
                &url,
                body.into_bytes(),
                &bank_id,
                keys_dir.unwrap_or_else(|| settings.keys.dir.clone()),
                settings,
            )
            .await;
        }
        ClientCommand::OpenPlatform(args) => return crate::partner_cli::open_platform(args).await,
        ClientCommand::Callback(args) => return crate::partner_cli::callback(args).await,
        ClientCommand::Hmac(args) => return crate::partner_cli::hmac(args).await,
        ClientCommand::Sign { msg, key, version } => {
            let text = zeroize::Zeroizing::new(key_text(&key)?);
            let sk = SecretKey::parse(&text).map_err(|e| format!("--key: {e}"))?;
            let bytes = msg.bytes()?;
            let sig = settings
                .keys
                .engine
                .engine()
                .signer(&sk, id)
                .map_err(|e| e.to_string())?
                .sign(&bytes)
                .map_err(|e| e.to_string())?;
            println!(
                "signing string ({} bytes):\n{}",
                bytes.len(),
                display_signing_string(&bytes)
            );
            println!(
                "signature (Base64 DER SM2-SM3, ID {}): {}",
                settings.wechat.signer_id,
                sig.to_base64()
            );
            if !msg.response {
                let auth = pension_gateway::crypto::Authorization {
                    scheme: Some(pension_gateway::crypto::authorization::DEFAULT_SCHEME.into()),
                    version,
                    bank_id: None,
                    nonce: msg.nonce.clone(),
                    timestamp: msg.timestamp.clone(),
                    signature: sig.to_base64(),
                };
                println!("Authorization: {}", auth.to_header_value());
            }
            return Ok(());
        }
        ClientCommand::Verify {
            msg,
            signature,
            public_key,
        } => {
            let pk = PublicKey::parse(&key_text(&public_key)?)
                .map_err(|e| format!("--public-key: {e}"))?;
            let bytes = msg.bytes()?;
            println!(
                "signing string ({} bytes):\n{}",
                bytes.len(),
                display_signing_string(&bytes)
            );
            let sig = pension_gateway::crypto::Signature::from_base64(signature.trim())
                .map_err(|e| format!("--signature: {e}"))?;
            let v = settings
                .keys
                .engine
                .engine()
                .verifier(&pk, id)
                .map_err(|e| e.to_string())?;
            return match v.verify(&bytes, &sig) {
                Ok(()) => {
                    println!("signature: VERIFIED");
                    Ok(())
                }
                Err(e) => Err(format!("signature: NOT VERIFIED ({e})")),
            };
        }
    };
    let client = wechat_client(&keys_dir, settings)?;

    let body = query.json(None).into_bytes();
    let uri: actix_web::http::Uri = url.parse().map_err(|e| format!("--url: {e}"))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let now = chrono::Utc::now().timestamp();
    let signed = client
        .sign_request("POST", &pq, &body, now, &nonce::generate())
        .map_err(|e| e.to_string())?;
    let request_id = uuid::Uuid::new_v4().to_string();
    if verbose {
        println!(
            "request signing string:\n{}",
            display_signing_string(&signed.signing_string)
        );
    }
    let mut resp = awc::Client::default()
        .post(url.as_str())
        .insert_header(("Authorization", signed.authorization))
        .insert_header(("Request-ID", request_id.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Accept", "application/json"))
        .insert_header((
            "User-Agent",
            concat!("pension-gateway-client/", env!("CARGO_PKG_VERSION")),
        ))
        .send_body(body)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let resp_body = resp
        .body()
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    let headers = resp.headers().clone();
    let verdict =
        client.verify_response(|n| headers.get(n).and_then(|v| v.to_str().ok()), &resp_body);
    println!("HTTP {}  Request-ID {}", resp.status(), request_id);
    match serde_json::from_slice::<serde_json::Value>(&resp_body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(_) => println!("{}", String::from_utf8_lossy(&resp_body)),
    }
    match verdict {
        Ok(v) => {
            println!("response signature: VERIFIED (bank key version {v})");
            Ok(())
        }
        Err(e) => Err(format!("response signature: NOT VERIFIED ({e})")),
    }
}
