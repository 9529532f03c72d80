//! `/Groups` of an entity and their members (users of the same entity). A license bound to a
//! group follows its membership (`sync.rs`): after every membership change the bound licenses
//! are brought in line.

use std::collections::BTreeSet;

use axum::{
    extract::{OriginalUri, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    GROUP_SCHEMA, ListParams, ScimBody, ScimCaller, ScimError, ScimResult, attr,
    filter::{self, Filter, Op},
    list_response,
    patch::{self, GroupChange},
    scim_json,
};
use crate::{
    clock,
    error::ApiPath,
    state::AppState,
    store::{self, Tx, scim::Group, scim::GroupQuery},
};

/// The most members one group may hold.
const MAX_MEMBERS: usize = 50_000;

async fn resource(state: &AppState, slug: &str, g: &Group, with_members: bool) -> ScimResult<Value> {
    let members = match with_members {
        true => Some(
            store::scim::members(&state.db.pool, &g.id).await?.into_iter().map(|(id, _)| id).collect::<Vec<String>>(),
        ),
        false => None,
    };
    Ok(render(state, slug, g, members.as_deref()))
}

/// A group as SCIM shows it; `members` (user ids) when asked for.
fn render(state: &AppState, slug: &str, g: &Group, members: Option<&[String]>) -> Value {
    let mut v = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "meta": {
            "resourceType": "Group",
            "created": clock::rfc3339(g.created_at),
            "lastModified": clock::rfc3339(g.updated_at),
            "location": state.url(&format!("/scim/v2/{slug}/Groups/{}", g.id)),
        },
    });
    if let Some(x) = &g.external_id {
        v["externalId"] = x.clone().into();
    }
    if let Some(members) = members {
        v["members"] = members
            .iter()
            .map(|id| json!({ "value": id, "$ref": state.url(&format!("/scim/v2/{slug}/Users/{id}")) }))
            .collect();
    }
    v
}

/// Turn a group filter into a store query; what cannot be answered is `invalidFilter`.
pub fn plan(f: &Filter) -> ScimResult<GroupQuery> {
    let unsupported = |why: String| {
        ScimError::bad(
            "invalidFilter",
            format!(
                "{why}; groups are filtered with `eq` on displayName, externalId, id or members.value, joined with \
                 `and`"
            ),
        )
    };
    let terms = filter::conjunction(f).map_err(|op| unsupported(format!("`{op}` is not supported")))?;
    let mut q = GroupQuery::default();
    for t in terms {
        let (path, value) = match t {
            Filter::Compare(path, Op::Eq, filter::Value::Str(v)) => (path, v.clone()),
            // `members[value eq "id"]`
            Filter::Has(path)
                if path.attr.eq_ignore_ascii_case("members")
                    && let Some(Filter::Compare(inner, Op::Eq, filter::Value::Str(v))) = path.filter.as_deref()
                    && inner.is("value", None) =>
            {
                q.members.push(v.clone());
                continue;
            }
            Filter::Compare(_, op, _) if *op != Op::Eq => {
                return Err(unsupported(format!("the operator `{}` is not supported", op.name())));
            }
            other => return Err(unsupported(format!("`{other}` is not supported"))),
        };
        if path.urn().is_some_and(|u| u != filter::GROUP_URN) {
            return Err(unsupported(format!("`{path}` is not an attribute of groups")));
        }
        match path.attr.to_ascii_lowercase().as_str() {
            "displayname" if path.sub.is_none() && path.filter.is_none() => q.display_names.push(value),
            "externalid" if path.sub.is_none() && path.filter.is_none() => q.external_ids.push(value),
            "id" if path.sub.is_none() && path.filter.is_none() => q.ids.push(value),
            "members"
                if path.filter.is_none() && path.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("value")) =>
            {
                q.members.push(value)
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

/// `POST /Groups/.search` (RFC 7644 §3.4.3).
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
        None => GroupQuery::default(),
    };
    let (total, page) = store::scim::list_groups(&state.db.pool, &caller.entity_id, &q, p.offset(), p.count).await?;
    // The members of the whole page in one query, not one per group.
    let mut members: Option<std::collections::HashMap<String, Vec<String>>> = None;
    if p.wants("members") {
        let ids: Vec<&str> = page.iter().map(|g| g.id.as_str()).collect();
        let mut by_group = std::collections::HashMap::<String, Vec<String>>::new();
        for (group_id, user_id) in store::scim::members_of_groups(&state.db.pool, &ids).await? {
            by_group.entry(group_id).or_default().push(user_id);
        }
        members = Some(by_group);
    }
    let items = page
        .iter()
        .map(|g| {
            let of = members.as_ref().map(|m| m.get(&g.id).map_or(&[][..], Vec::as_slice));
            p.project(render(state, &caller.slug, g, of))
        })
        .collect();
    Ok(scim_json(StatusCode::OK, &list_response(total, p.start_index, items)))
}

async fn find(state: &AppState, caller: &ScimCaller, id: &str) -> ScimResult<Group> {
    store::scim::group(&state.db.pool, &caller.entity_id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group `{}` in this organisation", id.escape_default())))
}

pub async fn get(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> ScimResult<Response> {
    let p = ListParams::parse(uri.query())?;
    let g = find(&state, &caller, &id).await?;
    let with_members = p.wants("members");
    Ok(scim_json(StatusCode::OK, &p.project(resource(&state, &caller.slug, &g, with_members).await?)))
}

fn check_name(name: &str) -> ScimResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 256 || n.chars().any(char::is_control) {
        return Err(ScimError::bad("invalidValue", "`displayName` takes 1 to 256 printable characters"));
    }
    Ok(n.to_string())
}

fn body_change(body: &Map<String, Value>) -> ScimResult<GroupChange> {
    let name = match attr(body, "displayName") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ScimError::bad("invalidValue", "`displayName` (a string) is required")),
    };
    let external_id = match attr(body, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ScimError::bad("invalidValue", "`externalId` takes a string")),
    };
    let members = match attr(body, "members") {
        None => Vec::new(),
        Some(v) => patch::member_ids(v)?,
    };
    Ok(GroupChange {
        display_name: Some(name),
        external_id: Some(external_id),
        set_members: Some(members),
        ..Default::default()
    })
}

