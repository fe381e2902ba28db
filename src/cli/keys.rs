//! `keys …`: key ring administration (validated, atomic writes).

use std::path::PathBuf;

use anyhow::Context;

use clap::Subcommand;
use pension_gateway::config::Settings;

use super::key_text;

/// `keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Start a new key directory: bank key v1 (active) and WeChat's public key (trusted).
    Init {
        /// WeChat's key version.
        #[arg(long, default_value_t = 1)]
        wechat_version: u32,
        /// WeChat's public key: hex `04…`, PEM, or a file holding either.
        #[arg(long)]
        wechat_key: String,
    },
    /// Generate the next bank key version as `staged`.
    Generate,
    /// List versions, states, fingerprints and which key signs.
    List,
    /// Print a bank public key as WeChat needs it (hex `04‖x‖y` and PEM).
    ExportPublic {
        /// Bank key version.
        version: u32,
    },
    /// Make a staged (or retiring) bank key the active one; the old active key becomes `retiring`.
    Activate {
        /// Bank key version.
        version: u32,
    },
    /// Retire a bank key that is not active.
    Retire {
        /// Bank key version.
        version: u32,
    },
    /// Trust a WeChat public key version.
    TrustWechat {
        /// WeChat key version.
        version: u32,
        /// Hex `04…`, PEM, or a file holding either.
        key: String,
    },
    /// Stop trusting a WeChat key version (refused for the last trusted one).
    UntrustWechat {
        /// WeChat key version.
        version: u32,
    },
    /// Partner channel credentials (open-platform app secrets, callback salts, HMAC app tokens).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Sign `--percent` of responses with a staged bank key (0 ends the rollout).
    Rollout {
        /// Staged bank key version.
        version: u32,
        /// Share of responses, 0–100.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
    },
}

/// `keys partner …`
#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Add the next version of a partner's secret and make it active. The previous version stays
    /// `accepted` (callback, hmac: it still verifies until retired) or is retired at once
    /// (open-platform: a new app secret invalidates its tokens and tickets).
    Set {
        /// `open-platform`, `callback` or `hmac`.
        channel: String,
        /// app_id / partner id / fappid.
        id: String,
        /// File holding the secret agreed with the partner; without it one is generated.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Retire a version that is not active: it stops verifying.
    Retire {
        /// `open-platform`, `callback` or `hmac`.
        channel: String,
        /// app_id / partner id / fappid.
        id: String,
        /// Version.
        version: u32,
    },
    /// List partner credential versions and states (never the secrets).
    List,
}

fn channel_arg(s: &str) -> anyhow::Result<pension_gateway::partners::Channel> {
    pension_gateway::partners::Channel::parse(s)
        .with_context(|| format!("unknown channel `{s}`: open-platform, callback or hmac"))
}

/// Runs a `keys` command against `dir` (default: `keys.dir`).
pub fn run(cmd: KeysCommand, dir: Option<PathBuf>, settings: &Settings) -> anyhow::Result<()> {
    use pension_gateway::keyring::admin::KeyDir;
    let dir = KeyDir::new(
        dir.unwrap_or_else(|| settings.keys.dir.clone()),
        settings.keys.engine,
        settings.wechat.signer_id.as_bytes(),
    );
    let reload_hint = || {
        println!("validated and written. Reload the gateway: `kill -HUP <pid>`, or `curl -X POST -H \"Authorization: Bearer <admin token>\" http://{}/admin/keyring/reload` (it also notices the manifest change by itself).",
            if settings.server.admin_listen.is_empty() { "<admin_listen>" } else { &settings.server.admin_listen });
    };
    match cmd {
        KeysCommand::Init {
            wechat_version,
            wechat_key,
        } => {
            dir.init(wechat_version, &key_text(&wechat_key)?)?;
            println!(
                "initialised {}: bank v1 active, WeChat v{wechat_version} trusted",
                dir.path().display()
            );
            println!("send WeChat the bank public key: pension-gateway keys export-public 1");
        }
        KeysCommand::Generate => {
            let v = dir.generate()?;
            println!("bank key v{v} generated as staged; export it to WeChat with: pension-gateway keys export-public {v}");
            reload_hint();
        }
        KeysCommand::List => {
            println!(
                "{:<7} {:>7} {:<10} {:<17} signs",
                "role", "version", "state", "fingerprint"
            );
            for k in dir.list()? {
                let signs = k.signs_percent.map_or(String::new(), |p| format!("{p}%"));
                println!(
                    "{:<7} {:>7} {:<10} {:<17} {signs}",
                    k.role, k.version, k.state, k.fingerprint
                );
            }
        }
        KeysCommand::ExportPublic { version } => {
            let pk = dir.export_public(version)?;
            println!("bank key version {version}");
            println!("hex: {}", pk.to_hex());
            print!("{}", pk.to_pem()?);
        }
        KeysCommand::Activate { version } => {
            dir.activate(version)?;
            println!("bank key v{version} is active; the previous active key is retiring");
            reload_hint();
        }
        KeysCommand::Retire { version } => {
            dir.retire(version)?;
            println!("bank key v{version} retired");
            reload_hint();
        }
        KeysCommand::TrustWechat { version, key } => {
            dir.trust_wechat(version, &key_text(&key)?)?;
            println!("WeChat key v{version} trusted");
            reload_hint();
        }
        KeysCommand::UntrustWechat { version } => {
            dir.untrust_wechat(version)?;
            println!("WeChat key v{version} no longer trusted");
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::Set {
            channel,
            id,
            from_file,
        }) => {
            let channel = channel_arg(&channel)?;
            let secret = match from_file {
                None => None,
                Some(p) => Some(zeroize::Zeroizing::new(
                    pension_gateway::keyring::read_partner_secret(&p)?.to_string(),
                )),
            };
            let generated = secret.is_none();
            let (v, path) = dir.partner_set(channel, &id, secret)?;
            println!(
                "{channel} partner `{id}` v{v} is active; secret in {} (mode 0600){}",
                path.display(),
                if generated {
                    " — generated: hand it to the partner over a secure channel"
                } else {
                    ""
                }
            );
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::Retire {
            channel,
            id,
            version,
        }) => {
            let channel = channel_arg(&channel)?;
            dir.partner_retire(channel, &id, version)?;
            println!("{channel} partner `{id}` v{version} retired");
            reload_hint();
        }
        KeysCommand::Partner(PartnerCommand::List) => {
            println!(
                "{:<14} {:<24} {:>7}  {:<9} file",
                "channel", "id", "version", "state"
            );
            for p in dir.partner_list()? {
                println!(
                    "{:<14} {:<24} {:>7}  {:<9} {}",
                    p.channel.as_str(),
                    p.id,
                    p.version,
                    format!("{:?}", p.state).to_lowercase(),
                    p.file
                );
            }
        }
        KeysCommand::Rollout { version, percent } => {
            dir.rollout(version, percent)?;
            println!("bank key v{version} now signs {percent}% of responses");
            reload_hint();
        }
    }
    Ok(())
}
