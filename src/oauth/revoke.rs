//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662, operator key).
//! Both read the same state, so they always agree: a revoked refresh token ends its family, and
//! every access token of that family introspects as inactive.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::views::Introspection;
use crate::{
    auth::Operator,
    crypto::secret_hash,
    error::{ApiError, OAuthForm},
    state::AppState,
    store,
    tokens::{self, ACCESS_TYP, AccessClaims, REFRESH_PREFIX},
};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenParam {
    #[schema(min_length = 1, required = true, nullable = false)]
    token: Option<String>,
    /// accepted and ignored (any value): every kind of token is looked up
    #[allow(dead_code)]
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
}

/// The OAuth errors of this endpoint (RFC 6749 §5.2 form).
pub struct RevokeErrors;
impl utoipa::IntoResponses for RevokeErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        crate::api_doc::oauth_errors(&[(
            400,
            "No token",
            &[("invalid_request", "`token` missing or empty, or the body is not a form")],
        )])
    }
}
problems!(RevokeProblems:
    500 internal,
);
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    operation_id = "revoke",
    tag = "oauth",
    summary = "Revoke a token (RFC 7009)",
    description = "A refresh token ends its whole family (session): every access token of it introspects as inactive and is refused. An access token is revoked by its `jti`.",
    request_body(content = TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or the token was unknown or invalid (RFC 7009 §2.2); empty body"),
        RevokeProblems,
        RevokeErrors,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn revoke(State(state): State<AppState>, OAuthForm(form): OAuthForm<TokenParam>) -> Response {
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return ApiError::invalid_request("`token` is required").into_response();
    };
    match revoke_token(&state, &token).await {
        // RFC 7009 §2.2: unknown or invalid tokens also answer 200.
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_oauth().into_response(),
    }
}

async fn revoke_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    let now = state.now();
    if token.starts_with(REFRESH_PREFIX) {
        if let Some(st) = store::tokens::refresh_state(&state.db.pool, &secret_hash(token)).await? {
            let mut tx = state.db.begin_write().await?;
            store::tokens::revoke_family(&mut tx, &st.family_id, "revoked by client", now).await?;
            tx.commit().await?;
        }
        return Ok(());
    }
    // An access token: only one we signed, and only until it would have expired anyway.
    if let Ok(claims) = state.keys.verify::<AccessClaims>(token, ACCESS_TYP, now).await
        && claims.iss == state.issuer()
        && claims.exp * 1000 > now
    {
        store::tokens::revoke_access_token(&state.db.pool, &claims.jti, claims.exp * 1000).await?;
    }
    Ok(())
}

/// The OAuth errors of this endpoint (RFC 6749 §5.2 form).
pub struct IntrospectErrors;
impl utoipa::IntoResponses for IntrospectErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        crate::api_doc::oauth_errors(&[(
            400,
            "No token",
            &[("invalid_request", "`token` missing or empty, or the body is not a form")],
        )])
    }
}
problems!(IntrospectProblems:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    operation_id = "introspect",
    tag = "oauth",
    summary = "Introspect a token (RFC 7662)",
    request_body(content = TokenParam, content_type = "application/x-www-form-urlencoded"),
    security(("operatorKey" = [])),
    responses(
        (status = 200, description = "the token's state", body = crate::oauth::views::Introspection),
        IntrospectProblems,
        IntrospectErrors,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    _op: Operator,
    OAuthForm(form): OAuthForm<TokenParam>,
) -> Response {
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return ApiError::invalid_request("`token` is required").into_response();
    };
    match describe(&state, &token).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn inactive() -> Introspection {
    Introspection::default()
}

async fn describe(state: &AppState, token: &str) -> Result<Introspection, ApiError> {
    let now = state.now();
    if token.starts_with(REFRESH_PREFIX) {
        let Some(st) = store::tokens::refresh_state(&state.db.pool, &secret_hash(token)).await? else {
            return Ok(inactive());
        };
        if st.used_at.is_some() || st.family_revoked_at.is_some() || st.expires_at <= now {
            return Ok(inactive());
        }
        let Some(user) = store::accounts::user_by_id(&state.db.pool, &st.user_id).await? else { return Ok(inactive()) };
        return Ok(Introspection {
            active: true,
            amr: Some(vec![st.amr]),
            client_id: Some(st.client_id),
            exp: Some(st.expires_at / 1000),
            iss: Some(state.issuer().to_string()),
            sub: Some(st.user_id),
            token_type: Some("refresh_token"),
            username: Some(user.email),
            ..Introspection::default()
        });
    }
    let Ok(claims) = tokens::verify_access(state, token, now).await else { return Ok(inactive()) };
    if store::tokens::access_token_revoked(&state.db.pool, &claims.jti).await?
        || store::tokens::family_revoked(&state.db.pool, &claims.sid).await?
    {
        return Ok(inactive());
    }
    Ok(Introspection {
        active: true,
        amr: Some(claims.amr),
        aud: Some(claims.aud),
        client_id: Some(claims.client_id),
        username: Some(claims.email.clone()),
        email: Some(claims.email),
        entity: Some(claims.entity),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        sub: Some(claims.sub),
        token_type: Some("Bearer"),
    })
}
