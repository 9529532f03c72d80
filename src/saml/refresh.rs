//! IdP metadata that keeps itself current. A configuration made from a metadata URL is fetched at
//! PUT time and again every `LATCHKEY_METADATA_REFRESH`; across replicas one of them fetches per
//! period (a claim on the configuration row). Every certificate the fetched metadata lists is
//! trusted, so an IdP that publishes its next certificate beside the current one rolls over
//! without an outage. A fetch that fails, or yields metadata that does not parse or names another
//! IdP, keeps the last good configuration and is recorded (the SSO view shows it). The entity's
//! administrators are mailed 30 and 7 days before the last valid IdP certificate expires.

use base64::Engine;
use serde_json::json;

use super::{
    config, fetch, metadata,
    views::{SsoCertificateWarning, SsoConfigWarningsItem, SsoMetadataWarning},
};
use crate::{
    clock::{self, Millis},
    error::Result,
    mail::{self, Mail},
    state::AppState,
    store::{self, sso::SsoConfig},
};

/// A claim on one configuration's refresh lasts this long (longer than a fetch may take).
const CLAIM_MS: Millis = 120_000;
/// After a failed refresh, try again this soon (or at the next period, when that is sooner).
const RETRY_MS: Millis = 3_600_000;
const DAY_MS: Millis = 86_400_000;
/// Days before the last valid certificate expires when the administrators are warned.
pub const WARN_DAYS: [i64; 2] = [30, 7];

pub struct Fetched {
    pub xml: String,
    pub md: metadata::IdpMetadata,
}

/// Fetch and parse the metadata at `url`; every failure is one sentence.
pub async fn fetch_metadata(state: &AppState, url: &str, now: Millis) -> std::result::Result<Fetched, String> {
    let xml = fetch::fetch(url, state.config.insecure_metadata_urls).await?;
    let md =
        metadata::parse_idp_metadata(&xml, now).map_err(|e| format!("the document is not usable IdP metadata: {e}"))?;
    Ok(Fetched { xml, md })
}

/// The JSON list of base64 DER certificates stored with a configuration.
pub fn certs_json(md: &metadata::IdpMetadata) -> Result<String> {
    let list: Vec<String> =
        md.signing_certs_der.iter().map(|d| base64::engine::general_purpose::STANDARD.encode(d)).collect();
    Ok(serde_json::to_string(&list).map_err(anyhow::Error::from)?)
}

/// Put freshly fetched metadata into `c` (the IdP's endpoints and certificates).
pub fn apply(c: &mut SsoConfig, f: Fetched, now: Millis, period: Millis) -> Result<()> {
    c.idp_certs = certs_json(&f.md)?;
    c.idp_entity_id = f.md.entity_id;
    c.idp_sso_redirect_url = f.md.sso_redirect_url;
    c.idp_sso_post_url = f.md.sso_post_url;
    c.want_authn_requests_signed = i64::from(f.md.want_authn_requests_signed);
    c.idp_metadata_xml = f.xml;
    c.metadata_fetched_at = Some(now);
    c.metadata_error = None;
    c.metadata_error_at = None;
    c.metadata_next_fetch_at = Some(now + period);
    Ok(())
}

/// Refresh every configuration whose metadata is due (each by one replica), then warn about
/// expiring certificates. Returns how many configurations this replica fetched.
pub async fn refresh_due(state: &AppState) -> Result<usize> {
    let now = state.now();
    let mut n = 0;
    for entity_id in store::sso::due_refreshes(&state.db.pool, now).await? {
        if !store::sso::claim_refresh(&state.db.pool, &entity_id, now, now + CLAIM_MS).await? {
            continue;
        }
        refresh_one(state, &entity_id, now).await?;
        n += 1;
    }
    warn_expiring_certificates(state, now).await?;
    Ok(n)
}

