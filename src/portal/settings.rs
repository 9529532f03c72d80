//! A license's settings and the entity's license groups: the license's group and idle policy,
//! the SCIM group whose members it follows, and the groups page (list and create).
//!
//! Each form calls the function behind the JSON API's call, as the entity's administrator:
//! `licenses::admin::change_license` (`PATCH /api/v1/licenses/{id}` with `group`,
//! `idle_timeout_minutes`, `scim_group`) and `licenses::admin::new_group`
//! (`POST /api/v1/entities/{slug}/groups`), so the page and the API refuse exactly the same input.

use std::collections::{BTreeMap, HashSet};

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Posted, Shell, Viewer,
    admin::{Confirm, entity_of, license_of},
    fail, refused_with_code, see_other, show, view,
};
use crate::{
    error::{ApiError, ApiPath, ApiQuery},
    licenses::{self, admin::LicensePatch},
    state::AppState,
    store::{self, entities::Entity, licenses::License},
};

/// At most this many SCIM groups are offered on a license's page.
const MAX_SCIM_GROUPS: i64 = 500;

fn license_path(l: &License) -> String {
    format!("/portal/licenses/{}", l.id)
}

/// What the last synchronisation with the SCIM group could not do, one row per person.
pub struct SyncFailure {
    pub email: String,
    pub action: String,
    pub code: String,
    pub detail: String,
}

/// The settings part of a license's page.
pub struct LicenseSettings {
    /// The entity's license groups, by name.
    pub groups: Vec<String>,
    /// The license's group ("" when none).
    pub group: String,
    /// The idle limit in minutes ("" when idle seats are kept).
    pub idle_minutes: String,
    /// The entity's SCIM groups: (id, display name).
    pub scim_groups: Vec<(String, String)>,
    /// The SCIM group the license follows: (id, display name).
    pub scim_group: Option<(String, String)>,
    pub failures: Vec<SyncFailure>,
}

impl LicenseSettings {
    pub async fn of(pool: &sqlx::AnyPool, l: &License) -> Result<Self, sqlx::Error> {
        let groups = store::entities::list_groups(pool, &l.entity_id).await?.into_iter().map(|g| g.name).collect();
        let (_, scim) =
            store::scim::list_groups(pool, &l.entity_id, &store::scim::GroupQuery::default(), 0, MAX_SCIM_GROUPS)
                .await?;
        let mut scim_groups: Vec<(String, String)> = scim.into_iter().map(|g| (g.id, g.display_name)).collect();
        scim_groups.sort_by_key(|g| g.1.to_lowercase());
        let scim_group = match &l.scim_group_id {
            Some(id) => {
                let name = store::scim::group(pool, &l.entity_id, id).await?.map(|g| g.display_name);
                Some((id.clone(), name.unwrap_or_else(|| id.clone())))
            }
            None => None,
        };
        let failures = l
            .scim_sync_report
            .as_deref()
            .and_then(|r| serde_json::from_str::<Vec<Value>>(r).ok())
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                SyncFailure { email: s("email"), action: s("action"), code: s("code"), detail: s("detail") }
            })
            .collect();
        Ok(LicenseSettings {
            groups,
            group: l.group_name.clone().unwrap_or_default(),
            idle_minutes: l.idle_timeout_s.map(|s| (s / 60).to_string()).unwrap_or_default(),
            scim_groups,
            scim_group,
            failures,
        })
    }
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: Option<String>,
    #[serde(default)]
    group: String,
    #[serde(default)]
    idle_minutes: String,
}

/// Save a license's group and idle policy: what differs from now is sent, as the
/// administrator's `PATCH /api/v1/licenses/{id}`.
pub async fn save(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, form: f }: Posted<SettingsForm>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    let Some(f) = f else { return see_other(&state, &back, false, "The form was incomplete; try again.") };
    let mut patch = LicensePatch::default();
    let group = f.group.trim();
    if group != l.group_name.as_deref().unwrap_or_default() {
        patch.group = Some((!group.is_empty()).then(|| group.to_string()));
    }
    let idle = f.idle_minutes.trim();
    let minutes = match idle {
        "" => None,
        m => match m.parse::<i64>() {
            Ok(m) => Some(m),
            Err(_) => {
                let e = ApiError::unprocessable(
                    "invalid_request",
                    "`idle_timeout_minutes` must be a whole number between 1 and 10080 (a week), or empty for no limit",
                );
                return refused_with_code(&state, &back, e);
            }
        },
    };
    if minutes != l.idle_timeout_s.map(|s| s / 60) {
        patch.idle_timeout_minutes = Some(minutes);
    }
    if patch.group.is_none() && patch.idle_timeout_minutes.is_none() {
        return see_other(&state, &back, true, "Nothing changed.");
    }
    match licenses::admin::change_license(&state, &ctx.by(v.actor()), &l, false, patch).await {
        Ok(updated) => {
            let group = match &updated.group {
                Some(g) => format!("in the group {g}"),
                None => "in no group".into(),
            };
            let idle = match updated.idle_timeout_minutes {
                Some(m) => format!("seats idle for {} are disconnected", view::duration(m * 60)),
                None => "idle seats are kept".into(),
            };
            see_other(&state, &back, true, &format!("Saved: {} is {group}; {idle}.", l.product_name))
        }
        Err(e) => refused_with_code(&state, &back, e),
    }
}

#[derive(Deserialize, Default)]
pub struct GroupQuery {
    group: Option<String>,
}

