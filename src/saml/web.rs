//! The per-entity service provider over HTTP: metadata, SP-initiated login (HTTP-Redirect, or an
//! auto-submitting POST form for IdPs without a Redirect endpoint) and the assertion consumer
//! service. RelayState is an opaque server-side handle, never a URL; pending request ids are bound
//! to the browser that started them, expire, and are deleted on use; assertion ids go into a
//! replay cache in the database, so every replica refuses a replay.

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
    acs::{self, Expected},
    authn::{self, AuthnRequestOut},
    config::{acs_url, sp_entity_id, sp_key_aad},
    sp,
    vendors::{self, Vendor},
};
use crate::{
    browser::{cookies, message, page, session},
    clock::Millis,
    crypto::{random_secret, secret_hash},
    error::{ApiError, ApiPath, ApiQuery},
    state::AppState,
    store::{self, entities::Entity, sso::SsoConfig},
};

const BIND_COOKIE: &str = "lk_sso_bind";
const REQUEST_TTL_MS: Millis = 10 * 60_000;

async fn configured(state: &AppState, slug: &str) -> Result<(Entity, SsoConfig), Response> {
    let not_here = || {
        message(
            StatusCode::NOT_FOUND,
            "Single sign-on is not set up",
            "This organisation has not set up single sign-on.",
        )
    };
    let entity = match store::entities::entity_by_slug(&state.db.pool, slug).await {
        Ok(Some(e)) => e,
        Ok(None) => return Err(not_here()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    match store::sso::config(&state.db.pool, &entity.id).await {
        Ok(Some(c)) => Ok((entity, c)),
        Ok(None) => Err(not_here()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn certs_of(c: &SsoConfig) -> Vec<Vec<u8>> {
    serde_json::from_str::<Vec<String>>(&c.idp_certs)
        .unwrap_or_default()
        .iter()
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .collect()
}

pub async fn metadata(State(state): State<AppState>, ApiPath(slug): ApiPath<String>) -> Response {
    let (e, c) = match configured(&state, &slug).await {
        Ok(x) => x,
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
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<LoginQuery>,
) -> Response {
    let (e, c) = match configured(&state, &slug).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let return_to = session::safe_return_to(q.return_to.as_deref());
    let now = state.now();
    // Bind the request to this browser: a cookie only it holds, whose hash the pending row keeps.
    let (binding, new_cookie) = match cookies::get(&headers, BIND_COOKIE).filter(|v| v.len() >= 32 && v.len() < 100) {
        Some(v) => (v, None),
        None => {
            let v = random_secret("");
            let cookie = cookies::set(&state, BIND_COOKIE, &v, REQUEST_TTL_MS / 1000 * 6, true);
            (v, Some(cookie))
        }
    };
    let relay = random_secret("rs");
    let key = if c.want_authn_requests_signed == 1 {
        match state.master.decrypt(&c.sp_sealed_key, sp_key_aad(&e.id).as_bytes()).map_err(ApiError::from).and_then(
            |der| {
                openssl::pkey::PKey::private_key_from_pkcs8(&der).map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
            },
        ) {
            Ok(k) => Some(k),
            Err(err) => return err.into_response(),
        }
    } else {
        None
    };
    let idp = super::metadata::IdpMetadata {
        entity_id: c.idp_entity_id.clone(),
        sso_redirect_url: c.idp_sso_redirect_url.clone(),
        sso_post_url: c.idp_sso_post_url.clone(),
        signing_certs_der: Vec::new(),
        want_authn_requests_signed: c.want_authn_requests_signed == 1,
        certs_not_after: Vec::new(),
        name_id_formats: Vec::new(),
    };
    let built = match authn::build_authn_request(
        &sp_entity_id(&state, &slug),
        &acs_url(&state, &slug),
        &idp,
        &relay,
        key.as_ref(),
        now,
    ) {
        Ok(b) => b,
        Err(err) => return ApiError::Internal(err).into_response(),
    };
    let pending = store::sso::PendingRequest {
        id: &built.id,
        relay_hash: &secret_hash(&relay),
        entity_id: &e.id,
        browser_hash: &secret_hash(&binding),
        return_to: return_to.as_deref(),
        now,
        expires_at: now + REQUEST_TTL_MS,
    };
    if let Err(err) = store::sso::insert_request(&state.db.pool, &pending).await {
        return ApiError::from(err).into_response();
    }
    state.metrics.event("saml_login", "started");
    let mut resp = match built.out {
        AuthnRequestOut::Redirect { url } => Redirect::to(&url).into_response(),
        AuthnRequestOut::Post { url, saml_request, relay_state } => {
            let nonce = crate::crypto::b64url(&crate::crypto::random_bytes::<16>());
            let mut r = page(
                StatusCode::OK,
                &PostForm { url: &url, saml_request: &saml_request, relay_state: &relay_state, nonce: &nonce },
            );
            let origin = url::Url::parse(&url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            let csp = format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; form-action {origin}; frame-ancestors 'none'; base-uri 'none'"
            );
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

#[tracing::instrument(skip_all, fields(entity = %slug))]
pub async fn acs(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(slug): ApiPath<String>,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Response {
    match consume(&state, &headers, &slug, form).await {
        Ok(resp) => {
            state.metrics.event("saml_login", "succeeded");
            resp
        }
        Err((status, code, text)) => {
            state.metrics.event("saml_login", "refused");
            tracing::warn!(entity = %slug, %code, "SAML response refused");
            refused(status, code, &text)
        }
    }
}

type Refusal = (StatusCode, &'static str, String);

async fn consume(
    state: &AppState,
    headers: &HeaderMap,
    slug: &str,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let internal = |e: ApiError| {
        let id = crate::error::current_request_id();
        tracing::error!(error = ?e, "ACS");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("something went wrong on our side; quote request id {id}"),
        )
    };
    let Ok(Form(form)) = form else {
        return Err((StatusCode::BAD_REQUEST, "malformed", "the sign-in form was not a SAML response".into()));
    };
    let Some(saml_response) = form.saml_response.filter(|s| !s.is_empty()) else {
        return Err((StatusCode::BAD_REQUEST, "malformed", "no SAMLResponse was posted".into()));
    };
    let (entity, config) = match configured(state, slug).await {
        Ok(x) => x,
        Err(_) => {
            return Err((
                StatusCode::NOT_FOUND,
                "sso_not_configured",
                "this organisation has not set up single sign-on".into(),
            ));
        }
    };
    let now = state.now();
    let certs = certs_of(&config);
    if certs.is_empty() {
        // Never verify against nothing (samael would accept anything).
        return Err((
            StatusCode::FORBIDDEN,
            "no_certificate",
            "the organisation's IdP metadata has no signing certificate".into(),
        ));
    }
    let (sp_id, acs) = (sp_entity_id(state, slug), acs_url(state, slug));
    let (idp_id, allow_sha1, skew) =
        (config.idp_entity_id.clone(), config.allow_sha1 == 1, state.config.clock_skew.ms());
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
        acs::validate_response(&saml_response, &expected).map_err(|e| (e.code(), e.to_string()))
    })
    .await
    .map_err(|e| internal(ApiError::Internal(anyhow::anyhow!("ACS task: {e}"))))?
    .map_err(|(code, text)| (StatusCode::FORBIDDEN, code, text))?;

    // InResponseTo: ours, for this entity, from this browser, once. Absent: IdP-initiated.
    let mut tx = state.db.begin_write().await.map_err(|e| internal(e.into()))?;
    let return_to = match &validated.in_response_to {
        Some(id) => {
            let pending = store::sso::take_request(&mut tx, id).await.map_err(|e| internal(e.into()))?;
            let binding = cookies::get(headers, BIND_COOKIE).map(|c| secret_hash(&c)).unwrap_or_default();
            let Some(p) = pending.filter(|p| p.entity_id == entity.id && p.expires_at > now) else {
                return Err((
                    StatusCode::FORBIDDEN,
                    "unknown_request",
                    "this response answers no sign-in we started (or it expired)".into(),
                ));
            };
            if !crate::crypto::ct_eq(p.browser_hash.as_bytes(), binding.as_bytes()) {
                return Err((
                    StatusCode::FORBIDDEN,
                    "wrong_browser",
                    "this response answers a sign-in started in another browser".into(),
                ));
            }
            if let Some(relay) = form.relay_state.as_deref()
                && !relay.is_empty()
                && !crate::crypto::ct_eq(secret_hash(relay).as_bytes(), p.relay_hash.as_bytes())
            {
                return Err((
                    StatusCode::FORBIDDEN,
                    "wrong_relay_state",
                    "the RelayState does not belong to this sign-in".into(),
                ));
            }
            p.return_to
        }
        None if config.allow_idp_initiated == 1 => None,
        None => {
            return Err((
                StatusCode::FORBIDDEN,
                "idp_initiated_disabled",
                "this organisation accepts only sign-ins started from latchkey".into(),
            ));
        }
    };
    let replay_until = validated.not_on_or_after_ms + skew;
    if !store::sso::first_sighting(&mut *tx, &entity.id, &validated.assertion_id, replay_until)
        .await
        .map_err(|e| internal(e.into()))?
    {
        return Err((StatusCode::FORBIDDEN, "replayed", "this response was used before".into()));
    }
    let vendor: Vendor = config.vendor.parse().unwrap_or(Vendor::Generic);
    let email = match vendors::find_email(vendor, config.email_attribute.as_deref(), &validated) {
        Ok(e) => e,
        Err(names) => {
            let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            return Err((
                StatusCode::FORBIDDEN,
                "no_email",
                format!(
                    "the IdP sent no email address we could find; attributes that arrived: {listed}. Your administrator can name the attribute to use"
                ),
            ));
        }
    };
    // Who may sign in: an account of this entity, or (just-in-time) an address in its domains.
    let user = match store::accounts::user_by_email(&mut *tx, &email).await.map_err(|e| internal(e.into()))? {
        Some(u) if u.entity_id == entity.id => u,
        Some(_) => return Err(no_access()),
        None => {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            let owner = store::sso::domain_owner(&mut *tx, domain).await.map_err(|e| internal(e.into()))?;
            // Just-in-time accounts only in domains the vendor verified for this entity.
            if config.jit_accounts != 1 || owner != Some((entity.id.clone(), true)) {
                return Err(no_access());
            }
            let (u, _) = crate::accounts::find_or_create(&mut tx, &email, &entity.id, now).await.map_err(internal)?;
            tracing::info!(entity = %slug, user = %u.id, "account created just in time");
            u
        }
    };
    tx.commit().await.map_err(|e| internal(e.into()))?;
    let cookie = session::start(state, &user.id, "saml").await.map_err(internal)?;
    let to = return_to.unwrap_or_else(|| "/account".into());
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    tracing::info!(entity = %slug, user = %user.id, "signed in with SAML");
    Ok(resp)
}

fn no_access() -> Refusal {
    (
        StatusCode::FORBIDDEN,
        "no_access",
        "your administrator has not given you access to licensed software yet; ask them to assign you a license".into(),
    )
}
