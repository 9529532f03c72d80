//! The on-premise server's side: its own key pair (made on first use, sealed with the master key),
//! the fingerprint the vendor binds entitlements to, importing entitlements, the seat limit, and
//! the signed usage and return files it hands back.
//!
//! Tamper resistance: the seat limit of a license here is read from the stored entitlement text,
//! verified with the vendor's public key every time it is used (a cache keyed by the text's hash
//! saves the signature check, never the comparison), and never from `licenses.seats`. A changed
//! row, a file for another server or an expired one grants no seat; each is logged.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{EntitlementClaims, ReturnClaims, UsageClaims, UsageDay, UsageLicense, file_error, jws, secs, views};
use crate::{
    audit,
    auth::Operator,
    clock::{self, Millis},
    config::Config,
    crypto::{MasterKey, b64url},
    error::{ApiError, ApiJson, Result},
    state::AppState,
    store::{self, Db, Tx, onprem::ServerKey},
};

/// What an on-premise server keeps in memory: the vendor's keys, its own identity, and the
/// entitlements it verified (by the SHA-256 of their text).
pub struct Local {
    pub vendor_keys: jws::PublicKeys,
    pub server_id: String,
    pub thumbprint: String,
    verified: Mutex<HashMap<String, Arc<EntitlementClaims>>>,
    /// Stored entitlements found failing verification, recorded in the audit log once each.
    reported: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("server_id", &self.server_id).field("thumbprint", &self.thumbprint).finish()
    }
}

