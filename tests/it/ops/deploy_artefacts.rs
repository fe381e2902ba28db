//! The deployment artefacts in `deploy/` against the code: every metric the alert rules and the
//! Grafana dashboard query is one the gateway exports (read from a live `/metrics`), the
//! dashboard is valid JSON, the systemd unit starts the real command, and `serve
//! --check-config` accepts a good configuration and refuses broken ones with exit code 2.
//! (`promtool` and `systemd-analyze` themselves run in `.ci/checks/`.)

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{test as actix_test, App};
use common::{send, Db, Gateway, Req};
use pension_gateway::config::ReplayStoreKind;
use pension_gateway::crypto::SecretKey;

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Metric names the alert rules must reference (so a broken extraction cannot pass by finding
/// nothing). `up` is Prometheus's own and not checked against the exposition.
const ALERT_METRICS: &[&str] = &[
    "gateway_requests_total",
    "gateway_verify_failures_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_keyring_reloads_total",
    "gateway_tls_reloads_total",
    "gateway_tls_certificate_not_after_seconds",
    "gateway_dependency_up",
    "gateway_key_staged_since_seconds",
];

/// The TLS metrics come with the TLS listener; a build or a gateway without it does not export
/// them. They are checked when exported, and otherwise reported as skipped.
fn is_tls_metric(name: &str) -> bool {
    name.starts_with("gateway_tls_")
}

/// Every `gateway_…` identifier in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("gateway_") {
        let start = i + pos;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if before_ok {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Whether the exposition has a sample of `name` (`name value` or `name{labels} value`), or a
/// metric family of that name (a histogram's base name, as the annotations mention it).
fn exported(exposition: &str, name: &str) -> bool {
    exposition.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            || l.strip_prefix("# TYPE ")
                .and_then(|t| t.strip_prefix(name))
                .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// A gateway that has done everything the alerts watch: answered a good query and refused a
/// forged one, loaded a ring with a staged key, reloaded it (once refused), pinged its
/// dependencies (Redis too when `TEST_REDIS_URL` is set). Returns its `/metrics` text.
async fn busy_exposition() -> String {
    let redis = common::redis_url();
    let mut gw = Gateway::start_with(Db::Sqlite, |s| {
        if let Some(url) = &redis {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = url.clone();
            s.replay.key_prefix = format!("deploy-artefacts:{}:", uuid::Uuid::new_v4());
        }
    })
    .await
    .expect("sqlite gateway");
    let public = gw.service().await;
    let ok = send(
        &public,
        &gw.keys,
        Req::query("张三", "11010519491231002X").build(&gw.keys),
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    // Signed over one body, sent with another: the signature does not verify.
    let mut forged = Req::query("张三", "11010519491231002X");
    let auth = forged.authorization(&gw.keys);
    forged.body = Req::query("李四", "440300198503151236").body;
    let refused = send(&public, &gw.keys, forged.build_with_auth(Some(auth))).await;
    assert_eq!(refused.status, 401, "{:?}", refused.json);

    // Bank key v2 staged, then a reload that is refused (a manifest naming a missing file).
    gw.keys.bank.push((2, SecretKey::generate()));
    gw.keys.write_manifest(
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\n\
         [[bank]]\nversion = 2\nstate = \"staged\"\nprivate_key = \"bank-v2.key\"\n\n\
         [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    );
    pension_gateway::ops::reload::reload_keys(&gw.state).expect("staged key loads");
    let staged = gw.state.keyring().staged_since();
    assert_eq!(staged.keys().copied().collect::<Vec<_>>(), vec![2]);
    std::fs::write(
        gw.keys.dir.path().join("keyring.toml"),
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"missing.key\"\n",
    )
    .unwrap();
    assert!(pension_gateway::ops::reload::reload_keys(&gw.state).is_err());

    let st = gw.state.clone();
    let ops = actix_test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let r = actix_test::call_service(
        &ops,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(actix_test::read_body(r).await.to_vec()).unwrap();

    // The values the alerts key on.
    assert!(
        text.contains("gateway_keyring_reloads_total{result=\"refused\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("gateway_dependency_up{dependency=\"database\"} 1"),
        "{text}"
    );
    if redis.is_some() {
        assert!(
            text.contains("gateway_dependency_up{dependency=\"redis\"} 1"),
            "TEST_REDIS_URL is set but Redis did not answer the readiness ping:\n{text}"
        );
    }
    let since = staged[&2];
    assert!(
        text.contains(&format!(
            "gateway_key_staged_since_seconds{{version=\"2\"}} {since}"
        )),
        "{text}"
    );
    assert!(
        text.contains("gateway_request_duration_seconds_count{route=\"account_query\"} 2"),
        "both answers timed in one place:\n{text}"
    );
    text
}

/// Checks that every `gateway_…` name in `names` is exported; returns the TLS names skipped.
fn check_exported(what: &str, names: &BTreeSet<String>, exposition: &str) -> Vec<String> {
    let mut skipped = Vec::new();
    for name in names {
        if exported(exposition, name) {
            continue;
        }
        if is_tls_metric(name) && !exposition.contains(&format!("# HELP {name} ")) {
            skipped.push(name.clone());
            continue;
        }
        panic!("{what} uses {name}, which the gateway does not export:\n{exposition}");
    }
    if !skipped.is_empty() {
        eprintln!(
            "note: {what}: {} not checked — the TLS metrics are not exported by this build or \
             without a [tls] section",
            skipped.join(", ")
        );
    }
    skipped
}

#[actix_web::test]
async fn every_metric_the_alert_rules_use_is_exported() {
    let exposition = busy_exposition().await;
    let rules = std::fs::read_to_string(repo_file("deploy/prometheus/alerts.yml")).unwrap();
    let names = metric_names(&rules);
    for m in ALERT_METRICS {
        assert!(names.contains(*m), "alerts.yml no longer references {m}");
    }
    check_exported("deploy/prometheus/alerts.yml", &names, &exposition);
    // Label values the rules select on, as the code writes them.
    for needle in [
        "gateway_keyring_reloads_total{result=\"refused\"}",
        "gateway_tls_reloads_total{result=\"refused\"}",
        "gateway_dependency_up{dependency=\"database\"}",
        "gateway_dependency_up{dependency=\"redis\"}",
        "gateway_requests_total{status=~\"5..\"}",
        "gateway_requests_total{status=\"503\"}",
    ] {
        assert!(rules.contains(needle), "alerts.yml lost {needle}");
    }
}

#[actix_web::test]
async fn the_dashboard_is_json_and_queries_only_exported_metrics() {
    let exposition = busy_exposition().await;
    let text = std::fs::read_to_string(repo_file("deploy/grafana/pension-gateway.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut exprs = Vec::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("every panel has targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push(
                t["expr"]
                    .as_str()
                    .expect("every target has expr")
                    .to_string(),
            );
        }
    }
    for v in dash["templating"]["list"].as_array().expect("templating") {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let names = metric_names(&exprs.join("\n"));
    for m in [
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_verify_failures_total",
        "gateway_sign_seconds_bucket",
        "gateway_verify_seconds_bucket",
        "gateway_key_versions",
        "gateway_keyring_reloads_total",
        "gateway_dependency_up",
        "gateway_tls_certificate_not_after_seconds",
    ] {
        assert!(names.contains(m), "the dashboard no longer shows {m}");
    }
    check_exported("deploy/grafana/pension-gateway.json", &names, &exposition);
    // Anything else a query names must be a PromQL function or keyword, not a metric.
    for e in &exprs {
        assert!(
            !e.contains("process_") && !e.contains("node_"),
            "unexpected metric family in {e}"
        );
    }
}

#[test]
fn the_systemd_unit_runs_the_real_command_with_hardening() {
    let unit = std::fs::read_to_string(repo_file("deploy/pension-gateway.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "ExecStart=/usr/local/bin/pension-gateway serve --config /etc/pension-gateway/gateway.toml",
        "ExecStartPre=/usr/local/bin/pension-gateway serve --check-config --config /etc/pension-gateway/gateway.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "ReadWritePaths=/var/lib/pension-gateway",
        "SystemCallFilter=@system-service",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "User=pension-gateway",
    ] {
        assert!(has(line), "the unit lacks `{line}`");
    }
    // systemd must wait longer than the gateway's own drain before it kills.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    let drain = pension_gateway::config::Settings::default()
        .server
        .shutdown_timeout_secs;
    assert!(
        stop > drain,
        "TimeoutStopSec={stop} ≤ shutdown_timeout_secs={drain}"
    );
}

/// Runs the binary with `args` and exactly `env`, in an empty directory; returns its exit code,
/// stdout and stderr. Fails if it is still running after 30 s (it would be serving).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`pension-gateway {}` still running after 30 s",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const PEPPER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The example configuration with its `/etc/pension-gateway/` paths pointing into `etc`, which
/// holds a fresh key ring (bank v1 active, v2 staged) and an admin token (mode 0600).
fn example_in(etc: &Path) -> (PathBuf, common::Keys) {
    let mut keys = common::Keys::new();
    keys.bank.push((2, SecretKey::generate()));
    keys.write_manifest(
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n\n\
         [[bank]]\nversion = 2\nstate = \"staged\"\nprivate_key = \"bank-v2.key\"\n\n\
         [[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    );
    std::fs::write(
        etc.join("admin-token"),
        "dGVzdCBhZG1pbiB0b2tlbiwgbm90IGEgc2VjcmV0ISE=\n",
    )
    .unwrap();
    set_mode(&etc.join("admin-token"), 0o600);
    let example = std::fs::read_to_string(repo_file("deploy/gateway.example.toml")).unwrap();
    let text = example
        .replace(
            "/etc/pension-gateway/keys",
            keys.dir.path().to_str().unwrap(),
        )
        .replace(
            "/etc/pension-gateway/",
            &format!("{}/", etc.to_str().unwrap()),
        );
    assert!(!text.contains("/etc/pension-gateway"), "{text}");
    let path = etc.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    (path, keys)
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

#[test]
fn check_config_accepts_the_example_and_names_what_it_checked() {
    let etc = tempfile::tempdir().unwrap();
    let (config, keys) = example_in(etc.path());
    let (code, out, err) = run(
        &[
            "serve",
            "--check-config",
            "--config",
            config.to_str().unwrap(),
        ],
        &[("GATEWAY__ACCOUNTS__ID_PEPPER", PEPPER)],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 1, "one summary line: {out}");
    assert!(out.starts_with("configuration ok: public 0.0.0.0:8080, ops 0.0.0.0:9100, admin 127.0.0.1:9090 (token file ok)"), "{out}");
    assert!(out.contains("database mysql "), "{out}");
    assert!(
        out.contains("replay redis redis://redis.internal:6379"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "key ring {} (engine fast, bank v1 active, v2 staged, WeChat v1 trusted)",
            keys.dir.path().display()
        )),
        "{out}"
    );
    assert!(out.contains(", limits.scope "), "{out}");
    assert!(
        !out.contains(PEPPER) && !out.contains("a-long-random"),
        "{out}"
    );
}

#[test]
fn check_config_refuses_with_exit_2_naming_the_fault() {
    let etc = tempfile::tempdir().unwrap();
    let (config, keys) = example_in(etc.path());
    let cfg = config.to_str().unwrap();
    let args = ["serve", "--check-config", "--config", cfg];
    let pepper = ("GATEWAY__ACCOUNTS__ID_PEPPER", PEPPER);

    // No pepper: the loader refuses.
    let (code, _, err) = run(&args, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("accounts.id_pepper"), "{err}");

    // An admin token others can read.
    set_mode(&etc.path().join("admin-token"), 0o644);
    let (code, _, err) = run(&args, &[pepper]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("admin-token"), "{err}");
    set_mode(&etc.path().join("admin-token"), 0o600);

    // A bank key others can read.
    set_mode(&keys.dir.path().join("bank-v2.key"), 0o644);
    let (code, _, err) = run(&args, &[pepper]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bank-v2.key"), "{err}");
    set_mode(&keys.dir.path().join("bank-v2.key"), 0o600);

    // A database URL without a database, from the environment.
    let (code, _, err) = run(
        &args,
        &[
            pepper,
            ("GATEWAY__DATABASE__URL", "mysql://gw:secret@db:3306"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("names no database"), "{err}");
    assert!(!err.contains("secret"), "password printed: {err}");

    // Two listeners on one address.
    let (code, _, err) = run(
        &args,
        &[pepper, ("GATEWAY__SERVER__OPS_LISTEN", "127.0.0.1:8080")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("server.listen") && err.contains("server.ops_listen"),
        "{err}"
    );

    // A missing SQLite file.
    let (code, _, err) = run(
        &args,
        &[
            pepper,
            ("GATEWAY__DATABASE__URL", "sqlite:///nonexistent/gw.db"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    // And the good one still passes: each refusal above came from its own fault.
    let (code, _, err) = run(&args, &[pepper]);
    assert_eq!(code, Some(0), "{err}");
}

/// The documents an operator copies commands and paths from.
const COPIED_DOCS: &[&str] = &[
    "README.md",
    "docs/deploy.md",
    "docs/key-rotation.md",
    "docs/tls.md",
    "docs/accounts-import.md",
    "docs/partner-channels.md",
    "docs/mysql.md",
    "docs/fleet.md",
    "docs/performance.md",
];

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap()
}

/// Every `/etc/pension-gateway/…` path in `text`, without a trailing `/`, `.` or `.new` (the
/// staging name of a file being replaced).
fn etc_paths(text: &str) -> Vec<String> {
    const PREFIX: &str = "/etc/pension-gateway/";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c)))
            .unwrap_or(tail.len());
        let mut p = tail[..end].trim_end_matches(['/', '.']);
        p = p.strip_suffix(".new").unwrap_or(p);
        if p.len() + 1 > PREFIX.len() {
            out.push(p.to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// The word after each occurrence of `marker` in `text` (up to a space, `:`, backquote or `)`).
fn words_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let tail = &text[i + marker.len()..];
            let end = tail
                .find(|c: char| c.is_whitespace() || ":`)\"'".contains(c))
                .unwrap_or(tail.len());
            &tail[..end]
        })
        .collect()
}

#[test]
fn docs_use_the_example_paths_one_service_user_and_the_real_alert_names() {
    let example = read("deploy/gateway.example.toml");
    let unit = read("deploy/pension-gateway.service");
    let settings: toml::Table = example.parse().unwrap();
    let keys_dir = settings["keys"]["dir"].as_str().unwrap().to_owned();
    let token = settings["server"]["admin_token_file"].as_str().unwrap();
    assert!(token.starts_with("/etc/pension-gateway/"), "{token}");
    let user = words_after(&unit, "\nUser=")[0].to_owned();
    let group = words_after(&unit, "\nGroup=")[0].to_owned();
    let alerts: BTreeSet<String> = words_after(&read("deploy/prometheus/alerts.yml"), "alert: ")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");

    let mut faults = Vec::new();
    let mut sources: Vec<(String, String)> = COPIED_DOCS
        .iter()
        .map(|d| (d.to_string(), read(d)))
        .collect();
    for f in [
        "deploy/pension-gateway.service",
        "deploy/prometheus/alerts.yml",
    ] {
        sources.push((f.to_owned(), read(f)));
    }
    for (doc, text) in &sources {
        for p in etc_paths(text) {
            let known =
                example.contains(&p) || unit.contains(&p) || p.starts_with(&format!("{keys_dir}/"));
            if !known {
                faults.push(format!(
                    "{doc}: {p} is in neither deploy/gateway.example.toml nor the unit"
                ));
            }
        }
        for u in words_after(text, "sudo -u ") {
            if u != user {
                faults.push(format!("{doc}: `sudo -u {u}`; the service user is {user}"));
            }
        }
        for (marker, want) in [(" -o ", &user), ("chown ", &user), (" -g ", &group)] {
            for u in words_after(text, marker) {
                let u = u.split(':').next().unwrap_or(u);
                if !(u == want.as_str() || u == "root" || u.starts_with(['<', '$'])) {
                    faults.push(format!("{doc}: `{marker}{u}`; the service's is {want}"));
                }
            }
        }
        for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            let is_alert = w.len() > "Gateway".len()
                && w.starts_with("Gateway")
                && w["Gateway".len()..].starts_with(|c: char| c.is_ascii_uppercase());
            if is_alert && !alerts.contains(w) {
                faults.push(format!(
                    "{doc}: alert {w} is not in deploy/prometheus/alerts.yml"
                ));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

/// `pension-gateway [options] (db|accounts|keys)` in `line`: the options before the command and
/// the command's first word after it, for each occurrence.
fn bank_commands(line: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (i, _) in line.match_indices("pension-gateway ") {
        let words: Vec<&str> = line[i + "pension-gateway ".len()..]
            .split_whitespace()
            .collect();
        let mut k = 0;
        let mut opts = Vec::new();
        while k < words.len() && words[k].starts_with('-') {
            opts.push(words[k]);
            if matches!(words[k], "--config" | "-c") {
                k += 1;
                opts.push(words.get(k).copied().unwrap_or(""));
            }
            k += 1;
        }
        let Some(cmd) = words.get(k) else { continue };
        let cmd = cmd.trim_matches('`');
        if matches!(cmd, "db" | "accounts" | "keys") {
            let rest = words[k + 1..].join(" ");
            out.push((opts.join(" "), cmd.to_owned(), rest));
        }
    }
    out
}

#[test]
fn every_bank_data_command_the_docs_show_carries_its_configuration() {
    let mut faults = Vec::new();
    for doc in COPIED_DOCS {
        let text = read(doc);
        let mut in_block = false;
        let mut block_configured = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                block_configured = false;
                continue;
            }
            // A block that exports GATEWAY_CONFIG or GATEWAY__* variables configures the
            // commands after it.
            if in_block && line.contains("export GATEWAY") {
                block_configured = true;
            }
            for (opts, cmd, rest) in bank_commands(line) {
                let configured = opts.contains("--config")
                    || opts.contains("--demo")
                    || rest.contains("--demo")
                    || (cmd == "keys" && rest.starts_with("--dir"))
                    || (cmd == "accounts" && rest.starts_with("gen-csv"))
                    // Makes the pepper the configuration will need; reads no bank data.
                    || (cmd == "accounts" && rest.starts_with("gen-pepper"))
                    || (in_block && block_configured);
                if !configured {
                    faults.push(format!("{doc}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        faults.is_empty(),
        "commands on bank data or keys shown without --config (or --demo, keys --dir):\n{}",
        faults.join("\n")
    );
}
