//! Open platform business call: `POST /api/s/{service}/{code}?app_id&nonce&version&sign[&type]`
//! (open-platform guide §4.3; docs/partner-channels.md). The signature is the spec's SHA-1 over the
//! sorted values [app_id, version, nonce, type, body] plus the ticket; the answer is the
//! envelope `{code, msg, BizSeqNo, transactionTime, jsonData}`. A configured `service/code`
//! answers the account query; `jsonData` carries the business result (docs/partner-channels.md).

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::ErrorCode;
use crate::http::body::{admit, read_body};
use crate::http::outcome::answer_account;
use crate::http::partners::op_shared::{answer, app_secret, user_ref};
use crate::http::partners::{db_statement, first_use, query_params, Answered, Exchange, FirstUse};
use crate::partners::open_platform::grants::{ticket_states, TicketState};
use crate::partners::open_platform::{
    nonce_ok, request_values, verify, GrantKind, GrantRecord, GrantValue, OpCode, VERSION,
};
use crate::partners::Channel;
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "op_service";

/// Largest body accepted (the WeChat channel's limit applies here too).
fn body_limit(state: &AppState) -> usize {
    state.wechat().max_body_bytes
}

/// The actix entry point.
pub async fn entry(
    req: HttpRequest,
    path: Path<(String, String)>,
    payload: Payload,
    state: Data<AppState>,
) -> HttpResponse {
    let state = state.get_ref();
    let ex = Exchange::begin(state, Channel::OpenPlatform, ROUTE);
    let (service, code) = path.into_inner();
    let mut consumer_seq_no = None;
    let d = decide(&req, &service, &code, payload, state, &mut consumer_seq_no).await;
    let done = ex
        .finish(
            state,
            Answered {
                code: d.code.code(),
                http_status: 200,
                id_digest: d.id_digest,
                pension_status: d.pension_status,
                credential_version: d.secret_version,
                cause: d.cause.as_deref(),
            },
        )
        .await;
    let now = state.clock().now_ms();
    let (code, json_data) = match done {
        Ok(()) => (d.code, d.json_data),
        Err(_) => (OpCode::Timeout, None),
    };
    let mut extra = Map::new();
    extra.insert("BizSeqNo".into(), json!(ex.request_id));
    if let Some(seq) = consumer_seq_no {
        extra.insert("ConsumerSeqNo".into(), json!(seq));
    }
    if let Some(j) = json_data {
        extra.insert("jsonData".into(), json!(j));
    }
    answer(code, extra, now)
}

/// The caller's serial number, echoed as `ConsumerSeqNo`: the body's `BIZ_SEQ_NO` (the serial
/// field of the spec's request example) when it is 1–64 letters, digits, `-` or `_`.
fn caller_serial(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let seq = v.get(CALLER_SERIAL_FIELD)?.as_str()?;
    let ok = (1..=64).contains(&seq.len())
        && seq
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    ok.then(|| seq.to_owned())
}

/// The body field that carries the caller's serial number.
pub const CALLER_SERIAL_FIELD: &str = "BIZ_SEQ_NO";

struct Decision {
    code: OpCode,
    json_data: Option<String>,
    cause: Option<String>,
    secret_version: Option<u32>,
    id_digest: Option<[u8; 32]>,
    pension_status: Option<i16>,
}

fn refuse(code: OpCode, cause: impl Into<String>) -> Decision {
    Decision {
        code,
        json_data: None,
        cause: Some(cause.into()),
        secret_version: None,
        id_digest: None,
        pension_status: None,
    }
}

