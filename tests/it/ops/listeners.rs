//! The operator's listeners: `/readyz` and `/metrics` only on the ops listener (the public one
//! keeps a `/healthz` that says nothing but "ok"), readiness that a flood cannot turn into
//! database load, and the admin reload behind its bearer token.

use crate::common;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{test, App};
use common::{Db, Gateway};
use pension_gateway::ops::reload::{ReloadTrigger, Reloader};
use pension_gateway::ops::AdminToken;

#[actix_web::test]
async fn readiness_and_metrics_are_off_the_public_listener() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let public = gw.service().await;
    for path in ["/readyz", "/metrics", "/admin/keyring/reload"] {
        let r = test::call_service(&public, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(
            r.status(),
            404,
            "{path} must not answer on the public listener"
        );
    }
    let r = test::call_service(
        &public,
        test::TestRequest::get().uri("/healthz").to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        test::read_body(r).await,
        "ok",
        "/healthz says nothing but ok"
    );

    let st = gw.state.clone();
    let ops = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let r = test::call_service(&ops, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["database"], "ok");
    assert_eq!(body["active_bank_key_version"], 1);
    let r = test::call_service(&ops, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(
        text.contains("gateway_keyring_reloads_total") || text.contains("gateway_"),
        "{text}"
    );
    let r = test::call_service(&ops, test::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(r.status(), 200);
}

#[actix_web::test]
async fn a_readiness_flood_costs_one_database_ping_per_second() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let st = gw.state.clone();
    let ops = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let before = gw.state.readiness().pings();
    let started = Instant::now();
    const POLLS: u64 = 2_000;
    for _ in 0..POLLS {
        let r =
            test::call_service(&ops, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(r.status(), 200);
    }
    let secs = started.elapsed().as_secs();
    let pings = gw.state.readiness().pings() - before;
    // One ping per started second of the flood (and one for a boundary crossed).
    assert!(
        pings <= secs + 2,
        "{POLLS} polls in {secs} s made {pings} database pings"
    );
    println!(
        "{POLLS} /readyz polls in {:?}: {pings} database pings",
        started.elapsed()
    );
}

#[actix_web::test]
async fn admin_reload_requires_the_bearer_token() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let token = Arc::new(AdminToken::new(b"the-admin-token"));
    let reloader = Arc::new(Reloader::new(
        gw.state.clone(),
        gw.keys.dir.path().join("keyring.toml"),
        None,
        Some(token),
    ));
    let admin = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_admin(cfg, reloader)),
    )
    .await;
    let post = || test::TestRequest::post().uri("/admin/keyring/reload");
    let r = test::call_service(&admin, post().to_request()).await;
    assert_eq!(r.status(), 401, "no token");
    assert_eq!(r.headers().get("WWW-Authenticate").unwrap(), "Bearer");
    for wrong in [
        "Bearer the-admin-tokeN",
        "Bearer the-admin-token2",
        "Basic the-admin-token",
        "the-admin-token",
    ] {
        let r = test::call_service(
            &admin,
            post().insert_header(("Authorization", wrong)).to_request(),
        )
        .await;
        assert_eq!(r.status(), 401, "{wrong}");
    }
    let reloads_before = gw.state.metrics().render();
    let r = test::call_service(
        &admin,
        post()
            .insert_header(("Authorization", "Bearer the-admin-token"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["status"], "reloaded");
    assert_ne!(
        reloads_before,
        gw.state.metrics().render(),
        "the reload was counted"
    );
}

#[core::prelude::v1::test]
fn the_admin_token_file_follows_the_secret_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    std::fs::write(&path, "tok-123-Vb8Nm3Kj6Hg1Fd4Sa9Pl2Ok7Ij5Uh0YtXqW\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AdminToken::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("admin.token"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let token = AdminToken::from_file(&path).unwrap();
    assert!(token.accepts(Some(b"Bearer tok-123-Vb8Nm3Kj6Hg1Fd4Sa9Pl2Ok7Ij5Uh0YtXqW")));
    assert_eq!(format!("{token:?}"), "AdminToken(***)");
}

/// The value of the sample `series` (name and labels, as exposed) in a `/metrics` text.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Writes `bytes` to `path` as a `keys` command does: a new file renamed over the old one.
fn replace_file(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

#[actix_web::test]
async fn one_reload_request_is_one_reload_and_the_watch_does_not_repeat_it() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let manifest = gw.keys.dir.path().join("keyring.toml");
    let reloader = Reloader::new(gw.state.clone(), manifest.clone(), None, None);
    let ok = "gateway_keyring_reloads_total{result=\"ok\"}";
    assert_eq!(sample(&gw.state.metrics().render(), ok), Some(0.0));
    assert!(reloader.poll().is_none(), "nothing changed yet");
    // A `keys` command rewrites the manifest, then the operator sends SIGHUP (or calls admin).
    let text = std::fs::read(&manifest).unwrap();
    replace_file(&manifest, &text);
    let report = reloader.reload_all(ReloadTrigger::Signal);
    assert!(report.refused().is_empty(), "{report:?}");
    // The watch's next tick sees the manifest as it was loaded: no second reload.
    assert!(reloader.poll().is_none(), "the watch reloaded again");
    assert_eq!(sample(&gw.state.metrics().render(), ok), Some(1.0));
    // A change nobody reloaded is the watch's to pick up, once.
    replace_file(&manifest, &text);
    let report = reloader.poll().expect("the watch sees the change");
    assert_eq!(report.trigger, ReloadTrigger::FileWatch);
    assert!(report.keys.as_ref().is_some_and(|r| r.is_ok()));
    assert!(reloader.poll().is_none());
    assert_eq!(sample(&gw.state.metrics().render(), ok), Some(2.0));
}

#[actix_web::test]
async fn a_replaced_admin_token_file_takes_effect_without_a_restart() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    replace_file(&path, b"first-token-Qm7Xz2Lp9Wv4Kt8Rb3Nc6Hd1Fg5Js0Ya\n");
    let token = Arc::new(AdminToken::from_file(&path).unwrap());
    let reloader = Arc::new(Reloader::new(
        gw.state.clone(),
        gw.keys.dir.path().join("keyring.toml"),
        None,
        Some(Arc::clone(&token)),
    ));
    let r2 = Arc::clone(&reloader);
    let admin = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_admin(cfg, r2)),
    )
    .await;
    let call = |bearer: &str| {
        test::TestRequest::post()
            .uri("/admin/keyring/reload")
            .insert_header(("Authorization", format!("Bearer {bearer}")))
            .to_request()
    };
    replace_file(&path, b"second-token-Ue4Ti9Ob2Pm7Qs1Vw6Xz3Cn8Lk5Hg0Jd\n");
    // The admin call (made with the token still in force) reloads the token file too.
    let r = test::call_service(&admin, call("first-token-Qm7Xz2Lp9Wv4Kt8Rb3Nc6Hd1Fg5Js0Ya")).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["admin_token"]["status"], "reloaded", "{body}");
    assert_eq!(body["admin_token"]["changed"], true, "{body}");
    assert_eq!(
        test::call_service(&admin, call("first-token-Qm7Xz2Lp9Wv4Kt8Rb3Nc6Hd1Fg5Js0Ya"))
            .await
            .status(),
        401
    );
    assert_eq!(
        test::call_service(
            &admin,
            call("second-token-Ue4Ti9Ob2Pm7Qs1Vw6Xz3Cn8Lk5Hg0Jd")
        )
        .await
        .status(),
        200
    );
    // The file watch picks a replaced token up as well.
    replace_file(&path, b"third-token-Rf6Ds1Ga9Hk4Jl7Zx2Cv5Bn8Mq3Wo0Ey\n");
    let report = reloader.poll().expect("token file change seen");
    assert!(matches!(report.admin_token, Some(Ok(true))), "{report:?}");
    assert!(report.keys.is_none(), "only the token changed");
    assert!(token.accepts(Some(b"Bearer third-token-Rf6Ds1Ga9Hk4Jl7Zx2Cv5Bn8Mq3Wo0Ey")));
    // A token file that breaks the rules is refused and the running token stays.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(token.reload().is_err());
        assert!(token.accepts(Some(b"Bearer third-token-Rf6Ds1Ga9Hk4Jl7Zx2Cv5Bn8Mq3Wo0Ey")));
    }
}

