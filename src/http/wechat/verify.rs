//! Request verification for the WeChat channel (docs/protocol.md §6), cheapest check first:
//! headers and size → timestamp skew → SM2 signature → nonce replay (recorded only after a
//! valid signature, so forgeries cannot fill the nonce store).

use std::time::Instant;

use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::Method;

use crate::crypto::signing_string::request_signing_string;
use crate::crypto::{Authorization, Signature};
use crate::error::{ApiError, ErrorCode};
use crate::keyring::KeyRing;
use crate::state::AppState;
use crate::store::SignedEvidence;

/// What a verified request carries into the handler.
#[derive(Debug)]
pub struct VerifiedAuth {
    /// The WeChat key version whose signature matched.
    pub wechat_key_version: u32,
    /// The nonce (already recorded).
    pub nonce: String,
    /// What WeChat signed, for the audit row.
    pub evidence: Option<SignedEvidence>,
}

/// The `Request-ID` header if present and well formed (1–64 visible ASCII characters).
pub fn request_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all("request-id");
    let v = values
        .next()
        .ok_or_else(|| ApiError::new(ErrorCode::ParamError, "Request-ID header is required"))?;
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::ParamError,
            "Request-ID header must appear once",
        ));
    }
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 64 || !b.iter().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::new(
            ErrorCode::ParamError,
            "Request-ID must be 1–64 visible ASCII characters",
        ));
    }
    Ok(String::from_utf8_lossy(b).into_owned())
}

/// Header checks that need no body: Content-Type and a single parseable Authorization. Called
/// only for POST (the channel refuses every other method first).
pub fn check_headers(state: &AppState, headers: &HeaderMap) -> Result<Authorization, ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ParamError,
                "Content-Type: application/json is required",
            )
        })?;
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            ErrorCode::ParamError,
            "Content-Type must be application/json",
        ));
    }
    let mut values = headers.get_all(AUTHORIZATION);
    let auth = values
        .next()
        .ok_or_else(|| ApiError::new(ErrorCode::ParamError, "Authorization header is required"))?;
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::ParamError,
            "Authorization header must appear once",
        ));
    }
    Authorization::parse(auth.as_bytes(), &state.wechat().accepted_schemes)
        .map_err(|e| ApiError::new(ErrorCode::ParamError, e.to_string()))
}

/// The timestamp, signature and replay checks, given the raw path+query and body bytes.
pub async fn verify(
    state: &AppState,
    ring: &KeyRing,
    method: &Method,
    path_and_query: &[u8],
    auth: &Authorization,
    body: &[u8],
) -> Result<VerifiedAuth, (ApiError, &'static str)> {
    let settings = state.wechat();
    let now = state.clock().now();
    let skew = now.abs_diff(auth.timestamp_secs());
    if skew > settings.clock_skew_secs.unsigned_abs() {
        let msg = format!(
            "timestamp is {skew} s away from the bank's clock (allowed: {} s); check the caller's clock",
            settings.clock_skew_secs
        );
        return Err((
            auth_error(
                settings.extended_auth_codes,
                ErrorCode::TimestampExpired,
                msg,
            ),
            "timestamp",
        ));
    }
    let signature = Signature::from_base64(&auth.signature).map_err(|e| {
        (
            ApiError::new(
                ErrorCode::SignError,
                format!("signature in Authorization is not Base64 DER SM2: {e}"),
            ),
            "signature_encoding",
        )
    })?;
    let message = request_signing_string(
        method.as_str(),
        path_and_query,
        &auth.timestamp,
        &auth.nonce,
        body,
    );
    let started = Instant::now();
    let matched = match auth.version {
        Some(v) => match ring.wechat_key(v) {
            None => {
                return Err((
                    ApiError::new(
                        ErrorCode::SignError,
                        format!("WeChat key version {v} is not trusted by the bank"),
                    ),
                    "unknown_version",
                ))
            }
            Some(k) => k
                .verifier
                .verify(&message, &signature)
                .is_ok()
                .then_some(k.version),
        },
        None => ring
            .trusted_wechat_keys()
            .find(|k| k.verifier.verify(&message, &signature).is_ok())
            .map(|k| k.version),
    };
    state
        .metrics()
        .verify_seconds
        .with_label_values(&[state.engine().name()])
        .observe(started.elapsed().as_secs_f64());
    let Some(version) = matched else {
        return Err((
            ApiError::new(
                ErrorCode::SignError,
                "signature does not verify: sign METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n over the exact bytes sent, with SM2-SM3 and ID 1234567812345678",
            ),
            "signature",
        ));
    };
    state.metrics().record_wechat_key(version, now);
    match state
        .replay()
        .check_and_record(&auth.nonce, now, settings.replay_window_secs)
        .await
    {
        Ok(true) => Ok(VerifiedAuth {
            wechat_key_version: version,
            nonce: auth.nonce.clone(),
            evidence: ring.wechat_key(version).and_then(|k| {
                evidence(
                    settings.signer_id.as_bytes(),
                    k.verifier.public_key(),
                    &auth.nonce,
                    &auth.timestamp,
                    &message,
                    &signature,
                )
            }),
        }),
        Ok(false) => Err((
            auth_error(
                settings.extended_auth_codes,
                ErrorCode::NonceReplayed,
                "nonce was already used; send each request with a fresh nonce".into(),
            ),
            "replay",
        )),
        Err(e) => Err((
            ApiError::unavailable("replay protection", e),
            "replay_store",
        )),
    }
}

/// The evidence of one signature: nonce, timestamp, e = SM3(Z_A ‖ message) under `public`, and
/// the signature as r ‖ s. `None` only for a signer ID too long for Z_A (the configuration
/// refuses one).
pub fn evidence(
    signer_id: &[u8],
    public: &crate::crypto::PublicKey,
    nonce: &str,
    timestamp: &str,
    message: &[u8],
    signature: &Signature,
) -> Option<SignedEvidence> {
    let z = crate::crypto::sm3::z_a(signer_id, public)?;
    Some(SignedEvidence {
        nonce: nonce.to_owned(),
        timestamp: timestamp.to_owned(),
        digest: crate::crypto::sm3::message_digest(&z, message),
        signature: signature.to_raw(),
    })
}

/// TIMESTAMP_EXPIRED / NONCE_REPLAYED as their own code, or folded into SIGN_ERROR (default).
fn auth_error(extended: bool, code: ErrorCode, message: String) -> ApiError {
    if extended {
        ApiError::new(code, message)
    } else {
        ApiError::new(
            ErrorCode::SignError,
            format!("{}: {message}", code.as_str()),
        )
    }
}
