//! `keys …`: key ring administration (validated, atomic writes).

use std::path::PathBuf;

use anyhow::Context;

use clap::{Args, Subcommand};
use pension_gateway::config::Settings;
use pension_gateway::ops::key_guard::{self, GuardRefusal, KeyRole, TrafficFetchError};
use pension_gateway::ops::traffic::KeyTraffic;

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
    /// Add the next bank key version as `staged`, kept inside a cryptographic module (GM/T 0018
    /// SDF, at `--key-index`; or a PKCS#11 token, by `--key-label` or `--key-id`): its exported
    /// public key is recorded (`bank-v<n>.pub`); nothing secret is written. The first time a
    /// module is named, declare it with `--library` and `--password-file` (and, for a token,
    /// `--backend pkcs11` with `--token-label` or `--token-serial`) (docs/hsm.md).
    AddModuleKey {
        /// The module's name in keyring.toml.
        #[arg(long)]
        module: String,
        /// The key's index inside an SDF module.
        #[arg(long, required_unless_present_any = ["key_label", "key_id"], conflicts_with_all = ["key_label", "key_id"])]
        key_index: Option<u32>,
        /// The key's CKA_LABEL on a PKCS#11 token.
        #[arg(long, conflicts_with = "key_id")]
        key_label: Option<String>,
        /// The key's CKA_ID on a PKCS#11 token, hex.
        #[arg(long)]
        key_id: Option<String>,
        /// Declares the module: absolute path of the vendor's SDF or PKCS#11 library.
        #[arg(long)]
        library: Option<PathBuf>,
        /// With --library: the module's kind, `sdf` or `pkcs11`.
        #[arg(long, requires = "library", default_value = "sdf", value_parser = ["sdf", "pkcs11"])]
        backend: String,
        /// With --library --backend pkcs11: the token's label.
        #[arg(long, requires = "library", conflicts_with = "token_serial")]
        token_label: Option<String>,
        /// With --library --backend pkcs11: the token's serial number.
        #[arg(long, requires = "library")]
        token_serial: Option<String>,
        /// With --library: the access password file, or a token's user PIN file (mode 0600; a
        /// plain name is in the key directory).
        #[arg(long, requires = "library")]
        password_file: Option<PathBuf>,
        /// With --library: sessions kept open (signatures in flight at most).
        #[arg(long, requires = "library", default_value_t = 4)]
        sessions: u16,
        /// With --library: deadline of one signature, milliseconds.
        #[arg(long, requires = "library", default_value_t = 2000)]
        timeout_ms: u64,
        /// With --library: the vendor profile, a TOML file with the fields of `[module.profile]`
        /// for an SDF module (`name`, `ecc_field_len`, `sm2_sign_algorithm`) or of
        /// `[module.pkcs11_profile]` for a token (`name`, `mechanism`, `input`); docs/hsm.md
        /// "Vendor profiles". Default: the standard's layouts / the documented token default.
        #[arg(long, requires = "library", value_name = "FILE.toml")]
        profile: Option<PathBuf>,
    },
    /// List versions, states, fingerprints and which key signs.
    List,
    /// Print a bank public key as WeChat needs it (hex `04‖x‖y` and PEM).
    ExportPublic {
        /// Bank key version.
        version: u32,
    },
    /// Make a staged (or retiring) bank key the active one; the old active key becomes `retiring`
    /// (refused, without --force, for a staged version never exported with `keys export-public`).
    Activate {
        /// Bank key version.
        version: u32,
        /// Activate even a staged version that was never exported.
        #[arg(long)]
        force: bool,
    },
    /// Retire a bank key that is not active (refused, without --force, when it signed within
    /// the traffic window).
    Retire {
        /// Bank key version.
        version: u32,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Trust a WeChat public key version.
    TrustWechat {
        /// WeChat key version.
        version: u32,
        /// Hex `04…`, PEM, or a file holding either.
        key: String,
    },
    /// Stop trusting a WeChat key version (refused for the last trusted one, and, without
    /// --force, when requests arrived under it within the traffic window).
    UntrustWechat {
        /// WeChat key version.
        version: u32,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Partner channel credentials (open-platform app secrets, callback salts, HMAC app tokens).
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Sign `--percent` of responses with a staged bank key (0 ends the rollout; refused,
    /// without --force, for a version never exported with `keys export-public`).
    Rollout {
        /// Staged bank key version.
        version: u32,
        /// Share of responses, 0–100.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Write a new random admin bearer token (32 random bytes, hex) to a file created with mode
    /// 0600 — the file `server.admin_token_file` names. Run as root, the file is handed to the
    /// key directory's owner (the service user). The token is not printed unless `--print`. A
    /// running gateway picks a replaced token up at its next reload.
    GenToken {
        /// The token file to create (default: `server.admin_token_file`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing file (atomically) instead of refusing.
        #[arg(long)]
        replace: bool,
        /// Also print the token on standard output.
        #[arg(long)]
        print: bool,
    },
}

/// The guard of `untrust-wechat`, `retire` and `rollout` (docs/key-rotation.md, "Guards").
#[derive(Args, Debug, Clone)]
pub struct GuardArgs {
    /// Go ahead even if the version carried traffic within the window, was never exported, or
    /// the gateway's traffic could not be read.
    #[arg(long)]
    pub force: bool,
    /// A version used within this many minutes counts as carrying traffic.
    #[arg(
        long,
        default_value_t = 15,
        env = "PENSION_GATEWAY_TRAFFIC_WINDOW_MINUTES"
    )]
    pub traffic_window_minutes: u64,
}

/// What the running gateway says about per-version traffic.
enum Traffic {
    /// No admin endpoint configured (`server.admin_listen` and `server.admin_token_file`).
    NotConfigured,
    /// Configured but not answering (or the token unreadable).
    Unavailable(std::net::SocketAddr, TrafficFetchError),
    /// The counts.
    Seen(KeyTraffic),
}

async fn traffic(settings: &Settings) -> anyhow::Result<Traffic> {
    let Some((addr, token_file)) = settings.admin_endpoint()? else {
        return Ok(Traffic::NotConfigured);
    };
    Ok(match key_guard::fetch_traffic(addr, &token_file).await {
        Ok(t) => Traffic::Seen(t),
        Err(e) => Traffic::Unavailable(addr, e),
    })
}

/// Refuses (unless `--force`) when `version` of `role` carried traffic within the window. With
/// no admin endpoint configured there is nothing to ask: the command goes ahead and says so.
async fn guard_traffic(
    settings: &Settings,
    guard: &GuardArgs,
    role: KeyRole,
    version: u32,
) -> anyhow::Result<()> {
    if guard.force {
        return Ok(());
    }
    match traffic(settings).await? {
        Traffic::NotConfigured => {
            eprintln!(
                "note: traffic not checked — no admin endpoint configured \
                 (server.admin_listen and server.admin_token_file)"
            );
            Ok(())
        }
        Traffic::Unavailable(addr, cause) => {
            Err(refused(GuardRefusal::TrafficUnknown { addr, cause }))
        }
        Traffic::Seen(t) => {
            key_guard::check_recent(&t, role, version, guard.traffic_window_minutes)
                .map_err(refused)?;
            Ok(())
        }
    }
}

/// A guard's refusal as the command's error. (Its message is all the command prints; the awc
/// errors a fetch failure carries are not `Send`, which `anyhow` needs for a source.)
fn refused(e: GuardRefusal) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// "12 s ago" / "-" for a last-seen time.
fn ago(now: i64, last: Option<i64>) -> String {
    match last {
        None => "-".into(),
        Some(t) => format!("{} s ago", now.saturating_sub(t).max(0)),
    }
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

/// The (uid, gid) `keys gen-token` hands the token file to: the key directory's owner, when this
/// process is root and the directory belongs to another user; else none (the file is the
/// caller's).
fn token_owner(key_dir: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let meta = std::fs::metadata(key_dir).ok()?;
    (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
}

/// Runs a `keys` command against `--dir` (default: `keys.dir`). `how` is how the command was
/// invoked; the commands it prints as next steps carry the same `--config` and `--dir`.
pub async fn run(
    cmd: KeysCommand,
    how: &super::Invoked,
    settings: &Settings,
) -> anyhow::Result<()> {
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
    // `init` makes the directory's key set; `gen-token` touches no key.
    if !matches!(cmd, KeysCommand::Init { .. } | KeysCommand::GenToken { .. })
        && !dir.is_initialised()
    {
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
        KeysCommand::AddModuleKey {
            module,
            key_index,
            key_label,
            key_id,
            library,
            backend,
            token_label,
            token_serial,
            password_file,
            sessions,
            timeout_ms,
            profile,
        } => {
            use pension_gateway::keyring::{ModuleEntry, ModuleKey};
            let key = match (key_index, key_label, key_id) {
                (Some(i), _, _) => ModuleKey::Index(i),
                (_, Some(l), _) => ModuleKey::Label(l),
                (_, _, Some(id)) => {
                    ModuleKey::Id(hex::decode(id.trim()).context("--key-id must be hex digits")?)
                }
                _ => anyhow::bail!("name the key with --key-index, --key-label or --key-id"),
            };
            let declare = match library {
                None => None,
                Some(library) => {
                    let password_file = password_file.context(
                        "--library needs --password-file (the key access password or token PIN)",
                    )?;
                    let mut entry = if backend == "pkcs11" {
                        let token = match (token_label, token_serial) {
                            (Some(l), _) => pkcs11::TokenSelector::Label(l),
                            (_, Some(s)) => pkcs11::TokenSelector::Serial(s),
                            _ => anyhow::bail!(
                                "--backend pkcs11 needs --token-label or --token-serial"
                            ),
                        };
                        ModuleEntry::pkcs11(
                            module.clone(),
                            library,
                            password_file,
                            &token,
                            sessions,
                            timeout_ms,
                        )
                    } else {
                        ModuleEntry::sdf(
                            module.clone(),
                            library,
                            password_file,
                            sessions,
                            timeout_ms,
                        )
                    };
                    if let Some(path) = &profile {
                        if entry.backend == pension_gateway::keyring::Backend::Pkcs11 {
                            entry.pkcs11_profile = Some(read_pkcs11_profile(path)?);
                        } else {
                            entry.profile = read_profile(path)?;
                        }
                    }
                    Some(entry)
                }
            };
            let v = dir.add_module_key_at(&module, &key, declare)?;
            println!(
                "bank key v{v} added as staged (module `{module}`, {key}); export it to WeChat \
                 with: {keys} export-public {v}"
            );
            reload_hint();
        }
        KeysCommand::List => {
            let listing = dir.list()?;
            let traffic = traffic(settings).await?;
            let seen = match &traffic {
                Traffic::Seen(t) => Some(t),
                _ => None,
            };
            print!(
                "{:<7} {:>7} {:<10} {:<17} {:<6}",
                "role", "version", "state", "fingerprint", "signs"
            );
            if seen.is_some() {
                print!(" {:>9} last used", "count");
            }
            println!();
            for k in &listing {
                let signs = k.signs_percent.map_or(String::new(), |p| format!("{p}%"));
                let fingerprint = if k.refusal.is_some() {
                    "REFUSED"
                } else {
                    k.fingerprint.as_str()
                };
                print!(
                    "{:<7} {:>7} {:<10} {:<17} {signs:<6}",
                    k.role, k.version, k.state, fingerprint
                );
                if let Some(t) = seen {
                    let role = if k.role == "wechat" {
                        KeyRole::Wechat
                    } else {
                        KeyRole::Bank
                    };
                    match key_guard::find(t, role, k.version) {
                        Some(v) => print!(" {:>9} {}", v.count, ago(t.now, v.last_seen)),
                        None => print!(" {:>9} -", "-"),
                    }
                }
                println!();
            }
            match traffic {
                Traffic::Seen(t) => println!(
                    "count: requests verified (wechat) or responses signed (bank) by the gateway \
                     at the admin endpoint since it started {} s ago",
                    t.now.saturating_sub(t.since).max(0)
                ),
                Traffic::Unavailable(addr, e) => {
                    println!("traffic: not available from http://{addr} ({e})")
                }
                Traffic::NotConfigured => {}
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
            // `rollout` checks for this marker: a key WeChat never received cannot be verified.
            if let Err(e) = key_guard::mark_exported(
                dir.path(),
                version,
                &pk.fingerprint(),
                chrono::Utc::now().timestamp(),
            ) {
                eprintln!(
                    "warning: cannot record the export in {}: {e}",
                    key_guard::export_marker(dir.path(), version).display()
                );
            }
        }
        KeysCommand::Activate { version, force } => {
            let listed = dir.list()?;
            let state = listed
                .iter()
                .find(|k| k.role == "bank" && k.version == version)
                .map(|k| k.state.clone());
            if state.as_deref() == Some("active") {
                println!("bank key v{version} is already active: nothing changed");
                return Ok(());
            }
            // A retiring key signed before (WeChat has it: activating it is the rollback); a
            // staged one may never have left this machine.
            if state.as_deref() == Some("staged") && !force {
                key_guard::check_exported(dir.path(), version).map_err(refused)?;
            }
            dir.activate(version)?;
            println!("bank key v{version} is active; the previous active key is retiring");
            reload_hint();
        }
        KeysCommand::Retire { version, guard } => {
            let listed = dir.list()?;
            let state = listed
                .iter()
                .find(|k| k.role == "bank" && k.version == version)
                .map(|k| k.state.clone());
            if state.as_deref() == Some("retired") {
                println!("bank key v{version} is already retired: nothing changed");
                return Ok(());
            }
            if state.is_some() {
                guard_traffic(settings, &guard, KeyRole::Bank, version).await?;
            }
            dir.retire(version)?;
            println!("bank key v{version} retired");
            reload_hint();
        }
        KeysCommand::TrustWechat { version, key } => {
            dir.trust_wechat(version, &key_text(&key)?)?;
            println!("WeChat key v{version} trusted");
            reload_hint();
        }
        KeysCommand::UntrustWechat { version, guard } => {
            let listed = dir.list()?;
            let state = listed
                .iter()
                .find(|k| k.role == "wechat" && k.version == version)
                .map(|k| k.state.clone());
            if state.as_deref() == Some("untrusted") {
                println!("WeChat key v{version} is already untrusted: nothing changed");
                return Ok(());
            }
            if state.is_some() {
                guard_traffic(settings, &guard, KeyRole::Wechat, version).await?;
            }
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
        KeysCommand::Rollout {
            version,
            percent,
            guard,
        } => {
            let listed = dir.list()?;
            // A rollout shows as a non-active bank key with a share of the responses.
            let rolls = |k: &&pension_gateway::keyring::admin::KeyListing| {
                k.role == "bank" && k.state != "active" && k.signs_percent.is_some()
            };
            let current = listed
                .iter()
                .filter(rolls)
                .find(|k| k.version == version)
                .and_then(|k| k.signs_percent);
            let rolling = listed.iter().any(|k| rolls(&k));
            if current == Some(percent) || (percent == 0 && !rolling) {
                println!(
                    "bank key v{version} already signs {percent}% of responses: nothing changed"
                );
                return Ok(());
            }
            if percent > 0 && !guard.force {
                key_guard::check_exported(dir.path(), version).map_err(refused)?;
            }
            dir.rollout(version, percent)?;
            println!("bank key v{version} now signs {percent}% of responses");
            reload_hint();
        }
        KeysCommand::GenToken {
            out,
            replace,
            print,
        } => {
            let path = out
                .or_else(|| settings.server.admin_token_file.clone())
                .context("no token file: pass --out PATH or set server.admin_token_file")?;
            let token = pension_gateway::ops::secrets::new_token();
            // Run as root (the token's directory belongs to root), the token is handed to the
            // key directory's owner — the service user, who must read it.
            let owner = token_owner(dir.path());
            if let Err(e) = pension_gateway::ops::secrets::write_secret_file(
                &path,
                format!("{}\n", token.as_str()).as_bytes(),
                replace,
                owner,
            ) {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::bail!(
                        "{} exists: pass --replace to replace the token (atomically; a running \
                         gateway takes the new one at its next reload)",
                        path.display()
                    );
                }
                return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
            }
            println!(
                "admin token written to {} (mode 0600{}). A running gateway uses it after its \
                 next reload (SIGHUP, the admin call, or the file watch).",
                path.display(),
                match owner {
                    Some((uid, _)) => format!(
                        ", owned by {}, the key directory's owner",
                        pension_gateway::keyring::admin::describe_user(uid)
                    ),
                    None => String::new(),
                }
            );
            if print {
                println!("{}", token.as_str());
            }
        }
    }
    Ok(())
}

/// A token's vendor profile from a TOML file holding `[module.pkcs11_profile]`'s fields.
fn read_pkcs11_profile(path: &std::path::Path) -> anyhow::Result<pkcs11::Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--profile {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("--profile {}", path.display()))
}

/// A vendor profile from a TOML file holding `[module.profile]`'s fields, checked.
fn read_profile(path: &std::path::Path) -> anyhow::Result<sdf::Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--profile {}", path.display()))?;
    let profile: sdf::Profile =
        toml::from_str(&text).with_context(|| format!("--profile {}", path.display()))?;
    profile
        .validate()
        .with_context(|| format!("--profile {}", path.display()))?;
    Ok(profile)
}
