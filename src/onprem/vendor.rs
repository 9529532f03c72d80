//! The vendor's side of on-premise servers: the published license keys, exporting a floating
//! license to a server (an entitlement bound to that server's key), and reading back the server's
//! usage and return files. While a license is exported, its online checkouts are refused.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    EntitlementClaims, MAX_FILE_LIFE_MS, ReturnClaims, UsageClaims, file_error,
    jws::{self, PublicKeys},
    secs, views,
};
use crate::{
    auth::Admin,
    clock,
    error::{ApiError, ApiJson, ApiPath, Result},
    state::AppState,
    store::{self, onprem::Export},
    tokens::license_keys,
};

#[utoipa::path(
    get,
    path = "/.well-known/latchkey-license-keys.json",
    operation_id = "licenseKeys",
    tag = "private networks",
    summary = "The license signing keys (JWKS)",
    description = "Ed25519 keys that sign entitlements and offline license files; a superseded key stays while anything it signed is valid.",
    responses(
        (status = 200, description = "a JWKS document", body = crate::oauth::views::JWKS),
    ),
)]
/// `GET /.well-known/latchkey-license-keys.json`: the license signing keys as a JWKS.
pub async fn license_jwks(State(state): State<AppState>) -> Result<Response> {
    let v = license_keys::jwks(&state.db, state.now()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        v.to_string(),
    )
        .into_response())
}

/// A server's fingerprint as `latchkey onprem fingerprint` prints it.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    pub server_id: String,
    pub host: String,
    pub key: Value,
    pub thumbprint: String,
}

pub fn parse_fingerprint(text: &str) -> Result<Fingerprint> {
    let bad = |why: &str| ApiError::unprocessable("invalid_fingerprint", format!("not a server fingerprint: {why}"));
    let v = jws::decode_b64_json(text)
        .ok_or_else(|| bad("expected the base64 text `latchkey onprem fingerprint` prints"))?;
    let printable = |s: &str, max: usize| !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control);
    let server_id = v["server_id"].as_str().filter(|s| printable(s, 64)).ok_or_else(|| bad("no server_id"))?;
    let host = v["host"].as_str().filter(|s| printable(s, 255)).ok_or_else(|| bad("no host"))?;
    PublicKeys::from_jwk(&v["key"]).ok_or_else(|| bad("no Ed25519 public key"))?;
    let x = v["key"]["x"].as_str().ok_or_else(|| bad("no key"))?;
    Ok(Fingerprint {
        server_id: server_id.to_string(),
        host: host.to_string(),
        key: json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
        thumbprint: jws::thumbprint(x),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OnPremExport)]
pub struct ExportBody {
    /// what `latchkey onprem fingerprint` printed on the server
    fingerprint: String,
}