/// Make the membership changes of `c` in `tx`. Every member must be a user of the entity.
async fn change_members(tx: &mut Tx, caller: &ScimCaller, group_id: &str, c: &GroupChange) -> ScimResult<bool> {
    let mut changed = false;
    let check = async |tx: &mut Tx, ids: &[String]| -> ScimResult<()> {
        for id in ids.iter().collect::<BTreeSet<_>>() {
            if store::scim::user_in_scope(&mut **tx, &caller.entity_id, id).await?.is_none() {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("member `{}` is not a user of this organisation", id.escape_default()),
                ));
            }
        }
        Ok(())
    };
    if c.remove_all_members {
        changed |= store::scim::clear_members(&mut **tx, group_id).await? > 0;
    }
    if let Some(set) = &c.set_members {
        check(tx, set).await?;
        let want: BTreeSet<&String> = set.iter().collect();
        let have = store::scim::members(&mut **tx, group_id).await?;
        for (id, _) in &have {
            if !want.contains(id) {
                changed |= store::scim::remove_member(&mut **tx, group_id, id).await?;
            }
        }
        for id in want {
            changed |= store::scim::add_member(&mut **tx, group_id, id).await?;
        }
    }
    check(tx, &c.add_members).await?;
    for id in &c.add_members {
        changed |= store::scim::add_member(&mut **tx, group_id, id).await?;
    }
    // Only the listed members leave; a listed one who is not a member is no error.
    for id in &c.remove_members {
        changed |= store::scim::remove_member(&mut **tx, group_id, id).await?;
    }
    if store::scim::members(&mut **tx, group_id).await?.len() > MAX_MEMBERS {
        return Err(ScimError::bad("invalidValue", format!("a group holds at most {MAX_MEMBERS} members")));
    }
    Ok(changed)
}

fn name_taken(name: &str) -> ScimError {
    ScimError::conflict(format!("a group named `{name}` already exists in this organisation"))
}

