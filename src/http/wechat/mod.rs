//! The WeChat pension channel: an adapter that wraps a handler so that it only ever sees a
//! verified request, and every answer — success or error — leaves signed and audited.
//!
//! Why an adapter and not an actix middleware: the channel must read the body itself (to
//! verify the raw bytes and to answer oversized bodies with a *signed* error) and must sign
//! the exact bytes it sends. Owning both ends in one function keeps that airtight.

pub mod get_account;
pub mod respond;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::Method;
use actix_web::web::{Bytes, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorCode};
use crate::http::body::{admit, read_body};
use crate::http::outcome::HandlerReply;
use crate::keyring::KeyRing;
use crate::limits::Permit;
use crate::state::AppState;
use crate::store::NewAudit;

/// A request that passed every check of docs/protocol.md §6 (steps 1–11).
#[derive(Debug)]
pub struct VerifiedRequest {
    /// The caller's Request-ID.
    pub request_id: String,
    /// The raw body bytes (verified).
    pub body: Bytes,
    /// The WeChat key version that signed.
    pub wechat_key_version: u32,
    /// What WeChat signed, for the audit row.
    pub evidence: Option<crate::store::SignedEvidence>,
}

/// Runs `handler` behind verification, audit and signing.
pub async fn serve<F, Fut>(
    req: HttpRequest,
    payload: Payload,
    state: AppState,
    route: &'static str,
    handler: F,
) -> HttpResponse
where
    F: FnOnce(VerifiedRequest, AppState) -> Fut,
    Fut: Future<Output = HandlerReply>,
{
    let started = Instant::now();
    let received_at_ms = state.clock().now_ms();
    // The snapshot this request uses from first check to last signature.
    let ring: Arc<KeyRing> = state.keyring().snapshot();
    let request_id = verify::request_id(req.headers());
    let echo_id = request_id.as_ref().ok().cloned();

    // The in-flight permit is taken only once the whole body has arrived (inside
    // `authenticate`), so a caller that trickles its body holds a connection, never a permit.
    let outcome = authenticate(&req, payload, &state, &ring, request_id).await;
    let (status, body, code, wechat_version, audit) = match outcome {
        Err((err, reason)) => {
            state
                .metrics()
                .verify_failures
                .with_label_values(&[reason])
                .inc();
            (err.status, err.body(), Some(err.clone()), None, None)
        }
        Ok((verified, permit)) => {
            let _permit = permit;
            let request_id = verified.request_id.clone();
            let wechat_version = verified.wechat_key_version;
            let request_evidence = verified.evidence.clone();
            let reply = handler(verified, state.clone()).await;
            let (status, body, err) = match reply.result {
                Ok(body) => (actix_web::http::StatusCode::OK, body, None),
                Err(e) => (e.status, e.body(), Some(e)),
            };
            let audit = NewAudit {
                request_id,
                received_at_ms,
                outcome: err.as_ref().map_or("OK", |e| e.code.as_str()).to_string(),
                http_status: status.as_u16() as i16,
                bank_key_version: 0,
                wechat_key_version: Some(wechat_version as i32),
                id_digest: reply.id_digest,
                pension_status: reply.pension_status,
                channel: "wechat",
                evidence: crate::store::AuditEvidence {
                    request: request_evidence,
                    response: None,
                },
            };
            (status, body, err, Some(wechat_version), Some(audit))
        }
    };

    let key = respond::choose_signer(&ring);
    let bank_version = key.map_or(0, |k| k.version);
    // Sign first, so the audit row keeps the signature that leaves; audit before the response
    // leaves; if the audit cannot be written, nothing of that answer leaves (a new signed 503).
    let mut answer = respond::sign(&state, key, &body, echo_id.as_deref()).await;
    // A module that did not sign turns any answer into the unsigned 503 (audited as such).
    let (status, body, code) = if matches!(answer, Err(respond::Unsigned::ModuleUnavailable)) {
        let err = ApiError::unavailable("the bank's signing module", "signing module unavailable");
        (err.status, err.body(), Some(err))
    } else {
        (status, body, code)
    };
    let audit = audit.map(|mut row| {
        if let Some(err) = code.as_ref().filter(|_| answer.is_err()) {
            row.outcome = err.code.as_str().to_string();
            row.http_status = err.status.as_u16() as i16;
        }
        row
    });
    let (status, body, code) = match audit {
        None => (status, body, code),
        Some(mut row) => {
            row.bank_key_version = bank_version as i32;
            row.evidence.response = answer.as_ref().ok().and_then(|a| a.evidence.clone());
            match state.accounts().store().insert_audit(&row).await {
                Ok(()) => (status, body, code),
                Err(e) => {
                    let err = ApiError::unavailable("the audit log", e);
                    let body = err.body();
                    answer = respond::sign(&state, key, &body, echo_id.as_deref()).await;
                    (err.status, body, Some(err))
                }
            }
        }
    };

    let code_str = code.as_ref().map_or("OK", |e| e.code.as_str());
    let elapsed = started.elapsed();
    state
        .metrics()
        .record_answer(route, status.as_str(), code_str, elapsed);
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    match code.as_ref().and_then(|e| e.cause.as_deref()) {
        Some(cause) => tracing::warn!(
            request_id = echo_id.as_deref(),
            route,
            status = status.as_u16(),
            code = code_str,
            wechat_key_version = wechat_version,
            bank_key_version = bank_version,
            latency_us,
            cause,
            "wechat request failed"
        ),
        None => tracing::info!(
            request_id = echo_id.as_deref(),
            route,
            status = status.as_u16(),
            code = code_str,
            wechat_key_version = wechat_version,
            bank_key_version = bank_version,
            latency_us,
            "wechat request"
        ),
    }
    respond::response(status, body, answer, echo_id.as_deref())
}

async fn authenticate(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
    ring: &KeyRing,
    request_id: Result<String, ApiError>,
) -> Result<(VerifiedRequest, Permit), (ApiError, &'static str)> {
    if req.method() != Method::POST {
        return Err((
            ApiError::new(ErrorCode::MethodNotAllowed, "this API accepts POST only"),
            "method",
        ));
    }
    let request_id = request_id.map_err(|e| (e, "header"))?;
    let auth = verify::check_headers(state, req.headers()).map_err(|e| (e, "header"))?;
    let body = read_body(req, payload, state.wechat().max_body_bytes)
        .await
        .map_err(|e| (e, "body"))?;
    let permit = admit(state).map_err(|e| (e, "concurrency"))?;
    let pq = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |pq| pq.as_str());
    let verified = verify::verify(state, ring, req.method(), pq.as_bytes(), &auth, &body).await?;
    Ok((
        VerifiedRequest {
            request_id,
            body,
            wechat_key_version: verified.wechat_key_version,
            evidence: verified.evidence,
        },
        permit,
    ))
}
