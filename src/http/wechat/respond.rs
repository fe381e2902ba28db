//! Signed responses: every response of the WeChat channel, errors included, carries
//! `WxIns-Nonce`, `WxIns-Signature`, `WxIns-Timestamp`, `WxIns-Version` and the echoed
//! `Request-ID` (docs/protocol.md §7).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::crypto::nonce;
use crate::crypto::signing_string::response_signing_string;
use crate::keyring::{BankKey, BankSignError, BankSigner, KeyRing};
use crate::state::AppState;

/// The bank key that will sign this response (drawn once, so the audit row can name it).
pub fn choose_signer(ring: &KeyRing) -> Option<&BankKey> {
    ring.response_signer(rand::random::<u64>())
}

/// A signed answer not yet sent: what its headers carry, and the evidence for the audit row.
#[derive(Debug)]
pub struct SignedAnswer {
    /// Bank key version that signed.
    pub version: u32,
    /// `WxIns-Timestamp`.
    pub timestamp: String,
    /// `WxIns-Nonce`.
    pub nonce: String,
    /// The signature (`WxIns-Signature`, Base64 DER on the wire).
    pub signature: crate::crypto::Signature,
    /// The evidence of this signature for the audit row.
    pub evidence: Option<crate::store::SignedEvidence>,
}

/// Why a response leaves unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// Signing failed in the gateway (it cannot with a validated key ring): unsigned 500.
    Failed,
    /// The signing module did not answer in time or answered an error: unsigned 503
    /// ([`MODULE_UNAVAILABLE_BODY`]), retryable.
    ModuleUnavailable,
}

/// The body of the unsigned 503 answered while the signing module is unavailable. Stable: the
/// bytes are part of the contract (docs/hsm.md).
pub const MODULE_UNAVAILABLE_BODY: &str = r#"{"code":"SYSTEM_ERROR","message":"the bank's signing module is temporarily unavailable; please retry"}"#;

/// Signs `body` with `key` now: a file key inline, a module key off the async workers under
/// its deadline. On failure the caller answers with [`response`]'s unsigned 500 or 503.
pub async fn sign(
    state: &AppState,
    key: Option<&BankKey>,
    body: &[u8],
    request_id: Option<&str>,
) -> Result<SignedAnswer, Unsigned> {
    let timestamp = state.clock().now().to_string();
    let nonce = nonce::generate();
    let message = response_signing_string(&timestamp, &nonce, body);
    let Some(k) = key else {
        tracing::error!(request_id, "cannot sign response: no bank key");
        return Err(Unsigned::Failed);
    };
    let started = Instant::now();
    let signed = match &k.signer {
        // Inline: the file backend pays no task or wake-up.
        BankSigner::File(_) => k.signer.sign(&message).map_err(BankSignError::Engine),
        BankSigner::Module(_) => k.signer.sign_async(&message).await,
    };
    let engine = match &k.signer {
        BankSigner::File(_) => state.engine().name(),
        BankSigner::Module(m) => m.backend(),
    };
    state
        .metrics()
        .sign_seconds
        .with_label_values(&[engine])
        .observe(started.elapsed().as_secs_f64());
    match signed {
        Ok(signature) => {
            state
                .metrics()
                .record_bank_key(k.version, state.clock().now());
            if k.signer.module().is_some() {
                state.metrics().record_dependency("signing_module", true);
            }
            Ok(SignedAnswer {
                version: k.version,
                evidence: super::verify::evidence(
                    state.wechat().signer_id.as_bytes(),
                    k.signer.public_key(),
                    &nonce,
                    &timestamp,
                    &message,
                    &signature,
                ),
                timestamp,
                nonce,
                signature,
            })
        }
        Err(BankSignError::Module(e)) => {
            state
                .metrics()
                .signer_failures
                .with_label_values(&[k.signer.backend(), e.reason()])
                .inc();
            state.metrics().record_dependency("signing_module", false);
            tracing::error!(
                request_id,
                bank_key_version = k.version,
                backend = k.signer.backend(),
                error = %e,
                "cannot sign response: signing module unavailable"
            );
            Err(Unsigned::ModuleUnavailable)
        }
        Err(BankSignError::Engine(e)) => {
            tracing::error!(request_id, error = %e, "cannot sign response");
            Err(Unsigned::Failed)
        }
    }
}

/// The response of `body` signed as `signed`; an unsigned 500 (or 503 while the signing
/// module is unavailable) when there is no signature.
pub fn response(
    status: StatusCode,
    body: Vec<u8>,
    signed: Result<SignedAnswer, Unsigned>,
    request_id: Option<&str>,
) -> HttpResponse {
    let signed = match signed {
        Ok(signed) => signed,
        Err(Unsigned::ModuleUnavailable) => {
            return HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .insert_header(("Retry-After", "1"))
                .body(MODULE_UNAVAILABLE_BODY);
        }
        Err(Unsigned::Failed) => {
            return HttpResponse::InternalServerError()
                .content_type("application/json")
                .body(
                    r#"{"code":"SYSTEM_ERROR","message":"the bank could not sign its response"}"#,
                );
        }
    };
    let mut resp = HttpResponse::build(status);
    resp.content_type("application/json")
        .insert_header(("WxIns-Nonce", signed.nonce))
        .insert_header(("WxIns-Signature", signed.signature.to_base64()))
        .insert_header(("WxIns-Timestamp", signed.timestamp))
        .insert_header(("WxIns-Version", signed.version.to_string()));
    if let Some(id) = request_id {
        resp.insert_header(("Request-ID", id.to_string()));
    }
    resp.body(body)
}

/// Builds the signed response. If signing itself fails (it cannot with a validated key ring),
/// the caller gets an unsigned 500 and the failure is logged as an error.
pub async fn signed(
    state: &AppState,
    key: Option<&BankKey>,
    status: StatusCode,
    body: Vec<u8>,
    request_id: Option<&str>,
) -> HttpResponse {
    let answer = sign(state, key, &body, request_id).await;
    response(status, body, answer, request_id)
}
