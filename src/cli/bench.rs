//! `bench …`: engine throughput and load against a running gateway. The measuring is the
//! `bench` crate's (crates/bench); what is gateway-specific is here: the engines it measures,
//! the request signed as WeChat signs it, and the check of each answer's signature.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::bench::cpu::ServerCpuSource;
use ::bench::crypto::Subject;
use ::bench::http::{Answer, Request, Workload};
use anyhow::Context as _;
use clap::Subcommand;
use pension_gateway::accounts::demo::DEMO_PEOPLE;
use pension_gateway::client::WechatClient;
use pension_gateway::config::Settings;
use pension_gateway::crypto::{nonce, EngineKind, SecretKey, DEFAULT_SIGNER_ID};

/// The signing string both engine measurements sign and verify (`bench crypto` and the crypto
/// floor of `bench http`): a real account query's method, path, timestamp, nonce and body.
fn sample_request_message() -> Vec<u8> {
    pension_gateway::crypto::signing_string::request_signing_string(
        "POST",
        b"/v1/pension/account",
        "1661776967",
        "5f270f2ff52b0c67dd47cd5c3ee17e91",
        br#"{"user_true_name":"\u5f20\u4e09","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#,
    )
}

/// Engine `kind` as a measurement subject: a fresh key prepared once, one signature and one
/// verification of the sample signing string.
fn subject(kind: EngineKind) -> anyhow::Result<Subject> {
    let engine = kind.engine();
    let sk = SecretKey::generate();
    let signer: Arc<dyn pension_gateway::crypto::PreparedSigner> =
        Arc::from(engine.signer(&sk, DEFAULT_SIGNER_ID)?);
    let verifier: Arc<dyn pension_gateway::crypto::PreparedVerifier> =
        Arc::from(engine.verifier(&sk.public_key(), DEFAULT_SIGNER_ID)?);
    let msg = Arc::new(sample_request_message());
    let sig = signer.sign(&msg)?;
    let (s, m) = (Arc::clone(&signer), Arc::clone(&msg));
    let (v, vm) = (verifier, msg);
    Ok(Subject {
        name: kind.name().to_string(),
        sign: Arc::new(move || {
            let _ = std::hint::black_box(s.sign(std::hint::black_box(&m)));
        }),
        verify: Arc::new(move || {
            let _ = std::hint::black_box(v.verify(std::hint::black_box(&vm), &sig));
        }),
    })
}

/// Whose signatures `bench crypto` measures and `bench http` expects the server to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    /// A key in memory, signed by an engine (`file` versions of the key ring).
    File,
    /// A bank version whose key is inside a GM/T 0018 SDF module (docs/hsm.md).
    Sdf,
    /// A bank version whose key is on a PKCS#11 token (docs/hsm.md).
    Pkcs11,
}

impl BenchBackend {
    /// The key ring's name of the backend (`BankSigner::backend`), which is also the `engine`
    /// label of the server's `gateway_sign_seconds` for module signatures.
    fn name(self) -> &'static str {
        match self {
            BenchBackend::File => "file",
            BenchBackend::Sdf => "sdf",
            BenchBackend::Pkcs11 => "pkcs11",
        }
    }

    /// Whether the `engine` label of `gateway_sign_seconds` counts for this backend: its own
    /// name for a module; for `file`, every engine's label (none is a module's).
    fn owns_engine_label(self, label: &str) -> bool {
        match self {
            BenchBackend::File => !matches!(label, "sdf" | "pkcs11"),
            module => label == module.name(),
        }
    }
}

