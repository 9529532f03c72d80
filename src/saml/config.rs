//! `GET|PUT|PATCH|DELETE /api/v1/entities/{slug}/sso`, `POST .../sso/test` and
//! `GET .../sso/failures`: an entity's administrator (or the operator) manages its SAML
//! configuration.
//!
//! PUT replaces the whole configuration (absent fields take their defaults), PATCH changes only
//! the fields it names, DELETE removes it. Email domains an administrator lists are claims; the
//! ones the operator lists are verified, and a verified domain belongs to one entity (its other
//! claims lapse). An administrator may turn SSO on (or change the IdP of an enabled
//! configuration) only once a test sign-in with that IdP configuration succeeded; the operator
//! may without. Whenever the result is enabled, the password sessions and password-born refresh
//! families of every account in the entity's verified domains end in the same transaction.

use axum::{Json, extract::State, http::StatusCode};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{fetch, metadata, policy, refresh, sp, vendors::Vendor, views};
use crate::{
    auth::Admin,
    clock::{self, Millis},
    crypto::secret_hash,
    error::{ApiError, ApiJson, ApiPath, Result},
    state::AppState,
    store::{self, entities::Entity, sso::SsoConfig},
};

/// The body of PUT and PATCH. Every member is optional here: PUT fills the defaults and requires
/// `vendor` and the metadata, PATCH applies what is present.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = SsoConfigInput)]
pub struct SsoBody {
    pub vendor: Option<String>,
    /// the IdP's SAML 2.0 metadata (EntityDescriptor, or an EntitiesDescriptor holding one IdP); it must carry an unexpired signing certificate and an SSO endpoint
    #[schema(min_length = 1)]
    pub idp_metadata_xml: Option<String>,
    /// https:// URL of the IdP's metadata: fetched now and every LATCHKEY_METADATA_REFRESH (exactly one of this and idp_metadata_xml)
    #[schema(format = "uri")]
    pub idp_metadata_url: Option<String>,
    /// the entity's email domains (default none); the operator's list verifies them, an administrator's claims them. Only verified domains route sign-ins and decide which IdP signs an address in; a verified domain belongs to one entity; public mail providers cannot be claimed; the list replaces the previous one
    #[schema(max_items = 100)]
    pub email_domains: Option<Vec<String>>,
    /// the assertion attribute that holds the email; null or empty: the vendor's default
    #[schema(max_length = 256)]
    #[serde(default, deserialize_with = "nullable")]
    pub email_attribute: Option<Option<String>>,
    /// true: every address in the entity's verified domains signs in through this IdP only (default false). An administrator needs a passed test sign-in first (409 `sso_untested`).
    pub enabled: Option<bool>,
    /// accept IdP-initiated responses; absent or null: true
    pub allow_idp_initiated: Option<bool>,
    /// create accounts at first sign-in for addresses of the verified domains; absent or null: false
    pub jit_accounts: Option<bool>,
    /// accept SHA-1 signatures; absent or null: false
    pub allow_sha1: Option<bool>,
    /// Anything else: only the view's read-only members are accepted (ignored), so a GET can be
    /// edited and PUT back; any other member is a mistake worth reporting.
    #[serde(flatten)]
    #[schema(ignore)]
    pub rest: serde_json::Map<String, Value>,
}

/// `Some(None)` for an explicit `null`, `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

const READ_ONLY: &[&str] = &[
    "verified_email_domains",
    "sp_entity_id",
    "acs_url",
    "sp_metadata_url",
    "login_url",
    "idp_entity_id",
    "idp_sso_url",
    "idp_certificates",
    "want_authn_requests_signed",
    "updated_at",
    "tested",
    "tested_at",
    "metadata_fetched_at",
    "metadata_error",
    "metadata_error_at",
    "warnings",
];

/// Mail providers anyone can have an address at: an entity cannot claim them.
const PUBLIC_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.com",
    "zoho.com",
    "qq.com",
    "163.com",
    "fastmail.com",
];

