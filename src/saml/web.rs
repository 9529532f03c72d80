//! The per-entity service provider over HTTP: metadata, SP-initiated login (HTTP-Redirect, or an
//! auto-submitting POST form for IdPs without a Redirect endpoint), the test sign-in, and the
//! assertion consumer service. RelayState is an opaque server-side handle, never a URL; pending
//! request ids are bound to the browser that started them, expire, and are taken once; assertion
//! ids go into a replay cache in the database, so every replica refuses a replay.
//!
//! A configuration that is not enabled answers login and ACS with 404 `sso_disabled`, except for
//! the answer to a test sign-in started in the same browser. The ACS signs in only addresses in
//! the entity's verified domains (see `policy`), and logs every refused response for the
//! entity's administrators.

use std::net::IpAddr;

use askama::Template;
use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine;
use serde::Deserialize;

use super::{
    acs::{self, Expected, ValidatedAssertion},
    authn::{self, AuthnRequestOut},
    config::{acs_url, idp_fingerprint, sp_entity_id, sp_key_aad, test_link_ok},
    policy, sp,
    vendors::{self, Vendor},
};
use crate::{
    auth::ClientIp,
    browser::{cookies, message, page, session},
    clock::Millis,
    crypto::{random_secret, secret_hash},
    error::{ApiError, ApiPath, ApiQuery},
    state::AppState,
    store::{self, entities::Entity, sso::SsoConfig},
};

const BIND_COOKIE: &str = "lk_sso_bind";
const REQUEST_TTL_MS: Millis = 10 * 60_000;
/// SP-initiated sign-ins (and test sign-ins) one client address may start per minute. Each
/// writes a pending row and may cost an RSA signature: far above what people behind one
/// address do, far below what makes either matter.
const LOGINS_PER_MINUTE: i64 = 60;
const LOGIN_WINDOW_MS: Millis = 60_000;

/// The entity and its configuration, whether enabled or not; `None`: neither exists.
async fn configured(state: &AppState, slug: &str) -> Result<Option<(Entity, SsoConfig)>, Response> {
    let entity = match store::entities::entity_by_slug(&state.db.pool, slug).await {
        Ok(Some(e)) => e,
        Ok(None) => return Ok(None),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    match store::sso::config(&state.db.pool, &entity.id).await {
        Ok(Some(c)) => Ok(Some((entity, c))),
        Ok(None) => Ok(None),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn sso_disabled() -> Response {
    refused(
        StatusCode::NOT_FOUND,
        "sso_disabled",
        "Single sign-on is not turned on for this organisation. Sign in with your email and password instead",
    )
}

fn certs_of(c: &SsoConfig) -> Vec<Vec<u8>> {
    serde_json::from_str::<Vec<String>>(&c.idp_certs)
        .unwrap_or_default()
        .iter()
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .collect()
}

pub async fn metadata(State(state): State<AppState>, ApiPath(slug): ApiPath<String>) -> Response {
    // Served while the configuration is off too: the IdP is set up from it before anyone enables.
    let (e, c) = match configured(&state, &slug).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "Single sign-on is not set up",
                "This organisation has not set up single sign-on.",
            );
        }
        Err(r) => return r,
    };
    let Ok(cert) = base64::engine::general_purpose::STANDARD.decode(&c.sp_cert) else {
        return ApiError::internal("stored SP certificate is not base64").into_response();
    };
    let xml = sp::sp_metadata_xml(&sp_entity_id(&state, &e.slug), &acs_url(&state, &e.slug), &cert);
    ([(header::CONTENT_TYPE, "application/samlmetadata+xml"), (header::CACHE_CONTROL, "public, max-age=300")], xml)
        .into_response()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/saml_post.html")]
struct PostForm<'a> {
    url: &'a str,
    saml_request: &'a str,
    relay_state: &'a str,
    nonce: &'a str,
}

