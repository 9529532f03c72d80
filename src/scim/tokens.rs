//! The SCIM tokens of an entity: made by its administrators (or the operator key), shown once,
//! stored as SHA-256 hashes, revocable.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;

use super::views;
use crate::{
    auth::Admin,
    clock,
    crypto::{random_secret, secret_hash},
    error::{ApiError, ApiJson, ApiPath, Result},
    state::AppState,
    store::{self},
};

/// SCIM bearer tokens start with this, so that they are recognisable in a leak.
pub const TOKEN_PREFIX: &str = "lk_scim_";
const MAX_TOKENS: usize = 20;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewScimToken)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

problems!(CreateScimTokenProblems [admin, json_body]:
    404 not_found "no such entity (or not one the caller administers)",
    409 too_many_scim_tokens,
    422 invalid_request "a bad name, or the JSON does not fit the schema",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities/{slug}/scim-tokens",
    operation_id = "createScimToken",
    tag = "scim",
    summary = "Make a SCIM token for the entity's IdP (shown once)",
    params(
        ("slug" = String, Path, description = "the entity's slug"),
    ),
    request_body(content = NewToken),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 201, description = "the token", body = crate::scim::views::ScimTokenCreated),
        CreateScimTokenProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<views::ScimTokenCreated>)> {
    let e = admin.entity(&state, &slug).await?;
    let made = make(&state, &ctx.by_admin(&admin), &e, &body.name).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Make a SCIM token for an entity the caller may administer (`ctx` names them): the
/// `POST .../scim-tokens` of the JSON API and of the portal's SCIM page.
pub async fn make(
    state: &AppState,
    ctx: &crate::audit::Context,
    e: &crate::store::entities::Entity,
    name: &str,
) -> Result<views::ScimTokenCreated> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable("invalid_request", "`name` takes 1 to 100 printable characters"));
    }
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &e.id).await?;
    let live = store::scim::tokens_of(&mut *tx, &e.id).await?.iter().filter(|t| t.revoked_at.is_none()).count();
    if live >= MAX_TOKENS {
        return Err(ApiError::conflict(
            "too_many_scim_tokens",
            format!("{} has {MAX_TOKENS} live SCIM tokens; revoke one first", e.slug),
        ));
    }
    let secret = random_secret(TOKEN_PREFIX);
    let id = store::new_id();
    store::scim::insert_token(&mut *tx, &id, &e.id, name, &secret_hash(&secret), now).await?;
    crate::audit::Event::new("scim.token_created")
        .entity(&e.id, &e.slug)
        .target(crate::audit::Target::new("scim_token", &id, Some(name)))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(entity = %e.slug, token = %id, "SCIM token created");
    Ok(views::ScimTokenCreated {
        created_at: clock::rfc3339(now),
        id,
        name: name.to_string(),
        scim_base_url: state.url(&format!("/scim/v2/{}", e.slug)),
        token: secret,
    })
}

problems!(ListScimTokensProblems [admin]:
    404 not_found "no such entity (or not one the caller administers)",
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/scim-tokens",
    operation_id = "listScimTokens",
    tag = "scim",
    summary = "The entity's SCIM tokens (never the tokens themselves)",
    params(
        ("slug" = String, Path, description = "the entity's slug"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the tokens", body = Vec<crate::scim::views::ScimToken>),
        ListScimTokensProblems,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::ScimToken>>> {
    let e = admin.entity(&state, &slug).await?;
    let rows = store::scim::tokens_of(&state.db.pool, &e.id).await?;
    let items = rows
        .into_iter()
        .map(|t| views::ScimToken {
            created_at: clock::rfc3339(t.created_at),
            id: t.id,
            last_used_at: t.last_used_at.map(clock::rfc3339),
            name: t.name,
            revoked_at: t.revoked_at.map(clock::rfc3339),
        })
        .collect();
    Ok(Json(items))
}

problems!(RevokeScimTokenProblems [admin]:
    404 not_found "no such live token",
    500 internal,
);
#[utoipa::path(
    delete,
    path = "/api/v1/entities/{slug}/scim-tokens/{id}",
    operation_id = "revokeScimToken",
    tag = "scim",
    summary = "Revoke a SCIM token at once",
    params(
        ("slug" = String, Path, description = "the entity's slug"),
        ("id" = String, Path, description = "the token's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "revoked"),
        RevokeScimTokenProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    let e = admin.entity(&state, &slug).await?;
    revoke_token(&state, &ctx.by_admin(&admin), &e, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a live SCIM token of an entity the caller may administer (`ctx` names them): the
/// `DELETE .../scim-tokens/{id}` of the JSON API and of the portal's SCIM page.
pub async fn revoke_token(
    state: &AppState,
    ctx: &crate::audit::Context,
    e: &crate::store::entities::Entity,
    id: &str,
) -> Result<()> {
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    if store::scim::revoke_token(&mut *tx, &e.id, id, now).await? {
        crate::audit::Event::new("scim.token_revoked")
            .entity(&e.id, &e.slug)
            .target(crate::audit::Target::new("scim_token", id, None))
            .record(&mut tx, ctx, now)
            .await?;
        tx.commit().await?;
        tracing::info!(entity = %e.slug, token = %id, "SCIM token revoked");
        Ok(())
    } else {
        Err(ApiError::not_found("no such live SCIM token"))
    }
}
