//! Settings: defaults, file, environment overrides, validation naming the key, redaction.

use pension_gateway::config::{redact_url, Settings, DEMO_PEPPER_HEX};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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
    let cases: Vec<(&str, Box<dyn Fn(&mut Settings)>)> = vec![
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
        ("log.format", Box::new(|s| s.log.format = "xml".into())),
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
