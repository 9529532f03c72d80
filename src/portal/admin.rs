//! A license administrator's pages: the entity's licenses, a license with its assignees and share
//! links, its live seats, and the entity's users and administrators. Every handler first resolves
//! its entity or license through [`entity_of`] / [`license_of`], which answer 404 unless the viewer
//! administers that entity.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::{
    extract::{Multipart, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    PageQuery, Pager, Posted, Shell, TokenForm, Viewer, fail, not_found, refused, see_other, show, view, with_query,
};
use crate::{
    accounts,
    error::{ApiPath, ApiQuery},
    licenses::{
        self,
        admin::{BulkEntry, MAX_BULK},
    },
    state::AppState,
    store::{self, entities::Entity, licenses::License},
};

/// The entity `slug` when the viewer administers it; otherwise (or when there is none) 404.
pub async fn entity_of(state: &AppState, v: &Viewer, slug: &str) -> Result<Entity, Response> {
    let pool = &state.db.pool;
    let entity = store::entities::entity_by_slug(pool, slug).await.map_err(fail)?;
    match entity {
        Some(e) if store::entities::is_admin(pool, &e.id, &v.bu.user.id).await.map_err(fail)? => Ok(e),
        _ => Err(not_found()),
    }
}

/// The license `id` when the viewer administers its entity; otherwise (or when there is none) 404.
pub async fn license_of(state: &AppState, v: &Viewer, id: &str) -> Result<License, Response> {
    let pool = &state.db.pool;
    let license = store::licenses::license_by_id(pool, id).await.map_err(fail)?;
    match license {
        Some(l) if store::entities::is_admin(pool, &l.entity_id, &v.bu.user.id).await.map_err(fail)? => Ok(l),
        _ => Err(not_found()),
    }
}

fn license_path(l: &License) -> String {
    format!("/portal/licenses/{}", l.id)
}

/// A license as its pages show it.
pub struct LicenseView {
    pub id: String,
    pub entity: String,
    pub product: String,
    pub sku: String,
    pub kind: String,
    pub group: String,
    pub seats: i64,
    pub assigned: i64,
    pub in_use: i64,
    pub expiry: String,
    pub expired: bool,
    /// Fixed licenses: revokes or reassignments left.
    pub reassignments_left: Option<i64>,
    pub idle_policy: String,
}

impl LicenseView {
    fn new(l: &License, in_use: i64, now: i64) -> Self {
        LicenseView {
            id: l.id.clone(),
            entity: l.entity_slug.clone(),
            product: l.product_name.clone(),
            sku: l.product_sku.clone(),
            kind: l.kind.clone(),
            group: l.group_name.clone().unwrap_or_default(),
            seats: l.seats,
            assigned: l.assigned,
            in_use,
            expiry: view::expiry(l.expires_at, now),
            expired: l.expires_at.is_some_and(|e| e <= now),
            reassignments_left: l.is_fixed().then(|| (l.seats - l.changes_used).max(0)),
            idle_policy: match l.idle_timeout_s {
                Some(s) => format!("seats idle for {} are disconnected", view::duration(s)),
                None => "idle seats are kept".into(),
            },
        }
    }
}

pub async fn entity_home(State(state): State<AppState>, v: Viewer, ApiPath(slug): ApiPath<String>) -> Response {
    match entity_of(&state, &v, &slug).await {
        Ok(e) => Redirect::to(&format!("/portal/entities/{}/licenses", e.slug)).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize, Default)]
