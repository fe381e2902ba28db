//! The open-platform channel's HTTP pieces shared by its three handlers: the JSON answers, and
//! checking a presented access token against the shared grant table.

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use std::collections::BTreeMap;

use crate::http::body::admit;
use crate::http::partners::{query_params, Answered, Exchange};
use crate::limits::Permit;
use crate::partners::open_platform::grants::{successor_issued_ms, validity, Invalid};
use crate::partners::open_platform::{
    transaction_time, GrantKind, GrantRecord, GrantRules, GrantValue, OpCode,
};
use crate::partners::Channel;
use crate::state::AppState;
use crate::store::StoreError;

/// A JSON answer `{code, msg, …extra, transactionTime}`; platform answers are HTTP 200 whatever
/// the code (the spec's callers read `code`; docs/partner-channels.md).
pub(crate) fn answer(code: OpCode, extra: Map<String, Value>, now_ms: i64) -> HttpResponse {
    let mut body = Map::new();
    body.insert("code".into(), json!(code.code()));
    body.insert("msg".into(), json!(code.msg()));
    body.extend(extra);
    body.insert("transactionTime".into(), json!(transaction_time(now_ms)));
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(Value::Object(body).to_string())
}

/// What a credential-stage handler decided: code, extra fields, private cause, secret version.
pub(crate) type CredentialDecision = (OpCode, Map<String, Value>, Option<String>, Option<u32>);

/// A refusal of a credential request: `code`, no fields, `cause` for the log.
pub(crate) fn refuse_credential(code: OpCode, cause: &str) -> CredentialDecision {
    (code, Map::new(), Some(cause.to_owned()), None)
}

/// What both credential routes do first: take the in-flight permit (they have no body to wait
/// for, so at once; held until the grant is decided) and read the query string.
pub(crate) fn credential_request(
    req: &actix_web::HttpRequest,
    state: &AppState,
) -> Result<(Permit, BTreeMap<String, String>), CredentialDecision> {
    let permit = admit(state).map_err(|e| refuse_credential(OpCode::Timeout, &e.message))?;
    let params = query_params(req.query_string())
        .map_err(|e| refuse_credential(OpCode::InvalidCall, &e.to_string()))?;
    Ok((permit, params))
}

/// Audits, counts and answers a credential-stage decision; if the audit row cannot be written
/// the answer is `if_unaudited` (the route's "could not issue" code) with no credential in it.
pub(crate) async fn answer_credential(
    state: &AppState,
    route: &'static str,
    (code, extra, cause, version): CredentialDecision,
    if_unaudited: OpCode,
) -> HttpResponse {
    let ex = Exchange::begin(state, Channel::OpenPlatform, route);
    let done = ex
        .finish(
            state,
            Answered {
                code: code.code(),
                http_status: 200,
                id_digest: None,
                pension_status: None,
                credential_version: version,
                cause: cause.as_deref(),
            },
        )
        .await;
    let now = state.clock().now_ms();
    match done {
        Ok(()) => answer(code, extra, now),
        Err(_) => answer(if_unaudited, Map::new(), now),
    }
}

/// The app's active secret and its version, or `None` for an unknown app.
pub(crate) fn app_secret(
    state: &AppState,
    app_id: &str,
) -> Option<(u32, zeroize::Zeroizing<String>)> {
    let ring = state.keyring().snapshot();
    let cred = ring.partner(Channel::OpenPlatform, app_id)?;
    Some((
        cred.active.version,
        zeroize::Zeroizing::new(cred.active.expose().to_owned()),
    ))
}