fn check_domain(raw: &str) -> Result<String> {
    let d = raw.trim().trim_start_matches('@').to_lowercase();
    let labels: Vec<&str> = d.split('.').collect();
    let ok = d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
        && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        return Err(ApiError::unprocessable("invalid_request", format!("`{raw}` is not an email domain")));
    }
    if PUBLIC_DOMAINS.contains(&d.as_str()) {
        return Err(ApiError::unprocessable(
            "public_domain",
            format!("`{d}` is a public mail provider; an entity can only claim its own domains"),
        ));
    }
    Ok(d)
}

/// The SSO view of the entity's configuration `c`.
pub async fn view(state: &AppState, e: &Entity, c: &SsoConfig) -> Result<views::SsoConfig> {
    let email_domains = store::sso::domains(&state.db.pool, &e.id).await?;
    let verified_email_domains = store::sso::verified_domains(&state.db.pool, &e.id).await?;
    let idp_certificates = refresh::cert_infos(&c.idp_certs)
        .into_iter()
        .map(|i| views::SsoConfigIdpCertificatesItem {
            not_after: clock::rfc3339(i.not_after),
            sha256: i.sha256,
            subject: i.subject,
        })
        .collect();
    Ok(views::SsoConfig {
        acs_url: acs_url(state, &e.slug),
        allow_idp_initiated: c.allow_idp_initiated == 1,
        allow_sha1: c.allow_sha1 == 1,
        email_attribute: c.email_attribute.clone(),
        email_domains,
        enabled: c.enabled == 1,
        idp_certificates,
        idp_entity_id: c.idp_entity_id.clone(),
        idp_metadata_url: c.idp_metadata_url.clone(),
        idp_metadata_xml: c.idp_metadata_xml.clone(),
        idp_sso_url: c.idp_sso_redirect_url.clone().or(c.idp_sso_post_url.clone()),
        jit_accounts: c.jit_accounts == 1,
        login_url: policy::login_url(state, &e.slug),
        metadata_error: c.metadata_error.clone(),
        metadata_error_at: c.metadata_error_at.map(clock::rfc3339),
        metadata_fetched_at: c.metadata_fetched_at.map(clock::rfc3339),
        sp_entity_id: sp_entity_id(state, &e.slug),
        sp_metadata_url: sp_entity_id(state, &e.slug),
        tested: is_tested(c),
        tested_at: c.tested_at.filter(|_| is_tested(c)).map(clock::rfc3339),
        updated_at: clock::rfc3339(c.updated_at),
        vendor: c.vendor.clone(),
        verified_email_domains,
        want_authn_requests_signed: c.want_authn_requests_signed == 1,
        warnings: refresh::warnings(c, state.now()),
    })
}

/// A fingerprint of everything that decides whether the IdP's answers are accepted and which
/// email is read from them. A test sign-in vouches for exactly this.
pub fn idp_fingerprint(c: &SsoConfig) -> String {
    let v = json!([
        c.vendor,
        c.idp_entity_id,
        c.idp_sso_redirect_url,
        c.idp_sso_post_url,
        c.idp_certs,
        c.want_authn_requests_signed,
        c.email_attribute,
        c.allow_sha1,
    ]);
    secret_hash(&v.to_string())
}

/// Whether the current IdP configuration passed a test sign-in.
pub fn is_tested(c: &SsoConfig) -> bool {
    c.tested_hash.as_deref().is_some_and(|h| h == idp_fingerprint(c))
}

pub fn sp_entity_id(state: &AppState, slug: &str) -> String {
    state.url(&format!("/saml/{slug}/metadata"))
}

pub fn acs_url(state: &AppState, slug: &str) -> String {
    state.url(&format!("/saml/{slug}/acs"))
}

fn not_configured(slug: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "sso_not_configured", format!("{slug} has no SSO configuration yet"))
}