/// The bank version kept in a module of kind `backend` (`sdf` or `pkcs11`), from the key ring
/// in `dir`, as a measurement subject named after the backend: one signature is the gateway's
/// own module path (e = SM3(Z‖M) here, the module signs e on one of its sessions, the calling
/// thread waits), one verification is the engine's with the version's public key. `version`:
/// the highest such version when not given.
fn module_subject(
    dir: &std::path::Path,
    backend: BenchBackend,
    version: Option<u32>,
    settings: &Settings,
) -> anyhow::Result<Subject> {
    let id = settings.wechat.signer_id.as_bytes();
    let ring =
        pension_gateway::keyring::load_keyring(dir, settings.keys.engine, id, settings.server.demo)
            .with_context(|| format!("key ring {}", dir.display()))?;
    let version = ring
        .bank_keys()
        .filter(|k| k.signer.module().is_some() && k.signer.backend() == backend.name())
        .map(|k| k.version)
        .filter(|v| version.is_none_or(|want| want == *v))
        .max()
        .with_context(|| match version {
            Some(v) => format!(
                "bank key v{v} in {} is not kept in a {} module",
                dir.display(),
                backend.name()
            ),
            None => format!(
                "no bank key in {} is kept in a {} module",
                dir.display(),
                backend.name()
            ),
        })?;
    let ring = Arc::new(ring);
    let public = ring
        .bank_public_key(version)
        .context("the module version's public key")?;
    let verifier: Arc<dyn pension_gateway::crypto::PreparedVerifier> =
        Arc::from(settings.keys.engine.engine().verifier(&public, id)?);
    let msg = Arc::new(sample_request_message());
    let sign_once = {
        let (ring, msg) = (Arc::clone(&ring), Arc::clone(&msg));
        move || {
            ring.bank_key(version)
                .map(|k| k.signer.sign(&msg))
                .transpose()
        }
    };
    let sig = sign_once()?.context("the module version vanished")?;
    verifier
        .verify(&msg, &sig)
        .context("the module's signature does not verify under the recorded public key")?;
    let v = verifier;
    Ok(Subject {
        name: backend.name().to_string(),
        sign: Arc::new(move || {
            let _ = std::hint::black_box(sign_once());
        }),
        verify: Arc::new(move || {
            let _ = std::hint::black_box(v.verify(std::hint::black_box(&msg), &sig));
        }),
    })
}

/// The server's signing-time histogram (`gateway_sign_seconds`) per backend: a module's own
/// label (`sdf`, `pkcs11`), or every engine's label together for `file`.
fn signing_totals(text: &str, backend: BenchBackend) -> ::bench::scrape::HistogramTotals {
    ::bench::scrape::histogram_by_label(text, "gateway_sign_seconds", "engine")
        .into_iter()
        .filter(|(label, _)| backend.owns_engine_label(label))
        .fold(Default::default(), |acc, (_, t)| {
            ::bench::scrape::HistogramTotals {
                sum: acc.sum + t.sum,
                count: acc.count + t.count,
            }
        })
}

/// The account-query load: request `i` asks for demo person `i mod 4`, signed as WeChat signs
/// (a fresh nonce, the current time); an answer is accepted when its WxIns signature verifies.
struct AccountQueries {
    client: WechatClient,
}

