//! Start modes: the demo runs only when asked for (`serve --demo`) or when nothing at all is
//! configured; a bare invocation with any configuration refuses and names `serve`; `serve`
//! never starts from the demo's defaults.
//!
//! The binary runs here in an empty temporary directory with a cleared environment, so even a
//! regression that started the demo could not find the demo keys, could not touch the
//! repository's database, and is killed after a deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pension_gateway::config::{Invocation, Settings, StartMode};

const BIN: &str = env!("CARGO_BIN_EXE_pension-gateway");
const PEPPER: &str = "0011223344556677889900112233445566778899001122334455667788990011";

fn decide(inv: Invocation, path: Option<&str>, env: &[(&str, &str)]) -> Result<StartMode, String> {
    StartMode::decide(inv, path.map(Path::new), env.iter().copied()).map_err(|e| e.to_string())
}

#[test]
fn bare_without_configuration_is_the_demo() {
    assert_eq!(
        decide(
            Invocation::Bare,
            None,
            &[("PATH", "/bin"), ("GATEWAY", "x")]
        ),
        Ok(StartMode::Demo)
    );
}

/// A config path, the environment, and what the refusal must name.
type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bare_with_any_configuration_refuses_naming_serve() {
    let cases: [Case; 4] = [
        (Some("prod.toml"), &[], "prod.toml"),
        (
            Some("prod.toml"),
            &[("GATEWAY_CONFIG", "prod.toml")],
            "GATEWAY_CONFIG=prod.toml",
        ),
        (None, &[("GATEWAY_CONFIG", "")], "GATEWAY_CONFIG"),
        (
            None,
            &[("GATEWAY__DATABASE__URL", "mysql://u:secret@db/bank")],
            "GATEWAY__DATABASE__URL",
        ),
    ];
    for (path, env, names) in cases {
        let err = decide(Invocation::Bare, path, env).unwrap_err();
        assert!(err.contains("`pension-gateway serve`"), "{err}");
        assert!(err.contains("serve --demo"), "{err}");
        assert!(err.contains(names), "{names}: {err}");
        assert!(
            !err.contains("secret"),
            "values of variables are not echoed: {err}"
        );
    }
}

#[test]
fn serve_is_production_and_serve_demo_is_the_demo_whatever_is_configured() {
    let env = [("GATEWAY__SERVER__LISTEN", "127.0.0.1:1")];
    for (path, env) in [(None, &[][..]), (Some("x.toml"), &env[..])] {
        assert_eq!(
            decide(Invocation::Serve { demo: false }, path, env),
            Ok(StartMode::Production)
        );
        assert_eq!(
            decide(Invocation::Serve { demo: true }, path, env),
            Ok(StartMode::Demo)
        );
    }
}

#[test]
fn other_commands_use_demo_defaults_only_without_configuration() {
    assert_eq!(decide(Invocation::Other, None, &[]), Ok(StartMode::Demo));
    assert_eq!(
        decide(Invocation::Other, Some("p.toml"), &[]),
        Ok(StartMode::Production)
    );
    assert_eq!(
        decide(Invocation::Other, None, &[("GATEWAY__KEYS__DIR", "/k")]),
        Ok(StartMode::Production)
    );
}

#[test]
fn production_never_starts_from_demo_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod.toml");
    std::fs::write(&path, "[database]\nurl = \"sqlite://prod.db\"\n").unwrap();
    // Without a pepper of its own, production refuses: the demo pepper is not underneath.
    let err = Settings::load_for(StartMode::Production, Some(&path), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("accounts.id_pepper"), "{err}");
    std::fs::write(
        &path,
        format!("[accounts]\nid_pepper = \"{PEPPER}\"\n[database]\nurl = \"sqlite://prod.db\"\n"),
    )
    .unwrap();
    let s = Settings::load_for(StartMode::Production, Some(&path), Vec::new()).unwrap();
    let d = Settings::demo();
    assert!(!s.server.demo);
    assert!(!s.database.create_if_missing);
    assert!(!s.partners.open_platform && !s.partners.callback && !s.partners.hmac);
    assert_ne!(
        s.limits.per_identity_per_minute,
        d.limits.per_identity_per_minute
    );
    // The same file in demo mode sits over the demo's defaults.
    let s = Settings::load_for(StartMode::Demo, Some(&path), Vec::new()).unwrap();
    assert!(s.server.demo && s.partners.hmac);
    // A configuration cannot turn the demo on under `serve`.
    let err = Settings::load_for(
        StartMode::Production,
        Some(&path),
        vec![("GATEWAY__SERVER__DEMO".into(), "true".into())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("server.demo") && err.contains("serve --demo"),
        "{err}"
    );
}

/// Runs the binary with `args` and exactly `env`, in an empty directory; returns its exit code
/// and stderr. Fails if it is still running after 30 s (it would be serving).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`pension-gateway {}` was still running after 30 s",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binary_bare_with_gateway_config_refuses_with_exit_2() {
    let (code, err) = run(&[], &[("GATEWAY_CONFIG", "/nonexistent/prod.toml")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pension-gateway serve"), "{err}");
    assert!(
        err.contains("GATEWAY_CONFIG=/nonexistent/prod.toml"),
        "{err}"
    );
}

#[test]
fn binary_bare_with_an_override_variable_refuses_with_exit_2() {
    let (code, err) = run(&[], &[("GATEWAY__SERVER__LISTEN", "127.0.0.1:1")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pension-gateway serve"), "{err}");
    assert!(err.contains("GATEWAY__SERVER__LISTEN"), "{err}");
}

#[test]
fn binary_bare_with_config_flag_refuses_with_exit_2() {
    let (code, err) = run(&["--config", "/nonexistent/prod.toml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pension-gateway serve"), "{err}");
}

#[test]
fn binary_serve_with_a_file_lacking_a_pepper_refuses_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod.toml");
    std::fs::write(&path, "[database]\nurl = \"sqlite://prod.db\"\n").unwrap();
    let (code, err) = run(&["serve"], &[("GATEWAY_CONFIG", path.to_str().unwrap())]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("accounts.id_pepper"), "{err}");
}