#[actix_web::test]
async fn a_refused_reload_answers_409_naming_what_was_refused() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let manifest = gw.keys.dir.path().join("keyring.toml");
    let reloader = Arc::new(Reloader::new(
        gw.state.clone(),
        manifest.clone(),
        None,
        Some(Arc::new(AdminToken::new(b"tok"))),
    ));
    let admin = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_admin(cfg, reloader)),
    )
    .await;
    replace_file(&manifest, b"this is not a manifest\n");
    let r = test::call_service(
        &admin,
        test::TestRequest::post()
            .uri("/admin/keyring/reload")
            .insert_header(("Authorization", "Bearer tok"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["status"], "refused", "{body}");
    assert_eq!(body["refused"], serde_json::json!(["keys"]), "{body}");
    assert_eq!(body["keys"]["status"], "refused", "{body}");
    assert_eq!(body["active_bank_key_version"], 1, "the running set stays");
}

/// The value of the sample of `name` whose labels include every `label="value"` pair of
/// `labels`, from a `/metrics` text.
fn labelled(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let pairs: Vec<&str> = set.split(',').collect();
        labels
            .iter()
            .all(|(k, v)| pairs.contains(&format!("{k}=\"{v}\"").as_str()))
            .then(|| value.trim().parse().ok())?
    })
}

