//! Seats: a running product checks out a lease, heartbeats while running and releases it on exit.
//! The seat limit is enforced in the database: a floating lease claims one of its license's seat
//! slots (`store::slots`), so the limit holds across every replica without queueing checkouts
//! behind one lock; a lease is live only while unexpired, so a crashed product's seat frees itself
//! without any sweeper. Each checkout and heartbeat returns a signed `lease_token` that lets the
//! product keep running offline until it expires (`LATCHKEY_OFFLINE_GRACE`).

use axum::{
    Json,
    extract::State,
    http::{StatusCode, request::Parts},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::views;
use crate::{
    audit::{self, Actor, Target},
    auth::Admin,
    clock::{self, Millis},
    error::{ApiError, ApiJson, ApiPath, OptionalJson, Result},
    onprem::SeatRule,
    state::AppState,
    store::{
        self, Tx,
        heartbeats::Heartbeat as QueuedBeat,
        leases::{self as leases_store, Candidate, Lease},
    },
    tokens::{self, AccessClaims},
};

pub const LEASE_TYP: &str = "lease+jwt";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub lease_id: String,
    pub license_id: String,
    pub product: String,
    /// Absent only when a fixed seat's heartbeat did not name its computer (the server keeps
    /// only a hash of it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub machine: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// the product's SKU
    product: String,
    /// the computer's name: 1 to 255 printable bytes (UTF-8, trimmed). Stored for floating licenses only; a fixed seat keeps only a keyed hash of it
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    machine: String,
}

pub fn check_machine(m: &str) -> Result<&str> {
    let m = m.trim();
    if m.is_empty() || m.len() > 255 || m.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`machine` is the computer's name: 1 to 255 printable bytes",
        ));
    }
    Ok(m)
}

pub fn lease_response(state: &AppState, lease: &Lease, product: &str, machine: &str, token: String) -> views::Lease {
    views::Lease {
        lease_id: lease.id.clone(),
        license_id: lease.license_id.clone(),
        product: product.to_string(),
        lease_token: token,
        expires_at: clock::rfc3339(lease.expires_at),
        heartbeat_interval_s: state.config.heartbeat_interval.secs(),
        lease_ttl_s: state.config.lease_ttl.secs(),
        offline_grace_s: state.config.offline_grace.secs(),
        machine: machine.to_string(),
    }
}

