//! The license administrator's side (also open to the operator key): assignments, share links,
//! users, administrators and groups of one entity.

use std::collections::{BTreeMap, HashSet};

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{check_group_name, check_idle_minutes, check_seats, license_view, nullable, parse_time, views};
use crate::{
    accounts,
    audit::{self, Actor, Target},
    auth::{Admin, UserToken},
    clock::{self, Millis},
    crypto::{random_secret, secret_hash},
    error::{ApiError, ApiJson, ApiPath, OptionalJson, Result},
    mail::{self, Mail},
    state::AppState,
    store::{self, Tx, entities::Entity, licenses::License},
};

/// The id of the entity's group `name`, created when missing.
pub(super) async fn group_id(
    tx: &mut Tx,
    ctx: &audit::Context,
    entity_id: &str,
    entity_slug: &str,
    name: &str,
    now: Millis,
) -> Result<String> {
    if let Some(g) = store::entities::group_by_name(&mut **tx, entity_id, name).await? {
        return Ok(g.id);
    }
    let g =
        store::entities::Group { id: store::new_id(), entity_id: entity_id.into(), name: name.into(), created_at: now };
    store::entities::insert_group(&mut **tx, &g).await?;
    audit::Event::new("group.created")
        .entity(entity_id, entity_slug)
        .target(Target::new("group", &g.id, Some(&g.name)))
        .record(tx, ctx, now)
        .await?;
    Ok(g.id)
}

problems!(GetEntityProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}",
    operation_id = "getEntity",
    tag = "administration",
    summary = "Get an entity",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the entity", body = crate::licenses::views::Entity),
        GetEntityProblems,
    ),
)]
pub async fn get_entity(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<views::Entity>> {
    let e = admin.entity(&state, &slug).await?;
    Ok(Json(views::Entity::of(&e)))
}

problems!(ListLicensesProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/licenses",
    operation_id = "listLicenses",
    tag = "administration",
    summary = "List an entity's licenses",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the licenses, by product then age", body = Vec<crate::licenses::views::License>),
        ListLicensesProblems,
    ),
)]
pub async fn list_licenses(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::License>>> {
    let e = admin.entity(&state, &slug).await?;
    let list = store::licenses::licenses_of_entity(&state.db.pool, &e.id).await?;
    Ok(Json(list.iter().map(license_view).collect()))
}

/// The entity's licenses, and how many seats of each are in use at `now` (by license id).
pub async fn licenses_in_use(
    state: &AppState,
    entity_id: &str,
    now: Millis,
) -> Result<(Vec<License>, std::collections::HashMap<String, i64>)> {
    let list = store::licenses::licenses_of_entity(&state.db.pool, entity_id).await?;
    let counts = store::leases::live_counts_of_entity(&state.db.pool, entity_id, now).await?;
    Ok((list, counts.into_iter().collect()))
}

problems!(GetLicenseProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/licenses/{id}",
    operation_id = "getLicense",
    tag = "administration",
    summary = "Get a license",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the license", body = crate::licenses::views::License),
        GetLicenseProblems,
    ),
)]
pub async fn get_license(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<views::License>> {
    Ok(Json(license_view(&admin.license(&state, &id).await?)))
}

/// Members left out are unchanged. Administrators may set `group`, `idle_timeout_minutes` and `scim_group`; `seats` and `expires_at` need the operator key.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    /// operator key only; null: unchanged
    #[schema(minimum = 1, maximum = 1000000)]
    pub seats: Option<i64>,
    /// operator key only; null: never expires
    #[schema(format = DateTime)]
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<String>>,
    /// 1 to 64 printable characters (trimmed); the group is created when missing
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    #[serde(default, deserialize_with = "nullable")]
    pub group: Option<Option<String>>,
    /// null: no idle limit
    #[schema(minimum = 1, maximum = 10080)]
    #[serde(default, deserialize_with = "nullable")]
    pub idle_timeout_minutes: Option<Option<i64>>,
    /// operator only; fixed licenses
    pub offline_allowed: Option<bool>,
    /// operator only; floating licenses
    pub onprem_allowed: Option<bool>,
    /// a SCIM group id of the license's entity: its members become the assignment list; null unbinds
    #[serde(default, deserialize_with = "nullable")]
    pub scim_group: Option<Option<String>>,
}

problems!(PatchLicenseProblems [admin, json_body]:
    403 operator_only,
    404 not_found,
    409 seats_below_assigned,
    422 invalid_request,
    500 internal,
);
#[utoipa::path(
    patch,
    path = "/api/v1/licenses/{id}",
    operation_id = "patchLicense",
    tag = "administration",
    summary = "Change a license (seats, expiry: operator; group, idle timeout: administrators too)",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = LicensePatch),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the updated license", body = crate::licenses::views::License),
        PatchLicenseProblems,
    ),
)]
/// The operator may change everything; an administrator only the group and the idle policy.
#[tracing::instrument(skip_all)]
pub async fn patch_license(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LicensePatch>,
) -> Result<Json<views::License>> {
    let license = admin.license(&state, &id).await?;
    change_license(&state, &ctx.by_admin(&admin), &license, admin.is_operator(), body).await.map(Json)
}

