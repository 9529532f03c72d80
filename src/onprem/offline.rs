//! Offline fixed-user licenses (the vendor's side). A product on a computer without any route to
//! a server asks for an activation (`latchkey product offline-request`); an administrator turns
//! it into a license file signed with the license key, bound to that computer's fingerprint. The
//! file's seat is a lease that lives until the file expires or comes back with its deactivation
//! code, so seat counts, the seat list and usage reports see it like any other seat.

use axum::{Json, extract::State};
use serde::Deserialize;
use serde_json::json;

use super::{MAX_FILE_LIFE_MS, OfflineClaims, jws, secs, views};
use crate::{
    accounts,
    auth::Admin,
    clock::{self, Millis},
    error::{ApiError, ApiJson, ApiPath, Result},
    state::AppState,
    store::{self, leases::Lease, onprem::OfflineLicense},
    tokens::license_keys,
};

/// An activation request as `latchkey product offline-request` prints it.
#[derive(Debug, Clone)]
pub struct Request {
    pub fingerprint: String,
    pub user: String,
    pub product: String,
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

pub fn parse_request(text: &str) -> Result<Request> {
    let bad = |why: &str| ApiError::unprocessable("invalid_request_file", format!("not an activation request: {why}"));
    let v = jws::decode_b64_json(text)
        .ok_or_else(|| bad("expected the base64 text `latchkey product offline-request` prints"))?;
    let fingerprint = v["fingerprint"].as_str().filter(|s| printable(s, 128)).ok_or_else(|| bad("no fingerprint"))?;
    let user = v["user"].as_str().filter(|s| printable(s, 320)).ok_or_else(|| bad("no user"))?;
    let product = v["product"].as_str().filter(|s| printable(s, 64)).ok_or_else(|| bad("no product"))?;
    Ok(Request { fingerprint: fingerprint.into(), user: user.into(), product: product.into() })
}

/// The keyed hash an offline seat keeps of its computer.
fn fingerprint_hash(state: &AppState, user_id: &str, fingerprint: &str) -> String {
    state.master.keyed_hash(&[b"offline-fingerprint", user_id.as_bytes(), fingerprint.as_bytes()])
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OfflineRequest)]
pub struct IssueBody {
    /// what `latchkey product offline-request` printed
    request: String,
}

problems!(IssueOfflineLicenseProblems [admin]:
    404 not_found,
    403 offline_not_allowed,
    409 seat_in_use "the user's seat is in use online or offline on another computer",
    409 offline_active,
    410 license_expired,
    422 invalid_request_file,
    422 wrong_product,
    422 not_assigned "the user is not assigned this license",
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/offline",
    operation_id = "issueOfflineLicense",
    tag = "private networks",
    summary = "Issue an offline license file for one computer",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = IssueBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the license file; it takes the user's seat until returned or expired", body = crate::onprem::views::OfflineLicense),
        IssueOfflineLicenseProblems,
    ),
)]
/// `POST /api/v1/licenses/{id}/offline`: a license file for the computer of an activation request.
#[tracing::instrument(skip_all)]
pub async fn issue_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<Json<views::OfflineLicense>> {
    let license = admin.license(&state, &id).await?;
    let now = state.now();
    if !license.is_fixed() || license.offline_allowed == 0 {
        return Err(ApiError::forbidden(
            "offline_not_allowed",
            "this license has no offline use; the vendor decides (`offline_allowed`, fixed licenses)",
        ));
    }
    if license.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::gone("license_expired", "the license has expired"));
    }
    if super::server::on_premise_mode(&state) {
        return Err(ApiError::forbidden("offline_not_allowed", "offline licenses are issued by the vendor's service"));
    }
    let req = parse_request(&body.request)?;
    if req.product != license.product_sku {
        return Err(ApiError::unprocessable(
            "wrong_product",
            format!("the request is for `{}`, this license is for `{}`", req.product, license.product_sku),
        ));
    }
    let email = accounts::normalize_email(&req.user)?;
    let user = store::accounts::user_by_email(&state.db.pool, &email).await?;
    let user = match user {
        Some(u) if store::licenses::is_assigned(&state.db.pool, &license.id, &u.id).await? => u,
        _ => {
            return Err(ApiError::unprocessable(
                "not_assigned",
                format!("{email} is not assigned this license; assign it first"),
            ));
        }
    };
    let exp = license.expires_at.unwrap_or(i64::MAX).min(now + MAX_FILE_LIFE_MS);
    let claims = OfflineClaims {
        iss: state.issuer().to_string(),
        license_id: license.id.clone(),
        entity: license.entity_slug.clone(),
        product: license.product_sku.clone(),
        sub: email.clone(),
        fingerprint: req.fingerprint.clone(),
        iat: secs(now),
        exp: secs(exp),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let fhash = fingerprint_hash(&state, &user.id, &req.fingerprint);
    // Signed before the transaction: signing records the key's use, and SQLite has one writer.
    let file = license_keys::sign(&state.db, &state.master, jws::OFFLINE_TYP, &claims, exp).await?;
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, &license.id).await?;
    // A checkout of this user's seat in flight holds the assignment: wait for it.
    if !store::slots::lock_assignment(&mut tx, state.db.backend, &license.id, &user.id).await? {
        return Err(ApiError::unprocessable("not_assigned", format!("{email} is not assigned this license")));
    }
    // The user's seat is one: taken online on some computer, or by an offline file.
    if let Some(l) = store::leases::live_of_user(&mut *tx, &user.id, &license.id, None, now).await? {
        return Err(if l.machine_hash == fhash {
            ApiError::conflict("offline_active", "this computer holds an offline license already; return it first")
        } else {
            ApiError::conflict(
                "seat_in_use",
                "the user's seat is in use (online, or offline on another computer); release or return it first",
            )
        });
    }
    let lease = Lease {
        id: uuid::Uuid::new_v4().to_string(),
        license_id: license.id.clone(),
        user_id: user.id.clone(),
        machine: None,
        machine_hash: fhash.clone(),
        created_at: now,
        last_heartbeat_at: now,
        expires_at: exp,
        idle_seconds: 0,
        ended_at: None,
        end_reason: None,
    };
    store::leases::insert(&mut *tx, &lease).await?;
    store::onprem::insert_offline(
        &mut *tx,
        &OfflineLicense {
            jti: claims.jti.clone(),
            license_id: license.id.clone(),
            user_id: user.id.clone(),
            lease_id: lease.id.clone(),
            fingerprint_hash: fhash,
            issued_at: now,
            expires_at: exp,
            returned_at: None,
        },
    )
    .await?;
    crate::audit::Event::new("offline.issued")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(&license))
        .target(crate::audit::Target::user(&user.id, &user.email))
        .details(json!({ "file_id": claims.jti, "expires_at": clock::rfc3339(exp) }))
        .record(&mut tx, &ctx.by_admin(&admin), now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license.id, jti = %claims.jti, "offline license issued");
    Ok(Json(views::OfflineLicense {
        expires_at: clock::rfc3339(exp),
        jti: claims.jti,
        lease_id: lease.id,
        license_file: file,
        license_id: license.id,
    }))
}

