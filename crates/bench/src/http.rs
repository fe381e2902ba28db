//! `bench http`: a bounded load generator. It first builds N unique requests on every core (the
//! caller's [`Workload`]: for the gateway, pre-signed with distinct nonces, current timestamps
//! and the WeChat key), then sends them over keep-alive connections with C concurrent workers,
//! and finally checks every answer (the workload's check, e.g. the response signature; on every
//! core, after the clock stops, so checking does not slow the sender). It talks only to the URL
//! it is given and stops by itself after N requests or `max_seconds`.
//!
//! Phases: crypto floor (measured by the caller beforehand: client side, single thread, server
//! idle) → pre-building → warm-up (sent, not counted) → server CPU reading → measured phase →
//! server CPU reading → checking.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cpu::{CryptoFloor, ServerCpu, ServerCpuSource};
use super::latency::{self, Percentiles};
use super::BenchError;

/// What is sent and how answers are checked: the caller's side of a load test.
pub trait Workload: Send + Sync {
    /// Unique request number `i` for the request target `path` (path and query of the URL),
    /// or `None` when it cannot be built (it is then left out). Called once per request, on
    /// every core, before anything is sent.
    fn request(&self, path: &str, i: usize) -> Option<Request>;
    /// Whether `answer` is right (for the gateway: its response signature verifies). Called once
    /// per answer, on every core, after the measured phase.
    fn accepts(&self, answer: &Answer) -> bool;
}

/// One pre-built request: its headers (besides `Request-ID`) and its body, sent as a POST.
#[derive(Debug, Clone)]
pub struct Request {
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// One answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request's number in its phase.
    pub index: usize,
    /// The HTTP status.
    pub status: u16,
    /// Every response header (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The body (up to 1 MiB).
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpBenchOptions {
    /// The URL every request is POSTed to.
    pub url: String,
    /// Requests to send (each unique).
    pub requests: usize,
    /// Hard stop, seconds.
    pub max_seconds: u64,
    /// Print progress to stderr.
    pub progress: bool,
    /// Request `i` of the measured phase carries `Request-ID: <prefix><i>` (so its audit row
    /// can be found); warm-up request `i` carries `<prefix>warmup-<i>`.
    pub request_id_prefix: String,
    /// Requests sent before the measured phase and not counted (also unique, also pre-built).
    pub warmup: usize,
    /// Where to read the server's CPU time around the measured phase (`None`: not reported).
    pub server_cpu: Option<ServerCpuSource>,
    /// The client-side crypto floor, measured by the caller before the run while the server
    /// was idle (`None`: not measured).
    pub crypto_floor: Option<CryptoFloor>,
    /// Open-loop pacing of the measured phase: request i is due at start + i / rate and is sent
    /// then (or as soon as a worker is free); how late each one left is reported as the schedule
    /// lag. `None`: closed loop (each worker sends its next request as soon as it has an answer).
    pub rate: Option<f64>,
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct HttpBenchReport {
    /// Requests sent in the measured phase.
    pub requests: u64,
    /// Warm-up requests sent before it (not counted anywhere else).
    pub warmup_requests: u64,
    /// Seconds spent pre-building (pre-signing) the requests (not part of the rate).
    pub presign_seconds: f64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Requests per second.
    pub req_per_sec: f64,
    /// The offered rate of an open-loop run (`--rate`), requests per second.
    pub offered_rate: Option<f64>,
    /// Open loop: how late requests left after their due time, 99th percentile and maximum,
    /// milliseconds. Up to about 1 ms is the client's timer tick; more means the client (its
    /// workers or its core) could not keep the rate, and the latencies then understate.
    pub schedule_lag_p99_ms: Option<f64>,
    /// Open loop: the largest schedule lag, milliseconds.
    pub schedule_lag_max_ms: Option<f64>,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Responses by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Transport errors (no response).
    pub transport_errors: u64,
    /// Answers the workload did not accept (for the gateway: whose WxIns signature did not
    /// verify).
    pub bad_signatures: u64,
    /// Request-IDs of the measured requests that got no response or a status other than 200,
    /// sorted by request index.
    pub failed_request_ids: Vec<String>,
    /// The client-side crypto floor of one request (one verify + one sign).
    pub crypto_floor: Option<CryptoFloor>,
    /// The server's CPU over the measured phase.
    pub server_cpu: Option<ServerCpu>,
    /// Why the server's CPU is missing although a source was given.
    pub server_cpu_error: Option<String>,
    /// Server CPU per request ÷ crypto floor.
    pub floor_ratio: Option<f64>,
    /// Answers completed in each second of the measured phase.
    pub per_second: Vec<u64>,
    /// Every answer's latency, microseconds (for the HTML report).
    #[serde(skip)]
    pub latencies: hdrhistogram::Histogram<u64>,
}

impl HttpBenchReport {
    /// The latency percentiles.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50_ms: self.p50_ms,
            p90_ms: self.p90_ms,
            p99_ms: self.p99_ms,
            p999_ms: self.p999_ms,
            max_ms: self.max_ms,
        }
    }
}

