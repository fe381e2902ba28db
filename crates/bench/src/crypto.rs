//! `bench crypto`: multi-threaded SM2 sign and verify throughput per engine, beside
//! `openssl speed sm2` run in the same command. The engines are the caller's: each is a
//! [`Subject`], a name and two operations (one signature, one verification) that the loops call.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cpu::thread_cpu;

/// One operation the loops call, from many threads at once.
pub type Op = Arc<dyn Fn() + Send + Sync>;

/// An engine to measure: its name and one signature and one verification with a prepared key
/// over a fixed message (the caller prepares both once).
#[derive(Clone)]
pub struct Subject {
    /// The engine's name, as reported.
    pub name: String,
    /// Makes one signature.
    pub sign: Op,
    /// Checks one signature.
    pub verify: Op,
}

/// One engine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFigures {
    /// Engine name.
    pub engine: String,
    /// Threads used.
    pub threads: usize,
    /// Signatures per second, all threads.
    pub sign_per_sec: f64,
    /// Verifications per second, all threads.
    pub verify_per_sec: f64,
    /// Per core (÷ threads).
    pub sign_per_sec_per_core: f64,
    /// Per core (÷ threads).
    pub verify_per_sec_per_core: f64,
    /// Signatures per CPU second of the measuring threads (the thread CPU clock, as the
    /// `bench http` floor reads it; `None` where there is none). `openssl speed` counts per user CPU second too, so this is the
    /// figure the ratios use: it does not drop when other processes share the cores.
    pub sign_per_cpu_sec: Option<f64>,
    /// Verifications per CPU second of the measuring threads (as `sign_per_cpu_sec`).
    pub verify_per_cpu_sec: Option<f64>,
    /// Mean time of one signature as a caller waits for it, microseconds: `threads` ÷ sign/s
    /// (each thread signs back to back, so this is the closed loop's mean latency). For a
    /// module it is the module's answer time plus the session hand-off.
    pub sign_latency_us: f64,
}

/// OpenSSL's single-core figures from `openssl speed sm2`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpensslFigures {
    /// sign/s.
    pub sign_per_sec: f64,
    /// verify/s.
    pub verify_per_sec: f64,
}

/// One same-run comparison: `openssl speed sm2` then each engine, back to back.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// OpenSSL's figures of this round (`None`: openssl absent or unparseable).
    pub openssl_one_core: Option<OpensslFigures>,
    /// Each engine's figures of this round.
    pub engines: Vec<EngineFigures>,
}

impl Round {
    /// (sign, verify) ratios of `engine` to OpenSSL in this round, if both were measured:
    /// per CPU second when the thread CPU time was readable (like OpenSSL's own figure), else
    /// per core of wall-clock time.
    pub fn ratios(&self, engine: &str) -> Option<(f64, f64)> {
        let o = self.openssl_one_core?;
        let e = self.engines.iter().find(|e| e.engine == engine)?;
        let sign = e.sign_per_cpu_sec.unwrap_or(e.sign_per_sec_per_core);
        let verify = e.verify_per_cpu_sec.unwrap_or(e.verify_per_sec_per_core);
        Some((sign / o.sign_per_sec, verify / o.verify_per_sec))
    }
}

/// Runs `rounds` same-run comparisons: each round runs `openssl speed -seconds S sm2` and then
/// every engine in `engines` for `secs` seconds each.
pub fn run_rounds(engines: &[Subject], threads: usize, secs: u64, rounds: usize) -> Vec<Round> {
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let openssl_one_core = openssl_speed(secs);
        let engines = engines
            .iter()
            .map(|subject| measure_engine(subject, threads, secs as f64))
            .collect();
        out.push(Round {
            openssl_one_core,
            engines,
        });
    }
    out
}

/// The median of `xs` (mean of the two middle values for an even count); `None` when empty or
/// when a value is NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => v.get(mid).copied(),
        _ => Some((v.get(mid - 1)? + v.get(mid)?) / 2.0),
    }
}

/// Runs `op` on `threads` threads for `secs`, returning (operations per wall-clock second,
/// operations per CPU second of the threads when readable).
fn throughput(threads: usize, secs: f64, op: Op) -> (f64, Option<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, op) = (Arc::clone(&stop), Arc::clone(&op));
            std::thread::spawn(move || {
                let cpu_start = thread_cpu();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op();
                    n += 1;
                }
                let cpu = cpu_start
                    .zip(thread_cpu())
                    .map(|(a, b)| b.saturating_sub(a));
                (n, cpu)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, Option<Duration>)> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or((0, None)))
        .collect();
    let total: u64 = results.iter().map(|r| r.0).sum();
    let cpu: Option<Duration> = results.iter().map(|r| r.1).sum();
    let per_cpu_sec = cpu
        .filter(|d| !d.is_zero())
        .map(|d| total as f64 / d.as_secs_f64());
    (total as f64 / started.elapsed().as_secs_f64(), per_cpu_sec)
}