#[actix_web::test]
async fn request_and_key_version_metrics_are_exported_at_zero_from_the_start() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let text = gw.state.metrics().render();
    let route = [("route", "account_query")];
    for (status, code) in [
        ("200", "OK"),
        ("500", "SYSTEM_ERROR"),
        ("503", "SYSTEM_ERROR"),
    ] {
        let labels = [route[0], ("status", status), ("code", code)];
        assert_eq!(
            labelled(&text, "gateway_requests_total", &labels),
            Some(0.0),
            "{status} {code}:\n{text}"
        );
    }
    assert_eq!(
        labelled(&text, "gateway_request_duration_seconds_count", &route),
        Some(0.0)
    );
    // Every reason the WeChat channel counts, named here so a reason dropped from the list fails.
    for reason in [
        "method",
        "header",
        "body",
        "concurrency",
        "timestamp",
        "signature_encoding",
        "unknown_version",
        "signature",
        "replay",
        "replay_store",
    ] {
        assert_eq!(
            labelled(
                &text,
                "gateway_verify_failures_total",
                &[("reason", reason)]
            ),
            Some(0.0),
            "{reason}"
        );
    }
    let ring = gw.state.keyring().snapshot();
    for k in ring.trusted_wechat_keys() {
        let v = k.version.to_string();
        let labels = [("version", v.as_str())];
        assert_eq!(
            labelled(&text, "gateway_wechat_key_requests_total", &labels),
            Some(0.0),
            "wechat v{v}"
        );
    }
    for k in ring.bank_keys() {
        let v = k.version.to_string();
        let labels = [("version", v.as_str())];
        assert_eq!(
            labelled(&text, "gateway_bank_key_signatures_total", &labels),
            Some(0.0),
            "bank v{v}"
        );
    }
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("commit", pension_gateway::metrics::BUILD_COMMIT),
        ("engine", gw.state.engine().name()),
        ("backend", "sqlite"),
    ];
    assert_eq!(
        labelled(&text, "gateway_build_info", &build),
        Some(1.0),
        "{text}"
    );
    assert!(!pension_gateway::metrics::BUILD_COMMIT.is_empty());
}