#[tracing::instrument(skip_all, fields(entity = %slug))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<LoginQuery>,
) -> Response {
    let (e, c) = match configured(&state, &slug).await {
        Ok(Some((e, c))) if c.enabled == 1 => (e, c),
        Ok(_) => return sso_disabled(),
        Err(r) => return r,
    };
    let return_to = session::safe_return_to(q.return_to.as_deref());
    start(&state, &headers, ip, &e, &c, return_to.as_deref(), false).await
}

#[derive(Deserialize)]
pub struct TestQuery {
    expires: Option<String>,
    sig: Option<String>,
}

/// Opening a test link (`POST .../sso/test`): a real SP-initiated sign-in against the saved
/// configuration, enabled or not, whose answer the ACS shows instead of signing anyone in.
#[tracing::instrument(skip_all, fields(entity = %slug))]
pub async fn test_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<TestQuery>,
) -> Response {
    let (e, c) = match configured(&state, &slug).await {
        Ok(Some(x)) => x,
        Ok(None) => return sso_disabled(),
        Err(r) => return r,
    };
    let expires = q.expires.as_deref().and_then(|v| v.parse::<Millis>().ok()).unwrap_or(0);
    if !test_link_ok(&state, &e.id, expires, q.sig.as_deref().unwrap_or_default(), state.now()) {
        return message(
            StatusCode::FORBIDDEN,
            "This test link does not work",
            "It has expired or was changed. Start a new test sign-in from the SSO settings.",
        );
    }
    start(&state, &headers, ip, &e, &c, None, true).await
}

/// Throttle key of a client address.
fn address_key(state: &AppState, ip: IpAddr) -> String {
    let ip = crate::accounts::throttle::address(ip);
    format!("s:{}", state.master.keyed_hash(&[b"throttle-saml-login", ip.as_bytes()]))
}

