//! Access tokens (JWT, `typ` `at+jwt`), refresh-token families, and their verification.
//! Refresh tokens are opaque 256-bit values stored hashed and spent on use; presenting a spent one
//! revokes its whole family (RFC 9700 §4.14.2 reuse detection).

pub mod jws;
pub mod keys;
pub mod license_keys;

use serde::{Deserialize, Serialize};

use crate::{
    clock::Millis,
    crypto::{random_secret, secret_hash},
    error::ApiError,
    state::AppState,
    store::{self, Tx, accounts::User},
};

pub const ACCESS_TYP: &str = "at+jwt";
pub const REFRESH_PREFIX: &str = "lk_rt_";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub email: String,
    pub entity: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub amr: Vec<String>,
    /// The refresh family (session) the token belongs to; revoking it deactivates the token.
    pub sid: String,
}

/// The answer of `POST /oauth/token`, as sent and as the OpenAPI document describes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// a JWT (`typ` `at+jwt`, EdDSA or ES256, `kid` in the header) with `iss`, `sub`, `email`, `entity`, `aud` (= client_id), `client_id`, `iat`, `exp`, `jti`, `amr`, `sid`
    pub access_token: String,
    /// always `Bearer`
    #[schema(value_type = String, pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// seconds
    pub expires_in: i64,
    /// opaque (`lk_rt_...`), single use
    pub refresh_token: String,
    /// The session (refresh family) the tokens belong to; not part of the response.
    #[serde(skip)]
    pub family_id: String,
}

/// How the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    Pwd,
    Saml,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Saml => "saml",
        }
    }
}

/// The subject of a token: the user and the slug of their entity.
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub entity_slug: &'a str,
}

pub fn sign_access(
    state: &AppState,
    s: &Subject<'_>,
    client_id: &str,
    amr: &str,
    sid: &str,
    now: Millis,
) -> anyhow::Result<(String, i64)> {
    let ttl = state.config.access_token_ttl.secs();
    let iat = now / 1000;
    let claims = AccessClaims {
        iss: state.issuer().to_string(),
        sub: s.user_id.to_string(),
        aud: client_id.to_string(),
        client_id: client_id.to_string(),
        email: s.email.to_string(),
        entity: s.entity_slug.to_string(),
        iat,
        exp: iat + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
        amr: vec![amr.to_string()],
        sid: sid.to_string(),
    };
    Ok((state.keys.sign(ACCESS_TYP, &claims)?, ttl))
}

/// Start a session (refresh family) for a user who just proved who they are, inside `tx`.
pub async fn issue_in(
    tx: &mut Tx,
    state: &AppState,
    user: &User,
    entity_slug: &str,
    client_id: &str,
    amr: Amr,
    now: Millis,
) -> anyhow::Result<TokenResponse> {
    let family = store::new_id();
    store::tokens::insert_family(&mut **tx, &family, &user.id, client_id, amr.as_str(), now).await?;
    let refresh = random_secret(REFRESH_PREFIX);
    store::tokens::insert_refresh(
        &mut **tx,
        &store::tokens::NewRefresh {
            token_hash: &secret_hash(&refresh),
            family_id: &family,
            user_id: &user.id,
            client_id,
            amr: amr.as_str(),
            now,
            expires_at: now + state.config.refresh_token_ttl.ms(),
        },
    )
    .await?;
    let subject = Subject { user_id: &user.id, email: &user.email, entity_slug };
    let (access_token, expires_in) = sign_access(state, &subject, client_id, amr.as_str(), &family, now)?;
    Ok(TokenResponse { access_token, token_type: "Bearer", expires_in, refresh_token: refresh, family_id: family })
}

pub async fn issue(
    state: &AppState,
    user: &User,
    entity_slug: &str,
    client_id: &str,
    amr: Amr,
    now: Millis,
) -> anyhow::Result<TokenResponse> {
    let mut tx = state.db.begin_write().await?;
    let t = issue_in(&mut tx, state, user, entity_slug, client_id, amr, now).await?;
    tx.commit().await?;
    state.metrics.token_issued("new");
    Ok(t)
}