async fn decide(
    req: &HttpRequest,
    service: &str,
    code: &str,
    payload: Payload,
    state: &AppState,
    consumer_seq_no: &mut Option<String>,
) -> Decision {
    let params = match query_params(req.query_string()) {
        Ok(p) => p,
        Err(e) => return refuse(OpCode::InputRequirement, e.to_string()),
    };
    let get = |k: &str| params.get(k).map(String::as_str);
    let (Some(app_id), Some(nonce), Some(version), Some(sign)) =
        (get("app_id"), get("nonce"), get("version"), get("sign"))
    else {
        return refuse(
            OpCode::InputRequirement,
            "app_id, nonce, version and sign are required",
        );
    };
    // `type` absent is the Java sample's null; present-but-empty adds "" — the same string.
    let kind = get("type").filter(|t| !t.is_empty());
    if version != VERSION || !nonce_ok(nonce) {
        return refuse(
            OpCode::InputRequirement,
            "version must be 2.0.0 and nonce 32 letters or digits",
        );
    }
    let wanted = format!("{service}/{code}");
    if !state
        .partners()
        .open_platform_account_services
        .contains(&wanted)
    {
        return refuse(OpCode::IllegalPath, "service/code not configured");
    }
    let ticket_kind = match kind {
        None | Some("sign") => GrantKind::SignTicket,
        Some("user") => GrantKind::UserTicket,
        Some(_) => return refuse(OpCode::InputRequirement, "type must be sign or user"),
    };
    let body = match read_body(req, payload, body_limit(state)).await {
        Ok(b) => b,
        Err(e) => return refuse(OpCode::InputRequirement, e.message.to_string()),
    };
    // Admitted only once the whole body has arrived; held until the answer is decided.
    let _permit = match admit(state) {
        Ok(p) => p,
        Err(e) => return refuse(OpCode::Timeout, e.message.to_string()),
    };
    let Ok(body_text) = std::str::from_utf8(&body) else {
        return refuse(OpCode::InputRequirement, "body is not UTF-8");
    };
    *consumer_seq_no = caller_serial(body_text);
    let user = match ticket_kind {
        GrantKind::UserTicket => {
            let Some(user) = serde_json::from_str::<Value>(body_text)
                .ok()
                .and_then(|v| v.get("USER_ID").and_then(Value::as_str).map(str::to_owned))
            else {
                return refuse(
                    OpCode::InputRequirement,
                    "type=user needs the body's USER_ID",
                );
            };
            Some(user)
        }
        _ => None,
    };
    // Everything above needs no database. An unknown app is refused as a signature that
    // matches no ticket is — the one answer for "no such ticket" (60841017) — so the answer does
    // not say which apps exist.
    let Some((secret_version, secret)) = app_secret(state, app_id) else {
        return refuse(OpCode::TicketVerifyFailed, "unknown app_id");
    };
    let values = request_values(app_id, version, nonce, kind, body_text);
    let now = state.clock().now_ms();
    let store = state.accounts().store();
    let rules = state.partners().grant_rules();

    // One statement: the tickets that could have signed — the app's unexpired sign tickets, or
    // the unexpired tickets of the user the body names.
    let tickets: Vec<GrantRecord> = match &user {
        Some(user) => {
            let user = user_ref(state, app_id, user);
            db_statement(ROUTE, "user_tickets");
            match store.user_tickets(app_id, &user, secret_version, now).await {
                Ok(v) => v,
                Err(e) => return refuse(OpCode::Timeout, e.to_string()),
            }
        }
        None => {
            db_statement(ROUTE, "grant_chain");
            match store
                .grant_chain(app_id, GrantKind::SignTicket, secret_version, now)
                .await
            {
                Ok(chain) => chain,
                Err(e) => return refuse(OpCode::Timeout, e.to_string()),
            }
        }
    };
    // Newest first: the ticket the partner most likely holds.
    let signed_by = tickets.iter().enumerate().rev().find(|(_, g)| {
        let ticket = GrantValue::derive(secret.as_bytes(), app_id, ticket_kind, &g.id);
        verify(&values, &ticket, sign)
    });
    let Some((index, grant)) = signed_by else {
        state
            .metrics()
            .verify_failures
            .with_label_values(&["op_signature"])
            .inc();
        // No ticket of the app signed it: forged, a wrong or expired ticket, a previous
        // secret's ticket, or a body changed after signing. One answer for all of them, decided
        // with no further statement ("ticket 不存在或已失效": fetch a new one).
        return refuse(
            OpCode::TicketVerifyFailed,
            "signature matches no live ticket",
        );
    };
    // Only a request signed with a real ticket costs the second read: the access tokens that
    // tell whether the ticket's chain is still alive.
    db_statement(ROUTE, "access_tokens");
    let tokens = match store.access_tokens(app_id, secret_version).await {
        Ok(t) => t,
        Err(e) => return refuse(OpCode::Timeout, e.to_string()),
    };
    match ticket_states(&tickets, &tokens, now, &rules)[index] {
        TicketState::Live => {}
        TicketState::Superseded => {
            // Knocked out by a newer ticket (spec §6.1: 60841018 "互踢").
            return refuse(
                OpCode::SignatureIncorrect,
                "ticket superseded by a newer one",
            );
        }
        TicketState::ChainRenewed => {
            return refuse(
                OpCode::TicketVerifyFailed,
                "ticket of a superseded access token",
            )
        }
        TicketState::Used => return refuse(OpCode::TicketVerifyFailed, "user ticket already used"),
    }
    // The replay guard keys on what was signed — the signature, a digest of the signing
    // string — not on the parsed nonce: a signing string that could be re-split into another
    // nonce (the values are concatenated without separators) is still the same message. It is
    // remembered for as long as any ticket that could sign it lives. A replay is refused as an
    // input fault (60840002: the nonce must be new), not as a ticket fault: the remedy of
    // 60841017 / 60841018 — fetch a new ticket — would not help.
    let key = format!("op:{app_id}:{}", sign.to_ascii_uppercase());
    match first_use(
        state,
        &key,
        now / 1000,
        rules.nonce_window_secs() + crate::replay::REPLAY_MARGIN_SECS,
        "op_replay",
    )
    .await
    {
        FirstUse::Yes => {}
        FirstUse::Replayed => return refuse(OpCode::InputRequirement, "nonce replayed"),
        FirstUse::Unavailable(cause) => return refuse(OpCode::Timeout, cause.to_string()),
    }
    // Authenticated and fresh: from here on every answer is audited.
    let authenticated = |code: OpCode, cause: String| Decision {
        secret_version: Some(secret_version),
        ..refuse(code, cause)
    };
    if ticket_kind == GrantKind::UserTicket {
        db_statement(ROUTE, "consume_grant");
        match store.consume_grant(&grant.id, now).await {
            Ok(true) => {}
            Ok(false) => {
                return authenticated(
                    OpCode::TicketVerifyFailed,
                    "user ticket already used".into(),
                )
            }
            Err(e) => return authenticated(OpCode::Timeout, e.to_string()),
        }
    }

    let reply = answer_account(&body, state).await;
    let mut d = Decision {
        code: OpCode::Ok,
        json_data: None,
        cause: None,
        secret_version: Some(secret_version),
        id_digest: reply.id_digest,
        pension_status: reply.pension_status,
    };
    let business = match reply.result {
        Ok(json) => {
            let data: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
            json!({"CODE": "0000", "DESC": "交易成功", "DATA": data})
        }
        Err(e) if e.code == ErrorCode::SystemError => {
            d.code = if e.status.as_u16() == 503 {
                OpCode::Timeout
            } else {
                OpCode::Unknown
            };
            d.cause = e.cause.clone();
            return d;
        }
        Err(e) => {
            d.cause = e.cause.clone();
            json!({"CODE": e.code.as_str(), "DESC": e.message})
        }
    };
    d.json_data = Some(business.to_string());
    d
}
