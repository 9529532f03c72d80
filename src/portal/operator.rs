//! The operator console for the vendor's staff (operator users, `latchkey operator add`): entities
//! (list, create), products (list, create), an entity's licenses (create; change seats and expiry;
//! allow on-premise or offline use).
//!
//! Each form is turned into the JSON body of the operator API and handed to the same handler
//! (`licenses::operator`, `licenses::admin::patch_license`) acting as the operator, so the console
//! validates and does exactly what the API does. Only operator users with an enrolled
//! authenticator get in: anyone else gets 404, an operator without one is sent to enrol.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Posted, Shell, Viewer, fail, not_found, refused, see_other, show, view};
use crate::{
    auth::{Admin, Operator},
    error::{ApiError, ApiJson, ApiPath},
    licenses,
    state::AppState,
    store::{self, entities::Entity},
};

/// Let an operator user with an authenticator through.
pub(super) async fn gate(state: &AppState, v: &Viewer) -> Result<Operator, Response> {
    if !v.operator {
        return Err(not_found());
    }
    if !store::mfa::has_totp(&state.db.pool, &v.bu.user.id).await.map_err(fail)? {
        return Err(see_other(
            state,
            "/portal/security?first=1",
            false,
            "Operators enrol an authenticator before using the console.",
        ));
    }
    Ok(Operator { key_id: String::new(), name: v.bu.user.email.clone(), user_id: Some(v.bu.user.id.clone()) })
}

/// A form turned into the API's JSON body (a malformed one is the API's 422).
fn body<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))
}

/// `YYYY-MM-DD` from a date field as the end of that UTC day; empty: none.
fn end_of_day(d: &str) -> Option<String> {
    let d = d.trim();
    (!d.is_empty()).then(|| format!("{d}T23:59:59Z"))
}

pub async fn home(State(state): State<AppState>, v: Viewer) -> Response {
    match gate(&state, &v).await {
        Ok(_) => Redirect::to("/portal/operator/entities").into_response(),
        Err(r) => r,
    }
}

pub struct EntityRow {
    pub slug: String,
    pub name: String,
    pub created: view::When,
}

#[derive(Template)]
#[template(path = "portal/op_entities.html")]
struct EntitiesPage {
    shell: Shell,
    entities: Vec<EntityRow>,
}

