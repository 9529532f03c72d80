//! `GET|PUT /api/v1/entities/{slug}/sso`: an entity's administrator uploads the IdP's metadata
//! and turns SSO on. Turning it on switches every user of the entity to SSO at once: password
//! grants and password logins are refused, and sessions that came from passwords are revoked.

use axum::{Json, extract::State};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{metadata, sp, vendors::Vendor};
use crate::{
    auth::Admin,
    clock,
    error::{ApiError, ApiJson, ApiPath, Result},
    state::AppState,
    store::{self, entities::Entity, sso::SsoConfig},
};

#[derive(Deserialize)]
pub struct SsoBody {
    vendor: String,
    idp_metadata_xml: String,
    #[serde(default)]
    email_domains: Vec<String>,
    email_attribute: Option<String>,
    enabled: bool,
    allow_idp_initiated: Option<bool>,
    jit_accounts: Option<bool>,
    allow_sha1: Option<bool>,
    /// Anything else: only the view's read-only members are accepted (ignored), so a GET can be
    /// edited and PUT back; any other member is a mistake worth reporting.
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
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

pub async fn view(state: &AppState, e: &Entity, c: &SsoConfig) -> Result<Value> {
    let domains = store::sso::domains(&state.db.pool, &e.id).await?;
    let verified = store::sso::verified_domains(&state.db.pool, &e.id).await?;
    let certs: Vec<Value> = serde_json::from_str::<Vec<String>>(&c.idp_certs)
        .unwrap_or_default()
        .iter()
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter_map(|der| openssl::x509::X509::from_der(&der).ok())
        .map(|x| {
            let fp = x.digest(openssl::hash::MessageDigest::sha256()).map(|d| hex(&d)).unwrap_or_default();
            json!({ "subject": subject(&x), "not_after": x.not_after().to_string(), "sha256_fingerprint": fp })
        })
        .collect();
    Ok(json!({
        "vendor": c.vendor,
        "enabled": c.enabled == 1,
        "sp_entity_id": sp_entity_id(state, &e.slug),
        "acs_url": acs_url(state, &e.slug),
        "sp_metadata_url": sp_entity_id(state, &e.slug),
        "login_url": state.url(&format!("/saml/{}/login", e.slug)),
        "idp_entity_id": c.idp_entity_id,
        "idp_sso_url": c.idp_sso_redirect_url.clone().or(c.idp_sso_post_url.clone()),
        "idp_certificates": certs,
        "want_authn_requests_signed": c.want_authn_requests_signed == 1,
        "email_domains": domains,
        "verified_email_domains": verified,
        "idp_metadata_xml": c.idp_metadata_xml,
        "email_attribute": c.email_attribute,
        "allow_idp_initiated": c.allow_idp_initiated == 1,
        "jit_accounts": c.jit_accounts == 1,
        "allow_sha1": c.allow_sha1 == 1,
        "updated_at": clock::rfc3339(c.updated_at),
    }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(":")
}

fn subject(x: &openssl::x509::X509) -> String {
    x.subject_name()
        .entries()
        .filter_map(|e| Some(format!("{}={}", e.object().nid().short_name().ok()?, e.data().to_string().ok()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn sp_entity_id(state: &AppState, slug: &str) -> String {
    state.url(&format!("/saml/{slug}/metadata"))
}

pub fn acs_url(state: &AppState, slug: &str) -> String {
    state.url(&format!("/saml/{slug}/acs"))
}

async fn entity_for(state: &AppState, admin: &Admin, slug: &str) -> Result<Entity> {
    let entity = store::entities::entity_by_slug(&state.db.pool, slug).await?;
    admin.require(state, entity.as_ref().map(|e| e.id.as_str())).await?;
    entity.ok_or_else(|| ApiError::not_found("no such resource"))
}

pub async fn get_sso(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Value>> {
    let e = entity_for(&state, &admin, &slug).await?;
    let c = store::sso::config(&state.db.pool, &e.id).await?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "sso_not_configured",
            format!("{slug} has no SSO configuration yet"),
        )
    })?;
    Ok(Json(view(&state, &e, &c).await?))
}

#[tracing::instrument(skip_all)]
pub async fn put_sso(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<SsoBody>,
) -> Result<Json<Value>> {
    let e = entity_for(&state, &admin, &slug).await?;
    if let Some(k) = body.rest.keys().find(|k| !READ_ONLY.contains(&k.as_str())) {
        return Err(ApiError::unprocessable("invalid_request", format!("unknown member `{k}`")));
    }
    let vendor: Vendor = body.vendor.parse().map_err(|_| {
        ApiError::unprocessable("invalid_request", "`vendor` is one of azure-ad, okta, onelogin, pingfederate, generic")
    })?;
    let now = state.now();
    let md = metadata::parse_idp_metadata(&body.idp_metadata_xml, now)
        .map_err(|err| ApiError::unprocessable("invalid_metadata", err.to_string()))?;
    let mut domains = Vec::new();
    for d in &body.email_domains {
        let d = check_domain(d)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if domains.len() > 100 {
        return Err(ApiError::unprocessable("invalid_request", "at most 100 email domains"));
    }
    let email_attribute = body.email_attribute.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(str::to_string);
    if email_attribute.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(ApiError::unprocessable("invalid_request", "`email_attribute` is at most 256 characters"));
    }
    let existing = store::sso::config(&state.db.pool, &e.id).await?;
    // The SP key pair is made once and kept: the IdP may have pinned our certificate.
    let (sp_sealed_key, sp_cert) = match &existing {
        Some(c) => (c.sp_sealed_key.clone(), c.sp_cert.clone()),
        None => {
            let cn = format!("latchkey SP {slug}");
            let keys = tokio::task::spawn_blocking(move || sp::generate_sp_keys(&cn, now))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("keygen task: {e}")))??;
            let sealed = state.master.encrypt(&keys.private_key_der, sp_key_aad(&e.id).as_bytes())?;
            (sealed, base64::engine::general_purpose::STANDARD.encode(&keys.cert_der))
        }
    };
    let certs: Vec<String> =
        md.signing_certs_der.iter().map(|d| base64::engine::general_purpose::STANDARD.encode(d)).collect();
    let config = SsoConfig {
        entity_id: e.id.clone(),
        vendor: vendor.as_str().to_string(),
        idp_metadata_xml: body.idp_metadata_xml.clone(),
        idp_entity_id: md.entity_id.clone(),
        idp_sso_redirect_url: md.sso_redirect_url.clone(),
        idp_sso_post_url: md.sso_post_url.clone(),
        idp_certs: serde_json::to_string(&certs).map_err(anyhow::Error::from)?,
        want_authn_requests_signed: i64::from(md.want_authn_requests_signed),
        email_attribute,
        enabled: i64::from(body.enabled),
        allow_idp_initiated: i64::from(body.allow_idp_initiated.unwrap_or(true)),
        jit_accounts: i64::from(body.jit_accounts.unwrap_or(false)),
        allow_sha1: i64::from(body.allow_sha1.unwrap_or(false)),
        sp_sealed_key,
        sp_cert,
        created_at: existing.as_ref().map(|c| c.created_at).unwrap_or(now),
        updated_at: now,
    };
    let mut tx = state.db.begin_write().await?;
    // The vendor's word verifies a domain; an administrator's claim keeps what was verified and
    // adds the rest unverified.
    let verified_before = store::sso::verified_domains(&mut *tx, &e.id).await?;
    store::sso::clear_domains(&mut *tx, &e.id).await?;
    for d in &domains {
        if let Some((owner, _)) = store::sso::domain_owner(&mut *tx, d).await?
            && owner != e.id
        {
            return Err(ApiError::conflict("domain_taken", format!("`{d}` is claimed by another organisation")));
        }
        let verified = admin.is_operator() || verified_before.contains(d);
        match store::sso::add_domain(&mut *tx, d, &e.id, verified).await {
            Ok(()) => {}
            Err(err) if store::is_unique_violation(&err) => {
                return Err(ApiError::conflict("domain_taken", format!("`{d}` is claimed by another organisation")));
            }
            Err(err) => return Err(err.into()),
        }
    }
    store::sso::put_config(&mut *tx, &config).await?;
    if body.enabled {
        // From now on every user of the entity signs in with the IdP: end password sessions.
        let users = store::accounts::user_ids_of_entity(&mut *tx, &e.id).await?;
        let mut revoked = 0;
        for uid in &users {
            revoked += store::tokens::revoke_families_of_user(&mut tx, uid, Some("pwd"), "SSO enabled", now).await?;
        }
        store::sessions::delete_password_sessions_of_entity(&mut *tx, &e.id).await?;
        tracing::info!(entity = %slug, revoked, "SSO enabled; password sessions revoked");
    }
    tx.commit().await?;
    Ok(Json(view(&state, &e, &config).await?))
}

pub fn sp_key_aad(entity_id: &str) -> String {
    format!("sso_configs:{entity_id}")
}
