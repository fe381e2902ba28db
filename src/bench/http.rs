//! `bench http`: a bounded load generator. It first pre-signs N unique requests (distinct
//! nonces, current timestamps, the WeChat key) on every core, then sends them over keep-alive
//! connections with C concurrent workers, and finally verifies every response signature (on
//! every core, after the clock stops, so verification does not slow the sender). It talks only
//! to the URL it is given and stops by itself after N requests or `max_seconds`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchError;
use crate::accounts::demo::DEMO_PEOPLE;
use crate::client::WechatClient;
use crate::crypto::nonce;

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpBenchOptions {
    /// Full URL of the account-query API.
    pub url: String,
    /// Concurrent workers (each with its own keep-alive connection).
    pub concurrency: usize,
    /// Requests to send (each unique).
    pub requests: usize,
    /// Hard stop, seconds.
    pub max_seconds: u64,
    /// Print progress to stderr.
    pub progress: bool,
    /// Request `i` carries `Request-ID: <prefix><i>` (so its audit row can be found).
    pub request_id_prefix: String,
    /// PEM CA trusted for an `https://` URL besides the platform's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct HttpBenchReport {
    /// Requests sent.
    pub requests: u64,
    /// Seconds spent pre-signing (not part of the rate).
    pub presign_seconds: f64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Requests per second.
    pub req_per_sec: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Responses by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Transport errors (no response).
    pub transport_errors: u64,
    /// Responses whose WxIns signature did not verify.
    pub bad_signatures: u64,
    /// Request-IDs of the requests that got no response or a status other than 200, sorted.
    pub failed_request_ids: Vec<String>,
}

struct Presigned {
    authorization: String,
    body: Vec<u8>,
}

struct Answer {
    index: usize,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn presign(client: &WechatClient, path: &str, n: usize) -> Vec<Presigned> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let now = chrono::Utc::now().timestamp();
                    (t * per..((t + 1) * per).min(n))
                        .filter_map(|i| {
                            let p = DEMO_PEOPLE.get(i % DEMO_PEOPLE.len())?;
                            let body =
                                serde_json::to_vec(&serde_json::json!({"user_true_name": p.name,
                                "user_identify_card_num": p.id_number, "corpno": "weibao"}))
                                .ok()?;
                            let signed = client
                                .sign_request("POST", path, &body, now, &nonce::generate())
                                .ok()?;
                            Some(Presigned {
                                authorization: signed.authorization,
                                body,
                            })
                        })
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

/// Runs the load. Must be called inside an actix (tokio) runtime.
pub async fn run(
    opts: &HttpBenchOptions,
    client: Arc<WechatClient>,
) -> Result<HttpBenchReport, BenchError> {
    let uri: actix_web::http::Uri = opts.url.parse().map_err(BenchError::Url)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let t0 = Instant::now();
    let requests = Arc::new(presign(&client, &path, opts.requests));
    let presign_seconds = t0.elapsed().as_secs_f64();
    if opts.progress {
        eprintln!(
            "pre-signed {} unique requests in {presign_seconds:.2} s",
            requests.len()
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(requests.len())));
    let hist = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let transport_errors = Arc::new(AtomicUsize::new(0));
    let no_answer = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(opts.max_seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    let tls = crate::tls::client::client_config(opts.ca_file.as_deref())?;
    for _ in 0..opts.concurrency.max(1) {
        let (requests, next, answers, hist, errs, url) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&answers),
            Arc::clone(&hist),
            Arc::clone(&transport_errors),
            opts.url.clone(),
        );
        let (no_answer, prefix) = (Arc::clone(&no_answer), opts.request_id_prefix.clone());
        let tls = Arc::clone(&tls);
        workers.push(actix_web::rt::spawn(async move {
            let http = crate::tls::client::http_client_with(tls, Duration::from_secs(10));
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                if Instant::now() > deadline {
                    break;
                }
                let sent = Instant::now();
                let resp = http
                    .post(url.as_str())
                    .insert_header(("Authorization", req.authorization.as_str()))
                    .insert_header(("Request-ID", format!("{prefix}{i}")))
                    .insert_header(("Content-Type", "application/json"))
                    .insert_header(("Accept", "application/json"))
                    .send_body(req.body.clone())
                    .await;
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
                        let headers = r
                            .headers()
                            .iter()
                            .filter(|(k, _)| k.as_str().starts_with("wxins-"))
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
    if opts.progress {
        let (next, total) = (Arc::clone(&next), requests.len());
        actix_web::rt::spawn(async move {
            loop {
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
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
    if opts.progress {
        eprintln!(
            "\r  sent {} requests",
            next.load(Ordering::Relaxed).min(requests.len())
        );
    }
    let answers = std::mem::take(&mut *answers.lock().map_err(|_| BenchError::Poisoned)?);
    let bad_signatures = verify_all(&client, &answers);
    let mut by_status = BTreeMap::new();
    for a in &answers {
        *by_status.entry(a.status).or_insert(0u64) += 1;
    }
    let mut failed = std::mem::take(&mut *no_answer.lock().map_err(|_| BenchError::Poisoned)?);
    failed.extend(answers.iter().filter(|a| a.status != 200).map(|a| a.index));
    failed.sort_unstable();
    let h = hist.lock().map_err(|_| BenchError::Poisoned)?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let sent = answers.len() as u64 + transport_errors.load(Ordering::Relaxed) as u64;
    Ok(HttpBenchReport {
        requests: sent,
        presign_seconds,
        seconds,
        req_per_sec: answers.len() as f64 / seconds,
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
        by_status,
        transport_errors: transport_errors.load(Ordering::Relaxed) as u64,
        bad_signatures,
        failed_request_ids: failed
            .into_iter()
            .map(|i| format!("{}{i}", opts.request_id_prefix))
            .collect(),
    })
}

fn verify_all(client: &WechatClient, answers: &[Answer]) -> u64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = answers.len().div_ceil(threads).max(1);
    // The run lasts at most `--max-seconds`, well inside the answers' ±300 s freshness.
    let now = chrono::Utc::now().timestamp();
    std::thread::scope(|s| {
        answers
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter(|a| {
                            let get = |n: &str| {
                                a.headers
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                                    .map(|(_, v)| v.as_str())
                            };
                            client.verify_response(get, &a.body, now).is_err()
                        })
                        .count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum()
    })
}