/// Why a presented access token was refused.
pub(crate) enum TokenRefusal {
    /// Unknown, malformed, another app's, another secret's, or superseded past its grace.
    Invalid(&'static str),
    /// Past its expiry.
    Expired,
    /// The database could not answer.
    Store(StoreError),
}

/// Checks `presented` as a live access token of `app_id` under its current secret.
pub(crate) async fn check_access_token(
    state: &AppState,
    app_id: &str,
    secret_version: u32,
    secret: &str,
    presented: &str,
    rules: &GrantRules,
) -> Result<GrantRecord, TokenRefusal> {
    let now = state.clock().now_ms();
    let id = GrantValue::id_of(presented).ok_or(TokenRefusal::Invalid("token shape"))?;
    // The value carries its own MAC under the app's current secret (app, kind and id are in
    // it): a forged token, another app's, or a previous secret's is refused here, before any
    // database statement.
    if !GrantValue::check(
        secret.as_bytes(),
        app_id,
        GrantKind::AccessToken,
        id,
        presented,
    ) {
        return Err(TokenRefusal::Invalid("token MAC does not verify"));
    }
    let store = state.accounts().store();
    crate::http::partners::db_statement("op_token_check", "grant_by_id");
    let grant = store
        .grant_by_id(id)
        .await
        .map_err(TokenRefusal::Store)?
        .ok_or(TokenRefusal::Invalid("token unknown"))?;
    if grant.kind != GrantKind::AccessToken
        || grant.app_id != app_id
        || grant.secret_version != secret_version
    {
        return Err(TokenRefusal::Invalid(
            "token of another app, kind or secret",
        ));
    }
    crate::http::partners::db_statement("op_token_check", "grant_chain");
    let chain = store
        .grant_chain(app_id, GrantKind::AccessToken, secret_version, now)
        .await
        .map_err(TokenRefusal::Store)?;
    let successor = chain
        .iter()
        .position(|g| g.id == grant.id)
        .and_then(|i| successor_issued_ms(&chain, i));
    match validity(&grant, successor, now, rules) {
        Ok(()) => Ok(grant),
        Err(Invalid::Expired) => Err(TokenRefusal::Expired),
        Err(Invalid::Superseded) => Err(TokenRefusal::Invalid("token superseded")),
        Err(Invalid::Used | Invalid::NotYet) => Err(TokenRefusal::Invalid("token not valid")),
    }
}

/// The stored reference of `user_id` of `app_id`: HMAC-SM3 with the accounts pepper, the keyed
/// digest used for ID numbers, over a domain-separated input.
pub(crate) fn user_ref(state: &AppState, app_id: &str, user_id: &str) -> [u8; 32] {
    state
        .accounts()
        .digest(&crate::partners::open_platform::grants::user_ref_input(
            app_id, user_id,
        ))
}

/// Issues and stores a grant; returns its value. `parent_id` is the access token that issues
/// a ticket (`None` for a token).
#[expect(
    clippy::too_many_arguments,
    reason = "the grant's inputs, from one call site per grant kind; a struct would only rename them"
)]
pub(crate) async fn issue(
    state: &AppState,
    app_id: &str,
    kind: GrantKind,
    secret_version: u32,
    secret: &str,
    user_ref: Option<[u8; 32]>,
    parent_id: Option<&str>,
    rules: &GrantRules,
) -> Result<(GrantRecord, String), StoreError> {
    let now = state.clock().now_ms();
    let grant = GrantRecord {
        id: GrantValue::new_id(),
        app_id: app_id.to_owned(),
        kind,
        secret_version,
        issued_at_ms: now,
        expires_at_ms: now + rules.life_secs(kind) * 1000,
        used_at_ms: None,
        user_ref,
        parent_id: parent_id.map(str::to_owned),
    };
    let store = state.accounts().store();
    store.insert_grant(&grant).await?;
    // Housekeeping: grants expired for a day are of no use to anyone.
    if let Err(e) = store.purge_grants(now - 86_400_000).await {
        tracing::warn!(cause = %e, "could not purge expired open-platform grants");
    }
    let value = GrantValue::derive(secret.as_bytes(), app_id, kind, &grant.id);
    Ok((grant, value))
}