/// Start an SP-initiated sign-in: bind it to this browser, store it as pending, send the browser
/// to the IdP. Throttled per client address before anything is written or signed.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    ip: ClientIp,
    e: &Entity,
    c: &SsoConfig,
    return_to: Option<&str>,
    test: bool,
) -> Response {
    let now = state.now();
    if let Some(ip) = ip.0 {
        let key = address_key(state, ip);
        match store::throttle::take_quota(&state.db.pool, &key, LOGINS_PER_MINUTE, LOGIN_WINDOW_MS, now).await {
            Ok(true) => {}
            Ok(false) => {
                state.metrics.event("saml_login", "throttled");
                let until =
                    store::throttle::blocked_until(&state.db.pool, &[&key]).await.unwrap_or(now + LOGIN_WINDOW_MS);
                let wait = ((until - now).max(1000) + 999) / 1000;
                let mut r = message(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-ins",
                    &format!("Too many sign-ins were started from your network. Try again in {wait} s."),
                );
                if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    // Bind the request to this browser: a cookie only it holds, whose hash the pending row keeps.
    let (binding, new_cookie) = match cookies::get(headers, BIND_COOKIE).filter(|v| v.len() >= 32 && v.len() < 100) {
        Some(v) => (v, None),
        None => {
            let v = random_secret("");
            let cookie = cookies::set(state, BIND_COOKIE, &v, REQUEST_TTL_MS / 1000 * 6, true);
            (v, Some(cookie))
        }
    };
    let relay = random_secret("rs");
    let sealed_key = (c.want_authn_requests_signed == 1).then(|| c.sp_sealed_key.clone());
    let idp = super::metadata::IdpMetadata {
        entity_id: c.idp_entity_id.clone(),
        sso_redirect_url: c.idp_sso_redirect_url.clone(),
        sso_post_url: c.idp_sso_post_url.clone(),
        signing_certs_der: Vec::new(),
        want_authn_requests_signed: c.want_authn_requests_signed == 1,
        certs_not_after: Vec::new(),
        name_id_formats: Vec::new(),
    };
    let (sp_id, acs, aad, master, relay_state) =
        (sp_entity_id(state, &e.slug), acs_url(state, &e.slug), sp_key_aad(&e.id), state.master.clone(), relay.clone());
    // Unsealing and parsing the key and signing (RSA 3072) are CPU work: off the async executor.
    let built = tokio::task::spawn_blocking(move || -> anyhow::Result<authn::BuiltRequest> {
        let key = match sealed_key {
            Some(sealed) => {
                Some(openssl::pkey::PKey::private_key_from_pkcs8(&master.decrypt(&sealed, aad.as_bytes())?)?)
            }
            None => None,
        };
        authn::build_authn_request(&sp_id, &acs, &idp, &relay_state, key.as_ref(), now)
    })
    .await;
    let built = match built {
        Ok(Ok(b)) => b,
        Ok(Err(err)) => return ApiError::Internal(err).into_response(),
        Err(err) => return ApiError::Internal(anyhow::anyhow!("AuthnRequest task: {err}")).into_response(),
    };
    let pending = store::sso::PendingRequest {
        id: &built.id,
        relay_hash: &secret_hash(&relay),
        entity_id: &e.id,
        browser_hash: &secret_hash(&binding),
        return_to,
        test,
        now,
        expires_at: now + REQUEST_TTL_MS,
    };
    if let Err(err) = store::sso::insert_request(&state.db.pool, &pending).await {
        return ApiError::from(err).into_response();
    }
    state.metrics.event("saml_login", if test { "test_started" } else { "started" });
    let mut resp = match built.out {
        AuthnRequestOut::Redirect { url } => Redirect::to(&url).into_response(),
        AuthnRequestOut::Post { url, saml_request, relay_state } => {
            let nonce = crate::crypto::b64url(&crate::crypto::random_bytes::<16>());
            let mut r = page(
                StatusCode::OK,
                &PostForm { url: &url, saml_request: &saml_request, relay_state: &relay_state, nonce: &nonce },
            );
            // The sign-in pages' policy (`browser::SIGN_IN_CSP`: no form-action, as the IdP may
            // pass the posted request on to another host of its own) and this page's one script.
            let csp = format!("{}; script-src 'nonce-{nonce}'", crate::browser::SIGN_IN_CSP);
            if let Ok(v) = HeaderValue::from_str(&csp) {
                r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
            }
            r
        }
    };
    if let Some(cookie) = new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// A refused sign-in: a page that says why (the stable code included), and no session.
fn refused(status: StatusCode, code: &str, text: &str) -> Response {
    message(status, "Sign-in refused", &format!("{text} (code: {code})"))
}

/// Why a response was refused, and what it claimed (for the entity's failure log).
#[derive(Clone)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    text: String,
    /// Log it for the entity (false for what is not a SAML response to a configured entity).
    log: bool,
    issuer: Option<String>,
    name_id: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Refusal { status, code, text: text.into(), log: true, issuer: None, name_id: None }
    }
    fn unlogged(mut self) -> Self {
        self.log = false;
        self
    }
    fn about(mut self, v: &ValidatedAssertion) -> Self {
        self.issuer = Some(v.issuer.clone());
        self.name_id = v.name_id.clone();
        self
    }
}

/// What the ACS did.
enum Outcome {
    SignedIn(Response),
    /// The answer to a test sign-in, shown, nobody signed in.
    Tested(Box<TestReport>),
}

/// The state a refusal needs to be logged and shown: the entity (once known) and whether this
/// browser is running a test sign-in there.
#[derive(Default)]
struct AcsContext {
    entity: Option<(Entity, SsoConfig)>,
    testing: bool,
}

#[tracing::instrument(skip_all, fields(entity = %slug))]
pub async fn acs(
    State(state): State<AppState>,
    audit_ctx: crate::audit::Context,
    headers: HeaderMap,
    ApiPath(slug): ApiPath<String>,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Response {
    let mut ctx = AcsContext::default();
    match consume(&state, &audit_ctx, &headers, &slug, form, &mut ctx).await {
        Ok(Outcome::SignedIn(resp)) => {
            state.metrics.event("saml_login", "succeeded");
            resp
        }
        Ok(Outcome::Tested(report)) => {
            state.metrics.event("saml_login", if report.passed() { "test_passed" } else { "test_refused" });
            if let Some((e, _)) = &ctx.entity
                && let Some(r) = report.refusal()
            {
                log_failure(&state, &audit_ctx, e, &r, true).await;
            }
            report.page(&slug)
        }
        Err(r) => {
            state.metrics.event("saml_login", "refused");
            tracing::warn!(entity = %slug, code = %r.code, "SAML response refused");
            if r.status == StatusCode::INTERNAL_SERVER_ERROR {
                return refused(r.status, r.code, &r.text);
            }
            if let Some((e, _)) = &ctx.entity
                && r.log
            {
                log_failure(&state, &audit_ctx, e, &r, ctx.testing).await;
            }
            if ctx.testing {
                return TestReport::refused(r).page(&slug);
            }
            refused(r.status, r.code, &r.text)
        }
    }
}

async fn log_failure(state: &AppState, audit_ctx: &crate::audit::Context, entity: &Entity, r: &Refusal, test: bool) {
    let clip = |s: &Option<String>| s.as_deref().map(|v| v.chars().take(256).collect::<String>());
    let f = store::sso::Failure {
        id: store::new_id(),
        at: state.now(),
        code: r.code.to_string(),
        detail: r.text.chars().take(1000).collect(),
        issuer: clip(&r.issuer),
        name_id: clip(&r.name_id),
    };
    let result = async {
        let mut tx = state.db.begin_write().await?;
        store::sso::record_failure(&mut tx, &entity.id, &f).await?;
        // Whoever posted it proved nothing: the actor is the identity the response claims, if any.
        let actor = match &f.name_id {
            Some(n) => crate::audit::Actor { kind: "user", id: None, name: Some(n.clone()) },
            None => crate::audit::Actor::system("saml"),
        };
        crate::audit::Event::new("sso.login_failed")
            .entity(&entity.id, &entity.slug)
            .details(serde_json::json!({ "code": f.code, "detail": f.detail, "issuer": f.issuer, "test": test }))
            .record(&mut tx, &audit_ctx.as_actor(actor), f.at)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "logging a refused SAML response");
    }
}

fn internal(e: impl Into<ApiError>) -> Refusal {
    let id = crate::error::current_request_id();
    tracing::error!(error = ?e.into(), "ACS");
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("something went wrong on our side; quote request id {id}"),
    )
    .unlogged()
}

async fn consume(
    state: &AppState,
    audit_ctx: &crate::audit::Context,
    headers: &HeaderMap,
    slug: &str,
    form: Result<Form<AcsForm>, FormRejection>,
    ctx: &mut AcsContext,
) -> Result<Outcome, Refusal> {
    let form = match form {
        Ok(Form(form)) => form,
        // The body is over the server's limit: say so, as for a response over the SAML limit.
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the sign-in form is larger than the server accepts (1 MiB)",
            )
            .unlogged());
        }
        Err(_) => {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "malformed", "the sign-in form was not a SAML response")
                .unlogged());
        }
    };
    let Some(saml_response) = form.saml_response.filter(|s| !s.is_empty()) else {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "malformed", "no SAMLResponse was posted").unlogged());
    };
    let disabled = || {
        Refusal::new(StatusCode::NOT_FOUND, "sso_disabled", "single sign-on is not turned on for this organisation")
            .unlogged()
    };
    let (entity, config) = match configured(state, slug).await {
        Ok(Some(x)) => x,
        Ok(None) => return Err(disabled()),
        Err(_) => return Err(internal(ApiError::internal("reading the SSO configuration"))),
    };
    let now = state.now();
    let binding = cookies::get(headers, BIND_COOKIE).map(|c| secret_hash(&c)).unwrap_or_default();
    ctx.testing =
        store::sso::live_test_of_browser(&state.db.pool, &entity.id, &binding, now).await.map_err(internal)?;
    // Off means off: only the answer to a test this browser started gets any further.
    if config.enabled != 1 && !ctx.testing {
        return Err(disabled());
    }
    ctx.entity = Some((entity.clone(), config.clone()));
    let certs = certs_of(&config);
    if certs.is_empty() {
        // Never verify against nothing (samael would accept anything).
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "no_certificate",
            "the organisation's IdP metadata has no signing certificate",
        ));
    }
    let (sp_id, acs, idp_id, allow_sha1, skew) = (
        sp_entity_id(state, slug),
        acs_url(state, slug),
        config.idp_entity_id.clone(),
        config.allow_sha1 == 1,
        state.config.clock_skew.ms(),
    );
    let validated = tokio::task::spawn_blocking(move || {
        let expected = Expected {
            sp_entity_id: &sp_id,
            acs_url: &acs,
            idp_entity_id: &idp_id,
            certs_der: &certs,
            allow_sha1,
            clock_skew_ms: skew,
            now_ms: now,
        };
        acs::validate_response(&saml_response, &expected).map_err(|e| {
            // What the refused document claims, unverified, for the failure log and test page.
            let (issuer, name_id) = claimed_identity(&saml_response);
            let mut r = Refusal::new(StatusCode::FORBIDDEN, e.code(), e.to_string());
            (r.issuer, r.name_id) = (issuer, name_id);
            r
        })
    })
    .await
    .map_err(|e| internal(ApiError::Internal(anyhow::anyhow!("ACS task: {e}"))))??;

    // InResponseTo: ours, for this entity, from this browser, once. Absent: IdP-initiated.
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let (return_to, test) = match &validated.in_response_to {
        Some(id) => {
            let pending = store::sso::take_request(&mut tx, id).await.map_err(internal)?;
            let Some(p) = pending.filter(|p| p.entity_id == entity.id && p.expires_at > now) else {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "unknown_request",
                    "this response answers no sign-in we started (or it expired)",
                )
                .about(&validated));
            };
            if !crate::crypto::ct_eq(p.browser_hash.as_bytes(), binding.as_bytes()) {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "wrong_browser",
                    "this response answers a sign-in started in another browser",
                )
                .about(&validated));
            }
            if let Some(relay) = form.relay_state.as_deref()
                && !relay.is_empty()
                && !crate::crypto::ct_eq(secret_hash(relay).as_bytes(), p.relay_hash.as_bytes())
            {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "wrong_relay_state",
                    "the RelayState does not belong to this sign-in",
                )
                .about(&validated));
            }
            (p.return_to, p.test == 1)
        }
        None if config.enabled != 1 => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "sso_disabled",
                "single sign-on is not turned on for this organisation, and a test sign-in must start from latchkey",
            )
            .about(&validated));
        }
        None if config.allow_idp_initiated == 1 => (None, false),
        None => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "idp_initiated_disabled",
                "this organisation accepts only sign-ins started from latchkey",
            )
            .about(&validated));
        }
    };
    if !test && config.enabled != 1 {
        // A sign-in started before SSO was turned off.
        return Err(disabled().about(&validated));
    }
    let replay_until = validated.not_on_or_after_ms + skew;
    if !store::sso::first_sighting(&mut *tx, &entity.id, &validated.assertion_id, replay_until)
        .await
        .map_err(internal)?
    {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "replayed", "this response was used before").about(&validated));
    }
    let vendor: Vendor = config.vendor.parse().unwrap_or(Vendor::Generic);
    let email = vendors::find_email(vendor, config.email_attribute.as_deref(), &validated);
    if test {
        let mut report = TestReport::from_assertion(&validated);
        match &email {
            Ok(email) => {
                report.verdict = Some(verdict(&mut tx, &entity, &config, email).await.map_err(internal)?);
                report.email = Some(email.clone());
                // The IdP configuration this response was checked against works.
                store::sso::set_tested(&mut *tx, &entity.id, &idp_fingerprint(&config), now).await.map_err(internal)?;
            }
            Err(names) => report.failure = Some(no_email(names).about(&validated)),
        }
        tx.commit().await.map_err(internal)?;
        return Ok(Outcome::Tested(Box::new(report)));
    }
    let email = email.map_err(|names| no_email(&names).about(&validated))?;
    // Only an address in a domain the operator verified for this entity: whoever created the
    // account, and whichever entity's license it uses, this IdP speaks for nobody else.
    let domain = policy::domain_of(&email);
    if !store::sso::holds_verified(&mut *tx, &entity.id, domain).await.map_err(internal)? {
        return Err(not_our_domain(domain).about(&validated));
    }
    let user = match store::accounts::user_by_email(&mut *tx, &email).await.map_err(internal)? {
        Some(u) => u,
        None if config.jit_accounts == 1 => {
            let (u, _) = crate::accounts::find_or_create(&mut tx, &email, &entity.id, now).await.map_err(internal)?;
            tracing::info!(entity = %slug, user = %u.id, "account created just in time");
            u
        }
        None => return Err(no_access().about(&validated)),
    };
    if user.deactivated_at.is_some() {
        return Err(deactivated().about(&validated));
    }
    tx.commit().await.map_err(internal)?;
    let event = crate::oauth::signed_in(&user, &entity.slug, "saml", "browser").entity(&entity.id, &entity.slug);
    let actor = crate::audit::Actor::user(&user.id, &user.email);
    let cookie =
        session::start_signed_in(state, &audit_ctx.as_actor(actor), event, &user.id, "saml").await.map_err(internal)?;
    let to = return_to.unwrap_or_else(|| "/portal".into());
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    tracing::info!(entity = %slug, user = %user.id, "signed in with SAML");
    Ok(Outcome::SignedIn(resp))
}