async fn refresh_one(state: &AppState, entity_id: &str, now: Millis) -> Result<()> {
    let Some(c) = store::sso::config(&state.db.pool, entity_id).await? else { return Ok(()) };
    let Some(url) = c.idp_metadata_url.clone() else { return Ok(()) };
    let period = state.config.metadata_refresh.ms();
    let outcome = match fetch_metadata(state, &url, now).await {
        Ok(f) if f.md.entity_id != c.idp_entity_id => Err(format!(
            "the metadata now names the IdP `{}` instead of `{}`; PUT the configuration again to trust another IdP",
            f.md.entity_id, c.idp_entity_id
        )),
        other => other,
    };
    let f = match outcome {
        Ok(f) => f,
        Err(why) => {
            let next = now + period.min(RETRY_MS);
            let mut tx = state.db.begin_write().await?;
            store::sso::record_refresh_failure(&mut *tx, entity_id, &url, &why, now, next).await?;
            if let Some(e) = store::entities::entity_by_id(&mut *tx, entity_id).await? {
                crate::audit::Event::new("sso.metadata_refresh_failed")
                    .entity(&e.id, &e.slug)
                    .details(json!({ "url": url, "error": why }))
                    .record(&mut tx, &crate::audit::Context::system("metadata refresh"), now)
                    .await?;
            }
            tx.commit().await?;
            tracing::warn!(entity_id, error = %why, "IdP metadata refresh failed; the last good configuration stays");
            return Ok(());
        }
    };
    let mut tx = state.db.begin_write().await?;
    store::sso::lock_config(&mut *tx, entity_id).await?;
    let Some(mut cur) = store::sso::config(&mut *tx, entity_id).await? else { return Ok(()) };
    if cur.idp_metadata_url.as_deref() != Some(url.as_str()) {
        // Reconfigured while we fetched: that configuration wins.
        return Ok(());
    }
    let was_tested = config::is_tested(&cur);
    let before = cur.idp_certs.clone();
    apply(&mut cur, f, now, period)?;
    if was_tested {
        // The same IdP (same entity id) published new certificates: the test still vouches for it.
        cur.tested_hash = Some(config::idp_fingerprint(&cur));
    }
    store::sso::put_config(&mut *tx, &cur).await?;
    store::sso::release_refresh(&mut *tx, entity_id).await?;
    if let Some(e) = store::entities::entity_by_id(&mut *tx, entity_id).await? {
        let certs: Vec<String> = cert_infos(&cur.idp_certs).into_iter().map(|i| i.sha256).collect();
        crate::audit::Event::new("sso.metadata_refreshed")
            .entity(&e.id, &e.slug)
            .details(json!({ "url": url, "certificates": certs, "certificates_changed": before != cur.idp_certs }))
            .record(&mut tx, &crate::audit::Context::system("metadata refresh"), now)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(entity_id, certificates_changed = before != cur.idp_certs, "IdP metadata refreshed");
    Ok(())
}

/// A certificate as the SSO view and the warnings show it.
pub struct CertInfo {
    pub sha256: String,
    pub subject: String,
    pub not_after: Millis,
}

pub fn cert_infos(idp_certs: &str) -> Vec<CertInfo> {
    serde_json::from_str::<Vec<String>>(idp_certs)
        .unwrap_or_default()
        .iter()
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter_map(|der| openssl::x509::X509::from_der(&der).ok())
        .map(|x| CertInfo {
            sha256: x
                .digest(openssl::hash::MessageDigest::sha256())
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
                .unwrap_or_default(),
            subject: x
                .subject_name()
                .entries()
                .filter_map(|e| Some(format!("{}={}", e.object().nid().short_name().ok()?, e.data().to_string().ok()?)))
                .collect::<Vec<_>>()
                .join(", "),
            not_after: asn1_millis(x.not_after()),
        })
        .collect()
}

fn asn1_millis(t: &openssl::asn1::Asn1TimeRef) -> Millis {
    match openssl::asn1::Asn1Time::from_unix(0).and_then(|epoch| epoch.diff(t)) {
        Ok(d) => (i64::from(d.days) * 86_400 + i64::from(d.secs)) * 1000,
        Err(_) => 0,
    }
}

/// The certificate that stays valid longest.
fn last_valid(c: &SsoConfig) -> Option<CertInfo> {
    cert_infos(&c.idp_certs).into_iter().max_by_key(|i| i.not_after)
}

/// What the SSO view warns about now.
pub fn warnings(c: &SsoConfig, now: Millis) -> Vec<SsoConfigWarningsItem> {
    let mut out = Vec::new();
    if let Some(last) = last_valid(c) {
        let certificate = |code: &'static str, detail: String| {
            SsoConfigWarningsItem::Certificate(SsoCertificateWarning {
                code,
                detail,
                not_after: clock::rfc3339(last.not_after),
                sha256: last.sha256.clone(),
            })
        };
        if last.not_after <= now {
            out.push(certificate(
                "certificate_expired",
                "every signing certificate of the IdP has expired; ask the IdP administrator for new metadata".into(),
            ));
        } else if last.not_after - now <= WARN_DAYS[0] * DAY_MS {
            out.push(certificate(
                "certificate_expires_soon",
                format!(
                    "the last valid signing certificate of the IdP expires on {}; sign-ins fail after that unless the IdP \
                     publishes a new one (a metadata URL picks it up by itself; uploaded metadata must be uploaded again)",
                    clock::rfc3339(last.not_after)
                ),
            ));
        }
    }
    if let Some(e) = &c.metadata_error {
        out.push(SsoConfigWarningsItem::Metadata(SsoMetadataWarning {
            at: c.metadata_error_at.map(clock::rfc3339),
            code: "metadata_refresh_failed",
            detail: format!(
                "the last refresh of the metadata failed ({e}); the configuration fetched before stays in use"
            ),
        }));
    }
    out
}