/// "Follow this SCIM group?" with what it does to the assignees now.
pub async fn bind_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    let pool = &state.db.pool;
    let gid = q.group.unwrap_or_default();
    if gid.is_empty() {
        return see_other(&state, &back, false, "Choose a SCIM group.");
    }
    let result = async {
        let g = store::scim::group(pool, &l.entity_id, &gid).await?;
        let members: HashSet<String> = match &g {
            Some(g) => store::scim::members(pool, &g.id).await?.into_iter().map(|(uid, _)| uid).collect(),
            None => HashSet::new(),
        };
        let assignees: HashSet<String> =
            store::licenses::assignees(pool, &l.id).await?.into_iter().map(|a| a.user_id).collect();
        Ok::<_, sqlx::Error>((g, members, assignees))
    }
    .await;
    let (g, members, assignees) = match result {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let Some(g) = g else {
        let e = ApiError::unprocessable(
            "unknown_scim_group",
            format!("`{gid}` is not a SCIM group of this license's organisation"),
        );
        return refused_with_code(&state, &back, e);
    };
    let joining = members.difference(&assignees).count();
    let leaving = assignees.difference(&members).count();
    let mut note = format!(
        "{joining} member(s) of the group are assigned now (and mailed); {leaving} assignee(s) who are not members are revoked now. Later changes of the group's members in your identity provider are followed too."
    );
    if let Some(left) = l.is_fixed().then(|| (l.seats - l.changes_used).max(0)) {
        note.push_str(&format!(
            " This fixed license allows {left} more revokes; what cannot be done is listed on the license's page."
        ));
    }
    let page = Confirm {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        heading: format!("Follow the SCIM group {}?", g.display_name),
        text: format!(
            "The members of {} ({} now) become the assignees of {}.",
            g.display_name,
            members.len(),
            l.product_name
        ),
        note,
        action: format!("{}/scim-group", license_path(&l)),
        fields: vec![("group", g.id)],
        button: "Follow this group",
        cancel: back,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct BindForm {
    csrf: Option<String>,
    #[serde(default)]
    group: String,
}

/// Bind the license to a SCIM group (`group` = its id) or unbind it (`group` empty), as the
/// administrator's `PATCH /api/v1/licenses/{id}` `{"scim_group": ...}`.
pub async fn bind(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, form: f }: Posted<BindForm>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    let Some(f) = f else { return see_other(&state, &back, false, "The form was incomplete; try again.") };
    let gid = f.group.trim().to_string();
    if gid.is_empty() && l.scim_group_id.is_none() {
        return see_other(&state, &back, true, "This license follows no SCIM group.");
    }
    let patch = LicensePatch { scim_group: Some((!gid.is_empty()).then_some(gid)), ..LicensePatch::default() };
    match licenses::admin::change_license(&state, &ctx.by(v.actor()), &l, false, patch).await {
        Ok(updated) => match updated.scim_sync {
            Some(sync) => {
                let n = |k: &str| sync[k].as_array().map_or(0, Vec::len);
                let mut text = format!(
                    "{} now follows its SCIM group: {} assigned, {} revoked.",
                    l.product_name,
                    n("assigned"),
                    n("revoked")
                );
                if n("failed") > 0 {
                    text.push_str(&format!(" {} could not be done: see below.", n("failed")));
                }
                see_other(&state, &back, n("failed") == 0, &text)
            }
            None => see_other(
                &state,
                &back,
                true,
                &format!("{} no longer follows a SCIM group; its assignees stay as they are.", l.product_name),
            ),
        },
        Err(e) => refused_with_code(&state, &back, e),
    }
}

pub struct GroupView {
    pub name: String,
    pub licenses: usize,
    pub created: view::When,
    pub link: String,
}

#[derive(Template)]
#[template(path = "portal/groups.html")]
struct GroupsPage {
    shell: Shell,
    entity: Entity,
    groups: Vec<GroupView>,
    ungrouped: usize,
}

pub async fn groups(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let groups = match store::entities::list_groups(&state.db.pool, &e.id).await {
        Ok(g) => g,
        Err(err) => return fail(err),
    };
    let all = match licenses::admin::licenses_in_use(&state, &e.id, state.now()).await {
        Ok((all, _)) => all,
        Err(err) => return fail(err),
    };
    let mut per_group: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &all {
        if let Some(g) = &l.group_name {
            *per_group.entry(g.as_str()).or_default() += 1;
        }
    }
    let page = GroupsPage {
        shell: Shell::new(&state, &headers, &v, "groups", Some(&e.slug)),
        groups: groups
            .iter()
            .map(|g| GroupView {
                licenses: per_group.get(g.name.as_str()).copied().unwrap_or(0),
                created: view::when(g.created_at),
                link: super::with_query(&format!("/portal/entities/{}/licenses", e.slug), &[("group", &g.name)]),
                name: g.name.clone(),
            })
            .collect(),
        ungrouped: all.iter().filter(|l| l.group_name.is_none()).count(),
        entity: e,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct GroupForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

/// Create a group, as `POST /api/v1/entities/{slug}/groups`.
pub async fn create_group(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<GroupForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = format!("/portal/entities/{}/groups", e.slug);
    let name = f.map(|f| f.name).unwrap_or_default();
    match licenses::admin::new_group(&state, &ctx.by(v.actor()), &e, &name).await {
        Ok(g) => see_other(
            &state,
            &back,
            true,
            &format!("The group {} is made. Put a license in it from the license's page.", g.name),
        ),
        Err(err) => refused_with_code(&state, &back, err),
    }
}

super::csrf_forms!(SettingsForm, BindForm, GroupForm);
