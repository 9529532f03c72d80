//! Licenses that follow a SCIM group: the group's members are the license's assignment list.
//! Joiners are assigned and leavers revoked through the same functions administrators use, so
//! every seat rule holds (a full fixed license assigns nobody more, a fixed license's revokes are
//! bounded); what could not be done is reported, kept with the license and shown in its view.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{error::ApiError, licenses, state::AppState, store};

#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    pub assigned: Vec<String>,
    pub revoked: Vec<String>,
    pub failed: Vec<Value>,
}

impl SyncReport {
    pub fn to_json(&self) -> Value {
        json!({ "assigned": self.assigned, "revoked": self.revoked, "failed": self.failed })
    }
}

fn failure(email: &str, action: &str, e: &ApiError) -> Value {
    let detail = match e {
        ApiError::Problem(p) => p.detail.clone(),
        ApiError::OAuth(o) => o.description.clone(),
        ApiError::Internal(_) => String::new(),
    };
    json!({ "email": email, "action": action, "code": e.code(), "detail": detail })
}

/// Bring a license bound to a group in line with its members. Unbound: nothing to do.
pub async fn sync_license(state: &AppState, license_id: &str) -> Result<SyncReport, ApiError> {
    let mut report = SyncReport::default();
    let Some((Some(group_id), _)) = store::scim::license_binding(&state.db.pool, license_id).await? else {
        return Ok(report);
    };
    let members: BTreeMap<String, String> =
        store::scim::members(&state.db.pool, &group_id).await?.into_iter().collect();
    let assignees: BTreeMap<String, String> = store::licenses::assignees(&state.db.pool, license_id)
        .await?
        .into_iter()
        .map(|a| (a.user_id, a.email))
        .collect();
    // The entity's IdP decides through its SCIM group: latchkey applies it.
    let ctx = crate::audit::Context::system("scim group sync");
    for (uid, email) in &assignees {
        if members.contains_key(uid) {
            continue;
        }
        match licenses::revoke(state, &ctx, license_id, email, state.now()).await {
            Ok(()) => report.revoked.push(email.clone()),
            Err(e @ (ApiError::Problem(_) | ApiError::OAuth(_))) => report.failed.push(failure(email, "revoke", &e)),
            Err(e) => return Err(e),
        }
    }
    for (uid, email) in &members {
        if assignees.contains_key(uid) {
            continue;
        }
        match licenses::assign(state, &ctx, license_id, email, state.now()).await {
            Ok(_) => report.assigned.push(email.clone()),
            Err(e @ (ApiError::Problem(_) | ApiError::OAuth(_))) => report.failed.push(failure(email, "assign", &e)),
            Err(e) => return Err(e),
        }
    }
    let kept = (!report.failed.is_empty()).then(|| Value::Array(report.failed.clone()).to_string());
    store::scim::set_sync_report(&state.db.pool, license_id, kept.as_deref()).await?;
    if !report.failed.is_empty() {
        tracing::warn!(license = %license_id, failed = report.failed.len(), "license could not follow its SCIM group fully");
    }
    Ok(report)
}

/// After a group's membership changed: every license bound to it follows.
pub async fn sync_group_licenses(state: &AppState, group_id: &str) -> Result<(), ApiError> {
    for license_id in store::scim::licenses_of_group(&state.db.pool, group_id).await? {
        sync_license(state, &license_id).await?;
    }
    Ok(())
}