#[actix_web::test]
async fn key_versions_count_their_traffic_and_the_admin_endpoint_reports_it() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let p = &pension_gateway::accounts::demo::DEMO_PEOPLE[0];
    let r = common::send(
        &svc,
        &gw.keys,
        common::Req::query(p.name, p.id_number).build(&gw.keys),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let text = gw.state.metrics().render();
    assert_eq!(
        labelled(
            &text,
            "gateway_wechat_key_requests_total",
            &[("version", "1")]
        ),
        Some(1.0),
        "{text}"
    );
    let bank = r.signed_by.expect("signed").to_string();
    assert_eq!(
        labelled(
            &text,
            "gateway_bank_key_signatures_total",
            &[("version", bank.as_str())]
        ),
        Some(1.0),
        "{text}"
    );
    let reloader = Arc::new(Reloader::new(
        gw.state.clone(),
        gw.keys.dir.path().join("keyring.toml"),
        None,
        Some(Arc::new(AdminToken::new(b"tok"))),
    ));
    let admin = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_admin(cfg, reloader)),
    )
    .await;
    let get = || test::TestRequest::get().uri("/admin/keyring/traffic");
    assert_eq!(
        test::call_service(&admin, get().to_request())
            .await
            .status(),
        401
    );
    let r = test::call_service(
        &admin,
        get()
            .insert_header(("Authorization", "Bearer tok"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let t: pension_gateway::ops::traffic::KeyTraffic = test::read_body_json(r).await;
    let w1 = t.wechat.iter().find(|v| v.version == 1).unwrap();
    assert_eq!((w1.count, w1.last_seen), (1, Some(common::NOW)));
    let b = t
        .bank
        .iter()
        .find(|v| v.version.to_string() == bank)
        .unwrap();
    assert_eq!((b.count, b.last_seen), (1, Some(common::NOW)));
    assert!(
        t.bank
            .iter()
            .filter(|v| v.count == 0)
            .all(|v| v.last_seen.is_none()),
        "{t:?}"
    );
}

/// `process_cpu_seconds_total` to the clock tick: after burning CPU until the kernel's count
/// is not a whole number of seconds, the exposed value is not a whole number either (the
/// `prometheus` crate's collector truncated it).
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn process_cpu_seconds_are_exposed_to_the_clock_tick() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    // The kernel counts in ticks (1/100 s); the old collector printed whole seconds. A value
    // that lands on a whole second by chance is tried again after more CPU (bounded).
    let mut seen = Vec::new();
    let mut x = 0u64;
    for _ in 0..5 {
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let text = gw.state.metrics().render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("process_cpu_seconds_total"))
            .collect();
        assert_eq!(lines.len(), 1, "one series: {lines:?}");
        let value: f64 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
        seen.push(value);
        if value.fract() != 0.0 {
            break;
        }
    }
    let value = *seen.last().unwrap();
    assert!(value > 0.0 && value.fract() != 0.0, "{seen:?}");
}

/// A `Write` that keeps what the log formatter wrote.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_web::test]
async fn reload_logs_carry_values_and_their_trigger_in_json() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let dir = pension_gateway::keyring::admin::KeyDir::new(
        gw.keys.dir.path().to_path_buf(),
        gw.state.engine(),
        b"1234567812345678",
    );
    let v = dir.generate().unwrap();
    dir.rollout(v, 10).unwrap();
    let reloader = Reloader::new(
        gw.state.clone(),
        gw.keys.dir.path().join("keyring.toml"),
        None,
        None,
    );
    let capture = Capture::default();
    let sink = capture.clone();
    // The production JSON format (`log.format = "json"`, cli::init_logging).
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        assert!(reloader
            .reload_all(ReloadTrigger::Signal)
            .refused()
            .is_empty());
    });
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|j| j["message"] == "key ring reloaded")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line["trigger"], "sighup", "{line}");
    assert_eq!(line["rollout_version"], v, "{line}");
    assert_eq!(line["rollout_percent"], 10, "{line}");
    assert_eq!(line["active"], 1, "{line}");
    assert!(
        !text.contains("Some("),
        "Rust debug text in the log: {text}"
    );
}

/// Every field of every `tracing` call in the library is a value (`field = value`, `%display`),
/// never Rust debug text (`?value`: `Some(Rollout { version: 2, percent: 10 })`), which a log
/// collector cannot index.
#[core::prelude::v1::test]
fn no_log_field_is_rust_debug_text() {
    fn visit(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                visit(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    visit(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for level in ["trace", "debug", "info", "warn", "error"] {
            let open = format!("tracing::{level}!(");
            for (at, _) in text.match_indices(&open) {
                let call = &text[at..];
                let end = call.find(");").unwrap_or(call.len());
                let call: String = call[..end].split_whitespace().collect::<Vec<_>>().join(" ");
                // Outside string literals: drop everything between quotes.
                let code: String = call.split('"').step_by(2).collect::<Vec<_>>().join("\"\"");
                if code.contains("= ?") || code.contains(", ?") || code.contains("(?") {
                    found.push(format!("{}: {call}", f.display()));
                }
                // A field named `target` repeats the JSON line's own `target` key (the module),
                // which a collector reads as a duplicate key.
                if code.contains("( target =")
                    || code.contains("(target =")
                    || code.contains(", target =")
                {
                    found.push(format!("{}: field `target`: {call}", f.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "debug-formatted or `target` log fields:\n{}",
        found.join("\n")
    );
}
