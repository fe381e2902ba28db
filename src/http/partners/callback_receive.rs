//! Salted callbacks: `POST /callback/{partner}` receives `{Plain, Signature, Timestamp, SeqNo,
//! transName}` (open-platform guide §5; docs/partner-channels.md) — a signature is accepted
//! once (the replay guard keys on it: SeqNo is not signed) — and answers with the same envelope,
//! signed with the partner's active salt — errors too. Plain of the answer is
//! `{"CODE", "DESC"[, "REASON"][, "DATA"]}`; codes are the spec's 0000/0001/0002/0103/0010/0012,
//! plus `9999` (agreed extension, HTTP 503) when a dependency of the bank is down.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::error::ErrorCode;
use crate::http::body::{admit, read_body};
use crate::http::partners::{first_use, Answered, Exchange, FirstUse};
use crate::http::wechat::account_query;
use crate::partners::callback::{Envelope, ReplyCode};
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
    let ring = state.keyring().snapshot();
    let Some(cred) = ring.partner(Channel::Callback, &partner) else {
        // No salt to sign with: a plain 404; counted and logged, not audited (unauthenticated).
        let _ = ex
            .finish(
                state,
                Answered {
                    code: "UNKNOWN_PARTNER",
                    http_status: 404,
                    id_digest: None,
                    pension_status: None,
                    credential_version: None,
                    cause: Some("no callback credential for this partner"),
                },
            )
            .await;
        return HttpResponse::NotFound()
            .content_type(ContentType::json())
            .body(r#"{"CODE":"0001","DESC":"unknown callback partner"}"#);
    };
    let d = decide(&req, payload, state, &partner, cred).await;
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
    if done.is_err() {
        status = StatusCode::SERVICE_UNAVAILABLE;
        plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
    }
    let reply = Envelope::seal(
        &plain.to_string(),
        cred.active.expose(),
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
    id_digest: Option<[u8; 32]>,
    pension_status: Option<i16>,
}

fn reply(code: ReplyCode) -> Value {
    json!({"CODE": code.code(), "DESC": code.desc()})
}

async fn decide(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
    partner: &str,
    cred: &crate::keyring::PartnerCredential,
) -> Decision {
    let mut d = Decision {
        status: StatusCode::OK,
        plain: reply(ReplyCode::Success),
        seq_no: String::new(),
        trans_name: String::new(),
        cause: None,
        verified_by: None,
        id_digest: None,
        pension_status: None,
    };
    let refuse = |mut d: Decision, code: ReplyCode, cause: &str| {
        d.plain = reply(code);
        d.cause = Some(cause.to_owned());
        d
    };
    let body = match read_body(req, payload, state.wechat().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse(d, ReplyCode::BadFormat, &e.message),
    };
    // Admitted only once the whole body has arrived; held until the answer is decided.
    let _permit = match admit(state) {
        Ok(p) => p,
        Err(e) => {
            d.status = StatusCode::SERVICE_UNAVAILABLE;
            d.plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
            d.cause = Some(e.message.to_string());
            return d;
        }
    };
    let env = match Envelope::parse(&body) {
        Ok(e) => e,
        Err(code) => return refuse(d, code, "body is not the callback envelope"),
    };
    d.seq_no = env.seq_no.clone();
    d.trans_name = env.trans_name.clone();
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
        return refuse(d, ReplyCode::SignatureFailed, "signature matches no salt");
    };
    let json = match env.open([secret.expose()], now) {
        Ok(j) => j,
        Err(code) => return refuse(d, code, "timestamp or Plain refused"),
    };
    if env.seq_no.is_empty() {
        return refuse(d, ReplyCode::BadFormat, "SeqNo is empty");
    }
    // The spec's signature covers Plain and Timestamp only — not SeqNo or transName — so a
    // captured message re-sent under a new SeqNo must still count as a replay: the replay key
    // is the signature itself (one per signed content), per partner.
    let key = format!("cb:{partner}:{}", env.signature.to_ascii_lowercase());
    let window = crate::replay::nonce_memory_secs(
        (crate::partners::callback::TIMESTAMP_WINDOW_MS + 999) / 1000,
    );
    match first_use(state, &key, now / 1000, window, "callback_replay").await {
        // Authenticated and fresh: from here on the exchange is audited.
        FirstUse::Yes => d.verified_by = Some(secret.version),
        FirstUse::Replayed => {
            return refuse(d, ReplyCode::SignatureFailed, "message already received")
        }
        FirstUse::Unavailable(cause) => {
            d.status = StatusCode::SERVICE_UNAVAILABLE;
            d.plain = json!({"CODE": UNAVAILABLE_CODE, "DESC": "系统繁忙，请稍后重试"});
            d.cause = Some(cause);
            return d;
        }
    }
    if env.trans_name != state.partners().callback_account_trans_name {
        return refuse(d, ReplyCode::InputRequirement, "unknown transName");
    }
    let answer = account_query::answer(json.as_bytes(), state).await;
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