problems!(GetSsoProblems [admin]:
    404 not_found,
    404 sso_not_configured,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/sso",
    operation_id = "getSso",
    tag = "sso",
    summary = "Get the entity's SSO (SAML 2.0) configuration",
    description = "Another entity's configuration answers 404 `not_found`, like a missing entity.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the configuration and what to give the IdP (SP entity id, ACS URL, metadata URL)", body = crate::saml::views::SsoConfig),
        GetSsoProblems,
    ),
)]
pub async fn get_sso(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<views::SsoConfig>> {
    let e = admin.entity(&state, &slug).await?;
    let c = store::sso::config(&state.db.pool, &e.id).await?.ok_or_else(|| not_configured(&slug))?;
    Ok(Json(view(&state, &e, &c).await?))
}

problems!(PutSsoProblems [admin, json_body]:
    404 not_found,
    409 domain_taken,
    409 sso_untested,
    422 invalid_request "the JSON does not fit the schema (missing or unknown member, wrong type), a value is out of range, both or neither of `idp_metadata_xml` and `idp_metadata_url`",
    422 invalid_metadata,
    422 invalid_metadata_url,
    422 public_domain,
    500 internal,
);
#[utoipa::path(
    put,
    path = "/api/v1/entities/{slug}/sso",
    operation_id = "putSso",
    tag = "sso",
    summary = "Replace the entity's SSO (SAML 2.0) configuration",
    description = "Replaces the whole configuration: members not sent take their defaults (`email_domains` [], `email_attribute` the vendor's preset, `enabled` false, `allow_idp_initiated` true, `jit_accounts` false, `allow_sha1` false). Domains sent with the operator key are verified; an administrator's are claims (verified ones stay verified). A domain verified for another entity is taken; a mere claim blocks nobody. An administrator may set `enabled` true only once a test sign-in (POST .../sso/test) with this IdP configuration passed; the operator key may without. While enabled, every address in the entity's verified domains signs in through its IdP only: password grants and password sign-ins are refused, and the password sessions and refresh tokens of those addresses end.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    request_body(content = SsoBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the stored configuration", body = crate::saml::views::SsoConfig),
        PutSsoProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn put_sso(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<SsoBody>,
) -> Result<Json<views::SsoConfig>> {
    let e = admin.entity(&state, &slug).await?;
    change(&state, &ctx.by_admin(&admin), admin.is_operator(), &e, body, Mode::Replace).await
}

problems!(PatchSsoProblems [admin, json_body]:
    404 not_found,
    404 sso_not_configured,
    409 domain_taken,
    409 sso_untested,
    422 invalid_request "the JSON does not fit the schema (missing or unknown member, wrong type), a value is out of range, both or neither of `idp_metadata_xml` and `idp_metadata_url`",
    422 invalid_metadata,
    422 invalid_metadata_url,
    422 public_domain,
    500 internal,
);
#[utoipa::path(
    patch,
    path = "/api/v1/entities/{slug}/sso",
    operation_id = "patchSso",
    tag = "sso",
    summary = "Change some members of the entity's SSO configuration",
    description = "Changes only the members it names (`{\"enabled\":false}`); `email_attribute: null` returns to the vendor's preset; `email_domains` replaces the list (the operator's verifies it). The same rules as PUT for domains and for enabling.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    request_body(content = SsoBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the stored configuration", body = crate::saml::views::SsoConfig),
        PatchSsoProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn patch_sso(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<SsoBody>,
) -> Result<Json<views::SsoConfig>> {
    let e = admin.entity(&state, &slug).await?;
    change(&state, &ctx.by_admin(&admin), admin.is_operator(), &e, body, Mode::Patch).await
}

