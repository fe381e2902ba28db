//! Signed requests in either direction (docs/protocol.md §10): [`SigningClient`] signs the
//! five-line request string with one party's key and verifies the other party's `WxIns-*` response.
//! As WeChat ([`WechatClient`]) it signs with a WeChat key and trusts the bank's keys — the
//! `client` CLI, the demo and the tests use it that way. As the bank (outbound, bank-initiated
//! calls) it signs with the bank's active key, names the bank and key version in `Authorization`,
//! and trusts WeChat's keys: [`SigningClient::bank_outbound`]. Pure functions over bytes; time and
//! nonce are parameters.

pub mod partners;

use std::collections::BTreeMap;

use crate::crypto::authorization::DEFAULT_SCHEME;
use crate::crypto::signing_string::{request_signing_string, response_signing_string};
use crate::crypto::{
    Authorization, EngineKind, KeyError, PreparedSigner, PreparedVerifier, PublicKey, SecretKey,
    Signature,
};

/// Why a response was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// A `WxIns-*` header is missing or malformed.
    #[error("response header {0} is missing or malformed")]
    Header(&'static str),
    /// `WxIns-Version` names a key version this client does not trust.
    #[error("response names key version {0}, which this client does not trust")]
    UnknownVersion(u32),
    /// The signature does not match.
    #[error("response signature does not verify under key version {0}")]
    Signature(u32),
    /// `WxIns-Timestamp` is further from now than the allowed skew (a stale or replayed answer).
    #[error("response timestamp {timestamp} is more than {skew} s from now ({now})")]
    Stale {
        /// The response's timestamp.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The allowed skew, seconds.
        skew: i64,
    },
}

/// How far a response's `WxIns-Timestamp` may be from the verifier's clock, seconds (the same
/// ±300 s the gateway allows requests).
pub const RESPONSE_SKEW_SECS: i64 = 300;

/// Signs requests with one party's key and verifies the other party's signed responses.
pub struct SigningClient {
    signer: Box<dyn PreparedSigner>,
    key_version: Option<u32>,
    scheme: Option<String>,
    bank_id: Option<String>,
    peer_keys: BTreeMap<u32, Box<dyn PreparedVerifier>>,
}

/// The client acting as WeChat (signs with a WeChat key, trusts the bank's keys).
pub type WechatClient = SigningClient;

/// The headers of one signed request.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// The `Authorization` value.
    pub authorization: String,
    /// The exact signing string (for the self-test tool).
    pub signing_string: Vec<u8>,
}

impl SigningClient {
    /// A client signing with `wechat_key` (named as `key_version` in Authorization, if given)
    /// and trusting `bank_keys` (version → public key) for responses.
    pub fn new(
        engine: EngineKind,
        wechat_key: &SecretKey,
        key_version: Option<u32>,
        bank_keys: &[(u32, PublicKey)],
        signer_id: &[u8],
    ) -> Result<Self, KeyError> {
        let eng = engine.engine();
        let signer = eng.signer(wechat_key, signer_id)?;
        let mut map = BTreeMap::new();
        for (v, pk) in bank_keys {
            map.insert(*v, eng.verifier(pk, signer_id)?);
        }
        Ok(Self {
            signer,
            key_version,
            scheme: Some(DEFAULT_SCHEME.to_string()),
            bank_id: None,
            peer_keys: map,
        })
    }

    /// The bank's outbound client: signs with the bank key of `bank_version`, names `bank_id`
    /// and the version in `Authorization`, and trusts WeChat's `wechat_keys` for responses.
    pub fn bank_outbound(
        engine: EngineKind,
        bank_key: &SecretKey,
        bank_version: u32,
        bank_id: &str,
        wechat_keys: &[(u32, PublicKey)],
        signer_id: &[u8],
    ) -> Result<Self, KeyError> {
        let mut c = Self::new(engine, bank_key, Some(bank_version), wechat_keys, signer_id)?;
        c.bank_id = Some(bank_id.to_string());
        Ok(c)
    }

    /// Sets the scheme token written in front of Authorization (`None` for none).
    pub fn with_scheme(mut self, scheme: Option<String>) -> Self {
        self.scheme = scheme;
        self
    }

    /// Signs one request.
    pub fn sign_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> Result<SignedRequest, crate::crypto::SignError> {
        let ts = timestamp.to_string();
        let signing_string =
            request_signing_string(method, path_and_query.as_bytes(), &ts, nonce, body);
        let sig = self.signer.sign(&signing_string)?;
        let auth = Authorization {
            scheme: self.scheme.clone(),
            version: self.key_version,
            bank_id: self.bank_id.clone(),
            nonce: nonce.to_string(),
            timestamp: ts,
            signature: sig.to_base64(),
        };
        Ok(SignedRequest {
            authorization: auth.to_header_value(),
            signing_string,
        })
    }

    /// Verifies a response's `WxIns-*` headers over its raw body at `now` (unix seconds):
    /// signature under the version it names, and `WxIns-Timestamp` within
    /// [`RESPONSE_SKEW_SECS`] of `now`. Returns the peer's key version. `header` looks a header
    /// up by name (case-insensitive).
    pub fn verify_response<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        now: i64,
    ) -> Result<u32, ResponseError> {
        let version: u32 = header("WxIns-Version")
            .and_then(|v| v.parse().ok())
            .ok_or(ResponseError::Header("WxIns-Version"))?;
        let nonce = header("WxIns-Nonce").ok_or(ResponseError::Header("WxIns-Nonce"))?;
        let ts = header("WxIns-Timestamp")
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ResponseError::Header("WxIns-Timestamp"))?;
        let sig = header("WxIns-Signature")
            .and_then(|s| Signature::from_base64(s).ok())
            .ok_or(ResponseError::Header("WxIns-Signature"))?;
        let verifier = self
            .peer_keys
            .get(&version)
            .ok_or(ResponseError::UnknownVersion(version))?;
        verifier
            .verify(&response_signing_string(ts, nonce, body), &sig)
            .map_err(|_| ResponseError::Signature(version))?;
        // Judged after the signature, so the timestamp compared is the one that was signed.
        let timestamp: i64 = ts
            .parse()
            .map_err(|_| ResponseError::Header("WxIns-Timestamp"))?;
        if (now - timestamp).abs() > RESPONSE_SKEW_SECS {
            return Err(ResponseError::Stale {
                timestamp,
                now,
                skew: RESPONSE_SKEW_SECS,
            });
        }
        Ok(version)
    }
}
