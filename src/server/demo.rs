//! Demo mode's start-up chores: the published demo keys made to pass the production file rules,
//! and the banner that tells a newcomer what to type next.

use std::path::Path;

use crate::accounts::demo;
use crate::config::Settings;
use crate::keyring::Manifest;

use super::StartError;

/// In demo mode the published demo keys come out of git with whatever mode the checkout gave
/// them (git keeps no modes): tighten secrets to 0600 and take group and other write off the
/// manifest and public keys, so the same file rules apply as in production. Every file is
/// changed through a handle opened without following links (`keyring::file_rules`).
pub fn prepare_demo_keys(dir: &Path) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use crate::keyring::file_rules::tighten_demo_file;
        use crate::keyring::KeyFileKind;
        let manifest_path = dir.join("keyring.toml");
        let Some(bytes) = tighten_demo_file(&manifest_path, KeyFileKind::Manifest)? else {
            // Missing or not a regular file: loading refuses it with the file's name.
            return Ok(());
        };
        let text = std::str::from_utf8(&bytes).map_err(|source| StartError::NotUtf8 {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest = Manifest::parse(text)?;
        if !manifest.demo {
            return Ok(());
        }
        let mut files: Vec<(std::path::PathBuf, KeyFileKind)> = Vec::new();
        files.extend(
            manifest
                .bank
                .iter()
                .filter(|b| b.backend == crate::keyring::Backend::File)
                .map(|b| (dir.join(&b.private_key), KeyFileKind::Secret)),
        );
        files.extend(
            manifest
                .wechat
                .iter()
                .map(|w| (dir.join(&w.public_key), KeyFileKind::PublicKey)),
        );
        files.extend(
            manifest
                .partner
                .iter()
                .map(|p| (dir.join(&p.secret), KeyFileKind::Secret)),
        );
        // Files the manifest does not name but the demo client reads (`wechat-v1.key`, …).
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                match path.extension().and_then(|x| x.to_str()) {
                    Some("key" | "secret") => files.push((path, KeyFileKind::Secret)),
                    Some("pub") => files.push((path, KeyFileKind::PublicKey)),
                    _ => {}
                }
            }
        }
        for (path, kind) in files {
            tighten_demo_file(&path, kind)?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The banner printed when the demo is up: the `client query` command to try and the other
/// demo people.
pub(super) fn print_demo_banner(settings: &Settings, listen: std::net::SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{listen}{}", settings.wechat.route);
    let p = &demo::DEMO_PEOPLE[0];
    // Under `cargo run` the newcomer types cargo commands; an installed binary is run by name.
    let run = if std::env::var_os("CARGO").is_some() {
        "cargo run --release --"
    } else {
        "pension-gateway"
    };
    println!();
    println!("  pension-gateway is running in DEMO mode (published demo keys, demo accounts).");
    println!("  Send a query signed with the demo WeChat key, in another terminal:");
    println!();
    println!(
        "    {run} client query --url {url} --name {} --id-number {}",
        p.name, p.id_number
    );
    println!();
    println!(
        "  Other demo people: {}",
        demo::DEMO_PEOPLE
            .iter()
            .skip(1)
            .map(|p| format!("{} {} (status {})", p.name, p.id_number, p.status))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if settings.partners.open_platform || settings.partners.callback || settings.partners.hmac {
        println!(
            "  Partner channels (docs/partner-channels.md): {run} client open-platform|callback|hmac --name {} --id-number {}",
            p.name, p.id_number
        );
    }
    println!();
}
