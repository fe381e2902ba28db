//! Partner-side clients of the three partner channels (docs/partner-channels.md): what a partner
//! runs to call the gateway, used by the `client open-platform|callback|hmac` commands and the
//! tests. Each returns the parsed answer and checks what can be checked (callback replies are
//! signed).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::partners::callback::{url_encode, Envelope, ReplyCode};
use crate::partners::{hmac, open_platform};

/// Why a partner-side call failed. Messages carry no secrets; a body quoted in [`NotJson`]
/// or [`NotEnvelope`] is the gateway's answer.
///
/// [`NotJson`]: PartnerCallError::NotJson
/// [`NotEnvelope`]: PartnerCallError::NotEnvelope
#[derive(Debug, thiserror::Error)]
pub enum PartnerCallError {
    /// The request did not reach the gateway (connect, timeout, …).
    #[error("cannot reach the gateway: {0}")]
    Unreachable(String),
    /// The answer's body could not be read.
    #[error(transparent)]
    Body(#[from] awc::error::PayloadError),
    /// The answer is not JSON.
    #[error("HTTP {status}: not JSON: {body}")]
    NotJson {
        /// HTTP status.
        status: u16,
        /// The body, lossily decoded.
        body: String,
    },
    /// An open-platform answer whose `code` is not a success code.
    #[error("platform code {code} ({msg})")]
    Platform {
        /// `code` of the answer (`?` when absent).
        code: String,
        /// `msg` of the answer (`?` when absent).
        msg: String,
    },
    /// A callback reply that is not the envelope.
    #[error("HTTP {status}: the reply is not a callback envelope: {body}")]
    NotEnvelope {
        /// HTTP status.
        status: u16,
        /// The body, lossily decoded.
        body: String,
    },
    /// A callback reply whose signature or timestamp does not check.
    #[error("reply refused: {} {}", .0.code(), .0.desc())]
    ReplyRefused(ReplyCode),
    /// A callback reply to another message.
    #[error("the reply's SeqNo {got} is not ours ({sent})")]
    SeqNo {
        /// The reply's `SeqNo`.
        got: String,
        /// Ours.
        sent: String,
    },
    /// JSON could not be written or the reply's Plain is not JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The outbound TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// The TLS configuration a partner client uses: the one given with `with_tls`, or the
/// platform's roots.
type Tls = Option<Arc<rustls::ClientConfig>>;

/// An awc client for `http://` and `https://` (certificates always verified).
fn http(tls: &Tls) -> Result<awc::Client, PartnerCallError> {
    let config = match tls {
        Some(c) => Arc::clone(c),
        None => crate::tls::client::client_config(None)?,
    };
    Ok(crate::tls::client::http_client_with(
        config,
        Duration::from_secs(10),
    ))
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `body` as JSON, or [`PartnerCallError::NotJson`] quoting it.
fn json_or_quote(status: u16, body: &[u8]) -> Result<Value, PartnerCallError> {
    serde_json::from_slice(body).map_err(|_| PartnerCallError::NotJson {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

async fn get_json(tls: &Tls, url: &str) -> Result<Value, PartnerCallError> {
    let mut resp = http(tls)?
        .get(url)
        .send()
        .await
        .map_err(|e| PartnerCallError::Unreachable(e.to_string()))?;
    let body = resp.body().await?;
    json_or_quote(resp.status().as_u16(), &body)
}

async fn post(tls: &Tls, url: &str, body: String) -> Result<(u16, Vec<u8>), PartnerCallError> {
    let mut resp = http(tls)?
        .post(url)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .map_err(|e| PartnerCallError::Unreachable(e.to_string()))?;
    let bytes = resp.body().await?;
    Ok((resp.status().as_u16(), bytes.to_vec()))
}

/// A platform answer whose `code` is not a success code.
fn platform_error(v: &Value) -> PartnerCallError {
    PartnerCallError::Platform {
        code: v["code"].as_str().unwrap_or("?").to_owned(),
        msg: v["msg"].as_str().unwrap_or("?").to_owned(),
    }
}

/// An open-platform app: fetches its access token and tickets and signs business calls.
pub struct OpenPlatformClient {
    base_url: String,
    app_id: String,
    secret: Zeroizing<String>,
    tls: Tls,
}

/// A signed business call, ready to send (kept so tools can print what was signed).
pub struct OpCall {
    /// The full URL with `app_id`, `nonce`, `version`, `sign` (and `type`).
    pub url: String,
    /// The sorted concatenation that was hashed (contains the ticket: do not log).
    pub signed_string: Zeroizing<String>,
}

impl OpenPlatformClient {
    /// An app `app_id` with `secret` calling the gateway at `base_url` (`http://host:port`).
    pub fn new(base_url: &str, app_id: &str, secret: Zeroizing<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            secret,
            tls: None,
        }
    }

    /// Uses `config` for `https://` (e.g. with a private CA) instead of the platform's roots.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// `GET /api/oauth2/access_token`; the whole answer on success.
    pub async fn access_token(&self) -> Result<Value, PartnerCallError> {
        let url = format!(
            "{}/api/oauth2/access_token?{}",
            self.base_url,
            query(&[
                ("app_id", &self.app_id),
                ("secret", &self.secret),
                ("grant_type", "client_credential"),
                ("version", open_platform::VERSION),
            ])
        );
        let v = get_json(&self.tls, &url).await?;
        match v["code"].as_str() {
            Some("60850000") => Ok(v),
            _ => Err(platform_error(&v)),
        }
    }

    /// `GET /api/oauth2/api_ticket` of `kind` (`sign` or `user`; `user_id` for `user`).
    pub async fn ticket(
        &self,
        access_token: &str,
        kind: &str,
        user_id: Option<&str>,
    ) -> Result<Value, PartnerCallError> {
        let user_data = user_id.map(|u| serde_json::json!({ "USER_ID": u }).to_string());
        let mut pairs = vec![
            ("app_id", self.app_id.as_str()),
            ("access_token", access_token),
            ("type", kind),
            ("version", open_platform::VERSION),
        ];
        if let Some(d) = user_data.as_deref() {
            pairs.push(("user_data", d));
            pairs.push(("mechant_id", "demo-merchant"));
        }
        let url = format!("{}/api/oauth2/api_ticket?{}", self.base_url, query(&pairs));
        let v = get_json(&self.tls, &url).await?;
        match v["code"].as_str() {
            Some("60850000") => Ok(v),
            _ => Err(platform_error(&v)),
        }
    }

    /// Signs a business call of `body` to `/api/s/{service}/{code}` with `ticket`.
    pub fn sign_call(
        &self,
        service: &str,
        code: &str,
        kind: Option<&str>,
        body: &str,
        ticket: &str,
        nonce: &str,
    ) -> OpCall {
        let values =
            open_platform::request_values(&self.app_id, open_platform::VERSION, nonce, kind, body);
        let sign = open_platform::sign(&values, ticket);
        let mut all: Vec<&str> = values.iter().flatten().copied().collect();
        all.push(ticket);
        all.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let mut pairs = vec![
            ("app_id", self.app_id.as_str()),
            ("nonce", nonce),
            ("version", open_platform::VERSION),
            ("sign", sign.as_str()),
        ];
        if let Some(k) = kind {
            pairs.push(("type", k));
        }
        OpCall {
            url: format!("{}/api/s/{service}/{code}?{}", self.base_url, query(&pairs)),
            signed_string: Zeroizing::new(all.concat()),
        }
    }

    /// Sends a signed call; returns the envelope (whatever its code).
    pub async fn send(&self, call: &OpCall, body: &str) -> Result<Value, PartnerCallError> {
        let (status, bytes) = post(&self.tls, &call.url, body.to_owned()).await?;
        json_or_quote(status, &bytes)
    }
}

/// A callback sender: seals business JSON with a salt, posts it, verifies the signed reply.
pub struct CallbackClient {
    url: String,
    salt: Zeroizing<String>,
    tls: Tls,
}

/// A verified callback reply.
#[derive(Debug)]
pub struct CallbackReply {
    /// HTTP status.
    pub status: u16,
    /// The reply envelope.
    pub envelope: Envelope,
    /// Its Plain, decoded.
    pub plain: Value,
}

impl CallbackClient {
    /// Posts to `url` (the partner's callback address) with `salt`.
    pub fn new(url: &str, salt: Zeroizing<String>) -> Self {
        Self {
            url: url.to_owned(),
            salt,
            tls: None,
        }
    }

    /// Uses `config` for `https://` (e.g. with a private CA) instead of the platform's roots.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sends `json` as `trans_name` with serial `seq_no`; the reply must verify under the salt.
    pub async fn call(
        &self,
        trans_name: &str,
        json: &str,
        seq_no: &str,
    ) -> Result<CallbackReply, PartnerCallError> {
        let now = chrono::Utc::now().timestamp_millis();
        let env = Envelope::seal(json, &self.salt, now, seq_no, trans_name);
        let body = serde_json::to_string(&env)?;
        let (status, bytes) = post(&self.tls, &self.url, body).await?;
        let reply = Envelope::parse(&bytes).map_err(|_| PartnerCallError::NotEnvelope {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })?;
        let plain = reply
            .open([self.salt.as_str()], chrono::Utc::now().timestamp_millis())
            .map_err(PartnerCallError::ReplyRefused)?;
        if reply.seq_no != seq_no {
            return Err(PartnerCallError::SeqNo {
                got: reply.seq_no,
                sent: seq_no.to_owned(),
            });
        }
        Ok(CallbackReply {
            status,
            plain: serde_json::from_str(&plain)?,
            envelope: reply,
        })
    }
}

/// A partner signing sorted parameters with HMAC-SHA256 and its app token.
pub struct HmacClient {
    url: String,
    fappid: String,
    token: Zeroizing<String>,
    tls: Tls,
}

impl HmacClient {
    /// Posts to `url` as `fappid` with app token `token`.
    pub fn new(url: &str, fappid: &str, token: Zeroizing<String>) -> Self {
        Self {
            url: url.to_owned(),
            fappid: fappid.to_owned(),
            token,
            tls: None,
        }
    }

    /// Uses `config` for `https://` (e.g. with a private CA) instead of the platform's roots.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The signed body for business query `param_jsons` (fields in the spec's example order).
    pub fn body(&self, param_jsons: &str, timestamp: i64, nonce: &str) -> Value {
        let ts = timestamp.to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("fappid", &self.fappid),
            ("timestamp", &ts),
            ("nonce", nonce),
            ("version", "2"),
            ("paramJsons", param_jsons),
        ];
        let sign = hmac::sign(fields.iter().copied(), &self.token);
        fields.push(("sign", &sign));
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect(),
        )
    }

    /// Sends the query; returns the HTTP status and the answer.
    pub async fn call(&self, param_jsons: &str) -> Result<(u16, Value), PartnerCallError> {
        let body = self.body(
            param_jsons,
            chrono::Utc::now().timestamp(),
            &crate::crypto::nonce::generate(),
        );
        let (status, bytes) = post(&self.tls, &self.url, body.to_string()).await?;
        Ok((status, json_or_quote(status, &bytes)?))
    }
}
