//! Operator console: operator API keys for the vendor's scripts. A key is made with a name and
//! shown on the answer to that form only (never stored in the clear, never in a redirect or a
//! cookie); keys are listed by name and age, and revoked after a confirmation. The same functions
//! serve `latchkey operator-key create|revoke`.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{Posted, Shell, TokenForm, Viewer, admin::Confirm, fail, not_found, operator::gate, see_other, show, view};
use crate::{
    accounts::operator_keys,
    error::{ApiError, ApiPath},
    state::AppState,
    store,
};

const KEYS: &str = "/portal/operator/keys";

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub created: view::When,
    pub revoked: Option<view::When>,
}

#[derive(Template)]
#[template(path = "portal/op_keys.html")]
struct KeysPage {
    shell: Shell,
    keys: Vec<KeyRow>,
    active: usize,
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap, v: Viewer) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let rows = match store::keys::list_operator_keys(&state.db.pool).await {
        Ok(rows) => rows,
        Err(e) => return fail(e),
    };
    let page = KeysPage {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        active: rows.iter().filter(|k| k.revoked_at.is_none()).count(),
        keys: rows
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                name: k.name,
                created: view::when(k.created_at),
                revoked: k.revoked_at.map(view::when),
            })
            .collect(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Template)]
#[template(path = "portal/op_key_made.html")]
struct KeyMade {
    shell: Shell,
    name: String,
    key: String,
}

#[derive(Deserialize)]
pub struct NameForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

/// Make a key; the answer is the one page that ever shows it.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: crate::audit::Context,
    Posted { v, form: f }: Posted<NameForm>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let name = f.map(|f| f.name).unwrap_or_default();
    match operator_keys::create(&state.db, &ctx.by(v.actor()), &name, state.now()).await {
        Ok(made) => {
            let page =
                KeyMade { shell: Shell::new(&state, &headers, &v, "operator", None), name: made.name, key: made.key };
            show(&state, StatusCode::OK, &page.shell, &page)
        }
        Err(ApiError::Problem(p)) => see_other(&state, KEYS, false, &p.detail),
        Err(e) => e.into_response(),
    }
}

pub async fn revoke_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let key = match store::keys::operator_key_by_id(&state.db.pool, &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found(),
        Err(e) => return fail(e),
    };
    if key.revoked_at.is_some() {
        return see_other(&state, KEYS, false, &format!("The key {} was revoked already.", key.name));
    }
    let page = Confirm {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        heading: format!("Revoke the operator key {}?", key.name),
        text: format!(
            "Scripts that use the key {} (made {}) are refused from now on.",
            key.name,
            view::when(key.created_at).text
        ),
        note: "This cannot be undone; make a new key for scripts that should go on working.".into(),
        action: format!("{KEYS}/{}/revoke", key.id),
        fields: vec![],
        button: "Revoke",
        cancel: KEYS.into(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(id): ApiPath<String>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    match operator_keys::revoke(&state.db, &ctx.by(v.actor()), &id, state.now()).await {
        Ok(Some(name)) => see_other(&state, KEYS, true, &format!("The key {name} is revoked: it no longer works.")),
        Ok(None) => match store::keys::operator_key_by_id(&state.db.pool, &id).await {
            Ok(Some(k)) => see_other(&state, KEYS, false, &format!("The key {} was revoked already.", k.name)),
            Ok(None) => not_found(),
            Err(e) => fail(e),
        },
        Err(e) => e.into_response(),
    }
}

super::csrf_forms!(NameForm);