/// `PATCH /api/v1/licenses/{id}` on a license the caller may administer (`operator`: the vendor
/// acts, else one of the entity's administrators; `ctx` names them). Shared by the JSON API and
/// the portal's license page.
pub async fn change_license(
    state: &AppState,
    ctx: &audit::Context,
    license: &License,
    operator: bool,
    body: LicensePatch,
) -> Result<views::License> {
    if !operator
        && (body.seats.is_some()
            || body.expires_at.is_some()
            || body.offline_allowed.is_some()
            || body.onprem_allowed.is_some())
    {
        return Err(ApiError::forbidden(
            "operator_only",
            "only the vendor can change seats, expiry, offline_allowed or onprem_allowed",
        ));
    }
    crate::onprem::check_switches(license, body.offline_allowed, body.onprem_allowed)?;
    // Validate everything before changing anything.
    let seats = body.seats.map(check_seats).transpose()?;
    let expires_at = match &body.expires_at {
        Some(Some(s)) => Some(Some(parse_time("expires_at", s)?)),
        Some(None) => Some(None),
        None => None,
    };
    let group = match &body.group {
        Some(Some(name)) => Some(Some(check_group_name(name)?)),
        Some(None) => Some(None),
        None => None,
    };
    let idle = match body.idle_timeout_minutes {
        Some(Some(m)) => Some(Some(check_idle_minutes(m)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(Some(g)) = &body.scim_group
        && store::scim::group(&state.db.pool, &license.entity_id, g).await?.is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_scim_group",
            format!("`{g}` is not a SCIM group of this license's organisation (see GET /scim/v2/{{slug}}/Groups)"),
        ));
    }
    let now = state.now();
    let mut changes = serde_json::Map::new();
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, &license.id).await?;
    if let Some(g) = &body.scim_group {
        store::scim::bind_license(&mut *tx, &license.id, g.as_deref()).await?;
    }
    if let Some(seats) = seats {
        changes.insert("seats".into(), json!({ "from": license.seats, "to": seats }));
        let assigned = store::licenses::count_assignments(&mut *tx, &license.id).await?;
        if license.is_fixed() && seats < assigned {
            return Err(ApiError::conflict(
                "seats_below_assigned",
                format!("{assigned} seats are assigned; revoke some before going down to {seats}"),
            ));
        }
        // The seats as they are under the lock (the view read before it may be stale).
        let before = store::licenses::license_by_id(&mut *tx, &license.id).await?.map_or(license.seats, |l| l.seats);
        store::licenses::set_seats(&mut *tx, &license.id, seats).await?;
        if !license.is_fixed() {
            store::slots::resize(&mut tx, state.db.backend, &license.id, before, seats, now).await?;
        }
    }
    if let Some(e) = expires_at {
        store::licenses::set_expiry(&mut *tx, &license.id, e).await?;
        let show = |t: Option<Millis>| t.map(clock::rfc3339);
        changes.insert("expires_at".into(), json!({ "from": show(license.expires_at), "to": show(e) }));
    }
    if let Some(g) = group {
        let gid = match &g {
            Some(name) => Some(group_id(&mut tx, ctx, &license.entity_id, &license.entity_slug, name, now).await?),
            None => None,
        };
        store::licenses::set_group(&mut *tx, &license.id, gid.as_deref()).await?;
        changes.insert("group".into(), json!({ "from": license.group_name, "to": g }));
    }
    if let Some(i) = idle {
        store::licenses::set_idle_timeout(&mut *tx, &license.id, i).await?;
        let show = |s: Option<i64>| s.map(|s| s / 60);
        changes.insert("idle_timeout_minutes".into(), json!({ "from": show(license.idle_timeout_s), "to": show(i) }));
    }
    if let Some(on) = body.offline_allowed {
        store::onprem::set_offline_allowed(&mut *tx, &license.id, on).await?;
        changes.insert("offline_allowed".into(), json!({ "to": on }));
    }
    if let Some(on) = body.onprem_allowed {
        store::onprem::set_onprem_allowed(&mut *tx, &license.id, on).await?;
        changes.insert("onprem_allowed".into(), json!({ "to": on }));
    }
    if let Some(g) = &body.scim_group {
        changes.insert("scim_group".into(), json!({ "to": g }));
    }
    if !changes.is_empty() {
        audit::Event::new("license.updated")
            .entity(&license.entity_id, &license.entity_slug)
            .target(Target::license(license))
            .details(Value::Object(changes))
            .record(&mut tx, ctx, now)
            .await?;
    }
    tx.commit().await?;
    // Bound to a group now: its members become the assignment list, within the seat rules.
    let sync = match &body.scim_group {
        Some(Some(_)) => Some(crate::scim::sync::sync_license(state, &license.id).await?),
        _ => None,
    };
    let updated = store::licenses::license_by_id(&state.db.pool, &license.id)
        .await?
        .ok_or_else(|| ApiError::internal("license vanished"))?;
    let mut view = license_view(&updated);
    view.scim_sync = sync.map(|report| report.to_json());
    Ok(view)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOutcome {
    Assigned,
    AlreadyAssigned,
}

