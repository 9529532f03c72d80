//! The portal: server-rendered pages under `/portal` for everyone who signs in. Every user sees
//! their licenses and live seats; a license administrator manages their entity's licenses,
//! assignees, share links, settings (group, idle policy, SCIM group), live seats, users and
//! administrators, license groups, the usage report, single sign-on and SCIM provisioning.
//!
//! Pages call the same area functions as the JSON API (`licenses::admin`, `licenses::seats`, the
//! store), so both always agree. Who may see what is decided here, server-side, on every request:
//! [`Viewer`] is a signed-in browser (else a redirect to sign-in), and [`admin::entity_of`] /
//! [`admin::license_of`] answer 404 to anyone who does not administer the entity, exactly as for
//! an id that does not exist. Forms POST with the session's CSRF token and answer with a 303
//! redirect carrying a flash message; pages work without JavaScript, which only improves them
//! (local times, copy buttons) from a static file under a strict Content-Security-Policy.

mod admin;
mod audit;
mod me;
mod op_keys;
mod op_private;
mod operator;
mod scim;
mod security;
mod settings;
mod sso;
mod usage;
pub mod view;

use askama::Template;
use axum::{
    Form, Router,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    browser::{
        cookies, csrf, login_path, message,
        session::{self, BrowserUser},
        strict_page,
    },
    crypto::{b64url, b64url_decode, ct_eq},
    error::ApiError,
    state::AppState,
    store,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(me::home))
        .route("/portal/seats/{lease_id}/release", post(me::release))
        .route("/portal/entities/{slug}/audit", get(audit::entity_page))
        .route("/portal/entities/{slug}/audit.csv", get(audit::entity_csv))
        .route("/portal/operator/audit", get(audit::operator_page))
        .route("/portal/operator/audit.csv", get(audit::operator_csv))
        .route("/portal/operator", get(operator::home))
        .route("/portal/operator/entities", get(operator::entities).post(operator::create_entity))
        .route("/portal/operator/entities/{slug}", get(operator::entity_page))
        .route("/portal/operator/entities/{slug}/licenses", post(operator::create_license))
        .route("/portal/operator/licenses/{id}", get(op_private::page).post(operator::change_license))
        .route("/portal/operator/licenses/{id}/onprem", post(op_private::export))
        .route("/portal/operator/licenses/{id}/onprem/usage", post(op_private::usage))
        .route("/portal/operator/licenses/{id}/onprem/return", post(op_private::give_back))
        .route("/portal/operator/licenses/{id}/offline", post(op_private::issue))
        .route("/portal/operator/licenses/{id}/offline/return", post(op_private::deactivate))
        .route("/portal/operator/private", get(op_private::overview))
        .route("/portal/operator/keys", get(op_keys::list).post(op_keys::create))
        .route("/portal/operator/keys/{id}/revoke", get(op_keys::revoke_confirm).post(op_keys::revoke))
        .route("/portal/operator/products", get(operator::products).post(operator::create_product))
        .route("/portal/security", get(security::page))
        .route("/portal/security/totp", post(security::enrol))
        .route("/portal/security/remove", post(security::remove))
        .route("/portal/seats/{lease_id}/disconnect", get(admin::disconnect_confirm).post(admin::disconnect))
        .route("/portal/entities/{slug}", get(admin::entity_home))
        .route("/portal/entities/{slug}/licenses", get(admin::licenses))
        .route("/portal/entities/{slug}/users", get(admin::users))
        .route("/portal/entities/{slug}/admins", post(admin::add_admin))
        .route("/portal/entities/{slug}/admins/remove", post(admin::remove_admin))
        .route("/portal/entities/{slug}/usage", get(usage::page))
        .route("/portal/entities/{slug}/usage.csv", get(usage::csv))
        .route("/portal/entities/{slug}/sso", get(sso::page).post(sso::save))
        .route("/portal/entities/{slug}/sso/enabled", post(sso::switch))
        .route("/portal/entities/{slug}/sso/test", get(sso::test_link).post(sso::test))
        .route("/portal/entities/{slug}/sso/sp-metadata.xml", get(sso::sp_metadata))
        .route("/portal/entities/{slug}/sso/remove", get(sso::remove_confirm).post(sso::remove))
        .route("/portal/entities/{slug}/groups", get(settings::groups).post(settings::create_group))
        .route("/portal/entities/{slug}/scim", get(scim::page))
        .route("/portal/entities/{slug}/scim/tokens", post(scim::create))
        .route("/portal/entities/{slug}/scim/tokens/{id}/revoke", get(scim::revoke_confirm).post(scim::revoke))
        .route("/portal/licenses/{id}", get(admin::license))
        .route("/portal/licenses/{id}/assign", post(admin::assign))
        .route("/portal/licenses/{id}/settings", post(settings::save))
        .route("/portal/licenses/{id}/scim-group", get(settings::bind_confirm).post(settings::bind))
        .route("/portal/licenses/{id}/revoke", get(admin::revoke_confirm).post(admin::revoke))
        .route("/portal/licenses/{id}/share-links", post(admin::share_link_create))
        .route("/portal/licenses/{id}/share-links/{link_id}/delete", post(admin::share_link_delete))
        .route("/portal/licenses/{id}/seats", get(admin::seats))
        .route("/static/portal.css", get(stylesheet))
        .route("/static/portal.js", get(script))
}

