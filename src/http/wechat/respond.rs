//! Signed responses: every response of the WeChat channel, errors included, carries
//! `WxIns-Nonce`, `WxIns-Signature`, `WxIns-Timestamp`, `WxIns-Version` and the echoed
//! `Request-ID` (docs/protocol.md §7).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::crypto::nonce;
use crate::crypto::signing_string::response_signing_string;
use crate::keyring::{BankKey, KeyRing};
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

/// Signs `body` with `key` now. `None` if signing failed (it cannot with a validated key ring;
/// logged as an error): the caller must answer with [`response`]'s unsigned 500.
pub fn sign(
    state: &AppState,
    key: Option<&BankKey>,
    body: &[u8],
    request_id: Option<&str>,
) -> Option<SignedAnswer> {
    let timestamp = state.clock().now().to_string();
    let nonce = nonce::generate();
    let message = response_signing_string(&timestamp, &nonce, body);
    let started = Instant::now();
    let signed = key.map(|k| (k, k.signer.sign(&message)));
    state
        .metrics()
        .sign_seconds
        .with_label_values(&[state.engine().name()])
        .observe(started.elapsed().as_secs_f64());
    match signed {
        Some((k, Ok(signature))) => {
            state
                .metrics()
                .record_bank_key(k.version, state.clock().now());
            Some(SignedAnswer {
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
        other => {
            tracing::error!(
                request_id,
                error = other
                    .and_then(|(_, r)| r.err())
                    .map(tracing::field::display),
                "cannot sign response"
            );
            None
        }
    }
}

/// The response of `body` signed as `signed`; an unsigned 500 when there is no signature.
pub fn response(
    status: StatusCode,
    body: Vec<u8>,
    signed: Option<SignedAnswer>,
    request_id: Option<&str>,
) -> HttpResponse {
    let Some(signed) = signed else {
        return HttpResponse::InternalServerError()
            .content_type("application/json")
            .body(r#"{"code":"SYSTEM_ERROR","message":"the bank could not sign its response"}"#);
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
pub fn signed(
    state: &AppState,
    key: Option<&BankKey>,
    status: StatusCode,
    body: Vec<u8>,
    request_id: Option<&str>,
) -> HttpResponse {
    let answer = sign(state, key, &body, request_id);
    response(status, body, answer, request_id)
}
