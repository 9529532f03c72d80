//! SCIM provisioning for an entity's administrators: the address the IdP calls, the entity's SCIM
//! tokens (make one, shown once on the answer to the form; revoke one after a confirmation) and
//! the groups the IdP provisioned, with the licenses that follow each.
//!
//! Tokens are made and revoked by `scim::tokens::make` / `scim::tokens::revoke_token`, the
//! functions behind `POST` / `DELETE /api/v1/entities/{slug}/scim-tokens`.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;

use super::{
    Posted, Shell, TokenForm, Viewer,
    admin::{Confirm, entity_of},
    fail, not_found, refused_with_code, see_other, show, view,
};
use crate::{error::ApiPath, scim, state::AppState, store, store::entities::Entity};

fn scim_path(e: &Entity) -> String {
    format!("/portal/entities/{}/scim", e.slug)
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created: view::When,
    pub last_used: Option<view::When>,
    pub revoked: Option<view::When>,
}

pub struct ScimGroupView {
    pub name: String,
    pub members: usize,
    /// Licenses following the group: (id, product name).
    pub licenses: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal/scim.html")]
struct ScimPage {
    shell: Shell,
    entity: Entity,
    base_url: String,
    tokens: Vec<TokenView>,
    live: usize,
    groups: Vec<ScimGroupView>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = &state.db.pool;
    let result = async {
        let tokens = store::scim::tokens_of(pool, &e.id).await?;
        let (_, groups) = store::scim::list_groups(pool, &e.id, &store::scim::GroupQuery::default(), 0, 500).await?;
        let licenses = store::licenses::licenses_of_entity(pool, &e.id).await?;
        let mut members = HashMap::new();
        for g in &groups {
            members.insert(g.id.clone(), store::scim::members(pool, &g.id).await?.len());
        }
        Ok::<_, sqlx::Error>((tokens, groups, licenses, members))
    }
    .await;
    let (tokens, groups, licenses, members) = match result {
        Ok(x) => x,
        Err(err) => return fail(err),
    };
    let mut groups: Vec<ScimGroupView> = groups
        .into_iter()
        .map(|g| ScimGroupView {
            members: members.get(&g.id).copied().unwrap_or(0),
            licenses: licenses
                .iter()
                .filter(|l| l.scim_group_id.as_deref() == Some(g.id.as_str()))
                .map(|l| (l.id.clone(), l.product_name.clone()))
                .collect(),
            name: g.display_name,
        })
        .collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let page = ScimPage {
        shell: Shell::new(&state, &headers, &v, "scim", Some(&e.slug)),
        base_url: state.url(&format!("/scim/v2/{}", e.slug)),
        live: tokens.iter().filter(|t| t.revoked_at.is_none()).count(),
        tokens: tokens
            .into_iter()
            .rev()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                created: view::when(t.created_at),
                last_used: t.last_used_at.map(view::when),
                revoked: t.revoked_at.map(view::when),
            })
            .collect(),
        groups,
        entity: e,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

#[derive(Template)]
#[template(path = "portal/scim_token.html")]
struct TokenMade {
    shell: Shell,
    entity: Entity,
    name: String,
    token: String,
    base_url: String,
}

#[derive(Deserialize)]
pub struct NameForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

/// Make a SCIM token. The answer is the one page that ever shows it (never stored, never put in a
/// cookie or a redirect).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: crate::audit::Context,
    ApiPath(slug): ApiPath<String>,
    Posted { v, form: f }: Posted<NameForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let name = f.map(|f| f.name).unwrap_or_default();
    match scim::tokens::make(&state, &ctx.by(v.actor()), &e, &name).await {
        Ok(made) => {
            let page = TokenMade {
                shell: Shell::new(&state, &headers, &v, "scim", Some(&e.slug)),
                entity: e,
                name: made.name,
                token: made.token,
                base_url: made.scim_base_url,
            };
            show(&state, StatusCode::OK, &page.shell, &page)
        }
        Err(err) => refused_with_code(&state, &scim_path(&e), err),
    }
}

pub async fn revoke_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let tokens = match store::scim::tokens_of(&state.db.pool, &e.id).await {
        Ok(t) => t,
        Err(err) => return fail(err),
    };
    let Some(t) = tokens.into_iter().find(|t| t.id == id) else { return not_found() };
    if t.revoked_at.is_some() {
        return see_other(&state, &scim_path(&e), false, &format!("The SCIM token {} was revoked already.", t.name));
    }
    let page = Confirm {
        shell: Shell::new(&state, &headers, &v, "scim", Some(&e.slug)),
        heading: format!("Revoke the SCIM token {}?", t.name),
        text: format!(
            "Your identity provider's calls with the token {} (made {}) are refused from now on.",
            t.name,
            view::when(t.created_at).text
        ),
        note: "This cannot be undone: give your identity provider a new token if it should go on provisioning.".into(),
        action: format!("{}/tokens/{}/revoke", scim_path(&e), t.id),
        fields: vec![],
        button: "Revoke",
        cancel: scim_path(&e),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath((slug, id)): ApiPath<(String, String)>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let back = scim_path(&e);
    match scim::tokens::revoke_token(&state, &ctx.by(v.actor()), &e, &id).await {
        Ok(()) => see_other(&state, &back, true, "The SCIM token is revoked: it no longer works."),
        Err(err) => refused_with_code(&state, &back, err),
    }
}

super::csrf_forms!(NameForm);