fn no_email(names: &[String]) -> Refusal {
    let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    Refusal::new(
        StatusCode::FORBIDDEN,
        "no_email",
        format!(
            "the IdP sent no email address we could find; attributes that arrived: {listed}. Your administrator can name the attribute to use"
        ),
    )
}

fn not_our_domain(domain: &str) -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "domain_not_verified",
        format!(
            "this organisation's IdP signs in only addresses of its verified email domains, and {domain} is not one of them"
        ),
    )
}

fn deactivated() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "account_deactivated",
        "your organisation has deactivated this account (through its provisioning); ask your administrator",
    )
}

fn no_access() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "no_access",
        "your administrator has not given you access to licensed software yet; ask them to assign you a license",
    )
}

/// What a real sign-in of `email` would do now (for the test page; changes nothing).
async fn verdict(tx: &mut store::Tx, entity: &Entity, config: &SsoConfig, email: &str) -> Result<String, ApiError> {
    let domain = policy::domain_of(email);
    if !store::sso::holds_verified(&mut **tx, &entity.id, domain).await? {
        let r = not_our_domain(domain);
        return Ok(format!("would be refused: {} (code: {})", r.text, r.code));
    }
    let exists = store::accounts::user_by_email(&mut **tx, email).await?.is_some();
    let on = if config.enabled == 1 { "" } else { " once single sign-on is enabled" };
    Ok(match (exists, config.jit_accounts == 1) {
        (true, _) => format!("would be signed in{on}"),
        (false, true) => format!("would get an account and be signed in{on}"),
        (false, false) => {
            let r = no_access();
            format!(
                "would be refused: it has no account and accounts are not created on first sign-in (code: {})",
                r.code
            )
        }
    })
}