problems!(ExportOnPremiseProblems [admin]:
    404 not_found,
    403 onprem_not_allowed,
    409 license_on_premise,
    410 license_expired,
    422 invalid_fingerprint,
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/onprem",
    operation_id = "exportOnPremise",
    tag = "private networks",
    summary = "Move a floating license to an on-premise server",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = ExportBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the entitlement file for that server", body = crate::onprem::views::OnPremEntitlement),
        ExportOnPremiseProblems,
    ),
)]
/// `POST /api/v1/licenses/{id}/onprem`: move a floating license to an on-premise server.
#[tracing::instrument(skip_all)]
pub async fn export_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ExportBody>,
) -> Result<Json<views::OnPremEntitlement>> {
    let license = admin.license(&state, &id).await?;
    let now = state.now();
    if super::server::on_premise_mode(&state) {
        return Err(ApiError::forbidden(
            "onprem_not_allowed",
            "an on-premise server serves its licenses itself; entitlements come from the vendor",
        ));
    }
    if license.is_fixed() || license.onprem_allowed == 0 {
        return Err(ApiError::forbidden(
            "onprem_not_allowed",
            "this license may not move to an on-premise server; the vendor decides (`onprem_allowed`, floating licenses)",
        ));
    }
    if license.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::gone("license_expired", "the license has expired"));
    }
    let fp = parse_fingerprint(&body.fingerprint)?;
    if let Some(x) = store::onprem::active_export(&state.db.pool, &license.id, now).await? {
        return Err(already_on_premise(&x));
    }
    let exp = license.expires_at.unwrap_or(i64::MAX).min(now + MAX_FILE_LIFE_MS);
    let claims = EntitlementClaims {
        iss: state.issuer().to_string(),
        license_id: license.id.clone(),
        entity: license.entity_slug.clone(),
        entity_name: store::entities::entity_by_id(&state.db.pool, &license.entity_id)
            .await?
            .map(|e| e.name)
            .unwrap_or_default(),
        product: license.product_sku.clone(),
        product_name: license.product_name.clone(),
        seats: license.seats,
        server: fp.thumbprint.clone(),
        iat: secs(now),
        exp: secs(exp),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    // Signed before the transaction: signing records the key's use, and SQLite has one writer.
    let token = license_keys::sign(&state.db, &state.master, jws::ENTITLEMENT_TYP, &claims, exp).await?;
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, &license.id).await?;
    if let Some(x) = store::onprem::active_export(&mut *tx, &license.id, now).await? {
        return Err(already_on_premise(&x));
    }
    store::onprem::insert_export(
        &mut *tx,
        &Export {
            entitlement_jti: claims.jti.clone(),
            license_id: license.id.clone(),
            server_id: fp.server_id.clone(),
            server_host: fp.host.clone(),
            server_key: fp.key.to_string(),
            server_thumb: fp.thumbprint.clone(),
            seats: license.seats,
            issued_at: now,
            expires_at: exp,
            returned_at: None,
        },
    )
    .await?;
    // Seats held online end now: from here the license's seats are the on-premise server's.
    // Checkouts in flight hold a slot each: wait for them, and keep new ones off the slots.
    store::onprem::lock_slots(&mut tx, state.db.backend, &license.id).await?;
    let ended = store::onprem::end_live_leases(&mut *tx, &license.id, "on_premise", now).await?;
    crate::audit::Event::new("onprem.exported")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(&license))
        .target(crate::audit::Target::new("onprem_server", &fp.server_id, Some(&fp.host)))
        .details(json!({ "entitlement_id": claims.jti, "seats": license.seats, "seats_ended": ended,
                         "expires_at": clock::rfc3339(exp) }))
        .record(&mut tx, &ctx.by_admin(&admin), now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license.id, server = %fp.server_id, seats = license.seats, ended, "license exported on-premise");
    Ok(Json(views::OnPremEntitlement {
        entitlement: token,
        expires_at: clock::rfc3339(exp),
        license_id: license.id,
        seats: license.seats,
        server: fp.thumbprint,
        server_id: fp.server_id,
    }))
}

fn already_on_premise(x: &Export) -> ApiError {
    ApiError::conflict(
        "license_on_premise",
        format!(
            "the license is on the on-premise server `{}` until it is returned or {}",
            x.server_host,
            clock::rfc3339(x.expires_at)
        ),
    )
}

/// Which export of the license signed `token` (a file of type `typ` from an on-premise server):
/// the file must verify with that server's key.
fn signer_of<T: serde::de::DeserializeOwned>(
    exports: &[Export],
    token: &str,
    typ: &str,
    what: &str,
) -> Result<(Export, T)> {
    let mut err = jws::FileError::UnknownKey;
    for x in exports {
        let Some(keys) = serde_json::from_str::<Value>(&x.server_key).ok().as_ref().and_then(PublicKeys::from_jwk)
        else {
            continue;
        };
        match jws::verify::<T>(token, typ, &keys) {
            Ok(c) => return Ok((x.clone(), c)),
            Err(e @ (jws::FileError::Malformed | jws::FileError::WrongType)) => return Err(file_error(what, e)),
            Err(e) => err = e,
        }
    }
    if exports.is_empty() {
        return Err(ApiError::conflict("not_on_premise", "this license was never moved to an on-premise server"));
    }
    Err(file_error(what, err))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OnPremUsage)]