problems!(DeleteSsoProblems [admin]:
    500 internal,
    404 not_found,
    404 sso_not_configured,
);
#[utoipa::path(
    delete,
    path = "/api/v1/entities/{slug}/sso",
    operation_id = "deleteSso",
    tag = "sso",
    summary = "Remove the entity's SSO configuration",
    description = "Removes the configuration, its email domains (verified ones included) and pending sign-ins. SAML is off at once (login and ACS answer 404 `sso_disabled`), users sign in with passwords again, and sessions its IdP signed in end.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "removed"),
        DeleteSsoProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn delete_sso(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode> {
    let e = admin.entity(&state, &slug).await?;
    remove(&state, &ctx.by_admin(&admin), &e).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove the SSO configuration of an entity the caller may administer (`ctx` names them): the
/// `DELETE .../sso` of the JSON API and of the portal's SSO page.
pub async fn remove(state: &AppState, ctx: &crate::audit::Context, e: &Entity) -> Result<()> {
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    if !store::sso::lock_config(&mut *tx, &e.id).await? {
        return Err(not_configured(&e.slug));
    }
    // Its IdP no longer vouches for anyone: sessions it signed in end with it.
    for d in store::sso::verified_domains(&mut *tx, &e.id).await? {
        policy::end_sessions_in_domain(&mut tx, &d, "saml", "SSO configuration removed", now).await?;
    }
    let was_enabled = store::sso::config(&mut *tx, &e.id).await?.is_some_and(|c| c.enabled == 1);
    store::sso::delete_config(&mut tx, &e.id).await?;
    let event = |action| {
        crate::audit::Event::new(action).entity(&e.id, &e.slug).target(crate::audit::Target::entity(&e.id, &e.slug))
    };
    event("sso.updated").details(json!({ "deleted": true })).record(&mut tx, ctx, now).await?;
    if was_enabled {
        event("sso.disabled").details(json!({ "deleted": true })).record(&mut tx, ctx, now).await?;
    }
    tx.commit().await?;
    tracing::info!(entity = %e.slug, "SSO configuration removed");
    Ok(())
}

/// PUT replaces the whole configuration, PATCH changes only the members given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replace,
    Patch,
}

fn check_body(body: &SsoBody) -> Result<()> {
    if let Some(k) = body.rest.keys().find(|k| !READ_ONLY.contains(&k.as_str())) {
        return Err(ApiError::unprocessable("invalid_request", format!("unknown member `{k}`")));
    }
    Ok(())
}

/// PUT and PATCH: validate everything, then write the configuration, its domains and the
/// consequences of turning SSO on, in one transaction.
/// `operator`: the vendor acts (it verifies domains and may enable without a test); else an
/// administrator of the entity. Shared by the JSON API and the portal's SSO page.
pub async fn change(
    state: &AppState,
    ctx: &crate::audit::Context,
    operator: bool,
    e: &Entity,
    body: SsoBody,
    mode: Mode,
) -> Result<Json<views::SsoConfig>> {
    check_body(&body)?;
    let now = state.now();
    let existing = store::sso::config(&state.db.pool, &e.id).await?;
    if mode == Mode::Patch && existing.is_none() {
        return Err(not_configured(&e.slug));
    }
    let vendor = match body.vendor.as_deref() {
        Some(v) => Some(v.parse::<Vendor>().map_err(|_| {
            ApiError::unprocessable(
                "invalid_request",
                "`vendor` is one of azure-ad, okta, onelogin, pingfederate, generic",
            )
        })?),
        None if mode == Mode::Replace => {
            return Err(ApiError::unprocessable("invalid_request", "`vendor` is required"));
        }
        None => None,
    };
    // A view PUT back as it was (the fetched document beside its URL) means the URL.
    let same_url = body.idp_metadata_url.is_some()
        && existing.as_ref().and_then(|c| c.idp_metadata_url.as_ref()) == body.idp_metadata_url.as_ref();
    let xml_in = if same_url { None } else { body.idp_metadata_xml.clone() };
    // The IdP's metadata: (document, parsed, URL it came from).
    let md = match (xml_in, &body.idp_metadata_url) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "send exactly one of `idp_metadata_xml` and `idp_metadata_url`",
            ));
        }
        (None, None) if mode == Mode::Replace => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`idp_metadata_xml` or `idp_metadata_url` is required",
            ));
        }
        (None, None) => None,
        (Some(xml), None) => {
            let md = metadata::parse_idp_metadata(&xml, now)
                .map_err(|err| ApiError::unprocessable("invalid_metadata", err.to_string()))?;
            Some((xml, md, None))
        }
        (None, Some(url)) => {
            let url = url.trim();
            fetch::check_url(url, state.config.insecure_metadata_urls)
                .map_err(|why| ApiError::unprocessable("invalid_metadata_url", why))?;
            let f = refresh::fetch_metadata(state, url, now)
                .await
                .map_err(|why| ApiError::unprocessable("invalid_metadata", why))?;
            Some((f.xml, f.md, Some(url.to_string())))
        }
    };
    let domains = match (&body.email_domains, mode) {
        (Some(list), _) => Some(check_domains(list)?),
        (None, Mode::Replace) => Some(Vec::new()),
        (None, Mode::Patch) => None,
    };
    let email_attribute = match (&body.email_attribute, mode) {
        (Some(a), _) => Some(check_attribute(a.as_deref())?),
        (None, Mode::Replace) => Some(None),
        (None, Mode::Patch) => None,
    };

    // The SP key pair is made once and kept: the IdP may have pinned our certificate.
    let (sp_sealed_key, sp_cert) = match &existing {
        Some(c) => (c.sp_sealed_key.clone(), c.sp_cert.clone()),
        None => {
            let cn = format!("latchkey SP {}", e.slug);
            let keys = tokio::task::spawn_blocking(move || sp::generate_sp_keys(&cn, now))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("keygen task: {e}")))??;
            let sealed = state.master.encrypt(&keys.private_key_der, sp_key_aad(&e.id).as_bytes())?;
            (sealed, base64::engine::general_purpose::STANDARD.encode(&keys.cert_der))
        }
    };
    let flag = |v: Option<bool>, old: Option<i64>, default: bool| match (v, mode) {
        (Some(v), _) => i64::from(v),
        (None, Mode::Replace) => i64::from(default),
        (None, Mode::Patch) => old.unwrap_or(i64::from(default)),
    };
    let old = existing.as_ref();
    let period = state.config.metadata_refresh.ms();
    let mut config = match (md, old) {
        (Some((xml, md, url)), _) => SsoConfig {
            entity_id: e.id.clone(),
            vendor: String::new(),
            idp_metadata_xml: xml,
            idp_entity_id: md.entity_id.clone(),
            idp_sso_redirect_url: md.sso_redirect_url.clone(),
            idp_sso_post_url: md.sso_post_url.clone(),
            idp_certs: serde_json::to_string(
                &md.signing_certs_der
                    .iter()
                    .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
                    .collect::<Vec<_>>(),
            )
            .map_err(anyhow::Error::from)?,
            want_authn_requests_signed: i64::from(md.want_authn_requests_signed),
            email_attribute: None,
            enabled: 0,
            allow_idp_initiated: 1,
            jit_accounts: 0,
            allow_sha1: 0,
            sp_sealed_key,
            sp_cert,
            created_at: old.map(|c| c.created_at).unwrap_or(now),
            updated_at: now,
            tested_hash: old.and_then(|c| c.tested_hash.clone()),
            tested_at: old.and_then(|c| c.tested_at),
            metadata_fetched_at: url.as_ref().map(|_| now),
            metadata_next_fetch_at: url.as_ref().map(|_| now + period),
            idp_metadata_url: url,
            metadata_error: None,
            metadata_error_at: None,
            cert_warnings_sent: old.and_then(|c| c.cert_warnings_sent.clone()),
        },
        (None, Some(c)) => SsoConfig { updated_at: now, ..c.clone() },
        (None, None) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`idp_metadata_xml` or `idp_metadata_url` is required",
            ));
        }
    };
    config.vendor = match (vendor, old) {
        (Some(v), _) => v.as_str().to_string(),
        (None, Some(c)) => c.vendor.clone(),
        (None, None) => Vendor::Generic.as_str().to_string(),
    };
    config.email_attribute = match email_attribute {
        Some(a) => a,
        None => old.and_then(|c| c.email_attribute.clone()),
    };
    config.enabled = flag(body.enabled, old.map(|c| c.enabled), false);
    config.allow_idp_initiated = flag(body.allow_idp_initiated, old.map(|c| c.allow_idp_initiated), true);
    config.jit_accounts = flag(body.jit_accounts, old.map(|c| c.jit_accounts), false);
    config.allow_sha1 = flag(body.allow_sha1, old.map(|c| c.allow_sha1), false);

    // An administrator turns SSO on, or swaps the IdP of an enabled configuration, only with an
    // IdP configuration that passed a test: a broken one would lock every user out, them included.
    let was_enabled = old.is_some_and(|c| c.enabled == 1);
    let idp_changed = old.is_none_or(|c| idp_fingerprint(c) != idp_fingerprint(&config));
    if !operator && config.enabled == 1 && (!was_enabled || idp_changed) && !is_tested(&config) {
        return Err(ApiError::conflict(
            "sso_untested",
            "run a test sign-in with this IdP configuration first (POST .../sso/test), then enable it",
        ));
    }

    let mut tx = state.db.begin_write().await?;
    if existing.is_some() {
        store::sso::lock_config(&mut *tx, &e.id).await?;
    }
    if let Some(domains) = &domains {
        set_domains(&mut tx, operator, e, domains, now).await?;
    }
    store::sso::put_config(&mut *tx, &config).await?;
    if config.enabled == 1 {
        // From now on every account in the entity's verified domains signs in with its IdP.
        let mut revoked = 0;
        for d in store::sso::verified_domains(&mut *tx, &e.id).await? {
            revoked += policy::end_sessions_in_domain(&mut tx, &d, "pwd", "SSO enabled", now).await?;
        }
        tracing::info!(entity = %e.slug, revoked, "SSO on; password sessions of its domains ended");
    }
    let event = |action| {
        crate::audit::Event::new(action).entity(&e.id, &e.slug).target(crate::audit::Target::entity(&e.id, &e.slug))
    };
    // What changed, never the metadata document itself (the IdP's fingerprint names it).
    let details = json!({
        "vendor": config.vendor,
        "idp_entity_id": config.idp_entity_id,
        "idp_fingerprint": idp_fingerprint(&config),
        "email_domains": domains,
        "email_attribute": config.email_attribute,
        "enabled": config.enabled == 1,
        "allow_idp_initiated": config.allow_idp_initiated == 1,
        "jit_accounts": config.jit_accounts == 1,
        "allow_sha1": config.allow_sha1 == 1,
        "created": existing.is_none(),
    });
    event("sso.updated").details(details).record(&mut tx, ctx, now).await?;
    if config.enabled == 1 && !was_enabled {
        event("sso.enabled").record(&mut tx, ctx, now).await?;
    } else if config.enabled != 1 && was_enabled {
        event("sso.disabled").record(&mut tx, ctx, now).await?;
    }
    tx.commit().await?;
    Ok(Json(view(state, e, &config).await?))
}