/// Assign `email` (normalised) to a license, creating the account and queueing its mail when needed.
/// Serialised per license (the row lock), so concurrent assignments never exceed the seats.
pub async fn assign(
    state: &AppState,
    ctx: &audit::Context,
    license_id: &str,
    email: &str,
    now: Millis,
) -> Result<AssignOutcome> {
    assign_via(state, ctx, license_id, email, None, now).await
}

/// [`assign`], through the share link `link` when given (the acceptance is recorded with it).
async fn assign_via(
    state: &AppState,
    ctx: &audit::Context,
    license_id: &str,
    email: &str,
    link: Option<&str>,
    now: Millis,
) -> Result<AssignOutcome> {
    let mut tx = state.db.begin_write().await?;
    if !store::licenses::lock_license(&mut *tx, license_id).await? {
        return Err(ApiError::not_found("no such license"));
    }
    let license = store::licenses::license_by_id(&mut *tx, license_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such license"))?;
    let existing = store::accounts::user_by_email(&mut *tx, email).await?;
    if let Some(u) = &existing
        && store::licenses::is_assigned(&mut *tx, license_id, &u.id).await?
    {
        return Ok(AssignOutcome::AlreadyAssigned);
    }
    if license.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::gone("license_expired", "this license has expired"));
    }
    if license.is_fixed() && license.assigned >= license.seats {
        return Err(ApiError::conflict(
            "seats_exhausted",
            format!("all {} seats of this license are assigned; revoke one or buy more", license.seats),
        ));
    }
    let entity = store::entities::entity_by_id(&mut *tx, &license.entity_id)
        .await?
        .ok_or_else(|| ApiError::internal("license without entity"))?;
    let (user, created) = accounts::find_or_create(&mut tx, email, &license.entity_id, now).await?;
    store::licenses::insert_assignment(&mut *tx, license_id, &user.id, now).await?;
    if user.deactivated_at.is_some() {
        // Deactivated by its organisation: the seat is reserved, usable once it is active again.
        store::scim::suspend_assignment(&mut *tx, license_id, &user.id, now).await?;
    }
    accounts::welcome(&mut tx, state, &user, created, &entity.name, Some(&license.product_name), now).await?;
    if let Some(link) = link {
        audit::Event::new("share_link.accepted")
            .entity(&entity.id, &entity.slug)
            .target(Target::new("share_link", link, None))
            .target(Target::license(&license))
            .target(Target::user(&user.id, &user.email))
            .record(&mut tx, ctx, now)
            .await?;
    }
    audit::Event::new("assignment.created")
        .entity(&entity.id, &entity.slug)
        .target(Target::license(&license))
        .target(Target::user(&user.id, &user.email))
        .details(json!({ "account_created": created, "share_link": link }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    state.wake_mailer();
    tracing::info!(license = %license_id, user = %user.id, created, "license assigned");
    Ok(AssignOutcome::Assigned)
}

/// Revoke an assignment. A fixed license allows as many revokes as it has seats.
pub async fn revoke(state: &AppState, ctx: &audit::Context, license_id: &str, email: &str, now: Millis) -> Result<()> {
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, license_id).await?;
    let license = store::licenses::license_by_id(&mut *tx, license_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such license"))?;
    let not_assigned =
        || ApiError::new(StatusCode::NOT_FOUND, "not_assigned", format!("{email} is not assigned this license"));
    let user = store::accounts::user_by_email(&mut *tx, email).await?.ok_or_else(not_assigned)?;
    if !store::licenses::is_assigned(&mut *tx, license_id, &user.id).await? {
        return Err(not_assigned());
    }
    if store::onprem::has_live_offline(&mut *tx, license_id, &user.id, now).await? {
        return Err(ApiError::conflict(
            "offline_active",
            format!("{email} holds an offline license file of this license; return it before revoking"),
        ));
    }
    if license.is_fixed() && license.changes_used >= license.seats {
        return Err(ApiError::conflict(
            "reassignment_limit",
            format!("this fixed license allows {} revokes or reassignments and all are used", license.seats),
        ));
    }
    store::licenses::delete_assignment(&mut *tx, license_id, &user.id).await?;
    if license.is_fixed() {
        store::licenses::spend_change(&mut *tx, license_id).await?;
    }
    let ended = super::seats::end_leases_of_assignment(&mut tx, license_id, &user.id, now).await?;
    audit::Event::new("assignment.revoked")
        .entity(&license.entity_id, &license.entity_slug)
        .target(Target::license(&license))
        .target(Target::user(&user.id, &user.email))
        .details(json!({ "seats_ended": ended }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license_id, user = %user.id, "assignment revoked");
    Ok(())
}

/// Either `email` (one assignment) or `emails` (bulk, answered per email), not both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AssignRequest)]
pub struct AssignBody {
    /// an email address; compared case-insensitively and answered in lower case
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(min_items = 1, max_items = 1000)]
    emails: Option<Vec<String>>,
}

problems!(AssignProblems [admin, json_body]:
    404 not_found,
    409 seats_exhausted,
    410 license_expired,
    422 invalid_request,
    422 invalid_email,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/assignments",
    operation_id = "assign",
    tag = "administration",
    summary = "Assign a license to an email (or to many)",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = AssignBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 201, description = "assigned (`email`); the account is created when missing and mailed a setup link (for an SSO entity: a sign-in note)", body = crate::licenses::views::AssignResult),
        (status = 200, description = "`email`: it was already assigned (idempotent, no mail); `emails`: the per-email results", body = crate::licenses::views::AssignAnswer),
        AssignProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn assign_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<(StatusCode, Json<views::AssignAnswer>)> {
    let license = admin.license(&state, &id).await?;
    let ctx = ctx.by_admin(&admin);
    match (body.email, body.emails) {
        (Some(raw), None) => {
            let email = accounts::normalize_email(&raw)?;
            let outcome = assign(&state, &ctx, &license.id, &email, state.now()).await?;
            let status = match outcome {
                AssignOutcome::Assigned => StatusCode::CREATED,
                AssignOutcome::AlreadyAssigned => StatusCode::OK,
            };
            let one = views::AssignResult { email, license_id: license.id, status: outcome_name(outcome) };
            Ok((status, Json(views::AssignAnswer::One(one))))
        }
        (None, Some(list)) => {
            let results = assign_many(&state, &ctx, &license.id, &list, state.now()).await?;
            Ok((StatusCode::OK, Json(views::AssignAnswer::Many(results.into_iter().map(BulkEntry::view).collect()))))
        }
        _ => Err(ApiError::unprocessable("invalid_request", "send either `email` or `emails`")),
    }
}

/// What happened to one address of a bulk assignment.
#[derive(Debug, Clone)]
pub struct BulkEntry {
    /// The address as normalised (or as given, when it is not an address).
    pub email: String,
    /// `assigned`, `already_assigned` or `error`.
    pub status: &'static str,
    pub http_status: u16,
    pub code: Option<&'static str>,
    pub detail: Option<String>,
}

impl BulkEntry {
    fn done(email: String, o: AssignOutcome) -> Self {
        let http_status = if o == AssignOutcome::Assigned { 201 } else { 200 };
        BulkEntry { email, status: outcome_name(o), http_status, code: None, detail: None }
    }

    fn failed(email: &str, e: &ApiError) -> Self {
        let detail = match e {
            ApiError::Problem(p) => p.detail.clone(),
            ApiError::OAuth(o) => o.description.clone(),
            ApiError::Internal(_) => String::new(),
        };
        BulkEntry {
            email: email.to_string(),
            status: "error",
            http_status: e.status().as_u16(),
            code: Some(e.code()),
            detail: Some(detail),
        }
    }

    pub fn view(self) -> views::BulkAssignEntry {
        views::BulkAssignEntry {
            code: self.code,
            detail: self.detail,
            email: self.email,
            http_status: self.http_status,
            status: self.status,
        }
    }
}

pub const MAX_BULK: usize = 1000;

/// Assign each address of `list` in turn (1 to [`MAX_BULK`]), answering per address: one refused
/// address (malformed, seats exhausted, ...) does not stop the others. A repeated address is
/// reported as already assigned.
pub async fn assign_many(
    state: &AppState,
    ctx: &audit::Context,
    license_id: &str,
    list: &[String],
    now: Millis,
) -> Result<Vec<BulkEntry>> {
    if list.is_empty() || list.len() > MAX_BULK {
        return Err(ApiError::unprocessable("invalid_request", format!("`emails` takes 1 to {MAX_BULK} addresses")));
    }
    let mut results = Vec::with_capacity(list.len());
    let mut seen = HashSet::new();
    for raw in list {
        let r = match accounts::normalize_email(raw) {
            Err(e) => BulkEntry::failed(raw, &e),
            Ok(email) if !seen.insert(email.clone()) => BulkEntry::done(email, AssignOutcome::AlreadyAssigned),
            Ok(email) => match assign(state, ctx, license_id, &email, now).await {
                Ok(o) => BulkEntry::done(email, o),
                Err(e @ (ApiError::Problem(_) | ApiError::OAuth(_))) => BulkEntry::failed(&email, &e),
                Err(e) => return Err(e),
            },
        };
        results.push(r);
    }
    Ok(results)
}

fn outcome_name(o: AssignOutcome) -> &'static str {
    match o {
        AssignOutcome::Assigned => "assigned",
        AssignOutcome::AlreadyAssigned => "already_assigned",
    }
}

