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

/// Builds the signed response. If signing itself fails (it cannot with a validated key ring),
/// the caller gets an unsigned 500 and the failure is logged as an error.
pub fn signed(
    state: &AppState,
    key: Option<&BankKey>,
    status: StatusCode,
    body: Vec<u8>,
    request_id: Option<&str>,
) -> HttpResponse {
    let timestamp = state.clock().now().to_string();
    let nonce = nonce::generate();
    let message = response_signing_string(&timestamp, &nonce, &body);
    let started = Instant::now();
    let signed = key.map(|k| (k.version, k.signer.sign(&message)));
    state
        .metrics()
        .sign_seconds
        .with_label_values(&[state.engine().name()])
        .observe(started.elapsed().as_secs_f64());
    let (version, signature) = match signed {
        Some((v, Ok(sig))) => (v, sig),
        other => {
            tracing::error!(
                request_id,
                error = other
                    .and_then(|(_, r)| r.err())
                    .map(tracing::field::display),
                "cannot sign response"
            );
            return HttpResponse::InternalServerError()
                .content_type("application/json")
                .body(
                    r#"{"code":"SYSTEM_ERROR","message":"the bank could not sign its response"}"#,
                );
        }
    };
    state
        .metrics()
        .record_bank_key(version, state.clock().now());
    let mut resp = HttpResponse::build(status);
    resp.content_type("application/json")
        .insert_header(("WxIns-Nonce", nonce))
        .insert_header(("WxIns-Signature", signature.to_base64()))
        .insert_header(("WxIns-Timestamp", timestamp))
        .insert_header(("WxIns-Version", version.to_string()));
    if let Some(id) = request_id {
        resp.insert_header(("Request-ID", id.to_string()));
    }
    resp.body(body)
}