fn check_domains(list: &[String]) -> Result<Vec<String>> {
    let mut domains = Vec::new();
    for d in list {
        let d = check_domain(d)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if domains.len() > 100 {
        return Err(ApiError::unprocessable("invalid_request", "at most 100 email domains"));
    }
    Ok(domains)
}

fn check_attribute(a: Option<&str>) -> Result<Option<String>> {
    let a = a.map(str::trim).filter(|a| !a.is_empty()).map(str::to_string);
    if a.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(ApiError::unprocessable("invalid_request", "`email_attribute` is at most 256 characters"));
    }
    Ok(a)
}

/// Replace the entity's domain claims. The operator's word verifies a domain; an administrator's
/// list keeps what was verified and claims the rest. A domain verified for another entity is
/// taken; another entity's mere claim blocks nothing.
async fn set_domains(tx: &mut store::Tx, operator: bool, e: &Entity, domains: &[String], now: Millis) -> Result<()> {
    let taken = |d: &str| ApiError::conflict("domain_taken", format!("`{d}` is verified for another organisation"));
    let verified_before = store::sso::verified_domains(&mut **tx, &e.id).await?;
    for d in domains {
        if store::sso::verified_owner(&mut **tx, d).await?.is_some_and(|owner| owner != e.id) {
            return Err(taken(d));
        }
    }
    store::sso::clear_domains(&mut **tx, &e.id).await?;
    for d in domains {
        let verified = operator || verified_before.contains(d);
        match store::sso::add_domain(&mut **tx, d, &e.id, verified).await {
            Ok(()) => {}
            // Verified for another entity by a concurrent request.
            Err(err) if store::is_unique_violation(&err) => return Err(taken(d)),
            Err(err) => return Err(err.into()),
        }
        if verified && !verified_before.contains(d) {
            // The domain is this entity's now: other claims lapse, and its accounts live here.
            store::sso::drop_other_claims(&mut **tx, d, &e.id).await?;
            let moved = store::accounts::rehome_domain(&mut **tx, d, &e.id).await?;
            tracing::info!(entity = %e.slug, domain = %d, moved, "email domain verified");
        }
    }
    for d in verified_before.iter().filter(|d| !domains.contains(d)) {
        // This IdP no longer vouches for the domain: what it signed in there ends.
        policy::end_sessions_in_domain(tx, d, "saml", "email domain released", now).await?;
    }
    Ok(())
}