/// The unverified Issuer and NameID of a refused document (first of each, clipped), read without
/// resolving anything: shown and logged as what the document claimed, never trusted.
fn claimed_identity(saml_response: &str) -> (Option<String>, Option<String>) {
    let Ok(xml) = acs::decode(saml_response) else { return (None, None) };
    let mut r = quick_xml::Reader::from_str(&xml);
    let (mut issuer, mut name_id) = (None, None);
    let mut current: Option<bool> = None; // Some(true): Issuer, Some(false): NameID
    let mut text = String::new();
    let mut events = 0;
    loop {
        events += 1;
        if events > 100_000 || (issuer.is_some() && name_id.is_some()) {
            break;
        }
        match r.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                current = match e.local_name().as_ref() {
                    b"Issuer" if issuer.is_none() => Some(true),
                    b"NameID" if name_id.is_none() => Some(false),
                    _ => None,
                };
                text.clear();
            }
            Ok(quick_xml::events::Event::Text(t)) if current.is_some() => {
                text.push_str(&String::from_utf8_lossy(t.as_ref()));
            }
            Ok(quick_xml::events::Event::End(_)) => {
                let value = super::scan::clip(text.trim());
                match current.take() {
                    Some(true) if !value.is_empty() => issuer = Some(value),
                    Some(false) if !value.is_empty() => name_id = Some(value),
                    _ => {}
                }
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    (issuer, name_id)
}

/// The page at the end of a test sign-in.
#[derive(Template)]
#[template(path = "pages/sso_test.html")]
struct TestPage<'a> {
    /// The entity, for the way back to its single sign-on page.
    slug: &'a str,
    passed: bool,
    code: &'a str,
    reason: &'a str,
    verified: bool,
    issuer: &'a str,
    name_id: &'a str,
    name_id_format: &'a str,
    email: &'a str,
    verdict: &'a str,
    attributes: Vec<(String, String)>,
}