/// The `refresh_token` grant: spend the presented token and hand out a new pair in its family.
/// The hot path is one statement on PostgreSQL (spend, insert the successor and read the subject
/// in a single CTE: one round trip, one commit) and one short transaction on SQLite. Only a
/// refusal takes a second look, to say why and to revoke the family when a spent token returns.
pub async fn refresh(
    state: &AppState,
    ctx: &crate::audit::Context,
    presented: &str,
    client_id: Option<&str>,
    now: Millis,
) -> Result<TokenResponse, ApiError> {
    let hash = secret_hash(presented);
    let fresh = random_secret(REFRESH_PREFIX);
    let rotation = store::tokens::Rotation {
        old_hash: &hash,
        new_hash: &secret_hash(&fresh),
        client_id,
        now,
        expires_at: now + state.config.refresh_token_ttl.ms(),
    };
    let rotated = match state.db.backend {
        store::Backend::Postgres => store::tokens::rotate_refresh_pg(&state.db.pool, &rotation).await?,
        store::Backend::Sqlite => {
            let mut tx = state.db.begin_write().await?;
            let r = store::tokens::rotate_refresh_in(&mut tx, &rotation).await?;
            tx.commit().await?;
            r
        }
    };
    let Some(r) = rotated else {
        return Err(refusal(state, ctx, &hash, client_id, now).await?);
    };
    if r.amr == Amr::Pwd.as_str()
        && let Some(login_url) = crate::saml::sso_login_url_for_email(&state.db.pool, state, &r.email).await?
    {
        // A password session that outlived the switch to SSO (it began while SSO was being turned
        // on): it ends here, successor included.
        let mut tx = state.db.begin_write().await?;
        store::tokens::revoke_family(&mut tx, &r.family_id, "SSO required", now).await?;
        tx.commit().await?;
        return Err(crate::saml::policy::sso_required(login_url));
    }
    let subject = Subject { user_id: &r.user_id, email: &r.email, entity_slug: &r.entity_slug };
    let (access_token, expires_in) = sign_access(state, &subject, &r.client_id, &r.amr, &r.family_id, now)?;
    state.metrics.token_issued("refresh");
    Ok(TokenResponse { access_token, token_type: "Bearer", expires_in, refresh_token: fresh, family_id: r.family_id })
}

/// Why a refresh token was refused; a spent one coming back revokes its whole family.
async fn refusal(
    state: &AppState,
    ctx: &crate::audit::Context,
    hash: &str,
    client_id: Option<&str>,
    now: Millis,
) -> Result<ApiError, ApiError> {
    let Some(st) = store::tokens::refresh_state(&state.db.pool, hash).await? else {
        return Ok(ApiError::invalid_grant("unknown or revoked refresh token"));
    };
    if st.family_revoked_at.is_some() {
        // Password sessions end when SSO comes to govern the address: say where to go instead.
        if st.amr == Amr::Pwd.as_str()
            && let Some(user) = store::accounts::user_by_id(&state.db.pool, &st.user_id).await?
            && let Some(login_url) = crate::saml::sso_login_url_for(&state.db.pool, state, &user).await?
        {
            return Ok(crate::saml::policy::sso_required(login_url));
        }
        return Ok(ApiError::invalid_grant("the refresh token's session has been revoked"));
    }
    if st.used_at.is_some() {
        // Someone holds a copy of a spent token: end the whole session.
        let mut tx = state.db.begin_write().await?;
        store::tokens::revoke_family(&mut tx, &st.family_id, "refresh token reused", now).await?;
        reuse_detected(&mut tx, ctx, &st.user_id, &st.family_id, "refresh_token", now).await?;
        tx.commit().await?;
        state.metrics.refresh_reuse();
        tracing::warn!(family = %st.family_id, "spent refresh token presented again; family revoked");
        return Ok(ApiError::invalid_grant("the refresh token was already used; its session has been revoked"));
    }
    if st.expires_at <= now {
        return Ok(ApiError::invalid_grant("the refresh token has expired"));
    }
    if client_id.is_some_and(|c| c != st.client_id) {
        // Left unspent: the wrong client presenting it does not get to burn it.
        return Ok(ApiError::invalid_grant("the refresh token was issued to another client"));
    }
    Ok(ApiError::invalid_grant("the account no longer exists"))
}

/// `token.reuse_detected`: a spent refresh token or authorization code came back, and the session
/// it belongs to was ended. Whoever presented it proved nothing: the actor is latchkey's policy.
pub async fn reuse_detected(
    tx: &mut Tx,
    ctx: &crate::audit::Context,
    user_id: &str,
    family_id: &str,
    kind: &str,
    now: Millis,
) -> Result<(), ApiError> {
    use crate::audit::{Actor, Event, Target};
    let mut event = Event::new("token.reuse_detected")
        .target(Target::new("session", family_id, None))
        .details(serde_json::json!({ "presented": kind, "session_revoked": true }));
    if let Some(u) = store::accounts::user_by_id(&mut **tx, user_id).await? {
        event = event.target(Target::user(&u.id, &u.email));
        if let Some(e) = store::entities::entity_by_id(&mut **tx, &u.entity_id).await? {
            event = event.entity(&e.id, &e.slug);
        }
    }
    event.record(tx, &ctx.as_actor(Actor::system("token reuse detection")), now).await?;
    Ok(())
}

/// A verified, unexpired access token of this issuer.
pub async fn verify_access(state: &AppState, token: &str, now: Millis) -> Result<AccessClaims, &'static str> {
    let claims: AccessClaims = state.keys.verify(token, ACCESS_TYP, now).await.map_err(|e| match e {
        keys::VerifyError::UnknownKey | keys::VerifyError::BadSignature => {
            "the access token's signature does not verify"
        }
        _ => "the access token is malformed",
    })?;
    if claims.iss != state.issuer() {
        return Err("the access token comes from another issuer");
    }
    if claims.exp * 1000 <= now {
        return Err("the access token has expired");
    }
    if claims.iat * 1000 > now + state.config.clock_skew.ms() {
        return Err("the access token is not valid yet");
    }
    Ok(claims)
}