pub fn sign_lease(
    state: &AppState,
    user_id: &str,
    lease_id: &str,
    license_id: &str,
    product: &str,
    machine: &str,
    now: Millis,
) -> Result<String> {
    let iat = now / 1000;
    let claims = LeaseClaims {
        iss: state.issuer().to_string(),
        sub: user_id.to_string(),
        aud: product.to_string(),
        lease_id: lease_id.to_string(),
        license_id: license_id.to_string(),
        product: product.to_string(),
        machine: (!machine.is_empty()).then(|| machine.to_string()),
        iat,
        exp: iat + state.config.offline_grace.secs(),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    Ok(state.keys.sign(LEASE_TYP, &claims)?)
}

fn machine_hash(state: &AppState, user_id: &str, machine: &str) -> String {
    state.master.keyed_hash(&[b"lease-machine", user_id.as_bytes(), machine.as_bytes()])
}

enum Attempt {
    Granted(Lease),
    /// The assignment was revoked since the candidates were read.
    Unassigned,
    InUse,
    Full {
        seats: i64,
        in_use: i64,
    },
    Refused(ApiError),
}

/// One license, under the caller's assignment lock: the caller's live lease on this machine, or a
/// new one if the license allows it.
///
/// On PostgreSQL, on a server that is not on-premise, the steps are folded into two statements
/// (besides the candidates, `BEGIN` and `COMMIT`): the assignment's lock with the export check and
/// the same-computer probe (`store::slots::lock_and_probe`), then the slot's claim with the lease's
/// insert and its audit event (`store::slots::claim_folded`). The rarer paths (the same computer
/// again, a fixed seat, lowered seats, a full pool) take the statements of the other backends.
#[allow(clippy::too_many_arguments)]
async fn try_license(
    state: &AppState,
    ctx: &audit::Context,
    tx: &mut Tx,
    c: &Candidate,
    user_id: &str,
    mhash: &str,
    machine: &str,
    now: Millis,
) -> Result<Attempt> {
    let backend = state.db.backend;
    let folded = backend == store::Backend::Postgres && state.onprem.is_none();
    let (entitled, fixed, mine) = if folded {
        // seat_rule's answer off-premise (AsSold, unless the license is exported), read under the
        // assignment's lock in the same statement.
        let fixed = c.kind == "fixed";
        let probe = (!fixed).then_some(mhash);
        match store::slots::lock_and_probe(tx, &c.id, user_id, probe, now).await? {
            Some(store::slots::Assigned { exported_to: Some(host), .. }) => {
                return Ok(Attempt::Refused(crate::onprem::served_on_premise(&host)));
            }
            Some(store::slots::Assigned { mine, .. }) => (None, fixed, mine),
            None => {
                // Not assigned: an export still answers first, as seat_rule does.
                return Ok(match store::onprem::active_export(&mut **tx, &c.id, now).await? {
                    Some(x) => Attempt::Refused(crate::onprem::served_on_premise(&x.server_host)),
                    None => Attempt::Unassigned,
                });
            }
        }
    } else {
        // Private networks: a license moved on-premise gives no seat here; an on-premise server's
        // seats come from its verified entitlement only (it takes the license's lock first, in the
        // same order as revocations: license, then assignment).
        let (entitled, fixed) = match crate::onprem::seat_rule(state, tx, &c.id, now).await? {
            SeatRule::AsSold => (None, c.kind == "fixed"),
            SeatRule::Entitled { seats } => (Some(seats), false),
            SeatRule::Refused(e) => return Ok(Attempt::Refused(e)),
        };
        if !store::slots::lock_assignment(tx, backend, &c.id, user_id).await? {
            return Ok(Attempt::Unassigned);
        }
        // A fixed seat has at most one live lease (the assignment lock makes sure of it): read it,
        // whatever its computer. A floating user may hold many: probe for this computer's only.
        let probe = (!fixed).then_some(mhash);
        (entitled, fixed, leases_store::live_of_user(&mut **tx, user_id, &c.id, probe, now).await?)
    };
    let expires_at = now + state.config.lease_ttl.ms();
    match mine {
        Some(l) if l.machine_hash == mhash => return again(ctx, tx, c, l, machine, now, expires_at).await,
        Some(_) => return Ok(Attempt::InUse),
        None => {}
    }
    let lease = Lease {
        id: uuid::Uuid::new_v4().to_string(),
        license_id: c.id.clone(),
        user_id: user_id.to_string(),
        // Data minimisation: a fixed seat keeps only the keyed hash of its computer.
        machine: (!fixed).then(|| machine.to_string()),
        machine_hash: mhash.to_string(),
        created_at: now,
        last_heartbeat_at: now,
        expires_at,
        idle_seconds: 0,
        ended_at: None,
        end_reason: None,
    };
    if folded && !fixed {
        let event = checked_out_event(c, &lease.id, machine, false).row_of_license(ctx, now);
        match store::slots::claim_folded(tx, &lease, event.as_ref(), now).await? {
            store::slots::Claimed::Granted => return Ok(Attempt::Granted(lease)),
            store::slots::Claimed::Mine(id) => {
                // A checkout of this computer committed while this one waited for the lock.
                return match leases_store::by_id(&mut **tx, &id).await? {
                    Some(l) => again(ctx, tx, c, l, machine, now, expires_at).await,
                    None => Err(ApiError::internal("a live lease vanished under its assignment's lock")),
                };
            }
            // Every seat taken, or the seats were lowered: claim decides, under the license's lock.
            store::slots::Claimed::NoFreeSlot => {}
        }
    }
    if !fixed && !store::slots::claim(tx, backend, &c.id, &lease.id, now, expires_at).await? {
        // Refused: counting the live leases for the answer is the one step that reads the pool.
        let in_use = leases_store::count_live(&mut **tx, &c.id, now).await?;
        return Ok(Attempt::Full { seats: entitled.unwrap_or(c.seats), in_use });
    }
    if let Some(seats) = entitled {
        // On-premise: slot rows live in the customer's database; the verified entitlement decides
        // (counted under the license's lock that seat_rule took).
        let in_use = leases_store::count_live(&mut **tx, &c.id, now).await?;
        if in_use >= seats {
            return Ok(Attempt::Full { seats, in_use });
        }
    }
    leases_store::insert(&mut **tx, &lease).await?;
    checked_out_event(c, &lease.id, machine, false).record(tx, ctx, now).await?;
    Ok(Attempt::Granted(lease))
}

/// The same computer asking again (a crashed product re-run): its live lease, refreshed.
async fn again(
    ctx: &audit::Context,
    tx: &mut Tx,
    c: &Candidate,
    l: Lease,
    machine: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<Attempt> {
    leases_store::extend(&mut **tx, &l.id, now, expires_at, 0).await?;
    checked_out_event(c, &l.id, machine, true).record(tx, ctx, now).await?;
    Ok(Attempt::Granted(Lease { expires_at, last_heartbeat_at: now, idle_seconds: 0, ..l }))
}

/// `seat.checked_out`: `again` when the same computer got its live lease back.
fn checked_out_event(c: &Candidate, lease_id: &str, machine: &str, again: bool) -> audit::Event {
    // A fixed seat's computer is not stored anywhere (only its keyed hash): not here either.
    let machine = (c.kind != "fixed").then_some(machine);
    audit::Event::new("seat.checked_out")
        .entity_of_license(&c.id)
        .target(Target::new("lease", lease_id, None))
        .target(Target::new("license", &c.id, None))
        .details(json!({ "machine": machine, "same_computer_again": again }))
}

/// Check out a seat of `product` for the user on `machine`: the fixed seat assigned to them first,
/// then the floating pools, earliest expiry first. `token`: the caller's access token, whose
/// revocation is checked here, with the candidate licenses in one statement (None: no token, the
/// on-premise "everyone" checkout).
pub async fn checkout(
    state: &AppState,
    ctx: &audit::Context,
    user_id: &str,
    token: Option<&AccessClaims>,
    product: &str,
    machine: &str,
) -> Result<(Lease, String)> {
    let now = state.now();
    // The first license's transaction reads the candidates too: one connection for the checkout.
    let mut first_tx = state.db.begin_write().await?;
    let mut candidates = match token {
        Some(t) => {
            let (revoked, candidates) =
                leases_store::candidates_unless_revoked(&mut *first_tx, user_id, product, &t.sid, &t.jti).await?;
            if revoked {
                first_tx.rollback().await?;
                return Err(ApiError::unauthorized("the access token has been revoked"));
            }
            candidates
        }
        None => leases_store::candidates(&mut *first_tx, user_id, product).await?,
    };
    if candidates.is_empty() {
        first_tx.rollback().await?;
        return Err(ApiError::forbidden(
            "not_licensed",
            format!("you hold no license of `{product}`; ask your administrator"),
        ));
    }
    candidates.sort_by_key(|c| (c.kind != "fixed", c.expires_at.unwrap_or(i64::MAX), c.id.clone()));
    let live: Vec<&Candidate> = candidates.iter().filter(|c| c.expires_at.is_none_or(|e| e > now)).collect();
    if live.is_empty() {
        first_tx.rollback().await?;
        return Err(ApiError::gone("license_expired", format!("your license of `{product}` has expired")));
    }
    let mhash = machine_hash(state, user_id, machine);
    let mut refusal = None;
    let mut first_tx = Some(first_tx);
    for c in live {
        let mut tx = match first_tx.take() {
            Some(tx) => tx,
            None => state.db.begin_write().await?,
        };
        match try_license(state, ctx, &mut tx, c, user_id, &mhash, machine, now).await? {
            Attempt::Granted(lease) => {
                tx.commit().await?;
                state.metrics.event("seat_checkout", "granted");
                let token = sign_lease(state, user_id, &lease.id, &lease.license_id, product, machine, now)?;
                return Ok((lease, token));
            }
            other => {
                tx.rollback().await?;
                let reason = match &other {
                    Attempt::InUse => "seat_in_use",
                    Attempt::Unassigned => "not_licensed",
                    _ => "no_seat_available",
                };
                let mut tx = state.db.begin_write().await?;
                leases_store::record_denial(&mut *tx, &c.id, crate::licenses::reports::refusal_slot(now)).await?;
                audit::Event::new("seat.denied")
                    .entity_of_license(&c.id)
                    .target(Target::new("license", &c.id, None))
                    .details(json!({ "product": product, "reason": reason }))
                    .record(&mut tx, ctx, now)
                    .await?;
                tx.commit().await?;
                refusal.get_or_insert(other);
            }
        }
    }
    state.metrics.event("seat_checkout", "denied");
    Err(match refusal {
        Some(Attempt::Unassigned) => {
            ApiError::forbidden("not_licensed", format!("you hold no license of `{product}`; ask your administrator"))
        }
        Some(Attempt::InUse) => ApiError::conflict(
            "seat_in_use",
            "your seat is in use on another computer; close the product there, or wait until its lease lapses",
        ),
        Some(Attempt::Full { seats, in_use }) => ApiError::conflict(
            "no_seat_available",
            format!("all {seats} seats are in use ({in_use} in use); try again later"),
        )
        .with("seats", seats)
        .with("in_use", in_use),
        Some(Attempt::Refused(e)) => e,
        _ => ApiError::internal("no refusal recorded"),
    })
}

problems!(CheckoutProblems [json_body]:
    401 unauthorized "no or malformed `Authorization`, or an invalid, expired or revoked access token",
    403 user_token_required,
    403 not_licensed,
    409 seat_in_use,
    409 no_seat_available,
    410 license_expired "every license of the product the user holds has expired",
    422 invalid_request,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/seats",
    operation_id = "checkout",
    tag = "seats",
    summary = "Check out a seat",
    description = "Any access token of the user (whatever client). The fixed seat assigned to the user first, then floating pools, earliest expiry first.",
    request_body(content = Checkout),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "a lease; heartbeat every `heartbeat_interval_s`. The same user, product and machine asking again gets its live lease back.", body = crate::licenses::views::Lease, links(("Heartbeat" = (operation_id = "heartbeat", parameters(("lease_id" = "$response.body#/lease_id")))), ("Release" = (operation_id = "releaseSeat", parameters(("lease_id" = "$response.body#/lease_id")))))),
        CheckoutProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn checkout_json(
    State(state): State<AppState>,
    SignedUser(claims): SignedUser,
    ctx: audit::Context,
    body: Result<ApiJson<Checkout>, ApiError>,
) -> Result<(StatusCode, Json<views::Lease>)> {
    // The token's revocation is checked by the checkout's first statement; a request refused
    // before it checks it here, so that a revoked token is told so first, as everywhere.
    let checked = body.and_then(|ApiJson(b)| check_machine(&b.machine).map(str::to_string).map(|m| (b, m)));
    let (body, machine) = match checked {
        Ok(v) => v,
        Err(e) => {
            crate::auth::ensure_not_revoked(&state, &claims).await?;
            return Err(e);
        }
    };
    let machine = machine.as_str();
    let ctx = ctx.by(Actor::user(&claims.sub, &claims.email));
    let (lease, token) = checkout(&state, &ctx, &claims.sub, Some(&claims), &body.product, machine).await?;
    Ok((StatusCode::CREATED, Json(lease_response(&state, &lease, &body.product, machine, token))))
}

/// A user's access token, signature and expiry checked, revocation left to the caller's own query
/// (the heartbeat folds it into its single UPDATE).
pub struct SignedUser(pub AccessClaims);

impl axum::extract::FromRequestParts<AppState> for SignedUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = crate::auth::bearer(parts)?;
        if token.starts_with(crate::auth::OPERATOR_KEY_PREFIX) {
            return Err(ApiError::forbidden("user_token_required", "this endpoint needs a user's access token"));
        }
        tokens::verify_access(state, token, state.now()).await.map(SignedUser).map_err(ApiError::unauthorized)
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// how long the user has been idle; default 0
    #[schema(minimum = 0, maximum = 315360000)]
    #[serde(default)]
    idle_seconds: Option<i64>,
    #[schema(min_length = 1, max_length = 255)]
    /// The computer's name. A fixed seat keeps only its keyed hash, so a product on a fixed
    /// license sends it to have it in the renewed lease token (it must be the same computer).
    #[serde(default)]
    machine: Option<String>,
}

problems!(HeartbeatProblems:
    401 unauthorized "no or malformed `Authorization`, or an invalid, expired or revoked access token",
    403 user_token_required,
    404 not_found "no such lease of the caller's",
    410 lease_revoked,
    410 lease_expired,
    410 license_expired "the license expired; the seat is released",
    422 invalid_request "the body is not JSON of the schema, or `idle_seconds` out of range",
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/seats/{lease_id}/heartbeat",
    operation_id = "heartbeat",
    tag = "seats",
    summary = "Keep a seat",
    params(
        ("lease_id" = String, Path, description = "the lease's id (from checkout)"),
    ),
    request_body(content = Option<Heartbeat>, description = "Optional; an empty body means idle_seconds 0. The content type is not checked."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the lease is extended; a fresh `lease_token`", body = crate::licenses::views::HeartbeatResponse),
        HeartbeatProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn heartbeat_json(
    State(state): State<AppState>,
    SignedUser(claims): SignedUser,
    ApiPath(lease_id): ApiPath<String>,
    OptionalJson(beat): OptionalJson<Heartbeat>,
) -> Result<Json<views::HeartbeatResponse>> {
    let told_machine: Option<String> = beat.machine.as_deref().map(check_machine).transpose()?.map(str::to_string);
    let idle = beat.idle_seconds.unwrap_or(0);
    if !(0..=10 * 365 * 86_400).contains(&idle) {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`idle_seconds` must be a non-negative number of seconds",
        ));
    }
    let now = state.now();
    let expires_at = now + state.config.lease_ttl.ms();
    let row = state
        .heartbeats
        .beat(
            &state.db,
            QueuedBeat {
                lease_id: lease_id.clone(),
                user_id: claims.sub.clone(),
                sid: claims.sid.clone(),
                jti: claims.jti.clone(),
                now,
                expires_at,
                idle_seconds: idle,
            },
        )
        .await?;
    let Some(row) = row else {
        return Err(why_not_live(&state, &claims, &lease_id, now).await);
    };
    if row.license_expires_at.is_some_and(|e| e <= now) {
        let ctx = audit::Context::system("license expiry");
        end_lease(&state, &ctx, &row.license_id, &lease_id, "license_expired", now).await?;
        return Err(ApiError::gone("license_expired", "the license has expired; the seat is released"));
    }
    if let Some(limit) = row.idle_timeout_s
        && idle >= limit
    {
        let ctx = audit::Context::system("idle policy");
        end_lease(&state, &ctx, &row.license_id, &lease_id, "idle", now).await?;
        state.metrics.event("seat_disconnect", "idle");
        return Err(ApiError::gone(
            "lease_revoked",
            format!("disconnected after {} idle minutes by your organisation's policy", limit / 60),
        ));
    }
    // A fixed seat does not store its computer's name: the product tells it (and it must be the
    // computer that checked the seat out).
    let machine = match (row.machine, told_machine) {
        (Some(stored), _) => stored,
        (None, Some(told)) => {
            let lease = leases_store::by_id(&state.db.pool, &lease_id)
                .await?
                .ok_or_else(|| ApiError::not_found("no such lease"))?;
            if lease.machine_hash != machine_hash(&state, &claims.sub, &told) {
                return Err(ApiError::conflict("machine_mismatch", "this seat was checked out on another computer"));
            }
            told
        }
        (None, None) => String::new(),
    };
    let token = sign_lease(&state, &claims.sub, &lease_id, &row.license_id, &row.product, &machine, now)?;
    Ok(Json(views::HeartbeatResponse {
        lease_id,
        license_id: row.license_id,
        lease_token: token,
        expires_at: clock::rfc3339(expires_at),
        heartbeat_interval_s: state.config.heartbeat_interval.secs(),
        lease_ttl_s: state.config.lease_ttl.secs(),
        offline_grace_s: state.config.offline_grace.secs(),
    }))
}

/// Why a heartbeat found no live lease of the caller's.
async fn why_not_live(state: &AppState, claims: &AccessClaims, lease_id: &str, now: Millis) -> ApiError {
    let lease = match leases_store::by_id(&state.db.pool, lease_id).await {
        Ok(l) => l,
        Err(e) => return e.into(),
    };
    let Some(lease) = lease.filter(|l| l.user_id == claims.sub) else {
        return ApiError::not_found("no such lease");
    };
    if let Err(e) = crate::auth::ensure_not_revoked(state, claims).await {
        return e;
    }
    match lease.end_reason.as_deref() {
        Some("released") => ApiError::gone("lease_revoked", "this lease was released; check out a new seat"),
        Some("idle") => ApiError::gone("lease_revoked", "this seat was disconnected for being idle"),
        Some("license_expired") => ApiError::gone("license_expired", "the license has expired"),
        Some(_) => ApiError::gone("lease_revoked", "an administrator disconnected this seat"),
        None if lease.expires_at <= now => {
            ApiError::gone("lease_expired", "this lease lapsed without heartbeats; check out a seat again")
        }
        // An offline license file's seat lives until the file's expiry or its return: a
        // heartbeat would cut it to one lease TTL and free the seat while the file still runs.
        None => match crate::onprem::offline::is_offline_lease(state, &lease.id, now).await {
            Ok(true) => ApiError::conflict(
                "offline_seat",
                "this seat is held by an offline license file; it takes no heartbeats",
            ),
            Ok(false) => ApiError::internal("live lease refused a heartbeat"),
            Err(e) => e,
        },
    }
}

/// End a lease and record why: `released` by its owner, anything else a disconnect.
async fn end_lease(
    state: &AppState,
    ctx: &audit::Context,
    license_id: &str,
    lease_id: &str,
    reason: &str,
    now: Millis,
) -> Result<bool> {
    let mut tx = state.db.begin_write().await?;
    let ended = leases_store::end(&mut *tx, lease_id, reason, now).await?;
    if ended {
        let action = if reason == "released" { "seat.released" } else { "seat.disconnected" };
        audit::Event::new(action)
            .entity_of_license(license_id)
            .target(Target::new("lease", lease_id, None))
            .target(Target::new("license", license_id, None))
            .details(json!({ "reason": reason }))
            .record(&mut tx, ctx, now)
            .await?;
    }
    tx.commit().await?;
    Ok(ended)
}

problems!(ReleaseSeatProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    delete,
    path = "/api/v1/seats/{lease_id}",
    operation_id = "releaseSeat",
    tag = "seats",
    summary = "Release a seat (owner) or disconnect it (administrator)",
    description = "The lease's owner with any access token, or an administrator of its entity (`portal` token or operator key).",
    params(
        ("lease_id" = String, Path, description = "the lease's id (from checkout)"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 204, description = "released or disconnected (idempotent); the product's next heartbeat gets 410 `lease_revoked`"),
        ReleaseSeatProblems,
    ),
)]
/// Release (the owner, when the product exits) or disconnect (an administrator of its entity).
#[tracing::instrument(skip_all)]
pub async fn release_json(
    State(state): State<AppState>,
    ctx: audit::Context,
    headers: axum::http::HeaderMap,
    ApiPath(lease_id): ApiPath<String>,
) -> Result<StatusCode> {
    let now = state.now();
    let lease = leases_store::by_id(&state.db.pool, &lease_id).await?;
    let token = crate::auth::bearer_from(&headers)?;
    // The owner's token (any client) releases; an administrator's disconnects.
    if !token.starts_with(crate::auth::OPERATOR_KEY_PREFIX) {
        let claims = crate::auth::user_from(&state, token).await?;
        if let Some(l) = lease.as_ref().filter(|l| l.user_id == claims.sub) {
            release(&state, &ctx.by(Actor::user(&claims.sub, &claims.email)), l, now).await?;
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    let admin = Admin::from_token(&state, token).await?;
    let license = match &lease {
        Some(l) => store::licenses::license_by_id(&state.db.pool, &l.license_id).await?,
        None => None,
    };
    admin.require(&state, license.as_ref().map(|l| l.entity_id.as_str())).await?;
    let lease = lease.ok_or_else(|| ApiError::not_found("no such lease"))?;
    disconnect(&state, &ctx.by_admin(&admin), &lease, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The owner releases their seat (the product exits). False when it was not live any more.
pub async fn release(state: &AppState, ctx: &audit::Context, lease: &Lease, now: Millis) -> Result<bool> {
    refuse_offline_seat(state, lease, now).await?;
    let ended = end_lease(state, ctx, &lease.license_id, &lease.id, "released", now).await?;
    if ended {
        state.metrics.event("seat_release", "owner");
    }
    Ok(ended)
}

/// An administrator of the lease's entity disconnects it: the product's next heartbeat gets 410.
/// False when it was not live any more.
pub async fn disconnect(state: &AppState, ctx: &audit::Context, lease: &Lease, now: Millis) -> Result<bool> {
    refuse_offline_seat(state, lease, now).await?;
    let ended = end_lease(state, ctx, &lease.license_id, &lease.id, "revoked", now).await?;
    if ended {
        state.metrics.event("seat_release", "disconnected");
        tracing::info!(lease = %lease.id, license = %lease.license_id, "seat disconnected by an administrator");
    }
    Ok(ended)
}

/// An offline license file's seat frees only with its deactivation code: the computer keeps
/// running on its file whatever the server says.
async fn refuse_offline_seat(state: &AppState, lease: &Lease, now: Millis) -> Result<()> {
    if crate::onprem::offline::is_offline_lease(state, &lease.id, now).await? {
        return Err(ApiError::conflict(
            "offline_seat",
            "this seat is held by an offline license file; it frees when the file is returned or expires",
        ));
    }
    Ok(())
}

problems!(ListSeatsProblems [admin]:
    404 not_found,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/licenses/{id}/seats",
    operation_id = "listSeats",
    tag = "seats",
    summary = "List a license's live seats",
    params(
        ("id" = String, Path, description = "the license's id"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "the live leases, oldest first", body = Vec<crate::licenses::views::SeatView>),
        ListSeatsProblems,
    ),
)]
/// An administrator's view of the live seats of a license.
pub async fn list_seats(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<views::SeatView>>> {
    let license = admin.license(&state, &id).await?;
    let now = state.now();
    let rows = leases_store::live_seats(&state.db.pool, &license.id, now).await?;
    let seats = rows
        .into_iter()
        .map(|r| views::SeatView {
            lease_id: r.id,
            email: r.email,
            machine: if license.is_fixed() { None } else { r.machine },
            since: clock::rfc3339(r.created_at),
            last_heartbeat: clock::rfc3339(r.last_heartbeat_at),
            idle_seconds: r.idle_seconds,
            expires_at: clock::rfc3339(r.expires_at),
        })
        .collect();
    Ok(Json(seats))
}

/// An assignment was revoked: its holder's seats on that license end now.
pub async fn end_leases_of_assignment(tx: &mut Tx, license_id: &str, user_id: &str, now: Millis) -> Result<u64> {
    Ok(leases_store::end_all_of_user_on_license(&mut **tx, license_id, user_id, "unassigned", now).await?)
}
