//! `client open-platform | callback | hmac`: the gateway's partner channels driven from the
//! partner's side, for demos, onboarding and tests. Defaults are the demo credentials in
//! `keys/demo/` against `cargo run --release`. Secrets are read from files, never from flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use pension_gateway::client::partners::{CallbackClient, HmacClient, OpenPlatformClient};
use pension_gateway::config::Settings;
use pension_gateway::crypto::nonce;
use pension_gateway::partners::hmac as hmac_sign;
use serde_json::Value;
use zeroize::Zeroizing;

/// `client open-platform`
#[derive(Args)]
pub struct OpenPlatformArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// The app id.
    #[arg(long, default_value = "wbdemo0000000001")]
    app_id: String,
    /// File holding the app secret.
    #[arg(
        long,
        default_value = "keys/demo/open-platform-wbdemo0000000001-v1.secret"
    )]
    secret_file: PathBuf,
    /// Service part of `/api/s/{service}/{code}`.
    #[arg(long, default_value = "pension")]
    service: String,
    /// Code part of `/api/s/{service}/{code}`.
    #[arg(long, default_value = "10001")]
    code: String,
    /// Sign with a single-use user ticket for this USER_ID instead of the sign ticket.
    #[arg(long)]
    user_id: Option<String>,
    /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    query: super::QueryArgs,
}

/// `client callback`
#[derive(Args)]
pub struct CallbackArgs {
    /// The callback address.
    #[arg(long, default_value = "http://127.0.0.1:8080/callback/demo-partner")]
    url: String,
    /// File holding the salt.
    #[arg(long, default_value = "keys/demo/callback-demo-partner-v1.secret")]
    salt_file: PathBuf,
    /// transName.
    #[arg(long, default_value = "PensionAccountQuery")]
    trans_name: String,
    /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    query: super::QueryArgs,
}

/// `client hmac`
#[derive(Args)]
pub struct HmacArgs {
    /// The HMAC account-query address.
    #[arg(long, default_value = "http://127.0.0.1:8080/hmac/v1/pension/account")]
    url: String,
    /// fappid.
    #[arg(long, default_value = "fappdemo0001")]
    fappid: String,
    /// File holding the app token (fappToken).
    #[arg(long, default_value = "keys/demo/hmac-fappdemo0001-v1.secret")]
    token_file: PathBuf,
    /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    query: super::QueryArgs,
}

fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
    );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `client open-platform`: token → ticket → signed business call.
pub async fn open_platform(a: OpenPlatformArgs, settings: &Settings) -> anyhow::Result<()> {
    let client = OpenPlatformClient::new(&a.base_url, &a.app_id, read_secret(&a.secret_file)?)
        .with_tls(super::client::outbound_tls(a.ca_file.as_deref(), settings)?);
    let token = client.access_token().await?;
    let access_token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "1. access_token: issued (code {}, expire_in {})",
        token["code"].as_str().unwrap_or("?"),
        token["expire_in"]
    );
    let kind = if a.user_id.is_some() { "user" } else { "sign" };
    let tickets = client
        .ticket(&access_token, kind, a.user_id.as_deref())
        .await?;
    let ticket = tickets["tickets"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "2. api_ticket type={kind}: issued (expire_in {})",
        tickets["tickets"][0]["expire_in"]
    );
    let body = a.query.json(a.user_id.as_deref().map(|u| ("USER_ID", u)));
    let call = client.sign_call(
        &a.service,
        &a.code,
        a.user_id.as_ref().map(|_| "user"),
        &body,
        &ticket,
        &nonce::generate(),
    );
    println!(
        "3. POST /api/s/{}/{} signed: sign = SHA1(sorted [app_id, version, nonce, type, body, ticket]) upper-case hex",
        a.service, a.code
    );
    let envelope = client.send(&call, &body).await?;
    println!("{}", pretty(&envelope));
    if let Some(j) = envelope["jsonData"].as_str() {
        if let Ok(v) = serde_json::from_str::<Value>(j) {
            println!("jsonData:\n{}", pretty(&v));
        }
    }
    match envelope["code"].as_str() {
        Some("60840000") => Ok(()),
        _ => Err(anyhow::anyhow!(
            "platform code {} ({})",
            envelope["code"].as_str().unwrap_or("?"),
            envelope["msg"].as_str().unwrap_or("?")
        )),
    }
}

/// `client callback`: a salted, signed query; the reply's signature is verified.
pub async fn callback(a: CallbackArgs, settings: &Settings) -> anyhow::Result<()> {
    let client = CallbackClient::new(&a.url, read_secret(&a.salt_file)?)
        .with_tls(super::client::outbound_tls(a.ca_file.as_deref(), settings)?);
    let seq_no = format!(
        "{}{}",
        chrono::Utc::now().timestamp_millis(),
        &nonce::generate()[..6]
    );
    let reply = client
        .call(&a.trans_name, &a.query.json(None), &seq_no)
        .await?;
    println!("HTTP {}  SeqNo {}", reply.status, reply.envelope.seq_no);
    println!("{}", pretty(&reply.plain));
    println!("reply signature: VERIFIED (SHA-256 of Plain + salt + Timestamp)");
    match reply.plain["CODE"].as_str() {
        Some("0000") => Ok(()),
        other => Err(anyhow::anyhow!("reply CODE {}", other.unwrap_or("?"))),
    }
}

/// `client hmac`: a sorted-parameter HMAC-SHA256 signed query.
pub async fn hmac(a: HmacArgs, settings: &Settings) -> anyhow::Result<()> {
    let token = read_secret(&a.token_file)?;
    let query = a.query.json(None);
    let preview = HmacClient::new(&a.url, &a.fappid, token.clone()).body(&query, 0, "<nonce>");
    let shape: Vec<(&str, &str)> = preview
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "sign")
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let shown = hmac_sign::string_to_sign(shape, "<fappToken>");
    println!("string signed (shape; timestamp and nonce vary): {shown}");
    let (status, answer) = HmacClient::new(&a.url, &a.fappid, token)
        .with_tls(super::client::outbound_tls(a.ca_file.as_deref(), settings)?)
        .call(&query)
        .await?;
    println!("HTTP {status}\n{}", pretty(&answer));
    match answer["code"].as_str() {
        Some("200") => Ok(()),
        other => Err(anyhow::anyhow!("code {}", other.unwrap_or("?"))),
    }
}