pub struct UsageBody {
    /// what `latchkey onprem usage` wrote
    usage: String,
}

problems!(ImportOnPremiseUsageProblems:
    401 unauthorized,
    404 not_found,
    409 not_on_premise,
    422 invalid_file,
    422 invalid_signature,
    422 wrong_server,
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/onprem/usage",
    operation_id = "importOnPremiseUsage",
    tag = "private networks",
    summary = "Import an on-premise server's usage file",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = UsageBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the days imported", body = crate::onprem::views::OnPremUsageImported),
        ImportOnPremiseUsageProblems,
    ),
)]
/// `POST /api/v1/licenses/{id}/onprem/usage`: import a server's usage file into the license's
/// usage report (a day reported again replaces the earlier figures).
#[tracing::instrument(skip_all)]
pub async fn usage_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UsageBody>,
) -> Result<Json<views::OnPremUsageImported>> {
    let license = admin.license(&state, &id).await?;
    let ctx = ctx.by_admin(&admin);
    let result = import_usage(&state, &license, &body.usage, &ctx).await;
    refused_file(&state, &license, "usage", &result, &ctx).await;
    result
}

/// Record a refused usage or return file on the license's entity chain, with the reason's code.
async fn refused_file<T>(
    state: &AppState,
    license: &crate::store::licenses::License,
    file: &str,
    result: &Result<Json<T>>,
    ctx: &crate::audit::Context,
) {
    let Err(e) = result else { return };
    if matches!(e, ApiError::Internal(_)) {
        return;
    }
    let event = crate::audit::Event::new("onprem.file_refused")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(license))
        .details(json!({ "file": file, "code": e.code() }));
    if let Err(err) = event.record_alone(state, ctx, state.now()).await {
        tracing::error!(error = %err, "the refused file could not be recorded in the audit log");
    }
}