/// How long a test sign-in link works.
pub const TEST_LINK_TTL_MS: Millis = 30 * 60_000;

fn test_mac(state: &AppState, entity_id: &str, expires_at: Millis) -> String {
    state.master.keyed_hash(&[b"sso-test", entity_id.as_bytes(), expires_at.to_string().as_bytes()])
}

/// Whether `(expires, sig)` from a test link is genuine for the entity and still live.
pub fn test_link_ok(state: &AppState, entity_id: &str, expires_at: Millis, sig: &str, now: Millis) -> bool {
    expires_at > now
        && expires_at <= now + TEST_LINK_TTL_MS
        && crate::crypto::ct_eq(test_mac(state, entity_id, expires_at).as_bytes(), sig.as_bytes())
}

problems!(StartSsoTestProblems [admin]:
    500 internal,
    404 not_found,
    404 sso_not_configured,
);
#[utoipa::path(
    post,
    path = "/api/v1/entities/{slug}/sso/test",
    operation_id = "startSsoTest",
    tag = "sso",
    summary = "Start a test sign-in with the saved SSO configuration",
    description = "Opening `url` in a browser runs a real SP-initiated sign-in against the saved configuration, enabled or not, and ends on a page that shows what the IdP sent (issuer, NameID, attributes, the email latchkey would use, what a real sign-in would do) or exactly why it was refused. It signs no one in. A passing test lets an administrator enable this IdP configuration. The link works for 30 minutes and may be opened again.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the link to open", body = crate::saml::views::SsoTest),
        StartSsoTestProblems,
    ),
)]
/// `POST /api/v1/entities/{slug}/sso/test` → `{"url"}`: opening the URL runs a real
/// SP-initiated sign-in against the saved configuration (enabled or not) and ends on a page
/// that shows what the IdP sent, or why it was refused. It signs no one in. The link is a MAC
/// over the entity and its expiry (nothing stored); it may be opened again until it expires.
pub async fn start_test(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<views::SsoTest>> {
    let e = admin.entity(&state, &slug).await?;
    store::sso::config(&state.db.pool, &e.id).await?.ok_or_else(|| not_configured(&slug))?;
    let (path, expires_at) = test_link(&state, &e, state.now());
    Ok(Json(views::SsoTest { expires_at: clock::rfc3339(expires_at), url: state.url(&path) }))
}

/// A test sign-in link of the entity (a local path) and when it stops working.
pub fn test_link(state: &AppState, e: &Entity, now: Millis) -> (String, Millis) {
    let expires_at = now + TEST_LINK_TTL_MS;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("expires", &expires_at.to_string())
        .append_pair("sig", &test_mac(state, &e.id, expires_at))
        .finish();
    (format!("/saml/{}/test?{q}", e.slug), expires_at)
}

problems!(ListSsoFailuresProblems [admin]:
    500 internal,
    404 not_found,
    404 sso_not_configured,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/sso/failures",
    operation_id = "listSsoFailures",
    tag = "sso",
    summary = "Refused SAML responses of the last 7 days",
    description = "Newest first; at most 1000 are kept per entity. `issuer` and `name_id` are what the response claimed: verified when its signature held, as written otherwise.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the refusals", body = Vec<crate::saml::views::SsoFailure>),
        ListSsoFailuresProblems,
    ),
)]
/// `GET /api/v1/entities/{slug}/sso/failures`: refused SAML responses of the last 7 days, newest first.
pub async fn list_failures(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<views::SsoFailure>>> {
    let e = admin.entity(&state, &slug).await?;
    let since = state.now() - store::sso::FAILURE_RETENTION_MS;
    let list = store::sso::failures(&state.db.pool, &e.id, since).await?;
    Ok(Json(
        list.into_iter()
            .map(|f| views::SsoFailure {
                at: clock::rfc3339(f.at),
                code: f.code,
                detail: f.detail,
                issuer: f.issuer,
                name_id: f.name_id,
            })
            .collect(),
    ))
}

pub fn sp_key_aad(entity_id: &str) -> String {
    format!("sso_configs:{entity_id}")
}
