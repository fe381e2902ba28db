//! Salted callbacks: `POST /callback/{partner}` receives `{Plain, Signature, Timestamp, SeqNo,
//! transName}` (open-platform guide §5; docs/partner-channels.md) — a signature is accepted
//! once (the replay guard keys on it: SeqNo is not signed) — and answers an authenticated
//! request with the same envelope, signed with the partner's active salt — errors too. A request
//! refused before authentication gets a plain, unsigned `{"CODE","DESC"}`: nothing is signed
//! for a caller who has not proved the salt, and a reply (its Plain carries `CODE`) is never
//! taken as a request. Plain of a signed answer is
//! `{"CODE", "DESC"[, "REASON"][, "DATA"]}`; codes are the spec's 0000/0001/0002/0103/0010/0012,
//! plus `9999` (agreed extension, HTTP 503) when a dependency of the bank is down.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::ErrorCode;
use crate::http::body::{admit, read_body};
use crate::http::outcome::answer_account;
use crate::http::partners::{first_use, Answered, Exchange, FirstUse};
use crate::partners::callback::{is_reply, Envelope, ReplyCode};
use crate::partners::Channel;
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "callback";
/// The extension code for "the bank cannot answer now; retry" (not in the spec's list).
pub const UNAVAILABLE_CODE: &str = "9999";

/// The actix entry point.
pub async fn entry(
    req: HttpRequest,
    partner: Path<String>,
    payload: Payload,
    state: Data<AppState>,
) -> HttpResponse {
    let state = state.get_ref();
    let partner = partner.into_inner();
    let ex = Exchange::begin(state, Channel::Callback, ROUTE);
    let d = decide(&req, payload, state, &partner).await;
    let mut status = d.status;
    let mut plain = d.plain;
    let code = plain["CODE"]
        .as_str()
        .unwrap_or(UNAVAILABLE_CODE)
        .to_owned();
    let done = ex
        .finish(
            state,
            Answered {
                code: &code,
                http_status: status.as_u16(),
                id_digest: d.id_digest,
                pension_status: d.pension_status,
                credential_version: d.verified_by,
                cause: d.cause.as_deref(),
            },
        )
        .await;
    // Nothing is signed before the partner is authenticated: a signed answer to anyone's junk
    // is a message in the partner's name that could be posted back (the salt signs both
    // directions alike). Refusals before authentication are plain `{"CODE","DESC"}`, the same
    // for an unknown partner as for a wrong signature.
    let Some(salt) = d.seal_with else {
        return HttpResponse::build(status)
            .content_type(ContentType::json())
            .body(plain.to_string());
    };
    if done.is_err() {
        status = StatusCode::SERVICE_UNAVAILABLE;
        plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
    }
    let reply = Envelope::seal(
        &plain.to_string(),
        &salt,
        state.clock().now_ms(),
        &d.seq_no,
        &d.trans_name,
    );
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(serde_json::to_string(&reply).unwrap_or_default())
}

struct Decision {
    status: StatusCode,
    plain: Value,
    seq_no: String,
    trans_name: String,
    cause: Option<String>,
    verified_by: Option<u32>,
    /// The partner's active salt, set once the request is authenticated: only then is the
    /// answer sealed.
    seal_with: Option<Zeroizing<String>>,
    id_digest: Option<[u8; 32]>,
    pension_status: Option<i16>,
}

fn reply(code: ReplyCode) -> Value {
    json!({"CODE": code.code(), "DESC": code.desc()})
}

