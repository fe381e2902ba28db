//! The account query for partners that sign with sorted-parameter HMAC-SHA256 (the HMAC interface
//! document; docs/partner-channels.md): `POST {partners.hmac_route}` with a JSON object of string
//! fields — `fappid`, `timestamp` (Unix seconds, ±5 min), `nonce`, `version` ("2"), `sign`, the
//! business query in `paramJsons` (the WeChat body as a JSON string), and any other fields the
//! partner sends (all non-empty ones are signed). Answers `{code, message, data}` with `code` "200"
//! on success and the HTTP status mirroring it otherwise.

use std::collections::BTreeMap;

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::error::ErrorCode;
use crate::http::body::{admit, read_body};
use crate::http::outcome::answer_account;
use crate::http::partners::{first_use, Answered, Exchange, FirstUse};
use crate::partners::hmac::{
    check_fields, check_timestamp, id_number_on_wire, replay_digest, verify, TimestampError,
    ID_NUMBER_FIELD, TIMESTAMP_WINDOW_SECS,
};
use crate::partners::Channel;
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "hmac_account";

/// The one answer for an unknown fappid and a signature that does not verify.
const SIGN_REFUSED: &str = "sign does not verify";

/// The actix entry point.
pub async fn entry(req: HttpRequest, payload: Payload, state: Data<AppState>) -> HttpResponse {
    let state = state.get_ref();
    let ex = Exchange::begin(state, Channel::Hmac, ROUTE);
    let d = decide(&req, payload, state).await;
    let code = d.status.as_u16().to_string();
    let done = ex
        .finish(
            state,
            Answered {
                code: &code,
                http_status: d.status.as_u16(),
                id_digest: d.id_digest,
                pension_status: d.pension_status,
                credential_version: d.verified_by,
                cause: d.cause.as_deref(),
            },
        )
        .await;
    let (status, body) = match done {
        Ok(()) => (
            d.status,
            json!({"code": code, "message": d.message, "data": d.data}),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": "503", "message": "the bank cannot answer now; retry", "data": {}}),
        ),
    };
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(body.to_string())
}

struct Decision {
    status: StatusCode,
    message: String,
    data: Value,
    cause: Option<String>,
    verified_by: Option<u32>,
    id_digest: Option<[u8; 32]>,
    pension_status: Option<i16>,
}

fn refuse(status: StatusCode, message: &str) -> Decision {
    Decision {
        status,
        message: message.to_owned(),
        data: json!({}),
        cause: Some(message.to_owned()),
        verified_by: None,
        id_digest: None,
        pension_status: None,
    }
}

async fn decide(req: &HttpRequest, payload: Payload, state: &AppState) -> Decision {
    let body = match read_body(req, payload, state.wechat().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.message),
    };
    // Admitted only once the whole body has arrived; held until the answer is decided.
    let _permit = match admit(state) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::TOO_MANY_REQUESTS, &e.message),
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let mut params = BTreeMap::new();
    for (k, v) in &obj {
        match v {
            Value::String(s) => {
                params.insert(k.as_str(), s.as_str());
            }
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "every field must be a string (paramJsons is a JSON string)",
                )
            }
        }
    }
    let get = |k: &str| params.get(k).copied().filter(|v| !v.is_empty());
    let (Some(fappid), Some(timestamp), Some(_), Some(sign)) =
        (get("fappid"), get("timestamp"), get("nonce"), get("sign"))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "fappid, timestamp, nonce and sign are required",
        );
    };
    if get("version") != Some("2") {
        return refuse(StatusCode::BAD_REQUEST, "version must be \"2\"");
    }
    let fields = || params.iter().map(|(k, v)| (*k, *v));
    if let Err(e) = check_fields(fields()) {
        return refuse(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let ring = state.keyring().snapshot();
    // An unknown fappid is refused exactly as a wrong signature is (only the logged cause
    // differs): the answer does not say which partners exist.
    let Some(cred) = ring.partner(Channel::Hmac, fappid) else {
        let mut d = refuse(StatusCode::UNAUTHORIZED, SIGN_REFUSED);
        d.cause = Some("unknown fappid".into());
        return d;
    };
    let verified_by = cred
        .verifying()
        .find(|t| verify(fields(), t.expose(), sign));
    let Some(token) = verified_by else {
        state
            .metrics()
            .verify_failures
            .with_label_values(&["hmac_signature"])
            .inc();
        return refuse(StatusCode::UNAUTHORIZED, SIGN_REFUSED);
    };
    let now = state.clock().now();
    match check_timestamp(timestamp, now) {
        Ok(_) => {}
        Err(TimestampError::Malformed) => {
            return refuse(StatusCode::BAD_REQUEST, "timestamp must be Unix seconds")
        }
        Err(TimestampError::Expired) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "timestamp is more than 5 minutes away from the bank's clock",
            )
        }
    }
    // Keyed on what was signed (a digest of stringA), not on the parsed nonce: the nonce only
    // makes each signed string unique.
    let key = format!("hmac:{fappid}:{}", hex::encode(replay_digest(fields())));
    let window = crate::replay::nonce_memory_secs(TIMESTAMP_WINDOW_SECS);
    match first_use(state, &key, now, window, "hmac_replay").await {
        FirstUse::Yes => {}
        FirstUse::Replayed => return refuse(StatusCode::UNAUTHORIZED, "nonce already used"),
        FirstUse::Unavailable(cause) => {
            let mut d = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the bank cannot answer now; retry",
            );
            d.cause = Some(cause.to_string());
            return d;
        }
    }
    // Authenticated and fresh (its signed string is now spent): from here on every answer is
    // audited.
    let Some(query) = get("paramJsons") else {
        let mut d = refuse(
            StatusCode::BAD_REQUEST,
            "paramJsons (the query as a JSON string) is required",
        );
        d.verified_by = Some(token.version);
        return d;
    };
    let answer = answer_account(query.as_bytes(), state).await;
    let mut d = Decision {
        status: StatusCode::OK,
        message: "ok".into(),
        data: json!({}),
        cause: None,
        verified_by: Some(token.version),
        id_digest: answer.id_digest,
        pension_status: answer.pension_status,
    };
    match answer.result {
        Ok(body) => {
            d.data = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(Value::String(id)) = d.data.get_mut(ID_NUMBER_FIELD) {
                *id = id_number_on_wire(id);
            }
        }
        Err(e) => {
            d.status = if e.code == ErrorCode::SystemError {
                e.status
            } else {
                e.code.status()
            };
            d.message = format!("{}: {}", e.code.as_str(), e.message);
            d.cause = e.cause.clone().or_else(|| Some(e.code.as_str().into()));
        }
    }
    d
}
