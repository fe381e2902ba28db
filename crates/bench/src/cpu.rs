//! CPU per request against the crypto floor, for `bench http`.
//!
//! - The **server's CPU time** is read before and after the measured phase: from the
//!   `process_cpu_seconds_total` counter on the gateway's ops `/metrics` (the prometheus crate's
//!   process collector; Linux only, and it exports whole seconds), or from `/proc/<pid>/stat`
//!   (Linux, clock ticks: 10 ms) when the server runs on the same machine.
//! - The **crypto floor** is one SM2 verify plus one SM2 sign with the configured engine,
//!   measured single-threaded on the client side in the same run (the loop of `bench crypto`,
//!   in thread CPU time so that it compares with the server's CPU time on a busy machine); the
//!   caller supplies the two operations ([`measure_floor`]).

use serde::Serialize;

use super::BenchError;

/// The name of the counter read from `/metrics`.
pub const CPU_METRIC: &str = "process_cpu_seconds_total";

/// Where the server's CPU time is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCpuSource {
    /// A Prometheus text exposition with `process_cpu_seconds_total` (the ops `/metrics`).
    Metrics(String),
    /// `/proc/<pid>/stat` of a process on this machine (Linux).
    Pid(u32),
}

impl ServerCpuSource {
    /// A short description for the summary.
    pub fn describe(&self) -> String {
        match self {
            Self::Metrics(url) => format!("{CPU_METRIC} from {url}"),
            Self::Pid(pid) => format!("/proc/{pid}/stat"),
        }
    }

    /// The smallest step of a reading, seconds: the process collector exports whole seconds;
    /// `/proc` counts clock ticks.
    pub fn resolution_seconds(&self) -> f64 {
        match self {
            Self::Metrics(_) => 1.0,
            Self::Pid(_) => 1.0 / ticks_per_second().max(1) as f64,
        }
    }

    /// Reads the server's total CPU time (user + system), seconds.
    pub async fn read(&self, http: &awc::Client) -> Result<f64, BenchError> {
        match self {
            Self::Metrics(url) => {
                let scrape = |reason: String| BenchError::Scrape {
                    url: url.clone(),
                    reason,
                };
                let mut resp = http
                    .get(url.as_str())
                    .send()
                    .await
                    .map_err(|e| scrape(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(scrape(format!("HTTP {}", resp.status())));
                }
                let body = resp
                    .body()
                    .limit(4 << 20)
                    .await
                    .map_err(|e| scrape(e.to_string()))?;
                parse_process_cpu_seconds(&String::from_utf8_lossy(&body))
                    .ok_or_else(|| BenchError::NoCpuMetric(url.clone()))
            }
            Self::Pid(pid) => read_proc_stat(*pid),
        }
    }
}

/// The value of `process_cpu_seconds_total` in a Prometheus text exposition (`None` when the
/// exposition has no such sample or its value is not a number).
pub fn parse_process_cpu_seconds(text: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(CPU_METRIC)?;
        // `name value`, `name{labels} value` or `name value timestamp`.
        let rest = match rest.chars().next()? {
            '{' => &rest[rest.find('}')? + 1..],
            c if c.is_whitespace() => rest,
            _ => return None,
        };
        rest.split_whitespace().next()?.parse::<f64>().ok()
    })
}

/// User + system CPU seconds from one `/proc/<pid>/stat` line (fields 14 and 15, in clock
/// ticks; the command name in parentheses may contain spaces and parentheses).
#[cfg(target_os = "linux")]
pub fn proc_stat_cpu_seconds(line: &str, ticks_per_second: u64) -> Option<f64> {
    use procfs::FromRead;
    // procfs slices the line around the command name by byte offsets: make sure it has the
    // shape it expects (`pid (comm) state …`) before handing it over.
    let line = line.trim();
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let shaped = open > 0
        && close > open
        && line.get(..open)?.ends_with(' ')
        && line.get(close + 1..)?.starts_with(' ')
        && line.len() > close + 2;
    if !shaped || ticks_per_second == 0 {
        return None;
    }
    let stat = procfs::process::Stat::from_read(line.as_bytes()).ok()?;
    Some((stat.utime + stat.stime) as f64 / ticks_per_second as f64)
}

