//! `/Users`: the accounts of the entity's verified email domains as SCIM resources. `userName` is
//! the address. `active:false` deactivates the account in one transaction: no sign-in, every
//! browser session, refresh family (and so its access tokens), pending code and live seat ends,
//! every assignment is suspended; `active:true` restores sign-in and the assignments.

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    ListParams, ScimBody, ScimCaller, ScimError, ScimResult, USER_SCHEMA, attr,
    filter::{self, Filter, Op},
    list_response, parse_bool,
    patch::{self, UserChange},
    scim_json,
};
use crate::{
    accounts, clock,
    clock::Millis,
    error::ApiPath,
    saml::policy::domain_of,
    state::AppState,
    store::{self, Tx, scim::ScimUser, scim::UserQuery},
};

pub fn resource(state: &AppState, slug: &str, u: &ScimUser) -> Value {
    let mut v = json!({
        "schemas": [USER_SCHEMA],
        "id": u.id,
        "userName": u.email,
        "active": u.deactivated_at.is_none(),
        "emails": [{ "value": u.email, "type": "work", "primary": true }],
        "meta": {
            "resourceType": "User",
            "created": clock::rfc3339(u.created_at),
            "lastModified": clock::rfc3339(u.updated_at),
            "location": state.url(&format!("/scim/v2/{slug}/Users/{}", u.id)),
        },
    });
    if let Some(x) = &u.external_id {
        v["externalId"] = x.clone().into();
    }
    v
}

/// Turn a user filter into a store query; what cannot be answered is `invalidFilter`.
pub fn plan(f: &Filter) -> ScimResult<UserQuery> {
    let unsupported = |why: String| {
        ScimError::bad(
            "invalidFilter",
            format!(
                "{why}; users are filtered with `eq` on userName, externalId, id or emails[type eq \"work\"].value, \
                 joined with `and`"
            ),
        )
    };
    let terms = filter::conjunction(f).map_err(|op| unsupported(format!("`{op}` is not supported")))?;
    let mut q = UserQuery::default();
    for t in terms {
        let Filter::Compare(path, op, value) = t else {
            return Err(unsupported(format!("`{t}` is not supported")));
        };
        if *op != Op::Eq {
            return Err(unsupported(format!("the operator `{}` is not supported", op.name())));
        }
        if path.urn().is_some_and(|u| u != filter::USER_URN) {
            return Err(unsupported(format!("`{path}` is not an attribute of users")));
        }
        let filter::Value::Str(v) = value else {
            return Err(unsupported(format!("`{path}` is compared with a string, not {value}")));
        };
        let attr = path.attr.to_ascii_lowercase();
        match attr.as_str() {
            "username" if path.sub.is_none() && path.filter.is_none() => q.emails.push(v.trim().to_lowercase()),
            "externalid" if path.sub.is_none() && path.filter.is_none() => q.external_ids.push(v.clone()),
            "id" if path.sub.is_none() && path.filter.is_none() => q.ids.push(v.clone()),
            "emails" if path.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("value")) => {
                match filter::selects_work(&path.filter) {
                    Some(true) => q.emails.push(v.trim().to_lowercase()),
                    // Only work addresses exist here: a filter on another type matches nobody.
                    Some(false) => q.ids.push(String::new()),
                    None => return Err(unsupported(format!("`{path}` selects addresses by something else than type"))),
                }
            }
            _ => return Err(unsupported(format!("filtering on `{path}` is not supported"))),
        }
    }
    Ok(q)
}

pub async fn list(
    State(state): State<AppState>,
    caller: ScimCaller,
    OriginalUri(uri): OriginalUri,
) -> ScimResult<Response> {
    list_with(&state, &caller, ListParams::parse(uri.query())?).await
}

/// `POST /Users/.search` (RFC 7644 §3.4.3): the list's parameters in the body.
pub async fn search(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    list_with(&state, &caller, ListParams::from_body(&body)?).await
}

async fn list_with(state: &AppState, caller: &ScimCaller, p: ListParams) -> ScimResult<Response> {
    let q = match &p.filter {
        Some(f) => plan(f)?,
        None => UserQuery::default(),
    };
    let (total, page) = store::scim::list_users(&state.db.pool, &caller.entity_id, &q, p.offset(), p.count).await?;
    let items = page.iter().map(|u| p.project(resource(state, &caller.slug, u))).collect();
    Ok(scim_json(StatusCode::OK, &list_response(total, p.start_index, items)))
}