/// Mail the administrators of every entity whose last valid IdP certificate expires within 30,
/// then 7 days: once per certificate and threshold, decided under the configuration's row lock,
/// so replicas do not send twice.
pub async fn warn_expiring_certificates(state: &AppState, now: Millis) -> Result<()> {
    for entity_id in store::sso::configured_entities(&state.db.pool).await? {
        let Some(c) = store::sso::config(&state.db.pool, &entity_id).await? else { continue };
        let Some(last) = last_valid(&c) else { continue };
        let left = last.not_after - now;
        // The smallest threshold crossed: crossing 7 days straight away sends one mail, not two.
        let Some(days) = WARN_DAYS.iter().rev().copied().find(|d| left > 0 && left <= d * DAY_MS) else { continue };
        let key = format!("{}:{days}", last.sha256);
        let sent = |c: &SsoConfig| -> Vec<String> {
            c.cert_warnings_sent.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
        };
        if sent(&c).contains(&key) {
            continue;
        }
        let mut tx = state.db.begin_write().await?;
        store::sso::lock_config(&mut *tx, &entity_id).await?;
        let Some(c) = store::sso::config(&mut *tx, &entity_id).await? else { continue };
        let mut list = sent(&c);
        if list.contains(&key) {
            continue;
        }
        for d in WARN_DAYS.iter().filter(|d| **d >= days) {
            let k = format!("{}:{d}", last.sha256);
            if !list.contains(&k) {
                list.push(k);
            }
        }
        let Some(entity) = store::entities::entity_by_id(&mut *tx, &entity_id).await? else { continue };
        let not_after = clock::rfc3339(last.not_after);
        let days_left = (left + DAY_MS - 1) / DAY_MS;
        let sso_url = state.url(&format!("/api/v1/entities/{}/sso", entity.slug));
        for (email, _) in store::entities::admins_of(&mut *tx, &entity_id).await? {
            let m = Mail::IdpCertificateExpiring {
                email: &email,
                entity: &entity.name,
                days: days_left,
                not_after: &not_after,
                sso_url: &sso_url,
            };
            mail::enqueue(&mut tx, &state.master, m, now).await?;
        }
        store::sso::set_cert_warnings(
            &mut *tx,
            &entity_id,
            &serde_json::to_string(&list).map_err(anyhow::Error::from)?,
        )
        .await?;
        tx.commit().await?;
        state.wake_mailer();
        tracing::info!(entity = %entity.slug, days_left, "administrators warned: the IdP certificate expires soon");
    }
    Ok(())
}