const CSS: &str = include_str!("../../static/portal.css");
const JS: &str = include_str!("../../static/portal.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// A signed-in browser. Without a session, a page redirects to sign-in (and back afterwards).
pub struct Viewer {
    pub bu: BrowserUser,
    /// The form token of this session.
    pub csrf: String,
    /// Slugs of the entities this user administers.
    pub admin_of: Vec<String>,
    /// An operator user (`latchkey operator add`).
    pub operator: bool,
}

impl Viewer {
    /// The signed-in user, as the actor of the audit events their actions record.
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor::user(&self.bu.user.id, &self.bu.user.email)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session::current(state, &parts.headers).await {
            Ok(Some(bu)) => {
                let admin_of = store::entities::administered_by(&state.db.pool, &bu.user.id)
                    .await
                    .map_err(|e| ApiError::from(e).into_response())?;
                let operator = store::mfa::is_operator(&state.db.pool, &bu.user.id)
                    .await
                    .map_err(|e| ApiError::from(e).into_response())?;
                let csrf = session::csrf_token(state, &bu.session_hash);
                Ok(Viewer { bu, csrf, admin_of, operator })
            }
            Ok(None) => {
                // Come back to the page after signing in; a form post comes back to the portal.
                let back = match parts.method {
                    Method::GET => parts.uri.path_and_query().map_or("/portal", |p| p.as_str()),
                    _ => "/portal",
                };
                Err(Redirect::to(&login_path(back, None)).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

impl Viewer {
    /// Check a form of this session: its origin and token. Refused: a 403 page, nothing done.
    pub fn check_form(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        presented: Option<&str>,
    ) -> Result<(), csrf::Refused> {
        csrf::check_session(state, headers, &self.bu.session_hash, presented)
    }
}

/// A form that carries only its token.
#[derive(Deserialize)]
pub struct TokenForm {
    pub csrf: Option<String>,
}

/// A portal form: it carries the session's CSRF token in a field named `csrf`.
pub trait CsrfForm {
    fn csrf(&self) -> Option<&str>;
}

/// `impl CsrfForm` for form structs with a `csrf: Option<String>` field.
macro_rules! csrf_forms {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::portal::CsrfForm for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}
pub(crate) use csrf_forms;

csrf_forms!(TokenForm);

/// A form posted by a signed-in browser, accepted only once its origin and token are this
/// session's (else a 403 page and nothing done; no session: the sign-in redirect). `form` is
/// `None` when the body did not parse as the form (its token check has then already failed,
/// unless the form has nothing but optional fields). Take it last among a handler's arguments.
pub struct Posted<F> {
    pub v: Viewer,
    pub form: Option<F>,
}

impl<F> FromRequest<AppState> for Posted<F>
where
    F: CsrfForm + DeserializeOwned + Send,
{
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let v = Viewer::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let form = Form::<F>::from_request(Request::from_parts(parts, body), state).await.ok().map(|Form(f)| f);
        v.check_form(state, &headers, form.as_ref().and_then(|f| f.csrf())).map_err(IntoResponse::into_response)?;
        Ok(Posted { v, form })
    }
}

/// The same answer for "no such page" and "not yours": nothing leaks across entities.
pub fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "There is no such page, or it is not yours to see.")
}

const FLASH_COOKIE: &str = "lk_flash";

/// A one-time message shown on the page a form redirects to.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

fn flash_mac(state: &AppState, payload: &str) -> String {
    state.master.keyed_hash(&[b"portal-flash", payload.as_bytes()])
}

fn read_flash(state: &AppState, headers: &HeaderMap) -> Option<Flash> {
    let raw = cookies::get(headers, FLASH_COOKIE)?;
    let (payload, mac) = raw.split_once('.')?;
    if !ct_eq(flash_mac(state, payload).as_bytes(), mac.as_bytes()) {
        return None;
    }
    let text = String::from_utf8(b64url_decode(payload)?).ok()?;
    let (kind, text) = text.split_at_checked(1)?;
    Some(Flash { ok: kind == "o", text: text.to_string() })
}

/// A 303 redirect to `to` (a local path) that shows `text` there once.
pub fn see_other(state: &AppState, to: &str, ok: bool, text: &str) -> Response {
    let text: String = text.chars().take(400).collect();
    let payload = b64url(format!("{}{text}", if ok { 'o' } else { 'e' }).as_bytes());
    let value = format!("{payload}.{}", flash_mac(state, &payload));
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(header::SET_COOKIE, cookies::set(state, FLASH_COOKIE, &value, 60, false));
    r
}

/// What every portal page shows around its content: who is signed in, the navigation, the
/// sign-out form and the flash message.
pub struct Shell {
    pub email: String,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Entities the viewer administers (their slugs).
    pub entities: Vec<String>,
    /// The entity whose pages are shown, when one is.
    pub entity: Option<String>,
    /// An operator user: the console is in the navigation.
    pub operator: bool,
    /// The navigation entry to mark as current.
    pub section: &'static str,
}

impl Shell {
    pub fn new(state: &AppState, headers: &HeaderMap, v: &Viewer, section: &'static str, entity: Option<&str>) -> Self {
        Shell {
            email: v.bu.user.email.clone(),
            csrf: v.csrf.clone(),
            flash: read_flash(state, headers),
            entities: v.admin_of.clone(),
            operator: v.operator,
            entity: entity.map(str::to_string).or_else(|| v.admin_of.first().cloned()),
            section,
        }
    }

    pub fn is(&self, section: &str) -> bool {
        self.section == section
    }

    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// Render a portal page (strict policy); a shown flash message is cleared.
pub fn show(state: &AppState, status: StatusCode, shell: &Shell, t: &impl Template) -> Response {
    let mut r = strict_page(status, t);
    if shell.flash.is_some() {
        r.headers_mut().append(header::SET_COOKIE, cookies::set(state, FLASH_COOKIE, "", 0, false));
    }
    r
}

/// An API refusal as a message on the page `to`: its `detail` (its `description` for an OAuth
/// error); an internal error as the generic 500.
pub fn refused(state: &AppState, to: &str, e: ApiError) -> Response {
    refused_as(state, to, e, |detail, _| detail.to_string())
}

/// `refused`, with the `code` the JSON API would have answered in brackets after the detail.
pub fn refused_with_code(state: &AppState, to: &str, e: ApiError) -> Response {
    refused_as(state, to, e, |detail, code| format!("{detail} ({code})"))
}

fn refused_as(state: &AppState, to: &str, e: ApiError, text: impl Fn(&str, &str) -> String) -> Response {
    let code = e.code();
    match e {
        ApiError::Problem(p) => see_other(state, to, false, &text(&p.detail, code)),
        ApiError::OAuth(o) => see_other(state, to, false, &text(&o.description, code)),
        e @ ApiError::Internal(_) => e.into_response(),
    }
}

/// An internal error as the generic 500 (logged with its cause, never shown).
pub fn fail(e: impl Into<ApiError>) -> Response {
    e.into().into_response()
}

/// Where a list page starts, from its address: `?after=KEY`, `?before=KEY` or `?last=1`
/// (keyset paging: the key of the row next to the page, never a count of rows to skip).
#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub after: Option<String>,
    pub before: Option<String>,
    pub last: Option<String>,
}

impl PageQuery {
    pub fn keyset(&self) -> store::Keyset {
        let key = |k: &Option<String>| k.as_deref().filter(|k| !k.is_empty() && k.len() <= 400).map(str::to_string);
        match (key(&self.after), key(&self.before), self.last.is_some()) {
            (Some(k), _, _) => store::Keyset::After(k),
            (None, Some(k), _) => store::Keyset::Before(k),
            (None, None, true) => store::Keyset::Last,
            (None, None, false) => store::Keyset::First,
        }
    }
}

/// A page of a long list and the links to its neighbours.
pub struct Pager {
    /// Rows in the whole list (of the search, when there is one).
    pub total: i64,
    /// Rows on this page.
    pub shown: usize,
    pub first: Option<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub last: Option<String>,
}

impl Pager {
    pub const SIZE: i64 = 50;

    /// How many rows to ask the store for: one more than a page, to know whether more follow.
    pub const FETCH: i64 = Self::SIZE + 1;

    /// Cut `rows` (fetched with [`Pager::FETCH`] at `at`) to a page and make its links:
    /// `link(&[("after", key)])` makes the address of another page, `key(row)` a row's key.
    pub fn cut<T>(
        rows: &mut Vec<T>,
        at: &store::Keyset,
        total: i64,
        key: impl Fn(&T) -> String,
        link: impl Fn(&[(&str, &str)]) -> String,
    ) -> Pager {
        let size = Self::SIZE as usize;
        let more = rows.len() > size;
        if more {
            // The extra row is beyond the page: at its end read forwards, at its start backwards.
            if at.backwards() {
                rows.drain(..rows.len() - size);
            } else {
                rows.truncate(size);
            }
        }
        // Rows before this page exist when it was reached going forwards from somewhere, or
        // going backwards with more to come; rows after it, the other way round.
        let (before, after) = match at {
            store::Keyset::First => (false, more),
            store::Keyset::After(_) => (true, more),
            store::Keyset::Before(_) => (more, true),
            store::Keyset::Last => (more, false),
        };
        let (first_key, last_key) = (rows.first().map(&key), rows.last().map(&key));
        Pager {
            total,
            shown: rows.len(),
            first: before.then(|| link(&[])),
            prev: before.then(|| first_key.map(|k| link(&[("before", &k)]))).flatten(),
            next: after.then(|| last_key.map(|k| link(&[("after", &k)]))).flatten(),
            last: after.then(|| link(&[("last", "1")])),
        }
    }

    /// More than one page: the pager shows.
    pub fn paged(&self) -> bool {
        self.first.is_some() || self.next.is_some()
    }
}

/// `k=v&...` for links, values URL-encoded, empty values left out.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// A path with a query string (none when empty).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let q = query(pairs);
    if q.is_empty() { path.to_string() } else { format!("{path}?{q}") }
}