async fn find(state: &AppState, caller: &ScimCaller, id: &str) -> ScimResult<ScimUser> {
    store::scim::user_in_scope(&state.db.pool, &caller.entity_id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user `{}` in this organisation", id.escape_default())))
}

pub async fn get(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> ScimResult<Response> {
    let p = ListParams::parse(uri.query())?;
    let u = find(&state, &caller, &id).await?;
    Ok(scim_json(StatusCode::OK, &p.project(resource(&state, &caller.slug, &u))))
}

/// Check that `raw` is an address this entity may provision: a valid address in one of its
/// verified domains. Anything else is refused, and the answer says why.
async fn provisionable(tx: &mut Tx, caller: &ScimCaller, raw: &str) -> ScimResult<String> {
    let email = accounts::normalize_email(raw).map_err(|e| {
        let detail = match &e {
            crate::error::ApiError::Problem(p) => p.detail.clone(),
            _ => "not an email address".into(),
        };
        ScimError::bad("invalidValue", format!("userName must be the user's email address: {detail}"))
    })?;
    let domain = domain_of(&email);
    if !store::sso::holds_verified(&mut **tx, &caller.entity_id, domain).await? {
        let verified = store::sso::verified_domains(&mut **tx, &caller.entity_id).await?;
        let which = if verified.is_empty() {
            "it has none yet".to_string()
        } else {
            format!("they are: {}", verified.join(", "))
        };
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            format!(
                "`{email}` is not in an email domain verified for this organisation ({which}); an organisation \
                 provisions only addresses of its own verified domains, so no IdP can take over another company's \
                 accounts. Ask the vendor to verify `{domain}` for you"
            ),
        ));
    }
    Ok(email)
}

/// One address per account, the userName: a work address the IdP sends beside it is read (it must
/// be a string) and not kept. The answer always shows the userName as the one work address.
fn check_work_emails(change: &UserChange, email: &str) -> ScimResult<()> {
    for w in &change.work_emails {
        if !w.trim().eq_ignore_ascii_case(email) {
            tracing::debug!("a work email beside userName was not kept");
        }
    }
    Ok(())
}

/// Read a POST or PUT body into a change (userName required).
fn body_change(body: &Map<String, Value>) -> ScimResult<UserChange> {
    let mut c = UserChange::default();
    patch::user_object(&mut c, patch::Op::Replace, body)?;
    if c.user_name.is_none() {
        return Err(ScimError::bad("invalidValue", "`userName` (the user's email address) is required"));
    }
    if let Some(v) = attr(body, "active")
        && parse_bool(v).is_none()
    {
        return Err(ScimError::bad("invalidValue", "`active` takes true or false"));
    }
    Ok(c)
}