/// The HTTP status of a refusal before authentication (its answer is not signed).
fn unauthenticated_status(code: ReplyCode) -> StatusCode {
    match code {
        ReplyCode::SignatureFailed | ReplyCode::TimestampExpired => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn decide(req: &HttpRequest, payload: Payload, state: &AppState, partner: &str) -> Decision {
    let mut d = Decision {
        status: StatusCode::OK,
        plain: reply(ReplyCode::Success),
        seq_no: String::new(),
        trans_name: String::new(),
        cause: None,
        verified_by: None,
        seal_with: None,
        id_digest: None,
        pension_status: None,
    };
    // Before authentication: a plain (unsigned) refusal with its own HTTP status.
    let refuse_unauthenticated = |mut d: Decision, code: ReplyCode, cause: &str| {
        d.status = unauthenticated_status(code);
        d.plain = reply(code);
        d.cause = Some(cause.to_owned());
        d
    };
    // After authentication: a sealed reply, HTTP 200, audited.
    let refuse = |mut d: Decision, code: ReplyCode, cause: &str| {
        d.plain = reply(code);
        d.cause = Some(cause.to_owned());
        d
    };
    let unavailable = |mut d: Decision, cause: String| {
        d.status = StatusCode::SERVICE_UNAVAILABLE;
        d.plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
        d.cause = Some(cause);
        d
    };
    let body = match read_body(req, payload, state.wechat().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse_unauthenticated(d, ReplyCode::BadFormat, &e.message),
    };
    // Admitted only once the whole body has arrived; held until the answer is decided.
    let _permit = match admit(state) {
        Ok(p) => p,
        Err(e) => return unavailable(d, e.message.to_string()),
    };
    let env = match Envelope::parse(&body) {
        Ok(e) => e,
        Err(code) => return refuse_unauthenticated(d, code, "body is not the callback envelope"),
    };
    d.seq_no = env.seq_no.clone();
    d.trans_name = env.trans_name.clone();
    let ring = state.keyring().snapshot();
    // An unknown partner is refused exactly as a wrong signature is (the cause, in the sampled
    // log only, tells them apart): the answer does not say which partners exist.
    let Some(cred) = ring.partner(Channel::Callback, partner) else {
        return refuse_unauthenticated(
            d,
            ReplyCode::SignatureFailed,
            "no callback credential for this partner",
        );
    };
    let now = state.clock().now_ms();
    let verified_by = cred.verifying().find(|s| {
        crate::partners::callback::verify_signature(
            &env.plain,
            s.expose(),
            &env.timestamp,
            &env.signature,
        )
    });
    let Some(secret) = verified_by else {
        state
            .metrics()
            .verify_failures
            .with_label_values(&["callback_signature"])
            .inc();
        return refuse_unauthenticated(d, ReplyCode::SignatureFailed, "signature matches no salt");
    };
    let json = match env.open([secret.expose()], now) {
        Ok(j) => j,
        Err(code) => return refuse_unauthenticated(d, code, "timestamp or Plain refused"),
    };
    // The salt signs the bank's replies exactly as the partner's requests: a reply posted back
    // verifies. Every reply's Plain carries `CODE`; no request's does.
    if is_reply(&json) {
        state
            .metrics()
            .verify_failures
            .with_label_values(&["callback_reflected"])
            .inc();
        return refuse_unauthenticated(
            d,
            ReplyCode::BadFormat,
            "Plain is a reply (carries CODE), not a request",
        );
    }
    if env.seq_no.is_empty() {
        return refuse_unauthenticated(d, ReplyCode::BadFormat, "SeqNo is empty");
    }
    // The spec's signature covers Plain and Timestamp only — not SeqNo or transName — so a
    // captured message re-sent under a new SeqNo must still count as a replay: the replay key
    // is the signature itself (one per signed content), per partner.
    let key = format!("cb:{partner}:{}", env.signature.to_ascii_lowercase());
    let window = crate::replay::nonce_memory_secs(
        (crate::partners::callback::TIMESTAMP_WINDOW_MS + 999) / 1000,
    );
    match first_use(state, &key, now / 1000, window, "callback_replay").await {
        // Authenticated and fresh: from here on the exchange is audited and its answer sealed.
        FirstUse::Yes => {
            d.verified_by = Some(secret.version);
            d.seal_with = Some(Zeroizing::new(cred.active.expose().to_owned()));
        }
        FirstUse::Replayed => {
            return refuse_unauthenticated(
                d,
                ReplyCode::SignatureFailed,
                "message already received",
            )
        }
        FirstUse::Unavailable(cause) => return unavailable(d, cause.to_string()),
    }
    if env.trans_name != state.partners().callback_account_trans_name {
        return refuse(d, ReplyCode::InputRequirement, "unknown transName");
    }
    let answer = answer_account(json.as_bytes(), state).await;
    d.id_digest = answer.id_digest;
    d.pension_status = answer.pension_status;
    match answer.result {
        Ok(body) => {
            let data: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            d.plain = json!({"CODE": "0000", "DESC": "系统处理成功", "DATA": data});
        }
        Err(e) if e.code == ErrorCode::SystemError => {
            d.status = e.status;
            d.plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
            d.cause = e.cause.clone();
        }
        Err(e) => {
            d.plain = json!({
                "CODE": ReplyCode::InputRequirement.code(),
                "DESC": ReplyCode::InputRequirement.desc(),
                "REASON": e.code.as_str(),
            });
            d.cause = Some(e.message.to_string());
        }
    }
    d
}