pub async fn create(
    State(state): State<AppState>,
    caller: ScimCaller,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let c = body_change(&body)?;
    let name = check_name(c.display_name.as_deref().unwrap_or_default())?;
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    let g = Group {
        id: store::new_id(),
        entity_id: caller.entity_id.clone(),
        display_name: name.clone(),
        external_id: c.external_id.clone().flatten(),
        created_at: now,
        updated_at: now,
    };
    match store::scim::insert_group(&mut *tx, &g).await {
        Ok(()) => {}
        Err(e) if store::is_unique_violation(&e) => return Err(name_taken(&name)),
        Err(e) => return Err(e.into()),
    }
    change_members(&mut tx, &caller, &g.id, &c).await?;
    caller
        .event("scim.group_created")
        .target(crate::audit::Target::new("scim_group", &g.id, Some(&g.display_name)))
        .details(json!({ "members": c.set_members.as_ref().map_or(0, Vec::len) }))
        .record(&mut tx, &caller.ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(entity = %caller.slug, group = %g.id, "SCIM group created");
    let body = resource(&state, &caller.slug, &g, true).await?;
    let mut resp = scim_json(StatusCode::CREATED, &body);
    if let Some(loc) = body["meta"]["location"].as_str().and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn apply(state: &AppState, caller: &ScimCaller, id: &str, c: GroupChange) -> ScimResult<Group> {
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    let Some(g) = store::scim::group(&mut *tx, &caller.entity_id, id).await? else {
        return Err(ScimError::not_found(format!("no group `{}` in this organisation", id.escape_default())));
    };
    let name = match &c.display_name {
        Some(n) => check_name(n)?,
        None => g.display_name.clone(),
    };
    let external = match &c.external_id {
        Some(x) => x.clone(),
        None => g.external_id.clone(),
    };
    match store::scim::update_group(&mut *tx, &g.id, &name, external.as_deref(), now).await {
        Ok(()) => {}
        Err(e) if store::is_unique_violation(&e) => return Err(name_taken(&name)),
        Err(e) => return Err(e.into()),
    }
    let changed = change_members(&mut tx, caller, &g.id, &c).await?;
    caller
        .event("scim.group_updated")
        .target(crate::audit::Target::new("scim_group", &g.id, Some(&name)))
        .details(json!({
            "renamed": name != g.display_name,
            "members_changed": changed,
            "added": c.add_members, "removed": c.remove_members,
            "replaced": c.set_members.is_some(), "cleared": c.remove_all_members,
        }))
        .record(&mut tx, &caller.ctx, now)
        .await?;
    let g = store::scim::group(&mut *tx, &caller.entity_id, id)
        .await?
        .ok_or_else(|| ScimError::from(crate::error::ApiError::internal("group vanished")))?;
    tx.commit().await?;
    if changed {
        super::sync::sync_group_licenses(state, &g.id).await?;
    }
    Ok(g)
}

pub async fn replace(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let c = body_change(&body)?;
    let g = apply(&state, &caller, &id, c).await?;
    Ok(scim_json(StatusCode::OK, &resource(&state, &caller.slug, &g, true).await?))
}

/// PATCH answers 204 (no body), as RFC 7644 allows; Entra and Okta both take it.
pub async fn patch(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ScimBody(body): ScimBody,
) -> ScimResult<Response> {
    let ops = patch::operations(&body)?;
    let c = patch::group_change(&ops)?;
    apply(&state, &caller, &id, c).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deleting a group unbinds the licenses that followed it; their assignments stay as they are.
pub async fn delete(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ScimResult<Response> {
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, &caller.entity_id).await?;
    if store::scim::group(&mut *tx, &caller.entity_id, &id).await?.is_none() {
        return Err(ScimError::not_found(format!("no group `{}` in this organisation", id.escape_default())));
    }
    store::scim::delete_group(&mut tx, &id).await?;
    caller
        .event("scim.group_deleted")
        .target(crate::audit::Target::new("scim_group", &id, None))
        .record(&mut tx, &caller.ctx, state.now())
        .await?;
    tx.commit().await?;
    tracing::info!(entity = %caller.slug, group = %id, "SCIM group deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
