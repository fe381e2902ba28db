//! Open platform: `GET /api/oauth2/access_token?app_id&secret&grant_type=client_credential&version=2.0.0`
//! (open-platform guide §4.1; docs/partner-channels.md).

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map};

use crate::http::partners::op_shared::{
    answer_credential, app_secret, credential_request, issue, refuse_credential, CredentialDecision,
};
use crate::partners::ct_eq;
use crate::partners::open_platform::{GrantKind, OpCode, VERSION};
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "op_access_token";

/// The actix entry point.
pub async fn entry(req: HttpRequest, state: Data<AppState>) -> HttpResponse {
    let state = state.get_ref();
    let decision = decide(&req, state).await;
    answer_credential(state, ROUTE, decision, OpCode::AccessTokenIssueFailed).await
}

async fn decide(req: &HttpRequest, state: &AppState) -> CredentialDecision {
    let refuse = refuse_credential;
    let (_permit, params) = match credential_request(req, state) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(app_id), Some(secret), Some(grant_type), Some(version)) = (
        get("app_id"),
        get("secret"),
        get("grant_type"),
        get("version"),
    ) else {
        return refuse(
            OpCode::InvalidCall,
            "app_id, secret, grant_type and version are required",
        );
    };
    if grant_type != "client_credential" || version != VERSION {
        return refuse(
            OpCode::InvalidCall,
            "grant_type must be client_credential and version 2.0.0",
        );
    }
    let Some((secret_version, expected)) = app_secret(state, app_id) else {
        return refuse(OpCode::InvalidAppId, "unknown app_id");
    };
    if !ct_eq(expected.as_bytes(), secret.as_bytes()) {
        return refuse(OpCode::InvalidAppId, "secret does not match the app's");
    }
    let rules = state.partners().grant_rules();
    match issue(
        state,
        app_id,
        GrantKind::AccessToken,
        secret_version,
        &expected,
        None,
        None,
        &rules,
    )
    .await
    {
        Ok((grant, value)) => {
            let mut extra = Map::new();
            extra.insert("access_token".into(), json!(value));
            extra.insert("expire_time".into(), json!(grant.expires_at_ms.to_string()));
            extra.insert(
                "expire_in".into(),
                json!(rules.access_token_secs.to_string()),
            );
            (OpCode::CredentialOk, extra, None, Some(secret_version))
        }
        Err(e) => (
            OpCode::AccessTokenIssueFailed,
            Map::new(),
            Some(e.to_string()),
            Some(secret_version),
        ),
    }
}
