//! `bench …`: engine throughput and load against a running gateway.

use std::path::PathBuf;

use clap::Subcommand;
use pension_gateway::config::Settings;
use pension_gateway::crypto::EngineKind;

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
        /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

/// Runs a `bench` command.
pub async fn run(cmd: BenchCommand, settings: &Settings) -> anyhow::Result<()> {
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
                println!("{}", serde_json::to_string_pretty(&v)?);
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
            ca_file,
        } => {
            let client = super::client::wechat_client(&keys_dir, settings)?;
            let opts = bench::http::HttpBenchOptions {
                url,
                concurrency,
                requests,
                max_seconds,
                progress: output != "json",
                ca_file: ca_file.or_else(|| settings.tls.ca_file.clone()),
            };
            let r = bench::http::run(&opts, std::sync::Arc::new(client)).await?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&r)?);
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
                anyhow::bail!(
                    "{} bad signatures, {} transport errors",
                    r.bad_signatures,
                    r.transport_errors
                );
            }
        }
    }
    Ok(())
}