fn prebuild(workload: &dyn Workload, path: &str, n: usize) -> Vec<Request> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .filter_map(|i| workload.request(path, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// What one phase of sending recorded.
struct Phase {
    answers: Vec<Answer>,
    latencies: hdrhistogram::Histogram<u64>,
    /// Open loop: each request's send time minus its due time, microseconds.
    lag: hdrhistogram::Histogram<u64>,
    per_second: Vec<u64>,
    transport_errors: u64,
    /// Indexes of the requests that got no response.
    no_answer: Vec<usize>,
    seconds: f64,
}

/// Sends `requests` over the workers' connections until done or `deadline`.
async fn send_phase(
    clients: &[awc::Client],
    url: &str,
    id_prefix: &str,
    requests: Arc<[Request]>,
    deadline: Instant,
    progress: bool,
    rate: Option<f64>,
) -> Result<Phase, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(requests.len())));
    let hist = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let lag = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let seconds_cap = deadline.saturating_duration_since(Instant::now()).as_secs() as usize;
    let per_second: Arc<Vec<AtomicU64>> =
        Arc::new((0..seconds_cap + 2).map(|_| AtomicU64::new(0)).collect());
    let transport_errors = Arc::new(AtomicUsize::new(0));
    let no_answer = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for http in clients {
        let (requests, next, answers, hist, per_second, errs, url, http) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&answers),
            Arc::clone(&hist),
            Arc::clone(&per_second),
            Arc::clone(&transport_errors),
            url.to_string(),
            http.clone(),
        );
        let (no_answer, prefix, lag) = (
            Arc::clone(&no_answer),
            id_prefix.to_string(),
            Arc::clone(&lag),
        );
        workers.push(actix_rt::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                if let Some(r) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / r);
                    actix_rt::time::sleep_until(due.into()).await;
                    let late = due.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                    if let Ok(mut h) = lag.lock() {
                        let _ = h.record(late.max(1));
                    }
                }
                let sent = Instant::now();
                if Instant::now() > deadline {
                    break;
                }
                let mut post = http
                    .post(url.as_str())
                    .insert_header(("Request-ID", format!("{prefix}{i}")));
                for (k, v) in &req.headers {
                    post = post.insert_header((k.as_str(), v.as_str()));
                }
                let resp = post.send_body(req.body.clone()).await;
                match resp {
                    Ok(mut r) => {
                        let body = r
                            .body()
                            .limit(1 << 20)
                            .await
                            .map(|b| b.to_vec())
                            .unwrap_or_default();
                        let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                        if let Ok(mut h) = hist.lock() {
                            let _ = h.record(micros.max(1));
                        }
                        let second = started.elapsed().as_secs() as usize;
                        if let Some(c) = per_second.get(second) {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        let headers = r
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect();
                        if let Ok(mut a) = answers.lock() {
                            a.push(Answer {
                                index: i,
                                status: r.status().as_u16(),
                                headers,
                                body,
                            });
                        }
                    }
                    Err(_) => {
                        errs.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut n) = no_answer.lock() {
                            n.push(i);
                        }
                    }
                }
            }
        }));
    }
    if progress {
        let (next, total) = (Arc::clone(&next), requests.len());
        actix_rt::spawn(async move {
            loop {
                actix_rt::time::sleep(Duration::from_secs(1)).await;
                let done = next.load(Ordering::Relaxed).min(total);
                if done >= total {
                    break;
                }
                eprint!("\r  sent {done}/{total}");
            }
        });
    }
    for w in workers {
        let _ = w.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if progress {
        eprintln!(
            "\r  sent {} requests",
            next.load(Ordering::Relaxed).min(requests.len())
        );
    }
    let answers = std::mem::take(&mut *answers.lock().map_err(|_| BenchError::Poisoned)?);
    let latencies = hist.lock().map_err(|_| BenchError::Poisoned)?.clone();
    let lag = lag.lock().map_err(|_| BenchError::Poisoned)?.clone();
    let mut per_second: Vec<u64> = per_second
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    per_second.truncate(seconds.ceil() as usize);
    let no_answer = std::mem::take(&mut *no_answer.lock().map_err(|_| BenchError::Poisoned)?);
    Ok(Phase {
        answers,
        latencies,
        lag,
        per_second,
        transport_errors: transport_errors.load(Ordering::Relaxed) as u64,
        no_answer,
        seconds,
    })
}

