//! The figures `bench http` derives from what it recorded: latency percentiles, the percentile
//! curve and a binned histogram (all from an HdrHistogram of microseconds), and the request
//! rate per second of the run. Pure functions, so they are tested on synthetic data.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles of one run, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest answer.
    pub max_ms: f64,
}

/// One bar of the latency histogram: answers whose latency lies in `[lo_ms, hi_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bin {
    /// Lower edge, milliseconds.
    pub lo_ms: f64,
    /// Upper edge, milliseconds.
    pub hi_ms: f64,
    /// Answers in the bin.
    pub count: u64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Percentiles of a histogram of microseconds (all zero when it is empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// The percentile curve: `(quantile, latency ms)` points, quantile rising from 0 towards 1,
/// denser in the tail (five steps per halving of the distance to 100 %). The last point is the
/// maximum at quantile `1 - 1/n` (a quantile of 1 has no place on a `1/(1-q)` axis).
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let last_q = 1.0 - 1.0 / h.len() as f64;
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), ms(v.value_iterated_to())))
        .filter(|&(q, _)| q < last_q)
        .collect();
    points.push((last_q, ms(h.max())));
    points
}

/// A latency histogram of `bins` bars with logarithmically spaced edges from the fastest to
/// the slowest answer (one bar when they are equal). Every recorded answer is in exactly one
/// bar, so the counts add up to the histogram's length.
pub fn latency_bins(h: &Histogram<u64>, bins: usize) -> Vec<Bin> {
    if h.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = (h.min().max(1) as f64, h.max().max(1) as f64);
    let bins = if hi > lo { bins.max(1) } else { 1 };
    // Edges in microseconds; the last edge is just past the maximum so it falls inside.
    let top = hi * 1.000_001 + 1.0;
    let ratio = (top / lo).powf(1.0 / bins as f64);
    let edges: Vec<f64> = (0..=bins).map(|i| lo * ratio.powi(i as i32)).collect();
    let mut counts = vec![0u64; bins];
    for v in h.iter_recorded() {
        // The histogram stores each value as the bucket's highest equivalent value; clamp it to
        // the observed range so it lands in a bar.
        let x = (h.highest_equivalent(v.value_iterated_to()) as f64).clamp(lo, hi);
        let i = edges
            .partition_point(|&e| e <= x)
            .saturating_sub(1)
            .min(bins - 1);
        if let Some(c) = counts.get_mut(i) {
            *c += v.count_at_value();
        }
    }
    edges
        .windows(2)
        .zip(counts)
        .map(|(e, count)| Bin {
            lo_ms: e[0] / 1000.0,
            hi_ms: e[1] / 1000.0,
            count,
        })
        .collect()
}

/// Requests per second over the run: `counts[i]` answers completed in second `i` of a run of
/// `seconds`. Returns `(start of the second, rate)`; the last, partial second is scaled to its
/// length, or dropped when shorter than half a second (too few answers to be a rate).
pub fn rate_per_second(counts: &[u64], seconds: f64) -> Vec<(f64, f64)> {
    counts
        .iter()
        .enumerate()
        .filter_map(|(i, &c)| {
            let start = i as f64;
            let len = (seconds - start).min(1.0);
            (len >= 0.5).then(|| (start, c as f64 / len))
        })
        .collect()
}