problems!(ListAssignmentsProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/licenses/{id}/assignments",
    operation_id = "listAssignments",
    tag = "administration",
    summary = "List a license's assignees",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the assignees, by email", body = Vec<crate::licenses::views::Assignment>),
        ListAssignmentsProblems,
    ),
)]
pub async fn list_assignments(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<views::Assignment>>> {
    let license = admin.license(&state, &id).await?;
    let list = store::licenses::assignees(&state.db.pool, &license.id).await?;
    let items = list
        .into_iter()
        .map(|a| views::Assignment { assigned_at: clock::rfc3339(a.created_at), email: a.email, user_id: a.user_id })
        .collect();
    Ok(Json(items))
}

problems!(UnassignProblems [admin]:
    404 not_found,
    404 not_assigned,
    409 reassignment_limit,
    422 invalid_email "not an email address",
    500 internal,
);
#[utoipa::path(
    delete,
    path = "/api/v1/licenses/{id}/assignments/{email}",
    operation_id = "unassign",
    tag = "administration",
    summary = "Revoke an assignment",
    params(
        ("id" = String, Path, description = "the license's id"),
        ("email" = String, Path, description = "an email address (case-insensitive)", format = Email, max_length = 254),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "revoked; the user's seats on this license end now"),
        UnassignProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn revoke_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath((id, raw)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    let license = admin.license(&state, &id).await?;
    let email = accounts::normalize_email(&raw)?;
    revoke(&state, &ctx.by_admin(&admin), &license.id, &email, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub const SHARE_PREFIX: &str = "lk_sh_";
const SHARE_DEFAULT_DAYS: i64 = 7;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShareLink {
    /// default 7
    #[schema(minimum = 1, maximum = 90)]
    expires_in_days: Option<i64>,
}

problems!(CreateShareLinkProblems [admin]:
    400 invalid_json "the body is not JSON of the schema (unknown member, wrong type)",
    403 admin_only,
    404 not_found,
    422 invalid_request "`expires_in_days` is not between 1 and 90",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/share-links",
    operation_id = "createShareLink",
    tag = "administration",
    summary = "Create a share link",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = Option<NewShareLink>, description = "Optional; an empty body means the defaults. The content type is not checked."),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 201, description = "the link; whoever opens it, signs in and accepts is assigned, while seats last", body = crate::licenses::views::ShareLinkCreated, links(("DeleteShareLink" = (operation_id = "deleteShareLink", parameters(("id" = "$response.body#/license_id"), ("link_id" = "$response.body#/id")))))),
        CreateShareLinkProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn create_share_link(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<NewShareLink>,
) -> Result<(StatusCode, Json<views::ShareLinkCreated>)> {
    let license = admin.license(&state, &id).await?;
    let Some(creator) = admin.user_id() else {
        return Err(ApiError::forbidden("admin_only", "share links are made by the entity's administrators"));
    };
    let days = body.expires_in_days.unwrap_or(SHARE_DEFAULT_DAYS);
    let link = new_share_link(&state, &ctx.by_admin(&admin), &license, creator, days, state.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::ShareLinkCreated {
            expires_at: clock::rfc3339(link.expires_at),
            id: link.id,
            license_id: license.id,
            url: link.url,
        }),
    ))
}

