//! `bench http`'s figures and report: percentiles, the histogram and percentile curve, the
//! rate per second, CPU per request from two `/metrics` scrapes and from `/proc/<pid>/stat`
//! (known text vectors), the crypto floor arithmetic, and the HTML page (self-contained, well
//! formed; opened in headless Chromium when `TEST_CHROMIUM_BIN` is set).

use crate::common;

use std::collections::BTreeMap;

use bench::cpu::{
    cpu_per_request, parse_process_cpu_seconds, proc_stat_cpu_seconds, CryptoFloor, ServerCpu,
};
use bench::http::HttpBenchReport;
use bench::latency::{latency_bins, percentile_curve, percentiles, rate_per_second};
use bench::report::{render_html, text_summary, write_html};

fn hist(values: impl IntoIterator<Item = u64>) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for v in values {
        h.record(v).unwrap();
    }
    h
}

#[test]
fn percentiles_of_a_known_distribution() {
    // 1 µs … 1000 µs, once each: the q-quantile is q × 1000 µs.
    let p = percentiles(&hist(1..=1000));
    assert_eq!(p.p50_ms, 0.5);
    assert_eq!(p.p90_ms, 0.9);
    assert_eq!(p.p99_ms, 0.99);
    assert_eq!(p.p999_ms, 0.999);
    assert_eq!(p.max_ms, 1.0);
    // 999 fast answers and one slow one: only the maximum sees it.
    let p = percentiles(&hist(std::iter::repeat_n(200, 999).chain([50_000])));
    assert_eq!((p.p50_ms, p.p99_ms, p.p999_ms), (0.2, 0.2, 0.2));
    assert!((p.max_ms - 50.0).abs() < 0.05, "{p:?}");
    assert_eq!(percentiles(&hist([])).max_ms, 0.0);
}

#[test]
fn histogram_bins_hold_every_answer_once() {
    let h = hist((1..=5000).map(|i| 100 + (i * i) % 20_000));
    let bins = latency_bins(&h, 40);
    assert_eq!(bins.len(), 40);
    assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), h.len());
    assert!(bins.first().unwrap().lo_ms <= 0.101);
    assert!(bins.last().unwrap().hi_ms >= h.max() as f64 / 1000.0);
    for w in bins.windows(2) {
        assert!((w[0].hi_ms - w[1].lo_ms).abs() < 1e-9, "contiguous edges");
        assert!(w[0].lo_ms < w[0].hi_ms);
    }
    // One distinct value: one bar with everything.
    let one = latency_bins(&hist([700; 10]), 40);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].count, 10);
    assert!(latency_bins(&hist([]), 40).is_empty());
}

#[test]
fn percentile_curve_rises_to_the_maximum() {
    let h = hist((1..=10_000).map(|i| i % 997 + 1).chain([90_000]));
    let c = percentile_curve(&h);
    assert!(c.len() > 20);
    for w in c.windows(2) {
        assert!(w[0].0 <= w[1].0 && w[0].1 <= w[1].1, "{w:?}");
    }
    let (q, ms) = *c.last().unwrap();
    assert!((q - (1.0 - 1.0 / h.len() as f64)).abs() < 1e-12);
    assert!((ms - h.max() as f64 / 1000.0).abs() < 1e-9);
    assert!(c.iter().all(|&(q, _)| q < 1.0));
}

#[test]
fn rate_per_second_scales_or_drops_the_partial_second() {
    assert_eq!(
        rate_per_second(&[100, 200, 50], 2.5),
        vec![(0.0, 100.0), (1.0, 200.0), (2.0, 100.0)]
    );
    assert_eq!(
        rate_per_second(&[100, 200, 5], 2.2),
        vec![(0.0, 100.0), (1.0, 200.0)]
    );
    assert!(rate_per_second(&[], 0.0).is_empty());
}

