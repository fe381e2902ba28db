//! Settings: defaults, file, environment overrides, validation naming the key, redaction.

use pension_gateway::config::{redact_url, LogFormat, ReplayStoreKind, Settings, DEMO_PEPPER_HEX};
use pension_gateway::crypto::EngineKind;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A change that breaks one setting.
type Breaks = Box<dyn Fn(&mut Settings)>;

const PEPPER: &str = "0011223344556677889900112233445566778899001122334455667788990011";

#[test]
fn file_then_environment_override_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, format!("[database]\nurl = \"sqlite://x.db\"\n[accounts]\nid_pepper = \"{PEPPER}\"\n[wechat]\nclock_skew_secs = 120\n")).unwrap();
    let s = Settings::load(
        Some(&path),
        Settings::default(),
        env(&[
            ("GATEWAY__DATABASE__URL", "mysql://u:secret@db:3306/bank"),
            ("GATEWAY__WECHAT__EXTENDED_AUTH_CODES", "true"),
            ("OTHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(s.database.url, "mysql://u:secret@db:3306/bank");
    assert_eq!(s.wechat.clock_skew_secs, 120);
    assert!(s.wechat.extended_auth_codes);
    assert_eq!(s.wechat.max_body_bytes, 65536);
    let shown = format!("{s:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(!shown.contains(PEPPER), "{shown}");
}

#[test]
fn validation_names_the_key() {
    let base = || {
        let mut s = Settings::default();
        s.accounts.id_pepper = PEPPER.into();
        s
    };
    let cases: Vec<(&str, Breaks)> = vec![
        (
            "wechat.route",
            Box::new(|s| s.wechat.route = "no-slash".into()),
        ),
        (
            "wechat.replay_window_secs",
            Box::new(|s| s.wechat.replay_window_secs = 100),
        ),
        (
            "wechat.clock_skew_secs",
            Box::new(|s| s.wechat.clock_skew_secs = 0),
        ),
        (
            "wechat.max_body_bytes",
            Box::new(|s| s.wechat.max_body_bytes = 0),
        ),
        (
            "accounts.id_pepper",
            Box::new(|s| s.accounts.id_pepper = "abcd".into()),
        ),
        (
            "accounts.id_pepper",
            Box::new(|s| s.accounts.id_pepper = DEMO_PEPPER_HEX.into()),
        ),
        (
            "database.max_connections",
            Box::new(|s| s.database.max_connections = 0),
        ),
        (
            "server.ops_listen",
            Box::new(|s| s.server.ops_listen = "nowhere".into()),
        ),
        (
            "server.header_timeout_ms",
            Box::new(|s| s.server.header_timeout_ms = 99),
        ),
        (
            "server.body_timeout_ms",
            Box::new(|s| s.server.body_timeout_ms = 120_001),
        ),
        (
            "server.admin_token_file",
            Box::new(|s| s.server.admin_token_file = Some("".into())),
        ),
    ];
    for (key, breaks) in cases {
        let mut s = base();
        breaks(&mut s);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    base().validate().unwrap();
    // The demo pepper is fine in demo mode.
    Settings::demo().validate().unwrap();
}

#[test]
fn unknown_keys_and_bad_env_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, "[database]\nurll = \"typo\"\n").unwrap();
    let err = Settings::load(Some(&path), Settings::demo(), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("urll"), "{err}");
    assert!(Settings::load(None, Settings::demo(), env(&[("GATEWAY__DATABASE", "x")])).is_err());
}

#[test]
fn redacts_passwords_in_urls() {
    assert_eq!(
        redact_url("mysql://root:pw@127.0.0.1:3306/test"),
        "mysql://root:***@127.0.0.1:3306/test"
    );
    assert_eq!(
        redact_url("mysql://root@127.0.0.1/test"),
        "mysql://root@127.0.0.1/test"
    );
    assert_eq!(
        redact_url("sqlite://data/gateway.db"),
        "sqlite://data/gateway.db"
    );
}

fn prod_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e = env(pairs);
    e.push(("GATEWAY__ACCOUNTS__ID_PEPPER".into(), PEPPER.into()));
    e
}

#[test]
fn environment_values_take_the_type_of_their_field() {
    let s = Settings::load(
        None,
        Settings::default(),
        prod_env(&[
            // Digit-only text stays text.
            ("GATEWAY__WECHAT__SIGNER_ID", "1234567812345678"),
            ("GATEWAY__REPLAY__KEY_PREFIX", "0042"),
            // Booleans, either case.
            ("GATEWAY__WECHAT__EXTENDED_AUTH_CODES", "TRUE"),
            ("GATEWAY__REPLAY__FAIL_OPEN", "false"),
            // Integers, signed and unsigned fields.
            ("GATEWAY__WECHAT__CLOCK_SKEW_SECS", "120"),
            ("GATEWAY__WECHAT__REPLAY_WINDOW_SECS", "300"),
            ("GATEWAY__LIMITS__MAX_CONCURRENT", "7"),
            // Lists.
            ("GATEWAY__WECHAT__ACCEPTED_SCHEMES", "[A, B-2,123]"),
            ("GATEWAY__PARTNERS__OPEN_PLATFORM_ACCOUNT_SERVICES", "[]"),
            // Enums, addresses, optional paths.
            ("GATEWAY__REPLAY__STORE", "redis"),
            ("GATEWAY__LOG__FORMAT", "text"),
            ("GATEWAY__KEYS__ENGINE", "rustcrypto"),
            ("GATEWAY__SERVER__LISTEN", "0.0.0.0:8443"),
            ("GATEWAY__SERVER__ADMIN_TOKEN_FILE", "/etc/gw/admin.token"),
            ("GATEWAY__SERVER__OPS_LISTEN", ""),
        ]),
    )
    .unwrap();
    assert_eq!(s.wechat.signer_id, "1234567812345678");
    assert_eq!(s.replay.key_prefix, "0042");
    assert!(s.wechat.extended_auth_codes);
    assert!(!s.replay.fail_open);
    assert_eq!(s.wechat.clock_skew_secs, 120);
    assert_eq!(s.wechat.replay_window_secs, 300);
    assert_eq!(s.limits.max_concurrent, 7);
    assert_eq!(s.wechat.accepted_schemes, ["A", "B-2", "123"]);
    assert!(s.partners.open_platform_account_services.is_empty());
    assert_eq!(s.replay.store, ReplayStoreKind::Redis);
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.keys.engine, EngineKind::RustCrypto);
    assert_eq!(s.server.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(
        s.server.admin_token_file.as_deref(),
        Some(std::path::Path::new("/etc/gw/admin.token"))
    );
    assert_eq!(s.ops_listen().unwrap(), None);
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "[wechat]\nsigner_id = \"from-file\"\naccepted_schemes = [\"X\"]\n[server]\nheader_timeout_ms = 5000\n",
    )
    .unwrap();
    let s = Settings::load(
        Some(&path),
        Settings::default(),
        prod_env(&[("GATEWAY__WECHAT__SIGNER_ID", "99")]),
    )
    .unwrap();
    assert_eq!(s.wechat.signer_id, "99");
    assert_eq!(s.wechat.accepted_schemes, ["X"]);
    assert_eq!(s.server.header_timeout_ms, 5000);
    assert_eq!(s.server.body_timeout_ms, 10_000);
}

#[test]
fn wrongly_typed_environment_values_are_refused_naming_the_key() {
    for (var, value, key) in [
        (
            "GATEWAY__WECHAT__EXTENDED_AUTH_CODES",
            "yes",
            "wechat.extended_auth_codes",
        ),
        (
            "GATEWAY__WECHAT__CLOCK_SKEW_SECS",
            "5m",
            "wechat.clock_skew_secs",
        ),
        (
            "GATEWAY__LIMITS__MAX_CONCURRENT",
            "-1",
            "limits.max_concurrent",
        ),
        ("GATEWAY__SERVER__LISTEN", "localhost", "server.listen"),
        (
            "GATEWAY__WECHAT__ACCEPTED_SCHEMES",
            "A,B",
            "GATEWAY__WECHAT__ACCEPTED_SCHEMES",
        ),
        (
            "GATEWAY__WECHAT__ACCEPTED_SCHEMES",
            "[A,,B]",
            "GATEWAY__WECHAT__ACCEPTED_SCHEMES",
        ),
    ] {
        let err = Settings::load(None, Settings::default(), prod_env(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}

#[test]
fn enum_errors_list_the_allowed_values() {
    for (var, value, key, allowed) in [
        (
            "GATEWAY__REPLAY__STORE",
            "disk",
            "replay.store",
            &["memory", "redis"][..],
        ),
        (
            "GATEWAY__LOG__FORMAT",
            "xml",
            "log.format",
            &["json", "text"][..],
        ),
        (
            "GATEWAY__KEYS__ENGINE",
            "openssl",
            "keys.engine",
            &["fast", "rustcrypto", "libsm"][..],
        ),
    ] {
        let err = Settings::load(None, Settings::default(), prod_env(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains(value), "{err}");
        for a in allowed {
            assert!(err.contains(&format!("`{a}`")), "{a} missing from: {err}");
        }
    }
    // The same from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
    let err = Settings::load(Some(&path), Settings::default(), prod_env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log.format") && err.contains("`json`") && err.contains("`text`"),
        "{err}"
    );
    assert!(err.contains("g.toml"), "names the file: {err}");
}

#[test]
fn unknown_environment_keys_are_refused_naming_them() {
    for (var, name) in [
        ("GATEWAY__DATABASE__URLL", "urll"),
        ("GATEWAY__BOGUS__KEY", "bogus"),
        (
            "GATEWAY__SERVER__LISTEN__PORT",
            "GATEWAY__SERVER__LISTEN__PORT",
        ),
        ("GATEWAY__SERVER", "GATEWAY__SERVER"),
        ("GATEWAY____X", "GATEWAY____X"),
    ] {
        let err = Settings::load(None, Settings::default(), prod_env(&[(var, "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{var}: {err}");
    }
    // Variables outside the prefix are not ours.
    Settings::load(
        None,
        Settings::default(),
        prod_env(&[("GATEWAY_CONFIG", "x"), ("GATEWAYX__A__B", "1")]),
    )
    .unwrap();
}

#[test]
fn a_named_config_file_must_exist() {
    let err = Settings::load(
        Some(std::path::Path::new("/nonexistent/gateway.toml")),
        Settings::default(),
        prod_env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
}

#[test]
fn redis_password_is_redacted_in_debug() {
    let mut s = Settings::default();
    s.replay.redis_url = "redis://gw:hunter2secret@cache:6379/0".into();
    let shown = format!("{:?}", s.replay);
    assert!(!shown.contains("hunter2secret"), "{shown}");
    assert!(shown.contains("redis://gw:***@cache:6379/0"), "{shown}");
    s.replay.redis_url = "redis://:hunter2secret@cache:6379".into();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2secret"), "{shown}");
}

#[test]
fn replay_window_must_outlive_the_skew_with_margin() {
    let margin = pension_gateway::replay::REPLAY_MARGIN_SECS;
    assert!(margin > 0);
    let mut s = Settings::default();
    s.accounts.id_pepper = PEPPER.into();
    assert_eq!(
        s.wechat.replay_window_secs,
        2 * s.wechat.clock_skew_secs + margin
    );
    s.validate().unwrap();
    s.wechat.replay_window_secs = 2 * s.wechat.clock_skew_secs;
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("wechat.replay_window_secs"), "{err}");
    s.wechat.replay_window_secs = 2 * s.wechat.clock_skew_secs + margin;
    s.validate().unwrap();
}

#[test]
fn admin_endpoint_needs_a_token_file() {
    let mut s = Settings::default();
    assert_eq!(s.admin_endpoint().unwrap(), None, "no token file: off");
    s.server.admin_token_file = Some("/etc/gw/admin.token".into());
    let (addr, file) = s.admin_endpoint().unwrap().unwrap();
    assert_eq!(addr.to_string(), "127.0.0.1:9090");
    assert_eq!(file, std::path::Path::new("/etc/gw/admin.token"));
    s.server.admin_listen = String::new();
    assert_eq!(s.admin_endpoint().unwrap(), None);
    assert_eq!(
        s.ops_listen().unwrap().map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
}

#[test]
fn two_listeners_on_one_address_are_refused_naming_both() {
    let base = || {
        env(&[
            ("GATEWAY__ACCOUNTS__ID_PEPPER", PEPPER),
            ("GATEWAY__SERVER__LISTEN", "127.0.0.1:8080"),
        ])
    };
    let with = |extra: &[(&str, &str)]| {
        let mut e = base();
        e.extend(env(extra));
        Settings::load(None, Settings::default(), e)
    };
    let err = with(&[("GATEWAY__SERVER__OPS_LISTEN", "127.0.0.1:8080")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("server.listen") && err.contains("server.ops_listen"),
        "{err}"
    );
    // An unspecified address overlaps every address of its port.
    let err = with(&[
        ("GATEWAY__SERVER__LISTEN", "0.0.0.0:9100"),
        ("GATEWAY__SERVER__OPS_LISTEN", "127.0.0.1:9100"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("same address"), "{err}");
    // The admin listener counts only when it runs (it needs its token file).
    assert!(with(&[("GATEWAY__SERVER__ADMIN_LISTEN", "127.0.0.1:8080")]).is_ok());
    let err = with(&[
        ("GATEWAY__SERVER__ADMIN_LISTEN", "127.0.0.1:8080"),
        (
            "GATEWAY__SERVER__ADMIN_TOKEN_FILE",
            "/etc/pension-gateway/admin-token",
        ),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.admin_listen"), "{err}");
    // Distinct ports, and port 0 (the system picks), are fine.
    assert!(with(&[("GATEWAY__SERVER__OPS_LISTEN", "127.0.0.1:9101")]).is_ok());
    assert!(with(&[
        ("GATEWAY__SERVER__LISTEN", "127.0.0.1:0"),
        ("GATEWAY__SERVER__OPS_LISTEN", "127.0.0.1:0"),
    ])
    .is_ok());
}

#[test]
fn key_commands_load_without_business_secrets_but_still_refuse_unknown_keys() {
    use pension_gateway::config::StartMode;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[keys]\ndir = \"/srv/keys\"\n[database]\nurl = \"mysql://db/x\"\n",
    )
    .unwrap();
    let s = Settings::load_keys_for(StartMode::Production, Some(&path), Vec::new()).unwrap();
    assert_eq!(s.keys.dir, std::path::Path::new("/srv/keys"));
    assert!(
        Settings::load_for(StartMode::Production, Some(&path), Vec::new()).is_err(),
        "the full load still needs the pepper"
    );
    std::fs::write(&path, "[keys]\ndirr = \"/srv/keys\"\n").unwrap();
    let err = Settings::load_keys_for(StartMode::Production, Some(&path), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("dirr"), "{err}");
    std::fs::write(&path, "[server]\nadmin_listen = \"10.0.0.1:9090\"\n").unwrap();
    let err = Settings::load_keys_for(StartMode::Production, Some(&path), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.admin_listen"), "{err}");
}