/// Measures one engine: signatures, then verifications, each on `threads` threads for `secs`.
pub fn measure_engine(subject: &Subject, threads: usize, secs: f64) -> EngineFigures {
    let (sign, sign_cpu) = throughput(threads, secs, Arc::clone(&subject.sign));
    let (verify, verify_cpu) = throughput(threads, secs, Arc::clone(&subject.verify));
    EngineFigures {
        engine: subject.name.clone(),
        threads,
        sign_per_sec: sign,
        verify_per_sec: verify,
        sign_per_sec_per_core: sign / threads as f64,
        verify_per_sec_per_core: verify / threads as f64,
        sign_per_cpu_sec: sign_cpu,
        verify_per_cpu_sec: verify_cpu,
        sign_latency_us: mean_latency_us(threads, sign),
    }
}

/// The mean time of one operation in a closed loop of `threads` threads doing `per_sec`
/// operations per second in all, microseconds (infinite for a rate of zero).
pub fn mean_latency_us(threads: usize, per_sec: f64) -> f64 {
    threads as f64 * 1e6 / per_sec
}

/// Runs `openssl speed -seconds S sm2` (one core) and parses its last line; `None` when
/// `openssl` is absent or prints something unexpected.
pub fn openssl_speed(secs: u64) -> Option<OpensslFigures> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", &secs.max(1).to_string(), "sm2"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the `256 bits SM2 (CurveSM2)   0.0002s   0.0002s   4156.2   4565.6` line.
pub fn parse_openssl_speed(text: &str) -> Option<OpensslFigures> {
    let line = text.lines().rev().find(|l| l.contains("SM2"))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [.., sign, verify] => Some(OpensslFigures {
            sign_per_sec: *sign,
            verify_per_sec: *verify,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.5]), Some(7.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn round_ratios_are_per_core_over_openssl() {
        let round = Round {
            openssl_one_core: Some(OpensslFigures {
                sign_per_sec: 1000.0,
                verify_per_sec: 2000.0,
            }),
            engines: vec![EngineFigures {
                engine: "fast".into(),
                threads: 2,
                sign_per_sec: 40_000.0,
                verify_per_sec: 40_000.0,
                sign_per_sec_per_core: 20_000.0,
                verify_per_sec_per_core: 20_000.0,
                sign_per_cpu_sec: None,
                verify_per_cpu_sec: None,
                sign_latency_us: 50.0,
            }],
        };
        assert_eq!(round.ratios("fast"), Some((20.0, 10.0)));
        assert_eq!(round.ratios("libsm"), None);
        // With CPU-time figures, those are used (OpenSSL's own figure is per CPU second).
        let mut cpu = round.clone();
        if let Some(e) = cpu.engines.first_mut() {
            e.sign_per_cpu_sec = Some(30_000.0);
            e.verify_per_cpu_sec = Some(40_000.0);
        }
        assert_eq!(cpu.ratios("fast"), Some((30.0, 20.0)));
        let no_openssl = Round {
            openssl_one_core: None,
            ..round
        };
        assert_eq!(no_openssl.ratios("fast"), None);
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        // Linux only; elsewhere the figure is simply absent.
        if let Some(a) = thread_cpu() {
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let b = thread_cpu().unwrap_or_default();
            assert!(b >= a, "{a:?} -> {b:?} ({x})");
        }
    }

    #[test]
    fn mean_latency_of_a_closed_loop() {
        // 4 threads at 2,000/s in all: each waits 2 ms per operation.
        assert_eq!(mean_latency_us(4, 2_000.0), 2_000.0);
        assert_eq!(mean_latency_us(1, 1_000_000.0), 1.0);
        assert!(mean_latency_us(1, 0.0).is_infinite());
    }

    #[test]
    fn parses_openssl_speed_line() {
        let text = "                              sign    verify    sign/s verify/s\n 256 bits SM2 (CurveSM2)   0.0002s   0.0002s   4156.2   4565.6\n";
        let f = parse_openssl_speed(text).map(|f| (f.sign_per_sec, f.verify_per_sec));
        assert_eq!(f, Some((4156.2, 4565.6)));
    }
}