/// `/proc` is Linux only.
#[cfg(not(target_os = "linux"))]
pub fn proc_stat_cpu_seconds(_line: &str, _ticks_per_second: u64) -> Option<f64> {
    None
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> u64 {
    procfs::ticks_per_second()
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_second() -> u64 {
    100
}

fn read_proc_stat(pid: u32) -> Result<f64, BenchError> {
    let err = |reason: String| BenchError::ProcStat { pid, reason };
    if !cfg!(target_os = "linux") {
        return Err(err("--server-pid needs Linux".into()));
    }
    let line =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| err(e.to_string()))?;
    proc_stat_cpu_seconds(&line, ticks_per_second()).ok_or_else(|| err("unreadable line".into()))
}

/// The server's CPU over the measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// Where it was read.
    pub source: String,
    /// CPU seconds used by the server during the measured phase.
    pub cpu_seconds: f64,
    /// Microseconds of server CPU per answered request.
    pub per_request_us: f64,
    /// ± bound on `per_request_us` from the reading's resolution (one step over the answers).
    pub uncertainty_us: f64,
}

/// CPU per answered request from two readings taken around the measured phase: `None` when
/// nothing was answered or the counter went backwards (a restarted server).
pub fn cpu_per_request(
    before_seconds: f64,
    after_seconds: f64,
    answered: u64,
    resolution_seconds: f64,
) -> Option<(f64, f64)> {
    let used = after_seconds - before_seconds;
    if answered == 0 || !used.is_finite() || used < 0.0 {
        return None;
    }
    let n = answered as f64;
    Some((used / n * 1e6, resolution_seconds / n * 1e6))
}

/// The crypto floor of one request: one verify and one sign, single-threaded.
#[derive(Debug, Clone, Serialize)]
pub struct CryptoFloor {
    /// Engine measured.
    pub engine: String,
    /// Microseconds per signature.
    pub sign_us: f64,
    /// Microseconds per verification.
    pub verify_us: f64,
    /// `sign_us + verify_us`.
    pub floor_us: f64,
}

impl CryptoFloor {
    /// From single-thread rates (operations per second).
    pub fn from_rates(engine: &str, sign_per_sec: f64, verify_per_sec: f64) -> Self {
        let per = |r: f64| if r > 0.0 { 1e6 / r } else { f64::INFINITY };
        let (sign_us, verify_us) = (per(sign_per_sec), per(verify_per_sec));
        Self {
            engine: engine.to_string(),
            sign_us,
            verify_us,
            floor_us: sign_us + verify_us,
        }
    }
}

/// CPU time of the calling thread, where the platform has a per-thread clock.
pub fn thread_cpu() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let nanos = u64::try_from(t.tv_nsec).ok()?;
        Some(
            std::time::Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
                + std::time::Duration::from_nanos(nanos),
        )
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Microseconds of this thread's CPU per call of `op`, calling it for about `seconds` of wall
/// time (at least once). CPU time rather than wall time, so a loaded machine, where this thread
/// waits for a core, does not inflate the floor; wall time where there is no thread clock.
fn cpu_us_per_op(seconds: f64, mut op: impl FnMut()) -> f64 {
    let wall = std::time::Instant::now();
    let cpu0 = thread_cpu();
    let mut n = 0u64;
    while n == 0 || wall.elapsed().as_secs_f64() < seconds {
        op();
        n += 1;
    }
    let used = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    };
    used.as_secs_f64() * 1e6 / n as f64
}

/// Measures the floor like `bench crypto --threads 1`: `seconds` each for `sign` and `verify`
/// (one signature and one verification with a prepared key of the engine `engine`, over the
/// signing string of a real request), counting this thread's CPU time. Blocking.
pub fn measure_floor(
    engine: &str,
    seconds: f64,
    mut sign: impl FnMut(),
    mut verify: impl FnMut(),
) -> CryptoFloor {
    let sign_us = cpu_us_per_op(seconds, &mut sign);
    let verify_us = cpu_us_per_op(seconds, &mut verify);
    CryptoFloor {
        engine: engine.to_string(),
        sign_us,
        verify_us,
        floor_us: sign_us + verify_us,
    }
}