fn check_external_id(c: &UserChange) -> ScimResult<()> {
    if let Some(Some(x)) = &c.external_id
        && (x.len() > 256 || x.chars().any(char::is_control))
    {
        return Err(ScimError::bad("invalidValue", "`externalId` takes at most 256 printable characters"));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let c = body_change(&body)?;
    check_external_id(&c)?;
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    // One provisioning change of an entity at a time (IdPs send in parallel).
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    let email = provisionable(&mut tx, &caller, c.user_name.as_deref().unwrap_or_default()).await?;
    check_work_emails(&c, &email)?;
    let existing = store::accounts::user_by_email(&mut *tx, &email).await?;
    if let Some(u) = &existing {
        // An account the IdP deleted earlier comes back; any other is already there.
        let deleted = matches!(store::scim::link_state(&mut *tx, &caller.entity_id, &u.id).await?, Some(Some(_)));
        if !deleted {
            return Err(ScimError::conflict(format!(
                "a user with userName `{email}` already exists in this organisation (find it with \
                 filter=userName eq \"{email}\")"
            )));
        }
    }
    let (user, created) = accounts::find_or_create(&mut tx, &email, &caller.entity_id, now).await?;
    let external = c.external_id.clone().flatten();
    store::scim::upsert_link(&mut *tx, &caller.entity_id, &user.id, external.as_deref(), now).await?;
    let active = c.active.unwrap_or(true);
    caller
        .event("scim.user_created")
        .target(crate::audit::Target::user(&user.id, &user.email))
        .details(json!({ "external_id": external, "active": active, "account_created": created }))
        .record(&mut tx, &caller.ctx, now)
        .await?;
    set_active(&mut tx, &caller, (&user.id, &user.email), active, now).await?;
    let u = store::scim::user_in_scope(&mut *tx, &caller.entity_id, &user.id)
        .await?
        .ok_or_else(|| ScimError::from(crate::error::ApiError::internal("provisioned user out of scope")))?;
    tx.commit().await?;
    tracing::info!(entity = %caller.slug, user = %user.id, created, "SCIM user provisioned");
    let body = resource(&state, &caller.slug, &u);
    let mut resp = scim_json(StatusCode::CREATED, &body);
    if let Some(loc) = body["meta"]["location"].as_str().and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// Deactivate or reactivate, with everything that goes with it (and its audit event), inside `tx`.
pub async fn set_active(
    tx: &mut Tx,
    caller: &ScimCaller,
    (user_id, email): (&str, &str),
    active: bool,
    now: Millis,
) -> ScimResult<()> {
    let target = crate::audit::Target::user(user_id, email);
    if active {
        if store::scim::reactivate(tx, user_id).await? {
            caller.event("scim.user_reactivated").target(target).record(tx, &caller.ctx, now).await?;
            tracing::info!(user = %user_id, "account reactivated by provisioning");
        }
    } else {
        let changed = store::scim::deactivate(tx, user_id, now).await?;
        // Always (also when already deactivated): nothing signed in may survive a deactivation.
        store::tokens::revoke_families_of_user(tx, user_id, None, "deactivated by the organisation", now).await?;
        store::sessions::end_sign_ins_of_user(tx, user_id, now).await?;
        if changed {
            caller.event("scim.user_deactivated").target(target).record(tx, &caller.ctx, now).await?;
            tracing::info!(user = %user_id, "account deactivated by provisioning");
        }
    }
    Ok(())
}

/// Apply a change to an existing user of the entity; returns the user as it is now.
async fn apply(state: &AppState, caller: &ScimCaller, id: &str, c: UserChange) -> ScimResult<ScimUser> {
    check_external_id(&c)?;
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    let Some(u) = store::scim::user_in_scope(&mut *tx, &caller.entity_id, id).await? else {
        return Err(ScimError::not_found(format!("no user `{}` in this organisation", id.escape_default())));
    };
    let mut email = u.email.clone();
    if let Some(name) = &c.user_name {
        let new = provisionable(&mut tx, caller, name).await?;
        if new != u.email {
            if store::accounts::user_by_email(&mut *tx, &new).await?.is_some() {
                return Err(ScimError::conflict(format!("another account already has the address `{new}`")));
            }
            store::scim::rename_user(&mut *tx, &u.id, &new).await?;
            caller
                .event("scim.user_updated")
                .target(crate::audit::Target::user(&u.id, &new))
                .details(json!({ "previous_email": u.email }))
                .record(&mut tx, &caller.ctx, now)
                .await?;
            // Tokens and sessions carry the old address: they end with it.
            store::tokens::revoke_families_of_user(&mut tx, &u.id, None, "address changed", now).await?;
            store::sessions::end_sign_ins_of_user(&mut tx, &u.id, now).await?;
            tracing::info!(entity = %caller.slug, user = %u.id, "address changed by provisioning");
            email = new;
        }
    }
    check_work_emails(&c, &email)?;
    let external = match &c.external_id {
        Some(x) => x.clone(),
        None => u.external_id.clone(),
    };
    store::scim::upsert_link(&mut *tx, &caller.entity_id, &u.id, external.as_deref(), now).await?;
    if let Some(active) = c.active {
        set_active(&mut tx, caller, (&u.id, &email), active, now).await?;
    }
    let u = store::scim::user_in_scope(&mut *tx, &caller.entity_id, &u.id)
        .await?
        .ok_or_else(|| ScimError::from(crate::error::ApiError::internal("user left scope")))?;
    tx.commit().await?;
    Ok(u)
}

pub async fn replace(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let c = body_change(&body)?;
    let u = apply(&state, &caller, &id, c).await?;
    Ok(scim_json(StatusCode::OK, &resource(&state, &caller.slug, &u)))
}

pub async fn patch(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let ops = patch::operations(&body)?;
    let c = patch::user_change(&ops)?;
    let u = apply(&state, &caller, &id, c).await?;
    Ok(scim_json(StatusCode::OK, &resource(&state, &caller.slug, &u)))
}

/// Accounts are never erased (their history is the vendor's record): DELETE deactivates the
/// account, takes it out of the entity's groups (licenses bound to them follow) and ends it as a
/// SCIM resource. Provisioning the address again brings it back.
pub async fn delete(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ScimResult<Response> {
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    let Some(u) = store::scim::user_in_scope(&mut *tx, &caller.entity_id, &id).await? else {
        return Err(ScimError::not_found(format!("no user `{}` in this organisation", id.escape_default())));
    };
    set_active(&mut tx, &caller, (&u.id, &u.email), false, now).await?;
    caller
        .event("scim.user_deleted")
        .target(crate::audit::Target::user(&u.id, &u.email))
        .record(&mut tx, &caller.ctx, now)
        .await?;
    let groups = store::scim::leave_groups(&mut *tx, &caller.entity_id, &u.id).await?;
    for g in &groups {
        store::scim::remove_member(&mut *tx, g, &u.id).await?;
    }
    store::scim::mark_link_deleted(&mut *tx, &caller.entity_id, &u.id, now).await?;
    tx.commit().await?;
    tracing::info!(entity = %caller.slug, user = %u.id, "SCIM user deleted (deactivated)");
    for g in &groups {
        super::sync::sync_group_licenses(&state, g).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
