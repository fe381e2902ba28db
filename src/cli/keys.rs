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

/// The reload advice printed after a change: the configured admin address and token file when
/// the admin listener is on, else the signal; and the manifest watcher if it runs.
fn reload_advice(settings: &Settings) -> String {
    let mut s = String::from("validated and written. Reload the gateway: `kill -HUP <pid>` (or `systemctl reload pension-gateway`)");
    if let (Ok(Some(addr)), Some(token)) =
        (settings.admin_listen(), &settings.server.admin_token_file)
    {
        s.push_str(&format!(
            ", or `curl -fsS -X POST -H \"Authorization: Bearer $(cat {})\" http://{addr}/admin/keyring/reload`",
            super::shell_word(&token.display().to_string())
        ));
    }
    if settings.keys.watch_interval_secs > 0 {
        s.push_str(&format!(
            "; a running gateway also notices the manifest change by itself within {} s (keys.watch_interval_secs)",
            settings.keys.watch_interval_secs
        ));
    }
    s
}

/// Who must own the key directory, said once after a command that wrote files.
fn ownership_note(dir: &std::path::Path) -> Option<String> {
    let owner = pension_gateway::keyring::admin::owner_of(dir).ok()?;
    Some(format!(
        "files written owned by {owner}, the key directory's owner: the gateway must run as that user"
    ))
}

/// Runs a `keys` command against `--dir` (default: `keys.dir`). `how` is how the command was
/// invoked; the commands it prints as next steps carry the same `--config` and `--dir`.
pub fn run(cmd: KeysCommand, how: &super::Invoked, settings: &Settings) -> anyhow::Result<()> {
    use pension_gateway::keyring::admin::KeyDir;
    let (path, setting) = match &how.dir {
        Some(d) => (d.clone(), "--dir"),
        None => (settings.keys.dir.clone(), "keys.dir"),
    };
    let dir = KeyDir::new(
        path,
        settings.keys.engine,
        settings.wechat.signer_id.as_bytes(),
    );
    let keys = how.keys();
    if !matches!(cmd, KeysCommand::Init { .. }) && !dir.is_initialised() {
        anyhow::bail!(
            "{} ({setting}) has no keyring.toml: not a key directory. Check {setting}, or create \
             the key set with `{keys} init --wechat-key <WeChat public key>`",
            dir.path().display()
        );
    }
    let reload_hint = || {
        println!("{}", reload_advice(settings));
        if let Some(n) = ownership_note(dir.path()) {
            println!("{n}");
        }
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
            if let Some(n) = ownership_note(dir.path()) {
                println!("{n}");
            }
            println!("send WeChat the bank public key: {keys} export-public 1");
        }
        KeysCommand::Generate => {
            let v = dir.generate()?;
            println!("bank key v{v} generated as staged; export it to WeChat with: {keys} export-public {v}");
            reload_hint();
        }
        KeysCommand::List => {
            println!(
                "{:<7} {:>7} {:<10} {:<17} signs",
                "role", "version", "state", "fingerprint"
            );
            let listing = dir.list()?;
            for k in &listing {
                let signs = k.signs_percent.map_or(String::new(), |p| format!("{p}%"));
                let fingerprint = if k.refusal.is_some() {
                    "REFUSED"
                } else {
                    k.fingerprint.as_str()
                };
                println!(
                    "{:<7} {:>7} {:<10} {:<17} {signs}",
                    k.role, k.version, k.state, fingerprint
                );
            }
            for k in &listing {
                if let Some(r) = &k.refusal {
                    println!("{} v{}: {r}", k.role, k.version);
                }
            }
            if let Err(e) = dir.check_reload() {
                anyhow::bail!("a reload would refuse this key set: {e}");
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
