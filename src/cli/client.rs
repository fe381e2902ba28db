//! `client …`: act as WeChat (signed queries, answers verified), the bank's outbound call, and the
//! self-test tools `sign` / `verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pension_gateway::client::WechatClient;
use pension_gateway::config::Settings;
use pension_gateway::crypto::signing_string::display_signing_string;
use pension_gateway::crypto::{nonce, PublicKey, SecretKey};

/// Exit code of `client query`/`call` when the answer's signature verified but its HTTP status
/// was not 200 (a signed error such as 412 `INVALID_USER_INFO`).
pub const EXIT_NOT_200: u8 = 4;

/// Exit code of `client query`/`call`/`verify` when a signature did not verify (whatever the
/// HTTP status): the answer must not be trusted.
pub const EXIT_UNVERIFIED: u8 = 5;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Send a signed account query as WeChat would and verify the signed answer.
    Query {
        /// Full URL of the account-query API.
        #[arg(long, default_value = "http://127.0.0.1:8080/v1/pension/account")]
        url: String,
        #[command(flatten)]
        query: super::QueryArgs,
        /// Directory with `wechat-v<N>.key` (WeChat's private key) and `bank-v<N>.pub` files.
        #[arg(long, default_value = "keys/demo")]
        keys_dir: PathBuf,
        /// Print the exact signing strings.
        #[arg(long)]
        verbose: bool,
        /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Bank-initiated request: sign with the bank's active key (naming the bank and key version),
    /// POST to WeChat, verify WeChat's signed response against its trusted keys.
    Call {
        /// Full URL at WeChat.
        #[arg(long)]
        url: String,
        /// JSON body to send.
        #[arg(long)]
        body: String,
        /// The bank's identifier as registered with WeChat.
        #[arg(long)]
        bank_id: String,
        /// Key directory (bank key ring: active bank key, trusted WeChat keys); default `keys.dir`.
        #[arg(long)]
        keys_dir: Option<PathBuf>,
        /// PEM CA trusted for an `https://` URL besides the platform's roots (default: `tls.ca_file`).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Act as an open-platform app: get an access token and a ticket, then make a signed
    /// account query through `/api/s/{service}/{code}` (docs/partner-channels.md).
    OpenPlatform(super::partners::OpenPlatformArgs),
    /// Act as a callback partner: send a salted, signed account query and verify the reply.
    Callback(super::partners::CallbackArgs),
    /// Act as an HMAC partner: send a sorted-parameter HMAC-SHA256 signed account query.
    Hmac(super::partners::HmacArgs),
    /// Self-test tool (guide §3.5): build a signing string and sign it; prints it with visible `\n`.
    Sign {
        #[command(flatten)]
        msg: SigningInput,
        /// Private key: hex, PEM, or a file holding either (default: the demo WeChat key).
        #[arg(long, default_value = "keys/demo/wechat-v1.key")]
        key: String,
        /// Key version to name in the Authorization header.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Self-test tool (guide §3.5): check a signature over a signing string.
    Verify {
        #[command(flatten)]
        msg: SigningInput,
        /// Base64 DER signature.
        #[arg(long)]
        signature: String,
        /// Public key: hex `04…`, PEM, or a file holding either.
        #[arg(long)]
        public_key: String,
    },
}

/// The pieces of a signing string.
#[derive(clap::Args)]
pub struct SigningInput {
    /// Response (3 lines: timestamp, nonce, body) instead of request (5 lines).
    #[arg(long)]
    response: bool,
    /// Request method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Path and query exactly as sent, e.g. `/v1/pension/account?x=1`.
    #[arg(long, default_value = "/v1/pension/account")]
    url: String,
    /// Unix seconds, exactly as sent.
    #[arg(long)]
    timestamp: String,
    /// Nonce, exactly as sent.
    #[arg(long)]
    nonce: String,
    /// Body text (empty for GET / 204).
    #[arg(long, default_value = "", conflicts_with = "body_file")]
    body: String,
    /// Read the body bytes from a file instead (exact bytes, no trailing newline added).
    #[arg(long)]
    body_file: Option<PathBuf>,
}

impl SigningInput {
    fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        use pension_gateway::crypto::signing_string::{
            request_signing_string, response_signing_string,
        };
        let body = match &self.body_file {
            Some(p) => std::fs::read(p).with_context(|| format!("{}", p.display()))?,
            None => self.body.as_bytes().to_vec(),
        };
        Ok(if self.response {
            response_signing_string(&self.timestamp, &self.nonce, &body)
        } else {
            request_signing_string(
                &self.method,
                self.url.as_bytes(),
                &self.timestamp,
                &self.nonce,
                &body,
            )
        })
    }
}

fn versioned_files(dir: &Path, prefix: &str, ext: &str) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(ext))
            .and_then(|v| v.parse().ok())
        {
            out.push((v, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// `client call`: the bank's outbound request, keys from the key ring's manifest.
async fn call(
    url: &str,
    body: Vec<u8>,
    bank_id: &str,
    dir: PathBuf,
    settings: &Settings,
    http: awc::Client,
) -> anyhow::Result<ExitCode> {
    use pension_gateway::keyring::{read_key_text, BankKeyState, KeyFileKind, WechatKeyState};
    let kd = pension_gateway::keyring::admin::KeyDir::new(
        &dir,
        settings.keys.engine,
        settings.wechat.signer_id.as_bytes(),
    );
    let m = kd.manifest()?;
    let active = m
        .bank
        .iter()
        .find(|b| b.state == BankKeyState::Active)
        .context("no active bank key")?;
    if active.backend != pension_gateway::keyring::Backend::File {
        anyhow::bail!(
            "bank key v{} is kept in module `{}`: `client call` signs with a key file only (the \
             private key never leaves the module); `client query` needs only the public keys",
            active.version,
            active.module.as_deref().unwrap_or("?")
        );
    }
    let key_path = dir.join(&active.private_key);
    let text = read_key_text(&key_path, KeyFileKind::Secret)?;
    let bank_key = SecretKey::parse(&text)?;
    let mut wechat = Vec::new();
    for w in m
        .wechat
        .iter()
        .filter(|w| w.state == WechatKeyState::Trusted)
    {
        let t = read_key_text(&dir.join(&w.public_key), KeyFileKind::PublicKey)?;
        wechat.push((w.version, PublicKey::parse(&t)?));
    }
    let client = WechatClient::bank_outbound(
        settings.keys.engine,
        &bank_key,
        active.version,
        bank_id,
        &wechat,
        settings.wechat.signer_id.as_bytes(),
    )?;
    let answer = exchange(&http, &client, url, body, false).await?;
    Ok(answer.report("WeChat"))
}

/// What came back from one signed exchange.
struct Answer {
    /// The HTTP status.
    status: u16,
    /// The key version that signed the answer, or why its signature did not verify.
    verified: anyhow::Result<u32>,
}

impl Answer {
    /// Prints the verdict on the signature and turns the answer into the exit code: 0 for a
    /// verified 200, [`EXIT_UNVERIFIED`] for any answer whose signature failed, [`EXIT_NOT_200`]
    /// for a verified answer of another status.
    fn report(self, signer: &str) -> ExitCode {
        match self.verified {
            Err(e) => {
                println!("response signature: NOT VERIFIED ({e:#})");
                eprintln!("error: the answer's signature did not verify; do not trust it");
                ExitCode::from(EXIT_UNVERIFIED)
            }
            Ok(v) => {
                println!("response signature: VERIFIED ({signer} key version {v})");
                if self.status == 200 {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("error: HTTP {} (the signed answer is above)", self.status);
                    ExitCode::from(EXIT_NOT_200)
                }
            }
        }
    }
}

/// Signs `body` as a POST to `url` with `client`, sends it, prints the status, Request-ID and
/// body, and verifies the signed answer: the one send-and-verify path of `client query` and
/// `client call`. Returns the status and the verdict on the answer's signature; an error only
/// when there was no answer.
async fn exchange(
    http: &awc::Client,
    client: &WechatClient,
    url: &str,
    body: Vec<u8>,
    verbose: bool,
) -> anyhow::Result<Answer> {
    let uri: actix_web::http::Uri = url.parse().context("--url is not a URL")?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let signed = client.sign_request(
        "POST",
        &pq,
        &body,
        chrono::Utc::now().timestamp(),
        &nonce::generate(),
    )?;
    if verbose {
        println!(
            "request signing string:\n{}",
            display_signing_string(&signed.signing_string)
        );
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = http
        .post(url)
        .insert_header(("Authorization", signed.authorization))
        .insert_header(("Request-ID", request_id.as_str()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Accept", "application/json"))
        .insert_header((
            "User-Agent",
            concat!("pension-gateway-client/", env!("CARGO_PKG_VERSION")),
        ))
        .send_body(body)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let resp_body = resp
        .body()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response: {e}"))?;
    let headers = resp.headers().clone();
    println!("HTTP {}  Request-ID {}", resp.status(), request_id);
    match serde_json::from_slice::<serde_json::Value>(&resp_body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(_) => println!("{}", String::from_utf8_lossy(&resp_body)),
    }
    let verified = client
        .verify_response(
            |n| headers.get(n).and_then(|v| v.to_str().ok()),
            &resp_body,
            chrono::Utc::now().timestamp(),
        )
        .map_err(anyhow::Error::from);
    Ok(Answer {
        status: resp.status().as_u16(),
        verified,
    })
}

/// The WeChat-side client from a key directory's `wechat-v<N>.key` (highest N) and `bank-v<N>.pub`.
pub(crate) fn wechat_client(keys_dir: &Path, settings: &Settings) -> anyhow::Result<WechatClient> {
    // The default `keys/demo` outside the repository: the demo ring built into the binary.
    let keys_dir = &pension_gateway::keyring::demo::resolve(keys_dir)?;
    let (wechat_version, wechat_key_path) = versioned_files(keys_dir, "wechat-v", ".key")?
        .pop()
        .with_context(|| format!("no wechat-v<N>.key in {}", keys_dir.display()))?;
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&wechat_key_path)?);
    let wechat_key =
        SecretKey::parse(&text).with_context(|| format!("{}", wechat_key_path.display()))?;
    let mut bank_keys = Vec::new();
    for (v, path) in versioned_files(keys_dir, "bank-v", ".pub")? {
        let text = std::fs::read_to_string(&path)?;
        bank_keys.push((
            v,
            PublicKey::parse(&text).with_context(|| format!("{}", path.display()))?,
        ));
    }
    WechatClient::new(
        settings.keys.engine,
        &wechat_key,
        Some(wechat_version),
        &bank_keys,
        settings.wechat.signer_id.as_bytes(),
    )
    .context("building the WeChat-side client")
}

/// The TLS configuration of outbound calls: platform roots plus `--ca-file`, or else
/// `tls.ca_file`. Verification is always on.
pub(crate) fn outbound_tls(
    ca_file: Option<&Path>,
    settings: &Settings,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let ca = ca_file.or(settings.tls.ca_file.as_deref());
    pension_gateway::tls::client::client_config(ca).context("outbound TLS")
}

/// An awc client for `http://` and `https://` URLs (see [`outbound_tls`]).
pub(crate) fn outbound_http(
    ca_file: Option<&Path>,
    settings: &Settings,
) -> anyhow::Result<awc::Client> {
    Ok(pension_gateway::tls::client::http_client_with(
        outbound_tls(ca_file, settings)?,
        std::time::Duration::from_secs(10),
    ))
}

/// Runs a `client` command. Exit codes (README "Exit codes"): 0 a verified 200 (or a tool that
/// succeeded), 1 no answer or bad input, [`EXIT_NOT_200`], [`EXIT_UNVERIFIED`].
pub async fn run(cmd: ClientCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let id = settings.wechat.signer_id.as_bytes();
    let (url, query, keys_dir, verbose, ca_file) = match cmd {
        ClientCommand::Query {
            url,
            query,
            keys_dir,
            verbose,
            ca_file,
        } => (url, query, keys_dir, verbose, ca_file),
        ClientCommand::Call {
            url,
            body,
            bank_id,
            keys_dir,
            ca_file,
        } => {
            let http = outbound_http(ca_file.as_deref(), settings)?;
            return call(
                &url,
                body.into_bytes(),
                &bank_id,
                keys_dir.unwrap_or_else(|| settings.keys.dir.clone()),
                settings,
                http,
            )
            .await;
        }
        ClientCommand::OpenPlatform(args) => {
            return super::partners::open_platform(args, settings)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Callback(args) => {
            return super::partners::callback(args, settings)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Hmac(args) => {
            return super::partners::hmac(args, settings)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Sign { msg, key, version } => {
            let text = zeroize::Zeroizing::new(super::key_text(&key)?);
            let sk = SecretKey::parse(&text).context("--key")?;
            let bytes = msg.bytes()?;
            let sig = settings
                .keys
                .engine
                .engine()
                .signer(&sk, id)?
                .sign(&bytes)?;
            println!(
                "signing string ({} bytes):\n{}",
                bytes.len(),
                display_signing_string(&bytes)
            );
            println!(
                "signature (Base64 DER SM2-SM3, ID {}): {}",
                settings.wechat.signer_id,
                sig.to_base64()
            );
            if !msg.response {
                let auth = pension_gateway::crypto::Authorization {
                    scheme: Some(pension_gateway::crypto::authorization::DEFAULT_SCHEME.into()),
                    version,
                    bank_id: None,
                    nonce: msg.nonce.clone(),
                    timestamp: msg.timestamp.clone(),
                    signature: sig.to_base64(),
                };
                println!("Authorization: {}", auth.to_header_value());
            }
            return Ok(ExitCode::SUCCESS);
        }
        ClientCommand::Verify {
            msg,
            signature,
            public_key,
        } => {
            let pk = PublicKey::parse(&super::key_text(&public_key)?).context("--public-key")?;
            let bytes = msg.bytes()?;
            println!(
                "signing string ({} bytes):\n{}",
                bytes.len(),
                display_signing_string(&bytes)
            );
            let sig = pension_gateway::crypto::Signature::from_base64(signature.trim())
                .context("--signature")?;
            let v = settings.keys.engine.engine().verifier(&pk, id)?;
            return match v.verify(&bytes, &sig) {
                Ok(()) => {
                    println!("signature: VERIFIED");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("signature: NOT VERIFIED ({e})");
                    Ok(ExitCode::from(EXIT_UNVERIFIED))
                }
            };
        }
    };
    let client = wechat_client(&keys_dir, settings)?;
    let http = outbound_http(ca_file.as_deref(), settings)?;
    let answer = exchange(&http, &client, &url, query.json(None).into_bytes(), verbose).await?;
    Ok(answer.report("bank"))
}