/// Two scrapes of the ops `/metrics` around a measured phase (the process collector's lines,
/// between the gateway's own).
const SCRAPE_BEFORE: &str = "\
# HELP gateway_requests_total Requests answered, by route, HTTP status and public code
# TYPE gateway_requests_total counter
gateway_requests_total{code=\"0\",route=\"wechat\",status=\"200\"} 2000
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 3
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1048576
";
const SCRAPE_AFTER: &str = "\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 15
";

#[test]
fn cpu_per_request_from_two_metrics_scrapes() {
    let before = parse_process_cpu_seconds(SCRAPE_BEFORE).unwrap();
    let after = parse_process_cpu_seconds(SCRAPE_AFTER).unwrap();
    assert_eq!((before, after), (3.0, 15.0));
    // 12 s over 20,000 answers = 600 µs each; whole-second steps: ± 50 µs.
    let (per, pm) = cpu_per_request(before, after, 20_000, 1.0).unwrap();
    assert!((per - 600.0).abs() < 1e-9 && (pm - 50.0).abs() < 1e-9);
    // Labels, a timestamp, and names that only start like it.
    assert_eq!(
        parse_process_cpu_seconds("process_cpu_seconds_total{a=\"}\"} 1.5 1700000000\n"),
        None,
        "a brace inside a label value is not handled and must not produce a wrong number"
    );
    assert_eq!(
        parse_process_cpu_seconds("process_cpu_seconds_total{job=\"g\"} 1.5 1700000000\n"),
        Some(1.5)
    );
    assert_eq!(
        parse_process_cpu_seconds("process_cpu_seconds_total_other 9\n# x\n"),
        None
    );
    assert_eq!(
        parse_process_cpu_seconds("gateway_requests_total 4\n"),
        None
    );
    assert_eq!(
        parse_process_cpu_seconds("process_cpu_seconds_total NaNx\n"),
        None
    );
    // Nothing answered, or a restarted server: no figure.
    assert_eq!(cpu_per_request(3.0, 15.0, 0, 1.0), None);
    assert_eq!(cpu_per_request(15.0, 3.0, 100, 1.0), None);
}

#[test]
fn proc_stat_line_gives_user_plus_system_seconds() {
    // A real line's shape (Linux 6.x, 52 fields) with a command name holding spaces and
    // parentheses; utime 1234 and stime 266 ticks.
    let line = "20307 (pension (gw) 1) S 20305 20305 6751 0 -1 4194304 99 0 0 0 1234 266 0 0 \
                20 0 1 0 38594 3133440 413 18446744073709551615 94338768543744 94338768563625 \
                140731376494736 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94338768579632 94338768581248 \
                94338857213952 140731376503522 140731376503542 140731376503542 140731376504811 0\n";
    if cfg!(target_os = "linux") {
        assert_eq!(proc_stat_cpu_seconds(line, 100), Some(15.0));
        assert_eq!(proc_stat_cpu_seconds(line, 1000), Some(1.5));
        assert_eq!(proc_stat_cpu_seconds(line, 0), None);
        for bad in ["", "(x) S 1", "1 (x)", "1 (x) ", "1 (x)S 1 2", "x(y) S"] {
            assert_eq!(proc_stat_cpu_seconds(bad, 100), None, "{bad:?}");
        }
        // Two readings around a phase: 1500 → 1620 ticks over 2,000 answers = 600 µs ± 5 µs.
        let later = line.replace(" 1234 266 ", " 1330 290 ");
        let (a, b) = (
            proc_stat_cpu_seconds(line, 100).unwrap(),
            proc_stat_cpu_seconds(&later, 100).unwrap(),
        );
        let (per, pm) = cpu_per_request(a, b, 2_000, 0.01).unwrap();
        assert!(
            (per - 600.0).abs() < 1e-6 && (pm - 5.0).abs() < 1e-9,
            "{per} {pm}"
        );
    } else {
        assert_eq!(proc_stat_cpu_seconds(line, 100), None);
    }
}

#[test]
fn crypto_floor_from_rates() {
    let f = CryptoFloor::from_rates("fast", 50_000.0, 40_000.0);
    assert_eq!((f.sign_us, f.verify_us, f.floor_us), (20.0, 25.0, 45.0));
    assert!(CryptoFloor::from_rates("x", 0.0, 1.0)
        .floor_us
        .is_infinite());
}

#[actix_web::test]
async fn ops_metrics_export_process_cpu_seconds() {
    use actix_web::{test, App};
    let gw = common::Gateway::start(common::Db::Sqlite).await.unwrap();
    let st = gw.state.clone();
    let ops = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let r = test::call_service(&ops, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    if cfg!(target_os = "linux") {
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(parse_process_cpu_seconds(&text).is_some_and(|s| s >= 0.0));
        assert!(
            !text.contains("gateway_process_"),
            "standard names, no prefix"
        );
    }
    assert!(text.contains("gateway_"), "the gateway's own metrics stay");
}

/// A report as a run of 3.4 s would leave it, with synthetic latencies.
fn synthetic_report() -> HttpBenchReport {
    let latencies = hist((0..6_800u64).map(|i| 800 + (i * 7919) % 4_000 + (i % 97) * 40));
    let p = percentiles(&latencies);
    HttpBenchReport {
        requests: 6_800,
        warmup_requests: 500,
        presign_seconds: 0.4,
        seconds: 3.4,
        req_per_sec: 2_000.0,
        offered_rate: None,
        schedule_lag_p99_ms: None,
        schedule_lag_max_ms: None,
        p50_ms: p.p50_ms,
        p90_ms: p.p90_ms,
        p99_ms: p.p99_ms,
        p999_ms: p.p999_ms,
        max_ms: p.max_ms,
        by_status: BTreeMap::from([(200, 6_800)]),
        transport_errors: 0,
        bad_signatures: 0,
        failed_request_ids: Vec::new(),
        crypto_floor: Some(CryptoFloor::from_rates("fast", 50_000.0, 40_000.0)),
        server_cpu: Some(ServerCpu {
            source: "process_cpu_seconds_total from http://127.0.0.1:9100/metrics".into(),
            cpu_seconds: 4.0,
            per_request_us: 588.2,
            uncertainty_us: 147.1,
        }),
        server_cpu_error: None,
        floor_ratio: Some(588.2 / 45.0),
        per_second: vec![1_900, 2_100, 2_050, 750],
        latencies,
    }
}

/// Every `src`/`href` of the page (any namespace), and the elements that would load something.
fn external_references(doc: &roxmltree::Document) -> Vec<String> {
    let mut found = Vec::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name().to_ascii_lowercase();
        if matches!(
            tag.as_str(),
            "script" | "link" | "img" | "iframe" | "object" | "embed" | "image" | "use"
        ) {
            found.push(format!("<{tag}>"));
        }
        for a in n.attributes() {
            let name = a.name().to_ascii_lowercase();
            if (name == "src" || name == "href") && !a.value().starts_with('#') {
                found.push(format!("{name}={}", a.value()));
            }
        }
    }
    found
}

#[test]
fn html_report_is_self_contained_and_well_formed() {
    let r = synthetic_report();
    let cmd = "pension-gateway bench http --report 'a <b> & c.html'";
    let page = render_html(&r, cmd).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 3, "three charts");
    let lower = page.to_ascii_lowercase();
    for needle in [
        "<script",
        "<link",
        "@import",
        "url(",
        "src=\"http",
        "href=\"http",
    ] {
        assert!(!lower.contains(needle), "{needle} in the page");
    }
    // Well formed (XML-strict, stricter than an HTML parser) and nothing to fetch.
    let doc = roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the page parses as XHTML");
    assert_eq!(doc.root_element().tag_name().name(), "html");
    assert_eq!(external_references(&doc), Vec::<String>::new());
    // The command line is shown escaped, the summary table carries the figures.
    let code = doc
        .descendants()
        .find(|n| n.has_tag_name("code"))
        .and_then(|n| n.text())
        .unwrap();
    assert_eq!(code, "pension-gateway bench http --report 'a <b> & c.html'");
    let table: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for figure in [
        "2000 req/s",
        "45.0 µs",
        "588.2 ± 147.1 µs/request",
        "13.07×",
        "p99.9",
    ] {
        assert!(table.contains(figure), "{figure} missing");
    }
    // The whole-second resolution is a quarter of the figure here: the page says so.
    assert!(page.contains("--server-pid"));
    assert!(text_summary(&r).contains("note: "));

    // Written atomically: the file appears whole and no temporary file is left beside it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, "old").unwrap();
    write_html(&path, &r, cmd).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), page);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn html_report_of_an_empty_run_still_renders() {
    let mut r = synthetic_report();
    r.latencies = hist([]);
    r.per_second.clear();
    r.server_cpu = None;
    r.server_cpu_error = Some("server CPU: http://127.0.0.1:1/metrics: refused".into());
    r.crypto_floor = None;
    r.floor_ratio = None;
    let page = render_html(&r, "x").unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    assert!(page.contains("not measured: server CPU"));
}

