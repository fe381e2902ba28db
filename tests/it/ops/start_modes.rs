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

/// A bank-data command and the words its refusal must carry.
fn bank(command: &str, demo: bool, target_given: bool) -> Invocation {
    Invocation::BankData {
        command: command.into(),
        demo,
        target_given,
    }
}

#[test]
fn bank_data_commands_without_configuration_refuse_naming_the_demo_they_would_use() {
    for command in ["db migrate", "accounts import extract.csv", "keys list"] {
        let err = decide(bank(command, false, false), None, &[("PATH", "/bin")]).unwrap_err();
        for needle in [
            command,
            "sqlite://data/gateway.db",
            "accounts.id_pepper",
            "64656d6f",
            "keys/demo",
            "--config",
            "GATEWAY_CONFIG",
            "--demo",
        ] {
            assert!(err.contains(needle), "`{needle}` missing: {err}");
        }
    }
}

#[test]
fn bank_data_commands_run_with_a_configuration_or_an_explicit_demo() {
    assert_eq!(
        decide(bank("db migrate", false, false), Some("p.toml"), &[]),
        Ok(StartMode::Production)
    );
    assert_eq!(
        decide(
            bank("db migrate", false, false),
            None,
            &[("GATEWAY__DATABASE__URL", "mysql://db/x")]
        ),
        Ok(StartMode::Production)
    );
    assert_eq!(
        decide(bank("db migrate", true, false), None, &[]),
        Ok(StartMode::Demo)
    );
    // `keys --dir DIR` names all a key command touches: production defaults, no demo.
    assert_eq!(
        decide(bank("keys list", false, true), None, &[]),
        Ok(StartMode::Production)
    );
}

/// Runs the binary in `dir` with exactly `env`; returns the exit code, stdout and stderr.
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_bank_data_commands_without_configuration_refuse_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extract.csv"),
        "id_number,name,status\n110101199003070000,张三,1\n",
    )
    .unwrap();
    for args in [
        &["db", "migrate"][..],
        &["accounts", "import", "extract.csv"],
        &["accounts", "seed-demo"],
        &["keys", "list"],
        &["keys", "generate"],
    ] {
        let (code, out, err) = run_in(dir.path(), args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        // The command as typed, up to its subcommand (`accounts import`).
        assert!(err.contains(&args[..2].join(" ")), "{err}");
        assert!(err.contains("sqlite://data/gateway.db"), "{err}");
        assert!(err.contains("--demo"), "{err}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["extract.csv"], "nothing created in the directory");
}

#[test]
fn binary_bank_data_command_with_demo_runs_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_in(dir.path(), &["db", "--demo", "migrate"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("sqlite://data/gateway.db"), "{out}");
    assert!(dir.path().join("data/gateway.db").exists());
}

#[test]
fn binary_busy_port_names_its_listener() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let ops = format!("127.0.0.1:{port}");
    let (code, err) = run(
        &["serve", "--demo"],
        &[
            ("GATEWAY__SERVER__LISTEN", "127.0.0.1:0"),
            ("GATEWAY__SERVER__OPS_LISTEN", ops.as_str()),
        ],
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("server.ops_listen") && err.contains(&ops),
        "{err}"
    );
}

/// `database.migrate_on_start = false`: `serve` issues no DDL, refuses a schema that is behind
/// naming `db migrate`, and passes that check once `db migrate` has run.
#[test]
fn binary_serve_without_migrations_at_start_refuses_a_schema_that_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gw.db", dir.path().display());
    serve_refuses_a_schema_behind_until_migrated(dir.path(), &url);
}

/// The same on MySQL (`TEST_MYSQL_URL`), in a fresh database of its own.
#[test]
fn binary_serve_without_migrations_at_start_refuses_a_schema_that_is_behind_on_mysql() {
    let Some(server) = crate::common::mysql_url() else {
        return;
    };
    let name = format!("pgw_walk_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt
        .block_on(testkit::create_mysql_database(&server, &name))
        .unwrap_or_else(|e| panic!("TEST_MYSQL_URL is set but MySQL is unusable ({e})"));
    let dir = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| {
        serve_refuses_a_schema_behind_until_migrated(dir.path(), &url);
    });
    rt.block_on(testkit::drop_mysql_database(&server, &name))
        .expect("drop the test database");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn serve_refuses_a_schema_behind_until_migrated(dir: &Path, url: &str) {
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"\"\nadmin_listen = \"\"\n\
             [accounts]\nid_pepper = \"{PEPPER}\"\n\
             [database]\nurl = \"{url}\"\ncreate_if_missing = true\nmigrate_on_start = false\n\
             [keys]\ndir = \"{}/no-keys\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (code, err) = run(&["--config", cfg, "serve"], &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("database.migrate_on_start")
            && err.contains("db migrate")
            && err.contains("20261124000000"),
        "{err}"
    );
    let (code, out, err) = run_in(dir, &["--config", cfg, "db", "migrate"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Now the schema check passes and the start goes on to the key ring (absent here).
    let (code, err) = run(&["--config", cfg, "serve"], &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(!err.contains("migrate_on_start"), "{err}");
    assert!(err.contains("no-keys"), "{err}");
}
