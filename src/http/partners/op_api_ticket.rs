//! Open platform: `GET /api/oauth2/api_ticket?app_id&access_token&type&version[&user_data&mechant_id]`
//! (open-platform guide §4.2; docs/partner-channels.md). `type` may list several types separated by
//! commas; the tickets come back in that order.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::http::partners::op_shared::{
    answer_credential, app_secret, check_access_token, credential_request, issue,
    refuse_credential, user_ref, CredentialDecision, TokenRefusal,
};
use crate::partners::open_platform::{GrantKind, OpCode, VERSION};
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "op_api_ticket";

/// Longest `USER_ID` accepted in `user_data`.
pub const MAX_USER_ID: usize = 64;

/// The actix entry point.
pub async fn entry(req: HttpRequest, state: Data<AppState>) -> HttpResponse {
    let state = state.get_ref();
    let decision = decide(&req, state).await;
    answer_credential(state, ROUTE, decision, OpCode::TicketIssueFailed).await
}

async fn decide(req: &HttpRequest, state: &AppState) -> CredentialDecision {
    let refuse = refuse_credential;
    let (_permit, params) = match credential_request(req, state) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(app_id), Some(token), Some(types), Some(version)) = (
        get("app_id"),
        get("access_token"),
        get("type"),
        get("version"),
    ) else {
        return refuse(
            OpCode::InvalidCall,
            "app_id, access_token, type and version are required",
        );
    };
    if version != VERSION {
        return refuse(OpCode::InvalidCall, "version must be 2.0.0");
    }
    let mut kinds = Vec::new();
    for t in types.split(',') {
        match GrantKind::parse(t.trim()) {
            Some(k @ (GrantKind::SignTicket | GrantKind::UserTicket)) => kinds.push(k),
            _ => return refuse(OpCode::TypeNotFound, "unknown ticket type"),
        }
    }
    if kinds.len() > 2 {
        return refuse(OpCode::InvalidCall, "at most two ticket types at once");
    }
    let user = if kinds.contains(&GrantKind::UserTicket) {
        match user_id(get("user_data"), get("mechant_id")) {
            Ok(u) => Some(user_ref(state, app_id, &u)),
            Err(e) => return refuse(OpCode::InvalidCall, e),
        }
    } else {
        None
    };
    // An unknown app is refused as a forged token is: the answer does not say which apps
    // exist (a token of an unknown app is not a valid token).
    let Some((secret_version, secret)) = app_secret(state, app_id) else {
        return refuse(OpCode::InvalidAccessToken, "unknown app_id");
    };
    let rules = state.partners().grant_rules();
    let parent = match check_access_token(state, app_id, secret_version, &secret, token, &rules)
        .await
    {
        Ok(grant) => grant,
        Err(TokenRefusal::Invalid(why)) => return refuse(OpCode::InvalidAccessToken, why),
        Err(TokenRefusal::Expired) => {
            return refuse(OpCode::AccessTokenExpired, "access token expired")
        }
        Err(TokenRefusal::Store(e)) => return refuse(OpCode::TicketIssueFailed, &e.to_string()),
    };
    let mut tickets = Vec::new();
    for kind in kinds {
        let user_ref = (kind == GrantKind::UserTicket).then_some(user).flatten();
        match issue(
            state,
            app_id,
            kind,
            secret_version,
            &secret,
            user_ref,
            Some(&parent.id),
            &rules,
        )
        .await
        {
            Ok((grant, value)) => tickets.push(json!({
                "expire_time": grant.expires_at_ms.to_string(),
                "expire_in": rules.life_secs(kind),
                "value": value,
            })),
            Err(e) => return refuse(OpCode::TicketIssueFailed, &e.to_string()),
        }
    }
    let mut extra = Map::new();
    extra.insert("tickets".into(), Value::Array(tickets));
    (OpCode::CredentialOk, extra, None, Some(secret_version))
}

/// `user_data` must be a JSON object with a non-empty string `USER_ID`; `mechant_id` (the
/// spec's spelling) must be present.
fn user_id(user_data: Option<&str>, mechant_id: Option<&str>) -> Result<String, &'static str> {
    if mechant_id.is_none() {
        return Err("type=user needs mechant_id");
    }
    let data: Value = user_data
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or("type=user needs user_data as a JSON object")?;
    match data.get("USER_ID").and_then(Value::as_str) {
        Some(u) if !u.is_empty() && u.chars().count() <= MAX_USER_ID => Ok(u.to_owned()),
        _ => Err("user_data.USER_ID must be a string of 1–64 characters"),
    }
}