/// A share link just made: its URL holds the secret and is shown this once.
pub struct NewLink {
    pub id: String,
    pub url: String,
    pub expires_at: Millis,
}

/// Make a share link of `license` by administrator `creator`, live for `days` (1 to 90).
pub async fn new_share_link(
    state: &AppState,
    ctx: &audit::Context,
    license: &License,
    creator: &str,
    days: i64,
    now: Millis,
) -> Result<NewLink> {
    if !(1..=90).contains(&days) {
        return Err(ApiError::unprocessable("invalid_request", "`expires_in_days` must be between 1 and 90"));
    }
    let secret = random_secret(SHARE_PREFIX);
    let link_id = store::new_id();
    let expires_at = now + days * 86_400_000;
    let mut tx = state.db.begin_write().await?;
    store::licenses::insert_share_link(
        &mut *tx,
        &link_id,
        &license.id,
        &secret_hash(&secret),
        creator,
        now,
        expires_at,
    )
    .await?;
    audit::Event::new("share_link.created")
        .entity(&license.entity_id, &license.entity_slug)
        .target(Target::new("share_link", &link_id, None))
        .target(Target::license(license))
        .details(json!({ "expires_at": clock::rfc3339(expires_at) }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    Ok(NewLink { id: link_id, url: state.url(&format!("/share/{secret}")), expires_at })
}

/// Stop a share link of `license`.
pub async fn stop_share_link(
    state: &AppState,
    ctx: &audit::Context,
    license: &License,
    link_id: &str,
    now: Millis,
) -> Result<()> {
    let mut tx = state.db.begin_write().await?;
    if !store::licenses::revoke_share_link(&mut *tx, &license.id, link_id, now).await? {
        return Err(ApiError::not_found("no such share link"));
    }
    audit::Event::new("share_link.deleted")
        .entity(&license.entity_id, &license.entity_slug)
        .target(Target::new("share_link", link_id, None))
        .target(Target::license(license))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

problems!(ListShareLinksProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/licenses/{id}/share-links",
    operation_id = "listShareLinks",
    tag = "administration",
    summary = "List a license's share links",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the links, oldest first", body = Vec<crate::licenses::views::ShareLink>),
        ListShareLinksProblems,
    ),
)]
pub async fn list_share_links(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<views::ShareLink>>> {
    let license = admin.license(&state, &id).await?;
    let now = state.now();
    let links = store::licenses::share_links_of(&state.db.pool, &license.id).await?;
    Ok(Json(
        links
            .into_iter()
            .map(|l| views::ShareLink {
                active: l.revoked_at.is_none() && l.expires_at > now,
                created_at: clock::rfc3339(l.created_at),
                expires_at: clock::rfc3339(l.expires_at),
                id: l.id,
            })
            .collect(),
    ))
}

problems!(DeleteShareLinkProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    delete,
    path = "/api/v1/licenses/{id}/share-links/{link_id}",
    operation_id = "deleteShareLink",
    tag = "administration",
    summary = "Stop a share link",
    params(
        ("id" = String, Path, description = "the license's id"),
        ("link_id" = String, Path, description = "the share link's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "stopped (idempotent)"),
        DeleteShareLinkProblems,
    ),
)]
pub async fn delete_share_link(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath((id, link_id)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    let license = admin.license(&state, &id).await?;
    stop_share_link(&state, &ctx.by_admin(&admin), &license, &link_id, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The license a live share link points at.
pub async fn share_link_license(state: &AppState, secret: &str, now: Millis) -> Result<License> {
    Ok(live_share_link(state, secret, now).await?.1)
}

/// The live share link's id and license.
async fn live_share_link(state: &AppState, secret: &str, now: Millis) -> Result<(String, License)> {
    let invalid = || ApiError::new(StatusCode::NOT_FOUND, "invalid_share_link", "this share link is not valid");
    if !secret.starts_with(SHARE_PREFIX) || secret.len() > 100 {
        return Err(invalid());
    }
    let link = store::licenses::share_link_by_hash(&state.db.pool, &secret_hash(secret)).await?.ok_or_else(invalid)?;
    if link.revoked_at.is_some() {
        return Err(ApiError::gone("share_link_revoked", "the administrator stopped this share link"));
    }
    if link.expires_at <= now {
        return Err(ApiError::gone("share_link_expired", "this share link has expired"));
    }
    let license = store::licenses::license_by_id(&state.db.pool, &link.license_id).await?.ok_or_else(invalid)?;
    Ok((link.id, license))
}

/// Whoever holds a live share link may have `email` assigned, while seats last.
/// `ctx`: whoever accepts (the signed-in user, or a newcomer who only typed an email).
pub async fn accept_share_link(
    state: &AppState,
    ctx: &audit::Context,
    secret: &str,
    email: &str,
) -> Result<(License, AssignOutcome)> {
    let now = state.now();
    let (link, license) = live_share_link(state, secret, now).await?;
    let outcome = assign_via(state, ctx, &license.id, email, Some(&link), now).await?;
    Ok((license, outcome))
}

problems!(AcceptShareLinkProblems:
    401 unauthorized "no or malformed `Authorization`, or an invalid, expired or revoked access token",
    403 user_token_required,
    404 invalid_share_link,
    404 not_found "the license is gone",
    409 seats_exhausted,
    410 share_link_revoked,
    410 share_link_expired,
    410 license_expired "the license expired",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/share-links/{token}/accept",
    operation_id = "acceptShareLink",
    tag = "users",
    summary = "Accept a share link as the signed-in user",
    params(
        ("token" = String, Path, description = "the secret at the end of the link's URL (`lk_sh_...`)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "assigned", body = crate::licenses::views::ShareAccepted),
        (status = 200, description = "the user already had it", body = crate::licenses::views::ShareAccepted),
        AcceptShareLinkProblems,
    ),
)]
pub async fn accept_share_link_json(
    State(state): State<AppState>,
    UserToken(claims): UserToken,
    ctx: audit::Context,
    ApiPath(secret): ApiPath<String>,
) -> Result<(StatusCode, Json<views::ShareAccepted>)> {
    let ctx = ctx.by(Actor::user(&claims.sub, &claims.email));
    let (license, outcome) = accept_share_link(&state, &ctx, &secret, &claims.email).await?;
    let status = if outcome == AssignOutcome::Assigned { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(views::ShareAccepted {
            email: claims.email,
            license_id: license.id,
            product: license.product_sku,
            status: outcome_name(outcome),
        }),
    ))
}

problems!(ListUsersProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/users",
    operation_id = "listUsers",
    tag = "administration",
    summary = "List an entity's users",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the users", body = Vec<crate::licenses::views::User>),
        ListUsersProblems,
    ),
)]
pub async fn list_users(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::User>>> {
    let e = admin.entity(&state, &slug).await?;
    let users = store::accounts::entity_users(&state.db.pool, &e.id).await?;
    let rows = store::licenses::assignments_of_entity(&state.db.pool, &e.id).await?;
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (u, l) in rows {
        by_user.entry(u).or_default().push(l);
    }
    Ok(Json(
        users
            .into_iter()
            .map(|u| views::User {
                admin: u.is_admin == 1,
                created_at: clock::rfc3339(u.created_at),
                status: if u.has_password == 1 { "active" } else { "invited" },
                licenses: by_user.get(&u.id).cloned().unwrap_or_default(),
                email: u.email,
                id: u.id,
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// an email address; compared case-insensitively and answered in lower case
    #[schema(format = Email, max_length = 254)]
    email: String,
}

problems!(AddAdminProblems [admin, json_body]:
    404 not_found,
    422 invalid_request,
    422 invalid_email,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities/{slug}/admins",
    operation_id = "addAdmin",
    tag = "administration",
    summary = "Make an email a license administrator of the entity",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    request_body(content = EmailBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 201, description = "added; the account is created when missing and mailed", body = crate::licenses::views::AdminAdded),
        (status = 200, description = "already an administrator", body = crate::licenses::views::AdminAdded),
        AddAdminProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn add_admin(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<views::AdminAdded>)> {
    let e = admin.entity(&state, &slug).await?;
    let email = accounts::normalize_email(&body.email)?;
    let added = add_admin_to(&state, &ctx.by_admin(&admin), &e, &email, state.now()).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(views::AdminAdded { admin: true, email, entity: e.slug })))
}

/// Make `email` (normalised) an administrator of `e`, creating the account when needed and mailing
/// them. False when they were one already.
pub async fn add_admin_to(
    state: &AppState,
    ctx: &audit::Context,
    e: &Entity,
    email: &str,
    now: Millis,
) -> Result<bool> {
    let mut tx = state.db.begin_write().await?;
    let (user, created) = accounts::find_or_create(&mut tx, email, &e.id, now).await?;
    let added = store::entities::add_admin(&mut *tx, &e.id, &user.id, now).await?;
    if added {
        audit::Event::new("admin.added")
            .entity(&e.id, &e.slug)
            .target(Target::user(&user.id, &user.email))
            .details(json!({ "account_created": created }))
            .record(&mut tx, ctx, now)
            .await?;
        if created || user.password_hash.is_none() {
            accounts::welcome(&mut tx, state, &user, created, &e.name, None, now).await?;
        } else {
            let login_url = state.url("/login");
            mail::enqueue(
                &mut tx,
                &state.master,
                Mail::Admin { email: &user.email, inviter: &e.name, login_url: &login_url },
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    state.wake_mailer();
    Ok(added)
}

problems!(ListAdminsProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/admins",
    operation_id = "listAdmins",
    tag = "administration",
    summary = "List the entity's administrators",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the administrators, by email", body = Vec<crate::licenses::views::AdminEntry>),
        ListAdminsProblems,
    ),
)]
pub async fn list_admins(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::AdminEntry>>> {
    let e = admin.entity(&state, &slug).await?;
    let rows = store::entities::admins_of(&state.db.pool, &e.id).await?;
    Ok(Json(rows.into_iter().map(|(email, at)| views::AdminEntry { email, since: clock::rfc3339(at) }).collect()))
}

problems!(RemoveAdminProblems [admin]:
    404 not_found,
    409 last_admin,
    422 invalid_email "not an email address",
    500 internal,
);
#[utoipa::path(
    delete,
    path = "/api/v1/entities/{slug}/admins/{email}",
    operation_id = "removeAdmin",
    tag = "administration",
    summary = "Remove an administrator",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
        ("email" = String, Path, description = "an email address (case-insensitive)", format = Email, max_length = 254),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "removed"),
        RemoveAdminProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn remove_admin(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath((slug, raw)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    let e = admin.entity(&state, &slug).await?;
    let email = accounts::normalize_email(&raw)?;
    remove_admin_from(&state, &ctx.by_admin(&admin), &e, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `email` (normalised) is no longer an administrator of `e`; an entity keeps at least one.
pub async fn remove_admin_from(state: &AppState, ctx: &audit::Context, e: &Entity, email: &str) -> Result<()> {
    let mut tx = state.db.begin_write().await?;
    // Serialise removals per entity (the row lock) so two at once cannot leave it with none.
    store::entities::lock_entity(&mut *tx, &e.id).await?;
    let not_admin = || ApiError::not_found(format!("{email} is not an administrator of {}", e.slug));
    let user = store::accounts::user_by_email(&mut *tx, email).await?.ok_or_else(not_admin)?;
    let count = store::entities::count_admins(&mut *tx, &e.id).await?;
    if !store::entities::remove_admin(&mut *tx, &e.id, &user.id).await? {
        return Err(not_admin());
    }
    if count <= 1 {
        return Err(ApiError::conflict("last_admin", "an entity keeps at least one administrator; add another first"));
    }
    audit::Event::new("admin.removed")
        .entity(&e.id, &e.slug)
        .target(Target::user(&user.id, &user.email))
        .record(&mut tx, ctx, state.now())
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// 1 to 64 printable characters (trimmed); the group is created when missing
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    name: String,
}

problems!(CreateGroupProblems [admin, json_body]:
    404 not_found,
    409 group_exists,
    422 invalid_request,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities/{slug}/groups",
    operation_id = "createGroup",
    tag = "administration",
    summary = "Create a license group (business unit)",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    request_body(content = NewGroup),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 201, description = "the group", body = crate::licenses::views::Group),
        CreateGroupProblems,
    ),
)]
pub async fn create_group(
    State(state): State<AppState>,
    admin: Admin,
    ctx: audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<views::Group>)> {
    let e = admin.entity(&state, &slug).await?;
    let g = new_group(&state, &ctx.by_admin(&admin), &e, &body.name).await?;
    Ok((StatusCode::CREATED, Json(views::Group::of(&g))))
}

/// `POST /api/v1/entities/{slug}/groups` on an entity the caller may administer (`ctx` names
/// them). Shared by the JSON API and the portal's groups page.
pub async fn new_group(
    state: &AppState,
    ctx: &audit::Context,
    e: &Entity,
    name: &str,
) -> Result<store::entities::Group> {
    let name = check_group_name(name)?;
    let g = store::entities::Group { id: store::new_id(), entity_id: e.id.clone(), name, created_at: state.now() };
    let mut tx = state.db.begin_write().await?;
    match store::entities::insert_group(&mut *tx, &g).await {
        Ok(()) => {}
        Err(err) if store::is_unique_violation(&err) => {
            return Err(ApiError::conflict(
                "group_exists",
                format!("{} already has a group named `{}`", e.slug, g.name),
            ));
        }
        Err(err) => return Err(err.into()),
    }
    audit::Event::new("group.created")
        .entity(&e.id, &e.slug)
        .target(Target::new("group", &g.id, Some(&g.name)))
        .record(&mut tx, ctx, g.created_at)
        .await?;
    tx.commit().await?;
    Ok(g)
}

problems!(ListGroupsProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/groups",
    operation_id = "listGroups",
    tag = "administration",
    summary = "List the entity's groups",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the groups, by name", body = Vec<crate::licenses::views::Group>),
        ListGroupsProblems,
    ),
)]
pub async fn list_groups(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::Group>>> {
    let e = admin.entity(&state, &slug).await?;
    let groups = store::entities::list_groups(&state.db.pool, &e.id).await?;
    Ok(Json(groups.iter().map(views::Group::of).collect()))
}

problems!(MeProblems:
    401 unauthorized "no or malformed `Authorization`, or an invalid, expired or revoked access token",
    403 user_token_required,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "users",
    summary = "Who the caller is, what they administer, which licenses they hold",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the caller", body = crate::licenses::views::Me),
        MeProblems,
    ),
)]
/// The caller: who they are, what they administer, which licenses they hold.
pub async fn me(State(state): State<AppState>, UserToken(claims): UserToken) -> Result<Json<views::Me>> {
    let admin_of = store::entities::administered_by(&state.db.pool, &claims.sub).await?;
    let rows = store::licenses::licenses_held_by(&state.db.pool, &claims.sub).await?;
    let licenses = rows
        .into_iter()
        .map(|l| views::MeLicensesItem {
            entity: l.entity_slug,
            expires_at: l.expires_at.map(clock::rfc3339),
            id: l.id,
            product: l.sku,
            kind: l.kind,
        })
        .collect();
    Ok(Json(views::Me {
        admin_of,
        amr: claims.amr,
        email: claims.email,
        entity: claims.entity,
        id: claims.sub,
        licenses,
    }))
}
