//! The operator's and the WeChat side's commands against a module-held key, as the real binary:
//! `keys add-module-key` (with a vendor profile file) adds the version to a production ring,
//! `keys export-public` and `keys activate` make it the signing key, a `serve` process signs
//! through the software SDF device, and `client query` — given WeChat's private key and the bank's
//! public keys only, no bank private key — verifies the module-signed answer. `client call`,
//! which signs as the bank, says why it cannot use a module-held key.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::signer::{assert_no_private_key, device_dir, module_key, serial, write_0600, PASSWORD};
use crate::common::free_port;
use crate::common::process::{production_keys, random_pepper, wait_ready, Proc, ServeConfig, BIN};
use crate::common::softsdf::softsdf_library;

/// `pension-gateway args…` with the device's directory in its environment.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("GATEWAY_CONFIG")
        .env_remove("SOFTSDF_CONTROL")
        .env("SOFTSDF_DIR", device_dir())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[actix_web::test]
async fn add_module_key_serve_and_verify_with_public_keys_only() {
    let _serial = serial().await;
    let (index, key) = module_key();
    let tmp = tempfile::tempdir().unwrap();
    let keys = production_keys(tmp.path());
    write_0600(&keys.join("hsm.pass"), &format!("{PASSWORD}\n"));
    let (port, ops_port) = (free_port(), free_port());
    let db = format!("sqlite://{}", tmp.path().join("gw.db").display());
    let pepper = random_pepper();
    // The audit chained with a checkpoint after every row: the module's key signs them.
    let audit = format!(
        "[audit]\ninstance_id = \"gw-module\"\ncheckpoint_rows = 1\nwitness_file = {:?}\n",
        tmp.path().join("witness.log").display().to_string()
    );
    let cfg = ServeConfig {
        port,
        ops_port,
        database_url: &db,
        pepper: &pepper,
        keys: &keys,
        drain_secs: 0,
        extra: &audit,
    }
    .write(&tmp.path().join("gateway.toml"));
    let cfg = cfg.to_str().unwrap();
    let library = softsdf_library().to_str().unwrap();
    let index_arg = index.to_string();
    let add = |profile: &Path| {
        run(&[
            "--config",
            cfg,
            "keys",
            "add-module-key",
            "--module",
            "hsm",
            "--key-index",
            &index_arg,
            "--library",
            library,
            "--password-file",
            "hsm.pass",
            "--sessions",
            "2",
            "--profile",
            profile.to_str().unwrap(),
        ])
    };

    // A profile the standard does not allow is refused before anything is written.
    let bad = tmp.path().join("bad-profile.toml");
    std::fs::write(&bad, "name = \"odd\"\necc_field_len = 48\n").unwrap();
    let out = add(&bad);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ecc_field_len 48"), "{}", text(&out));
    assert!(!keys.join("bank-v2.pub").exists());

    // The standard's layouts under a vendor's name: the version is added as staged.
    let profile = tmp.path().join("vendor.toml");
    std::fs::write(
        &profile,
        "name = \"vendor-std\"\necc_field_len = 64\nsm2_sign_algorithm = 0x00020200\n",
    )
    .unwrap();
    let out = add(&profile);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bank key v2 added as staged"),
        "{}",
        text(&out)
    );
    let manifest = std::fs::read_to_string(keys.join("keyring.toml")).unwrap();
    assert!(manifest.contains("name = \"vendor-std\""), "{manifest}");
    assert!(manifest.contains("backend = \"sdf\""), "{manifest}");
    assert_eq!(
        pension_gateway::crypto::PublicKey::parse(
            &std::fs::read_to_string(keys.join("bank-v2.pub")).unwrap()
        )
        .unwrap(),
        key.public_key(),
        "the recorded public key is the module's"
    );
    assert_no_private_key(&keys, &key);
    for args in [&["export-public", "2"][..], &["activate", "2"][..]] {
        let mut all = vec!["--config", cfg, "keys"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert!(out.status.success(), "keys {args:?}: {}", text(&out));
    }

    // The gateway signs with the module's key.
    let log = tmp.path().join("serve.log");
    let mut proc = Proc::spawn(&["--config", cfg, "serve"], &log);
    wait_ready(&mut proc, ops_port, &log, Duration::from_secs(60));

    // WeChat's side: its own private key and the bank's public keys, nothing else.
    let client_dir = tmp.path().join("wechat-side");
    std::fs::create_dir(&client_dir).unwrap();
    for name in ["wechat-v1.key", "bank-v1.pub", "bank-v2.pub"] {
        std::fs::copy(keys.join(name), client_dir.join(name)).unwrap();
    }
    let url = format!("http://127.0.0.1:{port}/v1/pension/account");
    let out = run(&[
        "client",
        "query",
        "--url",
        &url,
        "--keys-dir",
        client_dir.to_str().unwrap(),
        "--name",
        "张三",
        "--id-number",
        "11010519491231002X",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("VERIFIED (bank key version 2)"),
        "{}",
        text(&out)
    );

    // The query's audit row is covered by a checkpoint the module signed, and `audit verify`
    // (the ring's public keys only) finds the log intact.
    let witness = std::fs::read_to_string(tmp.path().join("witness.log")).unwrap();
    let fields: Vec<&str> = witness.split_whitespace().collect();
    assert_eq!(witness.lines().count(), 1, "{witness}");
    assert_eq!(
        (fields[0], fields[1], fields[2], fields[5]),
        ("pgw1", "gw-module", "1", "2"),
        "one checkpoint of size 1, signed by bank key v2: {witness}"
    );
    let out = run(&["--config", cfg, "audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("instance gw-module: rows 0..1 intact, 1 checkpoint root(s) checked"),
        "{}",
        text(&out)
    );
    // The bank-side test tool signs with a key file; a module-held active key is named.
    let out = run(&[
        "--config",
        cfg,
        "client",
        "call",
        "--url",
        &format!("http://127.0.0.1:{port}/nowhere"),
        "--body",
        "{}",
        "--bank-id",
        "bank",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("bank key v2 is kept in module `hsm`"),
        "{}",
        text(&out)
    );
    drop(proc);
}