pub async fn entities(State(state): State<AppState>, headers: HeaderMap, v: Viewer) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let list = match store::entities::list_entities(&state.db.pool).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let page = EntitiesPage {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        entities: list
            .into_iter()
            .map(|e| EntityRow { slug: e.slug, name: e.name, created: view::when(e.created_at) })
            .collect(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct EntityForm {
    csrf: Option<String>,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    admin_email: String,
}

pub async fn create_entity(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    Posted { v, form: f }: Posted<EntityForm>,
) -> Response {
    let op = match gate(&state, &v).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let back = "/portal/operator/entities";
    let Some(f) = f else { return see_other(&state, back, false, "The form was incomplete.") };
    let json = json!({ "slug": f.slug.trim(), "name": f.name, "admin_email": f.admin_email.trim() });
    let result = match body(json) {
        Ok(b) => licenses::operator::create_entity(State(state.clone()), op, ctx, ApiJson(b)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((_, axum::Json(e))) => see_other(
            &state,
            &format!("/portal/operator/entities/{}", e.slug),
            true,
            &format!("{} is created; {} is its administrator and gets a mail.", e.name, e.admin_email),
        ),
        Err(e) => refused(&state, back, e),
    }
}

pub struct ProductRow {
    pub sku: String,
    pub name: String,
    pub created: view::When,
}

#[derive(Template)]
#[template(path = "portal/op_products.html")]
struct ProductsPage {
    shell: Shell,
    products: Vec<ProductRow>,
}

pub async fn products(State(state): State<AppState>, headers: HeaderMap, v: Viewer) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let list = match store::entities::list_products(&state.db.pool).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let page = ProductsPage {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        products: list
            .into_iter()
            .map(|p| ProductRow { sku: p.sku, name: p.name, created: view::when(p.created_at) })
            .collect(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct ProductForm {
    csrf: Option<String>,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    name: String,
}

pub async fn create_product(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    Posted { v, form: f }: Posted<ProductForm>,
) -> Response {
    let op = match gate(&state, &v).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let back = "/portal/operator/products";
    let Some(f) = f else { return see_other(&state, back, false, "The form was incomplete.") };
    let result = match body(json!({ "sku": f.sku.trim(), "name": f.name })) {
        Ok(b) => licenses::operator::create_product(State(state.clone()), op, ctx, ApiJson(b)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            see_other(&state, back, true, &format!("Product {} is registered; its client_id is its SKU.", f.sku.trim()))
        }
        Err(e) => refused(&state, back, e),
    }
}

pub struct LicenseRow {
    pub id: String,
    pub product: String,
    pub kind: String,
    pub group: String,
    pub seats: i64,
    pub assigned: i64,
    pub expiry: String,
    /// The expiry's UTC day for the date field, empty when none.
    pub expires_day: String,
    pub fixed: bool,
    pub offline_allowed: bool,
    pub onprem_allowed: bool,
}

#[derive(Template)]
#[template(path = "portal/op_entity.html")]
struct EntityPage {
    shell: Shell,
    entity: Entity,
    licenses: Vec<LicenseRow>,
    products: Vec<(String, String)>,
}

async fn entity(state: &AppState, slug: &str) -> Result<Entity, Response> {
    store::entities::entity_by_slug(&state.db.pool, slug).await.map_err(fail)?.ok_or_else(not_found)
}

pub async fn entity_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let e = match entity(&state, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let now = state.now();
    let result = async {
        let l = store::licenses::licenses_of_entity(&state.db.pool, &e.id).await?;
        let p = store::entities::list_products(&state.db.pool).await?;
        Ok::<_, sqlx::Error>((l, p))
    }
    .await;
    let (list, products) = match result {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let page = EntityPage {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        licenses: list
            .into_iter()
            .map(|l| LicenseRow {
                fixed: l.is_fixed(),
                expiry: view::expiry(l.expires_at, now),
                expires_day: l.expires_at.map(|t| crate::clock::utc_day(t).to_string()).unwrap_or_default(),
                id: l.id,
                product: l.product_name,
                kind: l.kind,
                group: l.group_name.unwrap_or_default(),
                seats: l.seats,
                assigned: l.assigned,
                offline_allowed: l.offline_allowed == 1,
                onprem_allowed: l.onprem_allowed == 1,
            })
            .collect(),
        products: products.into_iter().map(|p| (p.sku, p.name)).collect(),
        entity: e,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct LicenseForm {
    csrf: Option<String>,
    #[serde(default)]
    product: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    seats: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    group: String,
}

fn seats_of(s: &str) -> Value {
    // Not a number: passed on as text, which the API refuses with its own message.
    s.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(s.trim()))
}

pub async fn create_license(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<LicenseForm>,
) -> Response {
    let op = match gate(&state, &v).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let e = match entity(&state, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = format!("/portal/operator/entities/{}", e.slug);
    let Some(f) = f else { return see_other(&state, &back, false, "The form was incomplete.") };
    let mut json = json!({ "product": f.product, "type": f.kind, "seats": seats_of(&f.seats) });
    if let Some(t) = end_of_day(&f.expires) {
        json["expires_at"] = json!(t);
    }
    if !f.group.trim().is_empty() {
        json["group"] = json!(f.group.trim());
    }
    let result = match body(json) {
        Ok(b) => {
            licenses::operator::create_license(State(state.clone()), op, ctx, ApiPath(e.slug.clone()), ApiJson(b)).await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(_) => see_other(&state, &back, true, &format!("The {} license is created.", f.product)),
        Err(err) => refused(&state, &back, err),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    csrf: Option<String>,
    #[serde(default)]
    seats: String,
    #[serde(default)]
    expires: String,
    offline_allowed: Option<String>,
    onprem_allowed: Option<String>,
}

/// Change a license: only what differs from now is sent, as a PATCH of the operator.
pub async fn change_license(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, form: f }: Posted<ChangeForm>,
) -> Response {
    let op = match gate(&state, &v).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let l = match store::licenses::license_by_id(&state.db.pool, &id).await {
        Ok(Some(l)) => l,
        Ok(None) => return not_found(),
        Err(e) => return fail(e),
    };
    let back = format!("/portal/operator/entities/{}", l.entity_slug);
    let Some(f) = f else { return see_other(&state, &back, false, "The form was incomplete.") };
    let mut patch = serde_json::Map::new();
    if f.seats.trim() != l.seats.to_string() {
        patch.insert("seats".into(), seats_of(&f.seats));
    }
    let day = l.expires_at.map(|t| crate::clock::utc_day(t).to_string()).unwrap_or_default();
    if f.expires.trim() != day {
        patch.insert("expires_at".into(), end_of_day(&f.expires).map_or(Value::Null, Value::from));
    }
    if l.is_fixed() && f.offline_allowed.is_some() != (l.offline_allowed == 1) {
        patch.insert("offline_allowed".into(), json!(f.offline_allowed.is_some()));
    }
    if !l.is_fixed() && f.onprem_allowed.is_some() != (l.onprem_allowed == 1) {
        patch.insert("onprem_allowed".into(), json!(f.onprem_allowed.is_some()));
    }
    if patch.is_empty() {
        return see_other(&state, &back, true, "Nothing changed.");
    }
    let result = match body(Value::Object(patch)) {
        Ok(b) => {
            licenses::admin::patch_license(
                State(state.clone()),
                Admin::Operator(op),
                ctx,
                ApiPath(l.id.clone()),
                ApiJson(b),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other(&state, &back, true, &format!("The {} license is changed.", l.product_name)),
        Err(e) => refused(&state, &back, e),
    }
}

super::csrf_forms!(ChangeForm, EntityForm, LicenseForm, ProductForm);