/// A deactivation code as `latchkey product offline-return` prints it.
pub fn deactivation_code(jti: &str, license_id: &str, fingerprint: &str) -> String {
    jws::encode_b64_json(&json!({ "jti": jti, "license_id": license_id, "fingerprint": fingerprint }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OfflineReturn)]
pub struct ReturnBody {
    /// what `latchkey product offline-return` printed
    deactivation: String,
}

problems!(ReturnOfflineLicenseProblems:
    401 unauthorized,
    404 not_found,
    409 already_returned,
    422 invalid_deactivation,
);
#[utoipa::path(
    post,
    path = "/api/v1/licenses/{id}/offline/return",
    operation_id = "returnOfflineLicense",
    tag = "private networks",
    summary = "Free an offline license's seat with its deactivation code (works once)",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    request_body(content = ReturnBody),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the seat is free", body = crate::onprem::views::OfflineReturned),
        ReturnOfflineLicenseProblems,
    ),
)]
/// `POST /api/v1/licenses/{id}/offline/return`: the computer gave its offline license back; its
/// seat is free again. A deactivation code works once.
#[tracing::instrument(skip_all)]
pub async fn return_json(
    State(state): State<AppState>,
    admin: Admin,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<Json<views::OfflineReturned>> {
    let license = admin.license(&state, &id).await?;
    let ctx = ctx.by_admin(&admin);
    let result = take_return(&state, &license, &body.deactivation, &ctx).await;
    if let Err(e @ ApiError::Problem(_)) = &result {
        // A code that does not fit, or one used twice, is kept in the log with its reason.
        let event = crate::audit::Event::new("offline.return_refused")
            .entity(&license.entity_id, &license.entity_slug)
            .target(crate::audit::Target::license(&license))
            .details(json!({ "code": e.code() }));
        if let Err(err) = event.record_alone(&state, &ctx, state.now()).await {
            tracing::error!(error = %err, "the refused deactivation could not be recorded in the audit log");
        }
    }
    result
}

async fn take_return(
    state: &AppState,
    license: &crate::store::licenses::License,
    deactivation: &str,
    ctx: &crate::audit::Context,
) -> Result<Json<views::OfflineReturned>> {
    let bad = || ApiError::unprocessable("invalid_deactivation", "not a deactivation code of this license");
    let v = jws::decode_b64_json(deactivation).ok_or_else(bad)?;
    let (Some(jti), Some(fp)) = (v["jti"].as_str(), v["fingerprint"].as_str()) else { return Err(bad()) };
    let offline = store::onprem::offline_by_jti(&state.db.pool, jti).await?.filter(|o| o.license_id == license.id);
    let offline = offline.ok_or_else(bad)?;
    if !crate::crypto::ct_eq(
        fingerprint_hash(state, &offline.user_id, fp).as_bytes(),
        offline.fingerprint_hash.as_bytes(),
    ) {
        return Err(bad());
    }
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::licenses::lock_license(&mut *tx, &license.id).await?;
    if !store::onprem::return_offline(&mut *tx, &offline.jti, now).await? {
        return Err(ApiError::conflict("already_returned", "this offline license was returned already"));
    }
    store::leases::end(&mut *tx, &offline.lease_id, "offline_returned", now).await?;
    crate::audit::Event::new("offline.returned")
        .entity(&license.entity_id, &license.entity_slug)
        .target(crate::audit::Target::license(license))
        .target(crate::audit::Target::new("user", &offline.user_id, None))
        .details(json!({ "file_id": offline.jti }))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %license.id, jti = %offline.jti, "offline license returned");
    Ok(Json(views::OfflineReturned {
        jti: offline.jti,
        license_id: license.id.clone(),
        returned_at: clock::rfc3339(now),
    }))
}

/// An administrator may not disconnect an offline seat: the computer keeps running on its file
/// until it returns it (only the deactivation code frees the seat).
pub async fn is_offline_lease(state: &AppState, lease_id: &str, now: Millis) -> Result<bool> {
    Ok(store::onprem::live_offline_lease(&state.db.pool, lease_id, now).await?)
}
