//! What `bench http` shows: the text summary, and with `--report FILE.html` a self-contained
//! page — summary table, command line, and three inline SVG charts drawn with `plotters` (latency
//! histogram, percentile curve, requests per second over the run). The page loads nothing:
//! no scripts, fonts, style sheets or images from anywhere. It is written to a temporary file
//! beside the target and renamed over it, so a reader never sees half a page.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::http::HttpBenchReport;
use super::latency;
use super::BenchError;

/// Above this share of the figure, the CPU reading's resolution gets a warning.
const UNCERTAINTY_WARN: f64 = 0.05;

/// The summary as `(label, value)` rows, shared by the text output and the HTML table.
pub fn summary_rows(r: &HttpBenchReport) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        (
            "requests",
            format!(
                "{} measured (+{} warm-up, not counted)",
                r.requests, r.warmup_requests
            ),
        ),
        ("duration", format!("{:.2} s", r.seconds)),
        (
            "throughput",
            match r.offered_rate {
                Some(rate) => format!(
                    "{:.0} req/s (open loop at {rate:.0} req/s offered; sent late by p99 {:.2} ms, max {:.2} ms)",
                    r.req_per_sec,
                    r.schedule_lag_p99_ms.unwrap_or(0.0),
                    r.schedule_lag_max_ms.unwrap_or(0.0)
                ),
                None => format!("{:.0} req/s", r.req_per_sec),
            },
        ),
        (
            "latency",
            format!(
                "p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · p99.9 {:.2} ms · max {:.2} ms",
                r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms
            ),
        ),
    ];
    if let Some(f) = &r.crypto_floor {
        rows.push((
            "crypto floor",
            format!(
                "{:.1} µs = sign {:.1} µs + verify {:.1} µs ({} engine, 1 thread, client side)",
                f.floor_us, f.sign_us, f.verify_us, f.engine
            ),
        ));
    }
    match (&r.server_cpu, &r.server_cpu_error) {
        (Some(c), _) => rows.push((
            "server CPU",
            format!(
                "{:.1} ± {:.1} µs/request ({:.2} s over the measured phase; {})",
                c.per_request_us, c.uncertainty_us, c.cpu_seconds, c.source
            ),
        )),
        (None, Some(e)) => rows.push(("server CPU", format!("not measured: {e}"))),
        (None, None) => {}
    }
    if let Some(x) = r.floor_ratio {
        rows.push(("server CPU ÷ floor", format!("{x:.2}×")));
    }
    rows.push((
        "statuses",
        r.by_status
            .iter()
            .map(|(s, n)| format!("{s} × {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    rows.push((
        "errors",
        format!(
            "{} transport errors, {} bad response signatures",
            r.transport_errors, r.bad_signatures
        ),
    ));
    rows.push((
        "pre-signing",
        format!("{:.2} s (before the clock starts)", r.presign_seconds),
    ));
    rows
}

/// A warning when the CPU reading's resolution is a large share of the CPU per request.
pub fn resolution_warning(r: &HttpBenchReport) -> Option<String> {
    let c = r.server_cpu.as_ref()?;
    (c.uncertainty_us > UNCERTAINTY_WARN * c.per_request_us).then(|| {
        format!(
            "the server CPU reading's resolution is ±{:.1} µs/request ({:.0} % of the figure): \
             send more requests, or read /proc with --server-pid",
            c.uncertainty_us,
            100.0 * c.uncertainty_us / c.per_request_us.max(f64::MIN_POSITIVE)
        )
    })
}

/// The text summary printed by `bench http`.
pub fn text_summary(r: &HttpBenchReport) -> String {
    let rows = summary_rows(r);
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    if let Some(w) = resolution_warning(r) {
        let _ = writeln!(out, "note: {w}");
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const W: u32 = 760;
const H: u32 = 340;
const FONT: (&str, u32) = ("sans-serif", 14);

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// One chart as an SVG string: a white W×H canvas, `draw` on it, presented.
fn svg_chart(draw: impl FnOnce(&Area<'_>) -> Result<(), BenchError>) -> Result<String, BenchError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(BenchError::Chart)?;
        draw(&root)?;
        root.present().map_err(BenchError::Chart)?;
    }
    Ok(svg)
}

/// The frame every chart shares: margin and room for the axis labels.
fn frame<'a, 'b>(root: &'a Area<'b>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin(12).x_label_area_size(40).y_label_area_size(64);
    b
}

fn histogram_svg(h: &hdrhistogram::Histogram<u64>) -> Result<String, BenchError> {
    let bins = latency::latency_bins(h, 48);
    svg_chart(|root| {
        let (lo, hi) = match (bins.first(), bins.last()) {
            (Some(a), Some(b)) => (a.lo_ms, b.hi_ms),
            _ => (0.001, 1.0),
        };
        let top = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
        let mut chart = frame(root)
            .build_cartesian_2d((lo..hi).log_scale(), 0u64..top + top / 10 + 1)
            .map_err(BenchError::Chart)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("answers")
            .label_style(FONT)
            .axis_desc_style(FONT)
            .x_label_formatter(&|x| format!("{x:.2}"))
            .draw()
            .map_err(BenchError::Chart)?;
        chart
            .draw_series(bins.iter().map(|b| {
                Rectangle::new([(b.lo_ms, 0), (b.hi_ms, b.count)], BLUE.mix(0.6).filled())
            }))
            .map_err(BenchError::Chart)?;
        Ok(())
    })
}

fn percentile_svg(h: &hdrhistogram::Histogram<u64>) -> Result<String, BenchError> {
    // x = 1 / (1 - q) on a log axis: 1 → 0 %, 10 → 90 %, 100 → 99 %, 1000 → 99.9 % …
    let points: Vec<(f64, f64)> = latency::percentile_curve(h)
        .into_iter()
        .map(|(q, ms)| (1.0 / (1.0 - q), ms))
        .collect();
    let x_max = points.last().map_or(10.0, |p| p.0).max(10.0);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.05;
    svg_chart(|root| {
        let mut chart = frame(root)
            .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
            .map_err(BenchError::Chart)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .label_style(FONT)
            .axis_desc_style(FONT)
            .x_label_formatter(&|x| {
                let pct = 100.0 * (1.0 - 1.0 / x);
                if pct < 99.0 {
                    format!("{pct:.0}%")
                } else {
                    let digits = (-(100.0 - pct).log10() - 1e-6).ceil().max(0.0) as usize;
                    format!("{pct:.digits$}%")
                }
            })
            .draw()
            .map_err(BenchError::Chart)?;
        chart
            .draw_series(LineSeries::new(points, RED.stroke_width(2)))
            .map_err(BenchError::Chart)?;
        Ok(())
    })
}

fn rate_svg(r: &HttpBenchReport) -> Result<String, BenchError> {
    let points = latency::rate_per_second(&r.per_second, r.seconds);
    let x_max = (r.seconds.ceil()).max(1.0);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    svg_chart(|root| {
        let mut chart = frame(root)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(BenchError::Chart)?;
        chart
            .configure_mesh()
            .x_desc("second of the measured phase")
            .y_desc("requests / s")
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()
            .map_err(BenchError::Chart)?;
        // Each second drawn as a step over [t, t + 1).
        let steps: Vec<(f64, f64)> = points
            .iter()
            .flat_map(|&(t, v)| [(t, v), ((t + 1.0).min(x_max), v)])
            .collect();
        chart
            .draw_series(AreaSeries::new(steps, 0.0, GREEN.mix(0.25)).border_style(GREEN))
            .map_err(BenchError::Chart)?;
        let mean = r.req_per_sec;
        chart
            .draw_series(LineSeries::new(
                [(0.0, mean), (x_max, mean)],
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(BenchError::Chart)?;
        Ok(())
    })
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;\
vertical-align:top}th{background:#eee}code{white-space:pre-wrap;word-break:break-all}\
figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}";

/// Renders the page. `command_line` is shown as given (escaped).
pub fn render_html(r: &HttpBenchReport, command_line: &str) -> Result<String, BenchError> {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <title>bench http report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>bench http report</h1>\n<p>Command:</p>\n<pre><code>{}</code></pre>\n\
         <table>\n<tr><th>figure</th><th>value</th></tr>\n",
        escape(command_line)
    );
    for (k, v) in summary_rows(r) {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    page.push_str("</table>\n");
    if let Some(w) = resolution_warning(r) {
        let _ = writeln!(page, "<p><strong>Note:</strong> {}</p>", escape(&w));
    }
    let figures = [
        (
            "Latency histogram",
            "Answers by latency, logarithmic bins from the fastest to the slowest answer.",
            histogram_svg(&r.latencies)?,
        ),
        (
            "Percentile curve",
            "Latency at each percentile; the axis stretches the tail (90 %, 99 %, 99.9 % …).",
            percentile_svg(&r.latencies)?,
        ),
        (
            "Requests per second",
            "Answers completed in each second of the measured phase (a last partial second \
             is scaled to its length, or left out when shorter than half a second); the grey \
             line is the mean rate.",
            rate_svg(r)?,
        ),
    ];
    for (title, caption, svg) in figures {
        let _ = write!(
            page,
            "<figure>\n<h2>{title}</h2>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>\n"
        );
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// Writes the page atomically: a temporary file in the target's directory, synced, then
/// renamed over `path`.
pub fn write_html(path: &Path, r: &HttpBenchReport, command_line: &str) -> Result<(), BenchError> {
    let page = render_html(r, command_line)?;
    let err = |source: std::io::Error| BenchError::Report {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(page.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