/// Opens the page in headless Chromium (`TEST_CHROMIUM_BIN`) and checks the browser rendered
/// the three charts: `--dump-dom` prints the DOM after parsing, and a screenshot is taken.
#[test]
fn html_report_opens_in_headless_chromium() {
    let Ok(bin) = std::env::var("TEST_CHROMIUM_BIN") else {
        common::skips::not_run("TEST_CHROMIUM_BIN", "headless Chromium check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    write_html(&page, &synthetic_report(), "pension-gateway bench http").unwrap();
    let url = format!("file://{}", page.display());
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("profile");
    let common_args = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let dom = std::process::Command::new(&bin)
        .args(&common_args)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 3, "{dom}");
    assert!(dom.contains("bench http report"));
    let out = std::process::Command::new(&bin)
        .args(&common_args)
        .arg("--window-size=1000,2400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 20_000, "a page with charts, not a blank one");
}

/// `--rate`: the measured phase is paced (open loop). Request i is due at start + i/rate, so 400
/// requests at 200/s cannot finish before 1.995 s however fast the server is; every answer is a
/// verified 200 and the report names the offered rate.
#[test]
fn open_loop_rate_paces_the_measured_phase() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let token_file = tmp.path().join("admin.token");
    std::fs::write(
        &token_file,
        "dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let db = format!("sqlite://{}", tmp.path().join("bench.db").display());
    let log = tmp.path().join("serve.log");
    let mut server = Command::new(common::process::BIN)
        .args(["serve", "--demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("GATEWAY_CONFIG")
        .env("GATEWAY__DATABASE__URL", &db)
        .env("GATEWAY__LOG__LEVEL", "warn")
        .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY__SERVER__OPS_LISTEN", "")
        .env("GATEWAY__SERVER__ADMIN_LISTEN", "")
        .env("GATEWAY__SERVER__ADMIN_TOKEN_FILE", &token_file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::process::http_get(port, "/healthz").is_none() {
        if let Some(st) = server.try_wait().unwrap() {
            panic!(
                "serve --demo exited ({st}): {}",
                common::process::log_tail(&log, 20)
            );
        }
        assert!(
            std::time::Instant::now() < until,
            "serve --demo did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = Command::new(common::process::BIN)
        .args(["bench", "http", "--url"])
        .arg(format!("http://127.0.0.1:{port}/v1/pension/account"))
        .args([
            "--rate",
            "200",
            "--requests",
            "400",
            "--warmup",
            "20",
            "--concurrency",
            "8",
        ])
        .args([
            "--no-server-cpu",
            "--floor-seconds",
            "0",
            "--output",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "bench http failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["offered_rate"], 200.0, "{r}");
    assert_eq!(r["by_status"]["200"], 400, "{r}");
    assert_eq!(r["bad_signatures"], 0, "{r}");
    assert!(r["schedule_lag_max_ms"].as_f64().is_some(), "{r}");
    let secs = r["seconds"].as_f64().unwrap();
    assert!(
        secs >= 1.99,
        "400 requests at 200/s took only {secs} s: not paced"
    );
    assert!(secs < 30.0, "{secs} s");
}