pub struct LicenseFilter {
    group: Option<String>,
    product: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/licenses.html")]
struct LicensesPage {
    shell: Shell,
    entity: Entity,
    rows: Vec<LicenseView>,
    groups: Vec<String>,
    products: Vec<(String, String)>,
    group: String,
    product: String,
    total: usize,
}

pub async fn licenses(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(f): ApiQuery<LicenseFilter>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let now = state.now();
    let (all, counts) = match licenses::admin::licenses_in_use(&state, &e.id, now).await {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let group = f.group.unwrap_or_default();
    let product = f.product.unwrap_or_default();
    let groups: BTreeSet<String> = all.iter().filter_map(|l| l.group_name.clone()).collect();
    let products: BTreeSet<(String, String)> =
        all.iter().map(|l| (l.product_sku.clone(), l.product_name.clone())).collect();
    let rows: Vec<LicenseView> = all
        .iter()
        .filter(|l| group.is_empty() || l.group_name.as_deref() == Some(group.as_str()))
        .filter(|l| product.is_empty() || l.product_sku == product)
        .map(|l| LicenseView::new(l, counts.get(&l.id).copied().unwrap_or(0), now))
        .collect();
    let page = LicensesPage {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&e.slug)),
        total: all.len(),
        entity: e,
        rows,
        groups: groups.into_iter().collect(),
        products: products.into_iter().collect(),
        group,
        product,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

impl ListQuery {
    fn search(&self) -> Option<String> {
        self.q.as_deref().map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty() && q.len() <= 320)
    }
}

/// The address of another page of a list: its search and where the page starts.
fn list_link(path: &str, q: &str, at: &[(&str, &str)]) -> String {
    let mut pairs = vec![("q", q)];
    pairs.extend_from_slice(at);
    with_query(path, &pairs)
}

pub struct AssigneeView {
    pub email: String,
    pub active: bool,
    pub assigned: view::When,
    pub last_use: Option<view::When>,
    pub revoke: String,
}

pub struct LinkView {
    pub id: String,
    pub created: view::When,
    pub expires: view::When,
    pub state: &'static str,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "portal/license.html")]
struct LicensePage {
    shell: Shell,
    l: LicenseView,
    assignees: Vec<AssigneeView>,
    pager: Pager,
    q: String,
    links: Vec<LinkView>,
    max_bulk: usize,
    settings: super::settings::LicenseSettings,
}

pub async fn license(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
    ApiQuery(lq): ApiQuery<ListQuery>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = state.now();
    let pool = &state.db.pool;
    let search = lq.search();
    let q = search.clone().unwrap_or_default();
    let result = async {
        let total = store::licenses::count_assignees(pool, &l.id, search.as_deref()).await?;
        let path = license_path(&l);
        let at = lq.page.keyset();
        let mut rows = store::licenses::assignee_page(pool, &l.id, search.as_deref(), &at, Pager::FETCH).await?;
        let pager = Pager::cut(&mut rows, &at, total, |a| a.email.clone(), |k| list_link(&path, &q, k));
        let links = store::licenses::share_links_of(pool, &l.id).await?;
        let in_use = store::leases::count_live(pool, &l.id, now).await?;
        let settings = super::settings::LicenseSettings::of(pool, &l).await?;
        Ok::<_, sqlx::Error>((pager, rows, links, in_use, settings))
    }
    .await;
    let (pager, rows, links, in_use, settings) = match result {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let page = LicensePage {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        assignees: rows
            .into_iter()
            .map(|a| AssigneeView {
                revoke: with_query(&format!("{}/revoke", license_path(&l)), &[("email", &a.email)]),
                email: a.email,
                active: a.has_password == 1,
                assigned: view::when(a.created_at),
                last_use: a.last_use.map(view::when),
            })
            .collect(),
        links: links
            .into_iter()
            .rev()
            .map(|s| {
                let (state, live) = match (s.revoked_at, s.expires_at > now) {
                    (Some(_), _) => ("stopped", false),
                    (None, false) => ("expired", false),
                    (None, true) => ("live", true),
                };
                LinkView { id: s.id, created: view::when(s.created_at), expires: view::when(s.expires_at), state, live }
            })
            .collect(),
        l: LicenseView::new(&l, in_use, now),
        pager,
        q,
        max_bulk: MAX_BULK,
        settings,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

/// The addresses of a bulk assignment: every word of the pasted list (separated by commas,
/// semicolons, spaces or lines), and from an uploaded CSV file the first field holding an `@` of
/// each row (a header or a row without an address is skipped).
pub fn bulk_addresses(pasted: &str, csv: &str) -> Vec<String> {
    let is_sep = |c: char| c == ',' || c == ';' || c.is_whitespace();
    let unquote = |s: &str| s.trim().trim_matches(['"', '\'', '<', '>']).trim().to_string();
    let mut out: Vec<String> = pasted.split(is_sep).map(unquote).filter(|s| !s.is_empty()).collect();
    for row in csv.lines() {
        if let Some(field) = row.split([',', ';', '\t']).map(unquote).find(|f| f.contains('@')) {
            out.push(field);
        }
    }
    out
}

#[derive(Template)]
#[template(path = "portal/assign_results.html")]
struct AssignResults {
    shell: Shell,
    l: LicenseView,
    entries: Vec<BulkEntry>,
    assigned: usize,
    already: usize,
    failed: usize,
}

/// Assign one or many addresses (typed, pasted or from a CSV file). One address: back to the
/// license with a message; several: a page of what happened to each.
pub async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let mut token = None;
    let mut pasted = String::new();
    let mut csv = String::new();
    if let Ok(mut mp) = multipart {
        while let Ok(Some(field)) = mp.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let Ok(text) = field.text().await else { break };
            match name.as_str() {
                "csrf" => token = Some(text),
                "emails" => pasted = text,
                "file" => csv = text,
                _ => {}
            }
        }
    }
    if let Err(r) = v.check_form(&state, &headers, token.as_deref()) {
        return r.into_response();
    }
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    let list = bulk_addresses(&pasted, &csv);
    if list.is_empty() {
        return see_other(&state, &back, false, "Enter at least one email address, or choose a CSV file.");
    }
    if list.len() > MAX_BULK {
        return see_other(
            &state,
            &back,
            false,
            &format!("That is {} addresses; assign at most {MAX_BULK} at once.", list.len()),
        );
    }
    let now = state.now();
    let entries = match licenses::admin::assign_many(&state, &ctx.by(v.actor()), &l.id, &list, now).await {
        Ok(e) => e,
        Err(e) => return refused(&state, &back, e),
    };
    if let [one] = entries.as_slice() {
        return match one.status {
            "assigned" => {
                see_other(&state, &back, true, &format!("{} is assigned. A mail tells them how to sign in.", one.email))
            }
            "already_assigned" => see_other(&state, &back, true, &format!("{} was already assigned.", one.email)),
            _ => see_other(
                &state,
                &back,
                false,
                &format!("{}: {}", one.email, one.detail.as_deref().unwrap_or("not assigned")),
            ),
        };
    }
    let count = |s: &str| entries.iter().filter(|e| e.status == s).count();
    let (assigned, already, failed) = (count("assigned"), count("already_assigned"), count("error"));
    let in_use = match store::leases::count_live(&state.db.pool, &l.id, now).await {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    // The license as it is now (its assigned count moved).
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let page = AssignResults {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        l: LicenseView::new(&l, in_use, now),
        entries,
        assigned,
        already,
        failed,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
}

/// "Are you sure?" before something that cannot be undone: a form that posts `fields` to `action`.
#[derive(Template)]
#[template(path = "portal/confirm.html")]
pub(super) struct Confirm {
    pub shell: Shell,
    pub heading: String,
    pub text: String,
    pub note: String,
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
    pub button: &'static str,
    pub cancel: String,
}

pub async fn revoke_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EmailQuery>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(email) = q.email.as_deref().and_then(|e| accounts::normalize_email(e).ok()) else {
        return not_found();
    };
    let note = match l.is_fixed().then(|| (l.seats - l.changes_used).max(0)) {
        Some(0) => "This fixed license has no revokes or reassignments left: the revoke will be refused.".into(),
        Some(n) => format!("This fixed license allows {n} more revokes or reassignments; this one uses one."),
        None => "Their live seats of this license end now.".into(),
    };
    let page = Confirm {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        heading: format!("Revoke {email}?"),
        text: format!("{email} will no longer be able to use {}.", l.product_name),
        note,
        action: format!("{}/revoke", license_path(&l)),
        fields: vec![("email", email)],
        button: "Revoke",
        cancel: license_path(&l),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: Option<String>,
    csrf: Option<String>,
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, form: f }: Posted<EmailForm>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    let Some(email) = f.and_then(|f| f.email).and_then(|e| accounts::normalize_email(&e).ok()) else {
        return see_other(&state, &back, false, "Choose whom to revoke.");
    };
    match licenses::admin::revoke(&state, &ctx.by(v.actor()), &l.id, &email, state.now()).await {
        Ok(()) => see_other(&state, &back, true, &format!("{email} no longer holds this license.")),
        Err(e) => refused(&state, &back, e),
    }
}

#[derive(Template)]
#[template(path = "portal/share_link.html")]
struct ShareLinkMade {
    shell: Shell,
    l: LicenseView,
    url: String,
    expires: view::When,
}

#[derive(Deserialize)]
pub struct ShareForm {
    days: Option<i64>,
    csrf: Option<String>,
}

/// Make a share link. Its URL holds the secret, so it is shown on this answer only (never stored,
/// never put in a cookie or a redirect).
pub async fn share_link_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, form: f }: Posted<ShareForm>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = state.now();
    let days = f.and_then(|f| f.days).unwrap_or(7);
    let link = match licenses::admin::new_share_link(&state, &ctx.by(v.actor()), &l, &v.bu.user.id, days, now).await {
        Ok(link) => link,
        Err(e) => return refused(&state, &license_path(&l), e),
    };
    let in_use = match store::leases::count_live(&state.db.pool, &l.id, now).await {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let page = ShareLinkMade {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        l: LicenseView::new(&l, in_use, now),
        url: link.url,
        expires: view::when(link.expires_at),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub async fn share_link_delete(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath((id, link_id)): ApiPath<(String, String)>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l);
    match licenses::admin::stop_share_link(&state, &ctx.by(v.actor()), &l, &link_id, state.now()).await {
        Ok(()) => see_other(&state, &back, true, "The share link is stopped; it no longer works."),
        Err(e) => refused(&state, &back, e),
    }
}

pub struct SeatView {
    pub id: String,
    pub email: String,
    pub computer: String,
    pub since: view::When,
    pub last: view::When,
    pub idle: String,
    pub idle_seconds: i64,
}

#[derive(Template)]
#[template(path = "portal/seats.html")]
struct SeatsPage {
    shell: Shell,
    l: LicenseView,
    seats: Vec<SeatView>,
    pager: Pager,
}

pub async fn seats(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
    ApiQuery(lq): ApiQuery<ListQuery>,
) -> Response {
    let l = match license_of(&state, &v, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = state.now();
    let pool = &state.db.pool;
    let result = async {
        let total = store::leases::count_live(pool, &l.id, now).await?;
        let path = format!("{}/seats", license_path(&l));
        let at = lq.page.keyset();
        let mut rows = store::leases::live_seat_page(pool, &l.id, now, &at, Pager::FETCH).await?;
        let pager = Pager::cut(&mut rows, &at, total, store::leases::seat_key, |k| list_link(&path, "", k));
        Ok::<_, sqlx::Error>((pager, rows))
    }
    .await;
    let (pager, rows) = match result {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let fixed = l.is_fixed();
    let page = SeatsPage {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        l: LicenseView::new(&l, pager.total, now),
        seats: rows
            .into_iter()
            .map(|s| SeatView {
                id: s.id,
                email: s.email,
                computer: if fixed { "(not recorded for fixed seats)".into() } else { s.machine.unwrap_or_default() },
                since: view::when(s.created_at),
                last: view::when(s.last_heartbeat_at),
                idle: view::duration(s.idle_seconds),
                idle_seconds: s.idle_seconds,
            })
            .collect(),
        pager,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

/// A live lease and its license, when the viewer administers the license's entity.
async fn lease_of(state: &AppState, v: &Viewer, lease_id: &str) -> Result<(store::leases::Lease, License), Response> {
    let lease = store::leases::by_id(&state.db.pool, lease_id).await.map_err(fail)?.ok_or_else(not_found)?;
    let l = license_of(state, v, &lease.license_id).await?;
    Ok((lease, l))
}

pub async fn disconnect_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(lease_id): ApiPath<String>,
) -> Response {
    let (lease, l) = match lease_of(&state, &v, &lease_id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let back = format!("{}/seats", license_path(&l));
    let now = state.now();
    if lease.ended_at.is_some() || lease.expires_at <= now {
        return see_other(&state, &back, false, "That seat has already ended.");
    }
    let email = match store::accounts::user_by_id(&state.db.pool, &lease.user_id).await {
        Ok(u) => u.map(|u| u.email).unwrap_or_default(),
        Err(e) => return fail(e),
    };
    let on = lease.machine.as_deref().map(|m| format!(" on {m}")).unwrap_or_default();
    let page = Confirm {
        shell: Shell::new(&state, &headers, &v, "licenses", Some(&l.entity_slug)),
        heading: format!("Disconnect {email}?"),
        text: format!(
            "{email}'s seat of {}{on}, in use since {}, idle {}, is freed now.",
            l.product_name,
            view::when(lease.created_at).text,
            view::duration(lease.idle_seconds)
        ),
        note: "The product is told at its next heartbeat and stops; unsaved work there may be lost.".into(),
        action: format!("/portal/seats/{}/disconnect", lease.id),
        fields: vec![],
        button: "Disconnect",
        cancel: back,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub async fn disconnect(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(lease_id): ApiPath<String>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    let (lease, l) = match lease_of(&state, &v, &lease_id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let back = format!("{}/seats", license_path(&l));
    match licenses::seats::disconnect(&state, &ctx.by(v.actor()), &lease, state.now()).await {
        Ok(true) => see_other(&state, &back, true, "Seat disconnected: it is free for someone else now."),
        Ok(false) => see_other(&state, &back, false, "That seat had already ended."),
        Err(e) => fail(e),
    }
}

pub struct UserView {
    pub email: String,
    pub active: bool,
    pub admin: bool,
    pub licenses: usize,
    pub since: view::When,
}

pub struct AdminView {
    pub email: String,
    pub since: view::When,
    pub me: bool,
}

#[derive(Template)]
#[template(path = "portal/users.html")]
struct UsersPage {
    shell: Shell,
    entity: Entity,
    users: Vec<UserView>,
    pager: Pager,
    q: String,
    admins: Vec<AdminView>,
}

pub async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(lq): ApiQuery<ListQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = &state.db.pool;
    let search = lq.search();
    let q = search.clone().unwrap_or_default();
    let result = async {
        let total = store::accounts::count_entity_users(pool, &e.id, search.as_deref()).await?;
        let path = format!("/portal/entities/{}/users", e.slug);
        let at = lq.page.keyset();
        let mut rows = store::accounts::entity_users_page(pool, &e.id, search.as_deref(), &at, Pager::FETCH).await?;
        let pager = Pager::cut(&mut rows, &at, total, |u| u.email.clone(), |k| list_link(&path, &q, k));
        let held = store::licenses::assignments_of_entity(pool, &e.id).await?;
        let admins = store::entities::admins_of(pool, &e.id).await?;
        Ok::<_, sqlx::Error>((pager, rows, held, admins))
    }
    .await;
    let (pager, rows, held, admins) = match result {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for (u, _) in &held {
        *per_user.entry(u.as_str()).or_default() += 1;
    }
    let page = UsersPage {
        shell: Shell::new(&state, &headers, &v, "users", Some(&e.slug)),
        users: rows
            .iter()
            .map(|u| UserView {
                email: u.email.clone(),
                active: u.has_password == 1,
                admin: u.is_admin == 1,
                licenses: per_user.get(u.id.as_str()).copied().unwrap_or(0),
                since: view::when(u.created_at),
            })
            .collect(),
        admins: admins
            .into_iter()
            .map(|(email, at)| AdminView { me: email == v.bu.user.email, email, since: view::when(at) })
            .collect(),
        entity: e,
        pager,
        q,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub async fn add_admin(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<EmailForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = format!("/portal/entities/{}/users", e.slug);
    let email = match accounts::normalize_email(f.and_then(|f| f.email).as_deref().unwrap_or_default()) {
        Ok(email) => email,
        Err(err) => return refused(&state, &back, err),
    };
    match licenses::admin::add_admin_to(&state, &ctx.by(v.actor()), &e, &email, state.now()).await {
        Ok(true) => see_other(&state, &back, true, &format!("{email} is now an administrator; a mail tells them.")),
        Ok(false) => see_other(&state, &back, true, &format!("{email} was already an administrator.")),
        Err(err) => refused(&state, &back, err),
    }
}

pub async fn remove_admin(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<EmailForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = format!("/portal/entities/{}/users", e.slug);
    let email = match accounts::normalize_email(f.and_then(|f| f.email).as_deref().unwrap_or_default()) {
        Ok(email) => email,
        Err(err) => return refused(&state, &back, err),
    };
    match licenses::admin::remove_admin_from(&state, &ctx.by(v.actor()), &e, &email).await {
        Ok(()) => {
            // Removing oneself ends one's own access to these pages.
            let to = if email == v.bu.user.email { "/portal" } else { back.as_str() };
            see_other(&state, to, true, &format!("{email} is no longer an administrator."))
        }
        Err(err) => refused(&state, &back, err),
    }
}

super::csrf_forms!(EmailForm, ShareForm);

#[cfg(test)]
mod tests {
    use super::bulk_addresses;

    #[test]
    fn bulk_addresses_come_from_pasted_lists_and_csv_rows() {
        let got = bulk_addresses(
            "a@x.test, b@x.test;c@x.test\n  \"d@x.test\"  <e@x.test>\nnot-an-address",
            "email,name\nf@x.test,Fay\nG Name;g@x.test\n,,\n",
        );
        assert_eq!(
            got,
            ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test", "not-an-address", "f@x.test", "g@x.test"]
        );
        assert!(bulk_addresses(" \n ", "").is_empty());
    }
}