async fn import_usage(
    state: &AppState,
    license: &crate::store::licenses::License,
    usage: &str,
    ctx: &crate::audit::Context,
) -> Result<Json<views::OnPremUsageImported>> {
    let exports = store::onprem::exports_of(&state.db.pool, &license.id).await?;
    let (export, claims) = signer_of::<UsageClaims>(&exports, usage, jws::USAGE_TYP, "a usage file")?;
    if claims.server != export.server_thumb {
        return Err(ApiError::unprocessable("wrong_server", "the usage file names another server than signed it"));
    }
    let entry =
        claims.licenses.iter().find(|l| l.license_id == license.id).ok_or_else(|| {
            ApiError::unprocessable("invalid_file", "the usage file holds nothing about this license")
        })?;
    let mut days = Vec::new();
    for d in &entry.days {
        let date = time::Date::parse(&d.date, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| ApiError::unprocessable("invalid_file", "a day of the usage file is not YYYY-MM-DD"))?;
        let sane = (0..=export.seats).contains(&d.peak_seats)
            && (0..=100_000_000).contains(&d.denials)
            && (0..=100_000_000).contains(&d.distinct_users);
        if !sane {
            return Err(ApiError::unprocessable(
                "invalid_file",
                format!("the usage of {} is out of range (peak above the {} seats, or negative)", d.date, export.seats),
            ));
        }
        days.push(store::onprem::UsageDay {
            license_id: license.id.clone(),
            day: date.to_string(),
            peak_seats: d.peak_seats,
            denials: d.denials,
            distinct_users: d.distinct_users,
        });
    }
    if days.len() > 400 {
        return Err(ApiError::unprocessable("invalid_file", "a usage file covers at most 400 days"));
    }
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    for d in &days {
        store::onprem::upsert_usage(&mut *tx, d, now).await?;
    }
    crate::audit::Event::new("onprem.usage_imported")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(license))
        .target(crate::audit::Target::new("onprem_server", &export.server_id, Some(&export.server_host)))
        .details(json!({ "file_id": claims.jti, "from": claims.from, "to": claims.to, "days": days.len() }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license.id, days = days.len(), "on-premise usage imported");
    Ok(Json(views::OnPremUsageImported {
        days: days.len() as u64,
        from: claims.from,
        license_id: license.id.clone(),
        to: claims.to,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OnPremReturn)]
pub struct ReturnBody {
    /// what `latchkey onprem return` wrote
    #[serde(rename = "return")]
    file: String,
}

problems!(ReturnOnPremiseProblems:
    401 unauthorized,
    404 not_found,
    409 return_used,
    409 not_on_premise,
    422 invalid_file "not a return file, or for an entitlement never issued",
    422 invalid_signature,
    422 wrong_server "the file is for another server or license",
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/onprem/return",
    operation_id = "returnOnPremise",
    tag = "private networks",
    summary = "Take a license back from an on-premise server (a return file works once)",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = ReturnBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the license is online again", body = crate::onprem::views::OnPremReturned),
        ReturnOnPremiseProblems,
    ),
)]
/// `POST /api/v1/licenses/{id}/onprem/return`: the server gave the license back; it is available
/// online again. A return file works once.
#[tracing::instrument(skip_all)]
pub async fn return_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<Json<views::OnPremReturned>> {
    let license = admin.license(&state, &id).await?;
    let ctx = ctx.by_admin(&admin);
    let result = take_return(&state, &license, &body.file, &ctx).await;
    refused_file(&state, &license, "return", &result, &ctx).await;
    result
}

async fn take_return(
    state: &AppState,
    license: &crate::store::licenses::License,
    file: &str,
    ctx: &crate::audit::Context,
) -> Result<Json<views::OnPremReturned>> {
    let exports = store::onprem::exports_of(&state.db.pool, &license.id).await?;
    let (export, claims) = signer_of::<ReturnClaims>(&exports, file, jws::RETURN_TYP, "a return file")?;
    if claims.server != export.server_thumb || claims.license_id != license.id {
        return Err(ApiError::unprocessable("wrong_server", "the return file is for another server or license"));
    }
    // The file must give back an entitlement this server held.
    let Some(target) =
        exports.iter().find(|x| x.entitlement_jti == claims.entitlement && x.server_thumb == claims.server)
    else {
        return Err(ApiError::unprocessable("invalid_file", "the return file names an entitlement we never issued"));
    };
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, &license.id).await?;
    if !store::onprem::return_export(&mut *tx, &target.entitlement_jti, &claims.jti, now).await? {
        return Err(ApiError::conflict(
            "return_used",
            "this license was already returned with this entitlement; a return file works once",
        ));
    }
    crate::audit::Event::new("onprem.returned")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(license))
        .target(crate::audit::Target::new("onprem_server", &target.server_id, Some(&target.server_host)))
        .details(json!({ "entitlement_id": target.entitlement_jti }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license.id, server = %target.server_id, "on-premise license returned");
    Ok(Json(views::OnPremReturned {
        license_id: license.id.clone(),
        returned_at: clock::rfc3339(now),
        status: "online",
    }))
}

/// Add the days an on-premise server reported to the usage report's rows of the same license and
/// day (while a license is on-premise, its online figures are zero).
pub fn merge_usage(rows: &mut [crate::licenses::reports::Row], reported: &[store::onprem::UsageDay]) {
    for u in reported {
        if let Some(r) = rows.iter_mut().find(|r| r.license_id == u.license_id && r.date.to_string() == u.day) {
            r.peak_concurrent += u.peak_seats;
            r.denials += u.denials;
            r.distinct_users += u.distinct_users;
        }
    }
}