struct TestReport {
    /// Set when the response itself was refused (checks, or no email).
    failure: Option<Refusal>,
    issuer: Option<String>,
    name_id: Option<String>,
    name_id_format: Option<String>,
    attributes: Vec<(String, Vec<String>)>,
    /// Verified: the values come from a validated assertion.
    verified: bool,
    email: Option<String>,
    verdict: Option<String>,
}

impl TestReport {
    fn from_assertion(v: &ValidatedAssertion) -> Self {
        TestReport {
            failure: None,
            issuer: Some(v.issuer.clone()),
            name_id: v.name_id.clone(),
            name_id_format: v.name_id_format.clone(),
            attributes: v.attributes.clone(),
            verified: true,
            email: None,
            verdict: None,
        }
    }

    fn refused(r: Refusal) -> Self {
        TestReport {
            issuer: r.issuer.clone(),
            name_id: r.name_id.clone(),
            name_id_format: None,
            attributes: Vec::new(),
            verified: false,
            email: None,
            verdict: None,
            failure: Some(r),
        }
    }

    fn passed(&self) -> bool {
        self.failure.is_none() && self.email.is_some()
    }

    fn refusal(&self) -> Option<Refusal> {
        self.failure.clone()
    }

    /// The report as a page that leads back to `slug`'s single sign-on page.
    fn page(&self, slug: &str) -> Response {
        let status = match &self.failure {
            None => StatusCode::OK,
            Some(r) => r.status,
        };
        let (code, reason) = self.failure.as_ref().map(|r| (r.code, r.text.as_str())).unwrap_or(("", ""));
        let attributes = self.attributes.iter().map(|(n, vs)| (n.clone(), vs.join(", "))).collect();
        page(
            status,
            &TestPage {
                slug,
                passed: self.passed(),
                code,
                reason,
                verified: self.verified,
                issuer: self.issuer.as_deref().unwrap_or("none"),
                name_id: self.name_id.as_deref().unwrap_or("none"),
                name_id_format: self.name_id_format.as_deref().unwrap_or(""),
                email: self.email.as_deref().unwrap_or(""),
                verdict: self.verdict.as_deref().unwrap_or(""),
                attributes,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use askama::Template as _;

    use super::PostForm;

    #[test]
    fn the_post_binding_form_escapes_every_value() {
        let form = PostForm {
            url: r#"https://idp.example/sso?a=1&b="><script>alert(1)</script>"#,
            saml_request: "PHNhbWxwOkF1dGhuUmVxdWVzdC8+",
            relay_state: "\"><script>alert(2)</script>",
            nonce: "n0nce",
        };
        let html = form.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(2)"), "{html}");
        assert!(html.contains(r#"name="SAMLRequest" value="PHNhbWxwOkF1dGhuUmVxdWVzdC8+""#), "{html}");
        assert!(html.contains(r#"<script nonce="n0nce">"#) && html.contains("<noscript>"), "{html}");
        // Without a RelayState the form sends none (an empty one would be echoed back by the IdP).
        let bare = PostForm { relay_state: "", ..form };
        assert!(!bare.render().unwrap().contains("RelayState"));
    }
}
