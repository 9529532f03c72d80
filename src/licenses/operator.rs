//! The vendor's side: entities, products, and the licenses it sells them.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{check_group_name, check_idle_minutes, check_seats, license_view, parse_time, views};
use crate::{
    accounts,
    audit::{self, Actor, Target},
    auth::{Operator, PORTAL_CLIENT},
    clock,
    error::{ApiError, ApiJson, ApiPath, Result},
    mail::{self, Mail},
    state::AppState,
    store::{self, entities::Entity, entities::Product},
};

pub fn check_slug(slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !ok {
        return Err(ApiError::unprocessable(
            "invalid_slug",
            "a slug has 2 to 63 lower-case letters, digits and inner hyphens (e.g. `acme-eu`)",
        ));
    }
    // The built-in entity of operator accounts: a customer given this slug would take them in.
    if slug == accounts::operators::OPERATORS_ENTITY {
        return Err(ApiError::unprocessable(
            "invalid_slug",
            format!("`{slug}` is reserved: latchkey keeps the accounts of its operators there; choose another slug"),
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntity {
    /// 2 to 63 lower-case letters, digits and inner hyphens; not `latchkey-operators` (reserved)
    #[schema(min_length = 2, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*[a-z0-9]$")]
    slug: String,
    /// 1 to 200 characters (trimmed)
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// the entity's first license administrator; the account is created when missing and mailed a setup link
    #[schema(format = Email, max_length = 254)]
    admin_email: String,
}

problems!(CreateEntityProblems [json_body]:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    409 entity_exists,
    422 invalid_request,
    422 invalid_slug "not 2 to 63 lower-case letters, digits and inner hyphens, or the reserved `latchkey-operators`",
    422 invalid_email "`admin_email` is not a usable address",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities",
    operation_id = "createEntity",
    tag = "operator",
    summary = "Create an entity (customer) and its first administrator",
    request_body(content = NewEntity),
    security(("operatorKey" = [])),
    responses(
        (status = 201, description = "the entity; the administrator's account is created when missing and mailed a setup link", body = crate::licenses::views::EntityCreated, links(("GetEntity" = (operation_id = "getEntity", parameters(("slug" = "$response.body#/slug")))), ("ListLicenses" = (operation_id = "listLicenses", parameters(("slug" = "$response.body#/slug")))), ("ListUsers" = (operation_id = "listUsers", parameters(("slug" = "$response.body#/slug")))))),
        CreateEntityProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn create_entity(
    State(state): State<AppState>,
    op: Operator,
    ctx: audit::Context,
    ApiJson(body): ApiJson<NewEntity>,
) -> Result<(StatusCode, Json<views::EntityCreated>)> {
    check_slug(&body.slug)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable("invalid_request", "`name` must have 1 to 200 characters"));
    }
    let email = accounts::normalize_email(&body.admin_email)?;
    let now = state.now();
    let entity = Entity { id: store::new_id(), slug: body.slug.clone(), name: name.to_string(), created_at: now };
    let mut tx = state.db.begin_write().await?;
    if let Err(e) = store::entities::insert_entity(&mut *tx, &entity).await {
        return Err(if store::is_unique_violation(&e) {
            ApiError::conflict("entity_exists", format!("an entity with slug `{}` exists already", body.slug))
        } else {
            e.into()
        });
    }
    let (admin, created) = accounts::find_or_create(&mut tx, &email, &entity.id, now).await?;
    store::entities::add_admin(&mut *tx, &entity.id, &admin.id, now).await?;
    let ctx = ctx.by(Actor::operator(&op));
    audit::Event::new("entity.created")
        .entity(&entity.id, &entity.slug)
        .target(Target::entity(&entity.id, &entity.slug))
        .details(json!({ "name": entity.name }))
        .record(&mut tx, &ctx, now)
        .await?;
    audit::Event::new("admin.added")
        .entity(&entity.id, &entity.slug)
        .target(Target::user(&admin.id, &admin.email))
        .details(json!({ "account_created": created }))
        .record(&mut tx, &ctx, now)
        .await?;
    if created || admin.password_hash.is_none() {
        accounts::welcome(&mut tx, &state, &admin, created, &entity.name, None, now).await?;
    } else {
        let login_url = state.url("/login");
        mail::enqueue(
            &mut tx,
            &state.master,
            Mail::Admin { email: &admin.email, inviter: &entity.name, login_url: &login_url },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    state.wake_mailer();
    tracing::info!(entity = %entity.slug, "entity created");
    let e = views::Entity::of(&entity);
    let created = views::EntityCreated {
        admin_email: admin.email,
        created_at: e.created_at,
        id: e.id,
        name: e.name,
        slug: e.slug,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

problems!(ListEntitiesProblems:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities",
    operation_id = "listEntities",
    tag = "operator",
    summary = "List entities",
    security(("operatorKey" = [])),
    responses(
        (status = 200, description = "every entity, by slug", body = Vec<crate::licenses::views::Entity>),
        ListEntitiesProblems,
    ),
)]
pub async fn list_entities(State(state): State<AppState>, _op: Operator) -> Result<Json<Vec<views::Entity>>> {
    let list = store::entities::list_entities(&state.db.pool).await?;
    Ok(Json(list.iter().map(views::Entity::of).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 2 to 64 lower-case letters, digits, `-`, `_` or `.`, starting with a letter or digit; `portal` is reserved
    #[schema(min_length = 2, max_length = 64, pattern = "^[a-z0-9][a-z0-9._-]*$")]
    sku: String,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
}

problems!(CreateProductProblems [json_body]:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    409 product_exists,
    422 invalid_request,
    422 invalid_sku,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/products",
    operation_id = "createProduct",
    tag = "operator",
    summary = "Register a product (an OAuth public client whose client_id is the SKU)",
    request_body(content = NewProduct),
    security(("operatorKey" = [])),
    responses(
        (status = 201, description = "the product", body = crate::licenses::views::Product),
        CreateProductProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn create_product(
    State(state): State<AppState>,
    op: Operator,
    ctx: audit::Context,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<(StatusCode, Json<views::Product>)> {
    let sku = body.sku.as_str();
    let ok = (2..=64).contains(&sku.len())
        && sku.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && sku.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        return Err(ApiError::unprocessable(
            "invalid_sku",
            "a SKU has 2 to 64 lower-case letters, digits, `-`, `_` or `.`, starting with a letter or digit",
        ));
    }
    if sku == PORTAL_CLIENT {
        return Err(ApiError::conflict("product_exists", "`portal` is the built-in client of the web portal"));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable("invalid_request", "`name` must have 1 to 200 characters"));
    }
    let p = Product { id: store::new_id(), sku: sku.to_string(), name: name.to_string(), created_at: state.now() };
    let mut tx = state.db.begin_write().await?;
    match store::entities::insert_product(&mut *tx, &p).await {
        Ok(()) => {}
        Err(e) if store::is_unique_violation(&e) => {
            return Err(ApiError::conflict("product_exists", format!("a product with SKU `{sku}` exists already")));
        }
        Err(e) => return Err(e.into()),
    }
    audit::Event::new("product.created")
        .target(Target::new("product", &p.id, Some(&p.sku)))
        .details(json!({ "name": p.name }))
        .record(&mut tx, &ctx.by(Actor::operator(&op)), p.created_at)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(views::Product::of(&p))))
}

problems!(ListProductsProblems:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/products",
    operation_id = "listProducts",
    tag = "operator",
    summary = "List products",
    security(("operatorKey" = [])),
    responses(
        (status = 200, description = "every product, by SKU", body = Vec<crate::licenses::views::Product>),
        ListProductsProblems,
    ),
)]
pub async fn list_products(State(state): State<AppState>, _op: Operator) -> Result<Json<Vec<views::Product>>> {
    let list = store::entities::list_products(&state.db.pool).await?;
    Ok(Json(list.iter().map(views::Product::of).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLicense {
    /// a registered product's SKU
    product: String,
    #[serde(rename = "type")]
    kind: String,
    #[schema(minimum = 1, maximum = 1000000)]
    seats: i64,
    /// RFC 3339, in the future; absent or null: never
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// 1 to 64 printable characters (trimmed); the group is created when missing
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    group: Option<String>,
    #[schema(minimum = 1, maximum = 10080)]
    idle_timeout_minutes: Option<i64>,
}

problems!(CreateLicenseProblems [json_body]:
    401 unauthorized "no, malformed, unknown or revoked operator key (or a token that is not an operator key)",
    404 not_found "no such entity",
    422 invalid_request,
    422 unknown_product,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities/{slug}/licenses",
    operation_id = "createLicense",
    tag = "operator",
    summary = "Sell a license to an entity",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    request_body(content = NewLicense),
    security(("operatorKey" = [])),
    responses(
        (status = 201, description = "the license", body = crate::licenses::views::License, links(("GetLicense" = (operation_id = "getLicense", parameters(("id" = "$response.body#/id")))), ("ListAssignments" = (operation_id = "listAssignments", parameters(("id" = "$response.body#/id")))), ("ListSeats" = (operation_id = "listSeats", parameters(("id" = "$response.body#/id")))), ("ListShareLinks" = (operation_id = "listShareLinks", parameters(("id" = "$response.body#/id")))))),
        CreateLicenseProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn create_license(
    State(state): State<AppState>,
    op: Operator,
    ctx: audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<NewLicense>,
) -> Result<(StatusCode, Json<views::License>)> {
    let now = state.now();
    let entity = store::entities::entity_by_slug(&state.db.pool, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no entity `{slug}`")))?;
    if !matches!(body.kind.as_str(), "fixed" | "floating") {
        return Err(ApiError::unprocessable("invalid_request", "`type` must be `fixed` or `floating`"));
    }
    let seats = check_seats(body.seats)?;
    let product = store::entities::product_by_sku(&state.db.pool, &body.product)
        .await?
        .ok_or_else(|| ApiError::unprocessable("unknown_product", format!("no product with SKU `{}`", body.product)))?;
    let expires_at = body.expires_at.as_deref().map(|s| parse_time("expires_at", s)).transpose()?;
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unprocessable("invalid_request", "`expires_at` is in the past"));
    }
    let idle = body.idle_timeout_minutes.map(check_idle_minutes).transpose()?;
    let group = body.group.as_deref().map(check_group_name).transpose()?;
    let id = store::new_id();
    let ctx = ctx.by(Actor::operator(&op));
    let mut tx = state.db.begin_write().await?;
    let group_id = match &group {
        Some(name) => Some(super::admin::group_id(&mut tx, &ctx, &entity.id, &entity.slug, name, now).await?),
        None => None,
    };
    store::licenses::insert_license(
        &mut *tx,
        &store::licenses::NewLicense {
            id: &id,
            entity_id: &entity.id,
            product_id: &product.id,
            kind: &body.kind,
            seats,
            expires_at,
            group_id: group_id.as_deref(),
            idle_timeout_s: idle,
            now,
        },
    )
    .await?;
    if body.kind == "floating" {
        store::slots::add(&mut tx, &id, seats).await?;
    }
    let license =
        store::licenses::license_by_id(&mut *tx, &id).await?.ok_or_else(|| ApiError::internal("license vanished"))?;
    audit::Event::new("license.created")
        .entity(&entity.id, &entity.slug)
        .target(Target::license(&license))
        .details(json!({
            "product": product.sku,
            "type": body.kind,
            "seats": seats,
            "expires_at": expires_at.map(clock::rfc3339),
            "group": group,
            "idle_timeout_minutes": body.idle_timeout_minutes,
        }))
        .record(&mut tx, &ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %id, entity = %slug, product = %product.sku, seats, kind = %body.kind, "license created");
    Ok((StatusCode::CREATED, Json(license_view(&license))))
}