impl Local {
    /// An on-premise server when `LATCHKEY_LICENSE_PUBLIC_KEY_FILE` is set; `None` for the vendor.
    pub async fn load(config: &Config, db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<Option<Local>> {
        let Some(path) = &config.license_public_key_file else { return Ok(None) };
        let vendor_keys = jws::PublicKeys::from_file(path)?;
        let me = identity(db, master, now).await?;
        tracing::info!(server_id = %me.id, thumbprint = %me.thumbprint, "on-premise license server");
        Ok(Some(Local {
            vendor_keys,
            server_id: me.id,
            thumbprint: me.thumbprint,
            verified: Mutex::new(HashMap::new()),
            reported: Mutex::new(std::collections::HashSet::new()),
        }))
    }

    /// Whether `jti` is reported for the first time (then the caller records it).
    fn first_report(&self, jti: &str) -> bool {
        let mut m = match self.reported.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.len() < 4096 && m.insert(jti.to_string())
    }

    /// The claims of a stored entitlement, when its signature verifies with the vendor's key.
    fn verify(&self, token: &str) -> Option<Arc<EntitlementClaims>> {
        let key = b64url(&openssl::sha::sha256(token.as_bytes()));
        let cached = match self.verified.lock() {
            Ok(m) => m.get(&key).cloned(),
            Err(p) => p.into_inner().get(&key).cloned(),
        };
        if cached.is_some() {
            return cached;
        }
        let claims = Arc::new(jws::verify::<EntitlementClaims>(token, jws::ENTITLEMENT_TYP, &self.vendor_keys).ok()?);
        let mut m = match self.verified.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.len() > 4096 {
            m.clear();
        }
        m.insert(key, claims.clone());
        Some(claims)
    }
}

pub fn on_premise_mode(state: &AppState) -> bool {
    state.onprem.is_some()
}

/// The server's own key and names.
pub struct Identity {
    pub id: String,
    pub der: Vec<u8>,
    pub jwk: Value,
    pub thumbprint: String,
}

fn aad(id: &str) -> String {
    format!("onprem_server_key:{id}")
}

/// The server's key pair, made on first use.
pub async fn identity(db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<Identity> {
    if store::onprem::server_key(&db.pool).await?.is_none() {
        let (der, jwk) = jws::generate()?;
        let id = uuid::Uuid::new_v4().to_string();
        let x = jwk["x"].as_str().unwrap_or_default().to_string();
        store::onprem::insert_server_key(
            &db.pool,
            &ServerKey {
                sealed_private: master.encrypt(&der, aad(&id).as_bytes())?,
                id,
                public_jwk: jwk.to_string(),
                thumbprint: jws::thumbprint(&x),
                created_at: now,
            },
        )
        .await?;
    }
    let row = store::onprem::server_key(&db.pool).await?.ok_or_else(|| anyhow::anyhow!("server key vanished"))?;
    let der = master.decrypt(&row.sealed_private, aad(&row.id).as_bytes())?;
    let jwk: Value = serde_json::from_str(&row.public_jwk)?;
    anyhow::ensure!(
        jwk["x"].as_str().map(jws::thumbprint).as_deref() == Some(row.thumbprint.as_str()),
        "the stored server key does not match its thumbprint"
    );
    Ok(Identity { id: row.id, der, jwk, thumbprint: row.thumbprint })
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `latchkey onprem fingerprint`: base64 JSON of the server's public key, id and host name.
pub async fn fingerprint(db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<String> {
    let me = identity(db, master, now).await?;
    Ok(jws::encode_b64_json(&json!({ "server_id": me.id, "host": host_name(), "key": me.jwk })))
}

/// How many seats a license may give out, decided under its row lock at each checkout.
pub enum SeatRule {
    /// The vendor's service: as sold (`licenses.seats`, fixed or floating).
    AsSold,
    /// An on-premise server: what the verified entitlement says (always a floating pool).
    Entitled { seats: i64 },
    /// No seat from this license, for this reason.
    Refused(ApiError),
}

/// The answer to a checkout of a license exported to the on-premise server on `host`.
pub fn served_on_premise(host: &str) -> ApiError {
    ApiError::conflict(
        "license_on_premise",
        format!("this license is served by your on-premise license server (`{host}`); use that server"),
    )
}

/// The checkout hook: on the vendor's service, a license moved on-premise gives no seat; on an
/// on-premise server, only a verified entitlement in force does.
pub async fn seat_rule(state: &AppState, tx: &mut Tx, license_id: &str, now: Millis) -> Result<SeatRule> {
    let Some(local) = &state.onprem else {
        return Ok(match store::onprem::active_export(&mut **tx, license_id, now).await? {
            Some(x) => SeatRule::Refused(served_on_premise(&x.server_host)),
            None => SeatRule::AsSold,
        });
    };
    // On-premise checkouts of a license queue on its row: the count of live leases against the
    // entitlement is then exact (slot rows are the customer's to edit; the count is not).
    store::licenses::lock_license(&mut **tx, license_id).await?;
    let rows = store::onprem::active_entitlements(&mut **tx, license_id).await?;
    let mut best: Option<Arc<EntitlementClaims>> = None;
    let mut expired = false;
    for row in rows {
        let Some(c) = local.verify(&row.token) else {
            tracing::warn!(license = %license_id, entitlement = %row.jti, "stored entitlement fails verification (changed in the database?); ignored");
            report_ignored(state, local, license_id, &row.jti, "invalid_signature");
            continue;
        };
        if c.license_id != license_id || c.server != local.thumbprint || c.jti != row.jti {
            tracing::warn!(license = %license_id, entitlement = %row.jti, "stored entitlement is for another license or server; ignored");
            report_ignored(state, local, license_id, &row.jti, "wrong_license_or_server");
            continue;
        }
        if c.exp.saturating_mul(1000) <= now {
            expired = true;
            continue;
        }
        if best.as_ref().is_none_or(|b| c.iat > b.iat) {
            best = Some(c);
        }
    }
    Ok(match best {
        Some(c) => SeatRule::Entitled { seats: c.seats },
        None if expired => SeatRule::Refused(ApiError::gone(
            "license_expired",
            "the entitlement of this license has expired; import a new one from the vendor",
        )),
        None => SeatRule::Refused(ApiError::forbidden(
            "not_entitled",
            "this server holds no valid entitlement for the license; import one from the vendor",
        )),
    })
}

/// Record, once per entitlement and process, that a stored entitlement was ignored because it no
/// longer verifies (its row was edited). In its own transaction, after the checkout's: the
/// checkout holds the writer on SQLite.
fn report_ignored(state: &AppState, local: &Local, license_id: &str, jti: &str, code: &'static str) {
    if !local.first_report(jti) {
        return;
    }
    let event = audit::Event::new("onprem.entitlement_ignored")
        .entity_of_license(license_id)
        .target(audit::Target::new("license", license_id, None))
        .details(json!({ "entitlement_id": jti, "code": code }));
    let state = state.clone();
    tokio::spawn(async move {
        let ctx = audit::Context::system("on-premise entitlement check");
        if let Err(e) = event.record_alone(&state, &ctx, state.now()).await {
            tracing::error!(error = %e, "the ignored entitlement could not be recorded in the audit log");
        }
    });
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub claims: EntitlementClaims,
    pub created_license: bool,
}

/// Verify an entitlement for this server and take it into use: the entity, product and license
/// are created when missing (same slug, SKU and license id as at the vendor). The import is
/// recorded in the audit log with the change; a refused file is recorded too (on the operator
/// chain: nothing in it is trusted), with the reason's code.
pub async fn import(
    db: &Db,
    master: &MasterKey,
    vendor_keys: &jws::PublicKeys,
    token: &str,
    ctx: &audit::Context,
    now: Millis,
) -> Result<Imported> {
    let token = token.trim();
    let claims: EntitlementClaims = match jws::verify(token, jws::ENTITLEMENT_TYP, vendor_keys) {
        Ok(c) => c,
        Err(e) => {
            let e = file_error("an entitlement", e);
            refused(db, ctx, &e, None, now).await;
            return Err(e);
        }
    };
    match import_verified(db, master, token, &claims, ctx, now).await {
        Ok(created_license) => Ok(Imported { claims, created_license }),
        Err(e) => {
            refused(db, ctx, &e, Some(&claims), now).await;
            Err(e)
        }
    }
}

/// Record a refused entitlement. Best effort: the refusal stands even when the log cannot be
/// written (the reason is in the server's log line then).
async fn refused(db: &Db, ctx: &audit::Context, e: &ApiError, claims: Option<&EntitlementClaims>, now: Millis) {
    if matches!(e, ApiError::Internal(_)) {
        return;
    }
    let mut event = audit::Event::new("onprem.entitlement_refused");
    let mut details = json!({ "code": e.code() });
    if let Some(c) = claims {
        event = event.target(audit::Target::new("license", &c.license_id, None));
        details["entitlement_id"] = json!(c.jti);
        details["entity"] = json!(c.entity);
        details["seats"] = json!(c.seats);
    }
    tracing::warn!(code = e.code(), "entitlement refused");
    let result = async {
        let mut tx = db.begin_write().await?;
        event.details(details).record(&mut tx, ctx, now).await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "the refused entitlement could not be recorded in the audit log");
    }
}

async fn import_verified(
    db: &Db,
    master: &MasterKey,
    token: &str,
    claims: &EntitlementClaims,
    ctx: &audit::Context,
    now: Millis,
) -> Result<bool> {
    // The entity's slug follows the rules of any new entity whether or not it exists here, and is
    // checked before anything is looked up by it: `latchkey-operators` exists on a server whose
    // operators have accounts, and an entitlement naming it would put a license into their entity.
    crate::licenses::check_slug(&claims.entity)?;
    let me = identity(db, master, now).await?;
    if claims.server != me.thumbprint {
        return Err(ApiError::unprocessable(
            "wrong_server",
            format!(
                "this entitlement is bound to another server (key {}), not this one ({}); ask the vendor for one made from this server's fingerprint",
                claims.server, me.thumbprint
            ),
        ));
    }
    if claims.exp.saturating_mul(1000) <= now {
        return Err(ApiError::unprocessable(
            "entitlement_expired",
            format!("this entitlement expired at {}; ask the vendor for a new one", clock::rfc3339(claims.exp * 1000)),
        ));
    }
    if !(1..=1_000_000).contains(&claims.seats) || claims.license_id.len() > 64 || claims.jti.len() > 64 {
        return Err(ApiError::unprocessable("invalid_file", "the entitlement's content is out of range"));
    }
    if store::onprem::entitlement_exists(&db.pool, &claims.jti).await? {
        return Err(already_imported());
    }
    let mut tx = db.begin_write().await?;
    let entity = match store::entities::entity_by_slug(&mut *tx, &claims.entity).await? {
        Some(e) => e,
        None => {
            let e = store::entities::Entity {
                id: store::new_id(),
                slug: claims.entity.clone(),
                name: if claims.entity_name.trim().is_empty() {
                    claims.entity.clone()
                } else {
                    claims.entity_name.clone()
                },
                created_at: now,
            };
            store::entities::insert_entity(&mut *tx, &e).await?;
            e
        }
    };
    let product = match store::entities::product_by_sku(&mut *tx, &claims.product).await? {
        Some(p) => p,
        None => {
            let p = store::entities::Product {
                id: store::new_id(),
                sku: claims.product.clone(),
                name: if claims.product_name.trim().is_empty() {
                    claims.product.clone()
                } else {
                    claims.product_name.clone()
                },
                created_at: now,
            };
            store::entities::insert_product(&mut *tx, &p).await?;
            p
        }
    };
    let exp_ms = claims.exp.saturating_mul(1000);
    let created_license = match store::licenses::license_by_id(&mut *tx, &claims.license_id).await? {
        Some(l) => {
            if l.entity_id != entity.id || l.product_id != product.id {
                return Err(ApiError::conflict(
                    "license_mismatch",
                    "a license with this id exists here for another entity or product",
                ));
            }
            store::licenses::lock_license(&mut *tx, &l.id).await?;
            let before = store::licenses::license_by_id(&mut *tx, &l.id).await?.map_or(l.seats, |l| l.seats);
            store::slots::resize(&mut tx, db.backend, &l.id, before, claims.seats, now).await?;
            false
        }
        None => {
            store::licenses::insert_license(
                &mut *tx,
                &store::licenses::NewLicense {
                    id: &claims.license_id,
                    entity_id: &entity.id,
                    product_id: &product.id,
                    kind: "floating",
                    seats: claims.seats,
                    expires_at: Some(exp_ms),
                    group_id: None,
                    idle_timeout_s: None,
                    now,
                },
            )
            .await?;
            store::slots::add(&mut tx, &claims.license_id, claims.seats).await?;
            true
        }
    };
    // For display only: checkouts read the seats from the verified entitlement.
    store::licenses::set_seats(&mut *tx, &claims.license_id, claims.seats).await?;
    store::licenses::set_expiry(&mut *tx, &claims.license_id, Some(exp_ms)).await?;
    // A newer entitlement of the same license replaces the one in force.
    store::onprem::remove_entitlements_of(&mut *tx, &claims.license_id, now).await?;
    let row = store::onprem::Entitlement {
        jti: claims.jti.clone(),
        license_id: claims.license_id.clone(),
        token: token.to_string(),
        imported_at: now,
        expires_at: exp_ms,
        removed_at: None,
    };
    if let Err(e) = store::onprem::insert_entitlement(&mut *tx, &row).await {
        return Err(if store::is_unique_violation(&e) { already_imported() } else { e.into() });
    }
    audit::Event::new("onprem.entitlement_imported")
        .entity(&entity.id, &entity.slug)
        .target(audit::Target::new("license", &claims.license_id, None))
        .details(json!({
            "entitlement_id": claims.jti,
            "product": claims.product,
            "seats": claims.seats,
            "expires_at": clock::rfc3339(exp_ms),
            "created_license": created_license,
        }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %claims.license_id, entity = %claims.entity, product = %claims.product, seats = claims.seats, "entitlement imported");
    Ok(created_license)
}

fn already_imported() -> ApiError {
    ApiError::conflict("already_imported", "this entitlement was imported here before; a file is imported once")
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EntitlementImport)]
pub struct ImportBody {
    entitlement: String,
}

problems!(ImportEntitlementProblems:
    401 unauthorized,
    404 not_found,
    409 already_imported,
    409 not_on_premise_server,
    409 license_mismatch,
    422 invalid_file "not an entitlement",
    422 invalid_slug "names an entity whose slug is invalid or reserved (`latchkey-operators`)",
    422 invalid_signature "not signed by the vendor's license key, or changed",
    422 wrong_server "bound to another server",
    422 entitlement_expired,
);
#[utoipa::path(
    post,
    path = "/api/v1/onprem/entitlements",
    operation_id = "importEntitlement",
    tag = "private networks",
    summary = "Import an entitlement (on an on-premise server)",
    request_body(content = ImportBody),
    security(("operatorKey" = [])),
    responses(
        (status = 201, description = "the license is served here", body = crate::onprem::views::EntitlementImported),
        ImportEntitlementProblems,
    ),
)]
/// `POST /api/v1/onprem/entitlements` (operator key of the on-premise server).
#[tracing::instrument(skip_all)]
pub async fn import_json(
    State(state): State<AppState>,
    op: Operator,
    ctx: audit::Context,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<views::EntitlementImported>)> {
    let Some(local) = &state.onprem else {
        return Err(ApiError::conflict(
            "not_on_premise_server",
            "this is not an on-premise server (set LATCHKEY_LICENSE_PUBLIC_KEY_FILE to the vendor's license key)",
        ));
    };
    let ctx = ctx.by(audit::Actor::operator(&op));
    let imported = import(&state.db, &state.master, &local.vendor_keys, &body.entitlement, &ctx, state.now()).await?;
    let c = imported.claims;
    Ok((
        StatusCode::CREATED,
        Json(views::EntitlementImported {
            created_license: imported.created_license,
            entity: c.entity,
            expires_at: clock::rfc3339(c.exp * 1000),
            license_id: c.license_id,
            product: c.product,
            seats: c.seats,
        }),
    ))
}

/// `latchkey onprem usage`: per license and UTC day, peak seats, denials and distinct users (a
/// count; on an "everyone" server, of machines), signed with the server's key.
pub async fn usage_file(
    db: &Db,
    master: &MasterKey,
    from: time::Date,
    to: time::Date,
    ctx: &audit::Context,
    now: Millis,
) -> anyhow::Result<String> {
    anyhow::ensure!(from <= to, "--from is after --to");
    anyhow::ensure!((to - from).whole_days() < 400, "a usage file covers at most 400 days");
    let me = identity(db, master, now).await?;
    let (start, end) = (clock::day_start(from), clock::day_start(to) + 86_400_000);
    let mut licenses = Vec::new();
    for id in store::onprem::entitled_license_ids(&db.pool).await? {
        if let Some(l) = store::licenses::license_by_id(&db.pool, &id).await? {
            licenses.push(l);
        }
    }
    let intervals: Vec<store::leases::Interval> = store::onprem::usage_intervals(&db.pool, start, end)
        .await?
        .into_iter()
        .map(|(license_id, user_id, start, end)| store::leases::Interval { license_id, user_id, start, end })
        .collect();
    let denials = store::onprem::usage_denials(&db.pool, start, end).await?;
    let rows = crate::licenses::reports::compute(&licenses, &intervals, &denials, from, to, chrono_tz::Tz::UTC, now);
    let out: Vec<UsageLicense> = licenses
        .iter()
        .map(|l| UsageLicense {
            license_id: l.id.clone(),
            days: rows
                .iter()
                .filter(|r| r.license_id == l.id)
                .map(|r| UsageDay {
                    date: r.date.to_string(),
                    peak_seats: r.peak_concurrent,
                    denials: r.denials,
                    distinct_users: r.distinct_users,
                })
                .collect(),
        })
        .collect();
    let claims = UsageClaims {
        server: me.thumbprint.clone(),
        from: from.to_string(),
        to: to.to_string(),
        licenses: out,
        iat: secs(now),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let file = jws::sign(&me.der, &me.thumbprint, jws::USAGE_TYP, &claims)?;
    // What left the customer's network, on each license's entity chain.
    let mut tx = db.begin_write().await?;
    for l in &claims.licenses {
        audit::Event::new("onprem.usage_exported")
            .entity_of_license(&l.license_id)
            .target(audit::Target::new("license", &l.license_id, None))
            .details(json!({ "file_id": claims.jti, "from": claims.from, "to": claims.to, "days": l.days.len() }))
            .record(&mut tx, ctx, now)
            .await?;
    }
    tx.commit().await?;
    Ok(file)
}

/// `latchkey onprem return`: stop serving the license here, remove its entitlement and give the
/// vendor a return file signed with the server's key.
pub async fn return_file(
    db: &Db,
    master: &MasterKey,
    license_id: &str,
    ctx: &audit::Context,
    now: Millis,
) -> Result<String> {
    let me = identity(db, master, now).await?;
    let active = store::onprem::active_entitlements(&db.pool, license_id).await?;
    let Some(newest) = active.first() else {
        return Err(ApiError::conflict(
            "not_on_premise",
            format!("no entitlement of license {license_id} is in force on this server"),
        ));
    };
    let claims = ReturnClaims {
        server: me.thumbprint.clone(),
        license_id: license_id.to_string(),
        entitlement: newest.jti.clone(),
        iat: secs(now),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    // Signed first: the entitlement is removed only when its return file exists.
    let file = jws::sign(&me.der, &me.thumbprint, jws::RETURN_TYP, &claims)?;
    let mut tx = db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, license_id).await?;
    if store::onprem::remove_entitlements_of(&mut *tx, license_id, now).await? == 0 {
        return Err(ApiError::conflict("not_on_premise", "the entitlement was returned meanwhile"));
    }
    let ended = store::onprem::end_live_leases(&mut *tx, license_id, "returned", now).await?;
    audit::Event::new("onprem.return_file_created")
        .entity_of_license(license_id)
        .target(audit::Target::new("license", license_id, None))
        .details(json!({ "file_id": claims.jti, "entitlement_id": newest.jti, "seats_ended": ended }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license_id, ended, "license returned to the vendor");
    Ok(file)
}