impl Workload for AccountQueries {
    fn request(&self, path: &str, i: usize) -> Option<Request> {
        let p = DEMO_PEOPLE.get(i % DEMO_PEOPLE.len())?;
        let body = serde_json::to_vec(&serde_json::json!({"user_true_name": p.name,
            "user_identify_card_num": p.id_number, "corpno": "weibao"}))
        .ok()?;
        let now = chrono::Utc::now().timestamp();
        let signed = self
            .client
            .sign_request("POST", path, &body, now, &nonce::generate())
            .ok()?;
        Some(Request {
            headers: vec![
                ("Authorization".into(), signed.authorization),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body,
        })
    }

    fn accepts(&self, answer: &Answer) -> bool {
        // The run lasts at most `--max-seconds`, well inside the answers' ±300 s freshness.
        let now = chrono::Utc::now().timestamp();
        self.client
            .verify_response(|n| answer.header(n), &answer.body, now)
            .is_ok()
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// SM2 sign/verify throughput per engine, with `openssl speed sm2` as the same-run baseline.
    Crypto {
        /// `file`: keys in memory, one per engine; `sdf` / `pkcs11`: the bank version kept in
        /// such a module of the key ring in `--keys-dir` (the module's own latency included).
        #[arg(long, value_enum, default_value = "file")]
        backend: BenchBackend,
        /// With a module backend: the key ring (default: `keys.dir`).
        #[arg(long)]
        keys_dir: Option<PathBuf>,
        /// With a module backend: the bank version (default: the highest one kept in such a
        /// module).
        #[arg(long)]
        version: Option<u32>,
        /// Only this engine (default: every engine; with a module backend, the verifier's).
        #[arg(long)]
        engine: Option<EngineKind>,
        /// Threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Same-run comparisons (OpenSSL, then the engines) to make; with more than one, the
        /// median of the per-round ratios is printed too.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
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
        /// `text` or `json` (the JSON report lists the Request-IDs that failed).
        #[arg(long, default_value = "text")]
        output: String,
        /// Request `i` is sent with `Request-ID: <PREFIX><i>`, to find its audit row.
        #[arg(long, default_value = "bench-")]
        request_id_prefix: String,
        /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Server CPU, CPU per request and the ratio to the crypto floor.
        #[command(flatten)]
        cpu: HttpCpuArgs,
        /// Open loop: offer this many requests per second in the measured phase (request i due at
        /// start + i/RATE; how late requests left is printed as the schedule lag). Default: closed
        /// loop, as fast as the answers come back
        #[arg(long, value_name = "REQ_PER_SEC")]
        rate: Option<f64>,
        /// Write a self-contained HTML report (charts inline, nothing loaded from elsewhere).
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        /// The backend the server must sign with: read its `gateway_sign_seconds` from its ops
        /// `/metrics` (`--metrics-url`, or the default ops address) before and after, fail
        /// unless every answer was signed by this backend, and print its signatures and mean
        /// signing time.
        #[arg(long, value_enum)]
        backend: Option<BenchBackend>,
    },
}

/// Prints one round: the OpenSSL baseline and one row per engine with its ratios.
fn print_round(round: &::bench::crypto::Round) {
    let openssl = round.openssl_one_core;
    match openssl {
        Some(o) => println!(
            "baseline  openssl speed sm2 (1 core): {:>9.0} sign/s {:>9.0} verify/s",
            o.sign_per_sec, o.verify_per_sec
        ),
        None => println!("baseline  openssl not found or unparseable: ratios omitted"),
    }
    println!(
        "{:<11} {:>7} {:>11} {:>9} {:>11} {:>13} {:>13} {:>12} {:>12} {:>9} {:>9}",
        "engine",
        "threads",
        "sign/s",
        "sign µs",
        "verify/s",
        "sign/s/core",
        "verify/s/core",
        "sign/cpu-s",
        "verify/cpu-s",
        "sign×ossl",
        "vrfy×ossl"
    );
    for r in &round.engines {
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
        let (s, v) = round
            .ratios(&r.engine)
            .map_or(("-".to_string(), "-".to_string()), |(s, v)| {
                (format!("{s:.2}"), format!("{v:.2}"))
            });
        println!(
            "{:<11} {:>7} {:>11.0} {:>9.1} {:>11.0} {:>13.0} {:>13.0} {:>12} {:>12} {:>9} {:>9}",
            r.engine,
            r.threads,
            r.sign_per_sec,
            r.sign_latency_us,
            r.verify_per_sec,
            r.sign_per_sec_per_core,
            r.verify_per_sec_per_core,
            fmt(r.sign_per_cpu_sec),
            fmt(r.verify_per_cpu_sec),
            s,
            v,
        );
    }
    println!(
        "(ratios: engine per CPU second where the thread CPU time is readable, else per core of \
         wall-clock time, ÷ OpenSSL, which counts per user CPU second; sign µs: mean time of \
         one signature as a thread waits for it)"
    );
}

/// `bench http`: warm-up, the server's CPU and the crypto floor.
#[derive(clap::Args)]
pub struct HttpCpuArgs {
    /// Unique requests sent before the measured phase and not counted.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// The server's ops `/metrics`, read before and after the measured phase for
    /// `process_cpu_seconds_total` (default: the host of `--url` and the port of
    /// `server.ops_listen`). The counter has whole-second steps: prefer `--server-pid` for short
    /// runs.
    #[arg(long, value_name = "URL")]
    metrics_url: Option<String>,
    /// Read the server's CPU from `/proc/<PID>/stat` instead (Linux, same machine; 10 ms steps).
    #[arg(long, value_name = "PID", conflicts_with = "metrics_url")]
    server_pid: Option<u32>,
    /// Do not read the server's CPU.
    #[arg(long, conflicts_with_all = ["metrics_url", "server_pid"])]
    no_server_cpu: bool,
    /// Engine for the crypto floor (default: `keys.engine`, the server's configured engine).
    #[arg(long)]
    engine: Option<EngineKind>,
    /// Seconds each for the single-thread sign and verify loops of the crypto floor (0: skip).
    #[arg(long, default_value_t = 1.0)]
    floor_seconds: f64,
}

impl HttpCpuArgs {
    /// Where to read the server's CPU, and whether the user named it (then a failure is one).
    fn source(
        &self,
        url: &str,
        settings: &Settings,
    ) -> anyhow::Result<Option<(ServerCpuSource, bool)>> {
        if self.no_server_cpu {
            return Ok(None);
        }
        if let Some(pid) = self.server_pid {
            return Ok(Some((ServerCpuSource::Pid(pid), true)));
        }
        if let Some(m) = &self.metrics_url {
            return Ok(Some((ServerCpuSource::Metrics(m.clone()), true)));
        }
        Ok(Self::default_metrics_url(url, settings)?.map(|m| (ServerCpuSource::Metrics(m), false)))
    }

    /// The host of `url` and the port of `server.ops_listen`; `None` without an ops listener.
    fn default_metrics_url(url: &str, settings: &Settings) -> anyhow::Result<Option<String>> {
        let Some(ops) = settings.ops_listen()? else {
            return Ok(None);
        };
        let uri: actix_web::http::Uri = url.parse().context("--url")?;
        let host = uri.host().unwrap_or("127.0.0.1");
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Some(format!("http://{host}:{}/metrics", ops.port())))
    }
}

/// Runs a `bench` command.
pub async fn run(cmd: BenchCommand, settings: &Settings) -> anyhow::Result<()> {
    use ::bench;
    match cmd {
        BenchCommand::Crypto {
            backend,
            keys_dir,
            version,
            engine,
            threads,
            seconds,
            repeat,
            output,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let subjects = match backend {
                BenchBackend::File => engine
                    .map_or_else(|| EngineKind::ALL.to_vec(), |e| vec![e])
                    .iter()
                    .map(|&kind| subject(kind))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                module @ (BenchBackend::Sdf | BenchBackend::Pkcs11) => {
                    let mut settings = settings.clone();
                    if let Some(e) = engine {
                        settings.keys.engine = e;
                    }
                    let dir = keys_dir.unwrap_or_else(|| settings.keys.dir.clone());
                    vec![module_subject(&dir, module, version, &settings)?]
                }
            };
            let names: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
            let rounds = bench::crypto::run_rounds(&subjects, threads, seconds, repeat);
            if output == "json" {
                let mut medians = serde_json::Map::new();
                for name in &names {
                    let (sign, verify): (Vec<f64>, Vec<f64>) =
                        rounds.iter().filter_map(|r| r.ratios(name)).unzip();
                    medians.insert(
                        name.clone(),
                        serde_json::json!({
                            "sign_ratio": bench::crypto::median(&sign),
                            "verify_ratio": bench::crypto::median(&verify),
                        }),
                    );
                }
                let v = serde_json::json!({"threads": threads, "seconds": seconds, "repeat": rounds.len(), "rounds": rounds, "median_ratios": medians});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            for (n, round) in rounds.iter().enumerate() {
                if rounds.len() > 1 {
                    println!("round {} of {}", n + 1, rounds.len());
                }
                print_round(round);
            }
            if rounds.len() > 1 {
                println!(
                    "median of {} same-run ratios (engine ÷ openssl one core):",
                    rounds.len()
                );
                for name in &names {
                    let (sign, verify): (Vec<f64>, Vec<f64>) =
                        rounds.iter().filter_map(|r| r.ratios(name)).unzip();
                    let list = |xs: &[f64]| {
                        xs.iter()
                            .map(|x| format!("{x:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let med = |xs: &[f64]| {
                        bench::crypto::median(xs).map_or("-".to_string(), |m| format!("{m:.2}"))
                    };
                    println!(
                        "{:<11} sign×ossl {:>6} [{}]  vrfy×ossl {:>6} [{}]",
                        name,
                        med(&sign),
                        list(&sign),
                        med(&verify),
                        list(&verify)
                    );
                }
            }
        }
        BenchCommand::Http {
            url,
            concurrency,
            requests,
            max_seconds,
            keys_dir,
            output,
            request_id_prefix,
            ca_file,
            cpu,
            rate,
            report,
            backend,
        } => {
            let client = super::client::wechat_client(&keys_dir, settings)?;
            let source = cpu.source(&url, settings)?;
            let engine = cpu.engine.unwrap_or(settings.keys.engine);
            let progress = output != "json";
            // The floor first, while the server is idle and before pre-signing takes every core.
            let crypto_floor = if cpu.floor_seconds > 0.0 {
                if progress {
                    eprintln!(
                        "crypto floor: {} sign + verify, 1 thread, {} s each",
                        engine.name(),
                        cpu.floor_seconds
                    );
                }
                let subject = subject(engine)?;
                let secs = cpu.floor_seconds;
                Some(
                    actix_web::rt::task::spawn_blocking(move || {
                        bench::cpu::measure_floor(
                            &subject.name,
                            secs,
                            || (subject.sign)(),
                            || (subject.verify)(),
                        )
                    })
                    .await
                    .context("crypto floor")?,
                )
            } else {
                None
            };
            let ca_file = ca_file.or_else(|| settings.tls.ca_file.clone());
            let tls = pension_gateway::tls::client::client_config(ca_file.as_deref())?;
            let http = || {
                pension_gateway::tls::client::http_client_with(
                    Arc::clone(&tls),
                    Duration::from_secs(10),
                )
            };
            let clients: Vec<awc::Client> = (0..concurrency.max(1)).map(|_| http()).collect();
            let opts = bench::http::HttpBenchOptions {
                url,
                requests,
                max_seconds,
                progress,
                request_id_prefix,
                warmup: cpu.warmup,
                server_cpu: source.as_ref().map(|(s, _)| s.clone()),
                crypto_floor,
                rate,
            };
            let workload = Arc::new(AccountQueries { client });
            // The server's signing histogram, before (warm-up included in the difference).
            let signing_url = match backend {
                None => None,
                Some(_) => Some(match (&cpu.metrics_url, &source) {
                    (Some(url), _) => url.clone(),
                    (None, Some((ServerCpuSource::Metrics(url), _))) => url.clone(),
                    _ => HttpCpuArgs::default_metrics_url(&opts.url, settings)?
                        .context("--backend needs the server's ops /metrics: give --metrics-url")?,
                }),
            };
            let signing_before = match (&signing_url, backend) {
                (Some(url), Some(b)) => Some(signing_totals(
                    &bench::scrape::fetch(&http(), url).await?,
                    b,
                )),
                _ => None,
            };
            let r = bench::http::run(&opts, workload, &clients, &http()).await?;
            let signing = match (&signing_url, backend, signing_before) {
                (Some(url), Some(b), Some(before)) => {
                    let after = signing_totals(&bench::scrape::fetch(&http(), url).await?, b);
                    Some((b, after.since(&before)))
                }
                _ => None,
            };
            if output == "json" {
                let mut v = serde_json::to_value(&r)?;
                if let (Some((b, t)), Some(obj)) = (&signing, v.as_object_mut()) {
                    obj.insert(
                        "signing".into(),
                        serde_json::json!({"backend": b.name(),
                            "signatures": t.count, "mean_us": t.mean().map(|m| m * 1e6)}),
                    );
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", bench::report::text_summary(&r));
                if let Some((b, t)) = &signing {
                    println!(
                        "signing   {}: {:.0} signatures by the server, mean {} µs (its gateway_sign_seconds)",
                        format!("{b:?}").to_lowercase(),
                        t.count,
                        t.mean().map_or("-".to_string(), |m| format!("{:.1}", m * 1e6))
                    );
                }
            }
            if let Some(path) = &report {
                let args: Vec<String> = std::env::args().collect();
                let command = shlex::try_join(args.iter().map(String::as_str))
                    .unwrap_or_else(|_| args.join(" "));
                bench::report::write_html(path, &r, &command)?;
                if output != "json" {
                    println!("report    {}", path.display());
                }
            }
            if r.bad_signatures > 0 || r.transport_errors > 0 {
                anyhow::bail!(
                    "{} bad signatures, {} transport errors",
                    r.bad_signatures,
                    r.transport_errors
                );
            }
            if let (Some((_, true)), Some(e)) = (&source, &r.server_cpu_error) {
                anyhow::bail!("{e}");
            }
            if let Some((b, t)) = &signing {
                let answered = r.by_status.get(&200).copied().unwrap_or(0);
                if t.count < answered as f64 {
                    anyhow::bail!(
                        "the server signed {:.0} answers with the {} backend, fewer than the {answered} \
                         answered in the measured phase: its signing bank version is not a {} one",
                        t.count,
                        format!("{b:?}").to_lowercase(),
                        format!("{b:?}").to_lowercase()
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape holding signatures of two engines and both module kinds.
    const METRICS: &str = "\
# TYPE gateway_sign_seconds histogram
gateway_sign_seconds_sum{engine=\"fast\"} 0.5
gateway_sign_seconds_count{engine=\"fast\"} 10
gateway_sign_seconds_sum{engine=\"libsm\"} 0.25
gateway_sign_seconds_count{engine=\"libsm\"} 5
gateway_sign_seconds_sum{engine=\"sdf\"} 2
gateway_sign_seconds_count{engine=\"sdf\"} 4
gateway_sign_seconds_sum{engine=\"pkcs11\"} 3
gateway_sign_seconds_count{engine=\"pkcs11\"} 6
";

    #[test]
    fn each_backend_counts_only_its_own_signatures() {
        let totals = |b| {
            let t = signing_totals(METRICS, b);
            (t.count, t.sum)
        };
        assert_eq!(totals(BenchBackend::File), (15.0, 0.75));
        assert_eq!(totals(BenchBackend::Sdf), (4.0, 2.0));
        assert_eq!(totals(BenchBackend::Pkcs11), (6.0, 3.0));
    }
}