/// Runs the load with one HTTP client per worker in `clients` (each its own keep-alive
/// connection; HTTPS as the caller configured them) and `scraper` for the server's CPU readings.
/// Must be called inside an actix (tokio) runtime.
pub async fn run(
    opts: &HttpBenchOptions,
    workload: Arc<dyn Workload>,
    clients: &[awc::Client],
    scraper: &awc::Client,
) -> Result<HttpBenchReport, BenchError> {
    let uri: awc::http::Uri = opts.url.parse().map_err(BenchError::Url)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let crypto_floor = opts.crypto_floor.clone();
    let t0 = Instant::now();
    let mut presigned = prebuild(workload.as_ref(), &path, opts.warmup + opts.requests);
    let presign_seconds = t0.elapsed().as_secs_f64();
    if opts.progress {
        eprintln!(
            "pre-built {} unique requests in {presign_seconds:.2} s",
            presigned.len()
        );
    }
    let measured: Arc<[Request]> = presigned.split_off(opts.warmup.min(presigned.len())).into();
    let warmup: Arc<[Request]> = presigned.into();
    let deadline = Instant::now() + Duration::from_secs(opts.max_seconds);
    let mut warmup_requests = 0;
    if !warmup.is_empty() {
        if opts.progress {
            eprintln!("warm-up: {} requests (not counted)", warmup.len());
        }
        let w = send_phase(
            clients,
            &opts.url,
            &format!("{}warmup-", opts.request_id_prefix),
            warmup,
            deadline,
            opts.progress,
            None,
        )
        .await?;
        warmup_requests = w.answers.len() as u64 + w.transport_errors;
    }
    let cpu_before = match &opts.server_cpu {
        Some(src) => Some(src.read(scraper).await),
        None => None,
    };
    let phase = send_phase(
        clients,
        &opts.url,
        &opts.request_id_prefix,
        measured,
        deadline,
        opts.progress,
        opts.rate.filter(|r| *r > 0.0),
    )
    .await?;
    let (server_cpu, server_cpu_error) = match (&opts.server_cpu, cpu_before) {
        (Some(src), Some(Ok(before))) => match src.read(scraper).await {
            Ok(after) => match super::cpu::cpu_per_request(
                before,
                after,
                phase.answers.len() as u64,
                src.resolution_seconds(),
            ) {
                Some((per_request_us, uncertainty_us)) => (
                    Some(ServerCpu {
                        source: src.describe(),
                        cpu_seconds: after - before,
                        per_request_us,
                        uncertainty_us,
                    }),
                    None,
                ),
                None => (
                    None,
                    Some("no answers, or the server's CPU counter went backwards".to_string()),
                ),
            },
            Err(e) => (None, Some(e.to_string())),
        },
        (_, Some(Err(e))) => (None, Some(e.to_string())),
        _ => (None, None),
    };
    let floor_ratio = match (&server_cpu, &crypto_floor) {
        (Some(c), Some(f)) if f.floor_us > 0.0 => Some(c.per_request_us / f.floor_us),
        _ => None,
    };
    let bad_signatures = check_all(workload.as_ref(), &phase.answers);
    let mut by_status = BTreeMap::new();
    for a in &phase.answers {
        *by_status.entry(a.status).or_insert(0u64) += 1;
    }
    let mut failed = phase.no_answer.clone();
    failed.extend(
        phase
            .answers
            .iter()
            .filter(|a| a.status != 200)
            .map(|a| a.index),
    );
    failed.sort_unstable();
    let p = latency::percentiles(&phase.latencies);
    Ok(HttpBenchReport {
        requests: phase.answers.len() as u64 + phase.transport_errors,
        warmup_requests,
        presign_seconds,
        seconds: phase.seconds,
        req_per_sec: phase.answers.len() as f64 / phase.seconds,
        offered_rate: opts.rate.filter(|r| *r > 0.0),
        schedule_lag_p99_ms: (!phase.lag.is_empty())
            .then(|| phase.lag.value_at_quantile(0.99) as f64 / 1000.0),
        schedule_lag_max_ms: (!phase.lag.is_empty()).then(|| phase.lag.max() as f64 / 1000.0),
        p50_ms: p.p50_ms,
        p90_ms: p.p90_ms,
        p99_ms: p.p99_ms,
        p999_ms: p.p999_ms,
        max_ms: p.max_ms,
        by_status,
        transport_errors: phase.transport_errors,
        bad_signatures,
        failed_request_ids: failed
            .into_iter()
            .map(|i| format!("{}{i}", opts.request_id_prefix))
            .collect(),
        crypto_floor,
        server_cpu,
        server_cpu_error,
        floor_ratio,
        per_second: phase.per_second,
        latencies: phase.latencies,
    })
}

fn check_all(workload: &dyn Workload, answers: &[Answer]) -> u64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = answers.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        answers
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || part.iter().filter(|a| !workload.accepts(a)).count() as u64)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum()
    })
}
