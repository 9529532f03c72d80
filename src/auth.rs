//! Who is calling: extractors for the operator key, a user's access token, and an administrator
//! (a user token issued to `portal`, or the operator key), plus the 401/403/404 boundary rules.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};

use crate::{
    crypto::secret_hash,
    error::ApiError,
    state::AppState,
    store,
    tokens::{self, AccessClaims},
};

pub const OPERATOR_KEY_PREFIX: &str = "lk_op_";
pub const PORTAL_CLIENT: &str = "portal";

pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    bearer_from(&parts.headers)
}

pub fn bearer_from(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) =
        value.split_once(' ').ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("use the Bearer scheme"));
    }
    Ok(token.trim())
}

/// The vendor's staff, by operator key.
#[derive(Debug, Clone)]
pub struct Operator {
    pub key_id: String,
    pub name: String,
    /// Set when an operator user acts in the portal's console (then `key_id` is empty): the
    /// audit log names that user, not a key.
    pub user_id: Option<String>,
}

async fn operator_from(state: &AppState, token: &str) -> Result<Operator, ApiError> {
    if !token.starts_with(OPERATOR_KEY_PREFIX) {
        return Err(ApiError::unauthorized("this endpoint needs an operator key"));
    }
    match store::keys::operator_key_by_hash(&state.db.pool, &secret_hash(token)).await? {
        Some(k) => Ok(Operator { key_id: k.id, name: k.name, user_id: None }),
        None => Err(ApiError::unauthorized("unknown or revoked operator key")),
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        operator_from(state, token).await
    }
}

/// A signed-in user, by access token (any client).
#[derive(Debug, Clone)]
pub struct UserToken(pub AccessClaims);

/// Verify an access token and check it was not revoked (itself, or its session).
pub async fn user_from(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    let claims = tokens::verify_access(state, token, state.now()).await.map_err(ApiError::unauthorized)?;
    ensure_not_revoked(state, &claims).await?;
    Ok(claims)
}

/// Refuse a verified access token whose session or itself was revoked.
pub async fn ensure_not_revoked(state: &AppState, claims: &AccessClaims) -> Result<(), ApiError> {
    if store::tokens::access_revoked(&state.db.pool, &claims.sid, &claims.jti).await? {
        return Err(ApiError::unauthorized("the access token has been revoked"));
    }
    Ok(())
}

impl FromRequestParts<AppState> for UserToken {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if token.starts_with(OPERATOR_KEY_PREFIX) {
            return Err(ApiError::forbidden("user_token_required", "this endpoint needs a user's access token"));
        }
        user_from(state, token).await.map(UserToken)
    }
}

/// An administrator: a license administrator's `portal` token, or the operator key (which may act
/// on every entity). Which entity a user administers is checked per resource with `require`.
#[derive(Debug, Clone)]
pub enum Admin {
    Operator(Operator),
    User(AccessClaims),
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Admin::from_token(state, bearer(parts)?).await
    }
}

impl Admin {
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        if token.starts_with(OPERATOR_KEY_PREFIX) {
            return operator_from(state, token).await.map(Admin::Operator);
        }
        let claims = user_from(state, token).await?;
        if claims.aud != PORTAL_CLIENT {
            return Err(ApiError::forbidden(
                "wrong_audience",
                "the administration API takes tokens issued to the `portal` client",
            ));
        }
        Ok(Admin::User(claims))
    }

    /// Allow the call on a resource of `entity_id` (`None`: the resource does not exist).
    /// A user who administers no entity at all gets 403; an administrator of another entity gets
    /// 404, the same answer as for a resource that does not exist, so nothing leaks across entities.
    pub async fn require(&self, state: &AppState, entity_id: Option<&str>) -> Result<(), ApiError> {
        match self {
            Admin::Operator(_) => entity_id.map(|_| ()).ok_or_else(|| ApiError::not_found("no such resource")),
            Admin::User(claims) => {
                if let Some(eid) = entity_id
                    && store::entities::is_admin(&state.db.pool, eid, &claims.sub).await?
                {
                    return Ok(());
                }
                if store::entities::administered_by(&state.db.pool, &claims.sub).await?.is_empty() {
                    Err(ApiError::forbidden("not_an_administrator", "you are not a license administrator"))
                } else {
                    Err(ApiError::not_found("no such resource"))
                }
            }
        }
    }

    /// The entity `slug`, when this caller may administer it ([`Admin::require`]'s answers otherwise).
    pub async fn entity(&self, state: &AppState, slug: &str) -> Result<store::entities::Entity, ApiError> {
        let entity = store::entities::entity_by_slug(&state.db.pool, slug).await?;
        self.require(state, entity.as_ref().map(|e| e.id.as_str())).await?;
        entity.ok_or_else(|| ApiError::not_found("no such resource"))
    }

    /// The license `id`, when this caller may administer its entity ([`Admin::require`]'s answers otherwise).
    pub async fn license(&self, state: &AppState, id: &str) -> Result<store::licenses::License, ApiError> {
        let license = store::licenses::license_by_id(&state.db.pool, id).await?;
        self.require(state, license.as_ref().map(|l| l.entity_id.as_str())).await?;
        license.ok_or_else(|| ApiError::not_found("no such resource"))
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Admin::Operator(_) => None,
            Admin::User(c) => Some(&c.sub),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Admin::Operator(_))
    }
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when configured to trust it.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(ClientIp(Some(ip)));
        }
        Ok(ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}
