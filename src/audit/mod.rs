//! The audit log: every change and sign-in, recorded in the transaction of the change itself, then
//! sealed into tamper-evident hash chains (one per entity, one for the operator) with signed
//! checkpoints.
//!
//! Writers only append ([`Event::record`]): they never wait for each other on the chain. One sealer
//! at a time across replicas ([`sealer`]) numbers the new events of each chain, hashes them onto
//! the chain head and signs checkpoints. Readers ([`api`]) see sealed events only, in the order
//! they were sealed. [`chain`] holds the pure hashing and verification rules; `latchkey audit
//! verify` ([`verify`]) applies them to the database.

pub mod api;
pub mod chain;
pub mod sealer;
pub mod verify;
pub mod views;

use axum::{extract::FromRequestParts, http::request::Parts};
use serde_json::{Value, json};

use crate::{
    auth::{Admin, ClientIp, Operator},
    clock::Millis,
    state::AppState,
    store::{self, Tx, audit::EventRow},
};

pub use sealer::{Sealer, seal_now};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `operator_key`, `user`, `system` or `product`.
    pub kind: &'static str,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Actor {
    pub fn operator(op: &Operator) -> Actor {
        if let Some(user_id) = &op.user_id {
            return Actor::user(user_id, &op.name);
        }
        Actor { kind: "operator_key", id: Some(op.key_id.clone()), name: Some(op.name.clone()) }
    }
    pub fn admin(a: &Admin) -> Actor {
        match a {
            Admin::Operator(op) => Actor::operator(op),
            Admin::User(c) => Actor::user(&c.sub, &c.email),
        }
    }
    pub fn user(id: &str, email: &str) -> Actor {
        Actor { kind: "user", id: Some(id.to_string()), name: Some(email.to_string()) }
    }
    /// Someone who gave an email but proved nothing (a failed sign-in of an unknown address).
    pub fn claimed(email: &str) -> Actor {
        Actor { kind: "user", id: None, name: Some(email.to_string()) }
    }
    /// latchkey itself (a policy, a background task) or a command run on the server (`cli`).
    pub fn system(name: &str) -> Actor {
        Actor { kind: "system", id: None, name: Some(name.to_string()) }
    }
}

/// Who acted, and from where: built per request from its headers, then given its actor.
#[derive(Debug, Clone)]
pub struct Context {
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    enabled: bool,
}

impl Context {
    /// latchkey itself: a command line, a background task, or a policy applied while serving a
    /// request (whose id is kept when there is one).
    pub fn system(name: &str) -> Context {
        let request_id = Some(crate::error::current_request_id()).filter(|s| !s.is_empty());
        Context { actor: Actor::system(name), ip: None, user_agent: None, request_id, enabled: true }
    }
    pub fn by(mut self, actor: Actor) -> Context {
        self.actor = actor;
        self
    }
    pub fn by_admin(self, a: &Admin) -> Context {
        self.by(Actor::admin(a))
    }
    /// A copy acting as someone else (the same request).
    pub fn as_actor(&self, actor: Actor) -> Context {
        self.clone().by(actor)
    }
}

const MAX_USER_AGENT: usize = 512;

impl FromRequestParts<AppState> for Context {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect::<String>())
            .filter(|s| !s.is_empty());
        let request_id = Some(crate::error::current_request_id()).filter(|s| !s.is_empty());
        Ok(Context {
            // Replaced by the handler once it knows who is calling.
            actor: Actor::system("anonymous"),
            ip: ip.map(|i| i.to_string()),
            user_agent,
            request_id,
            enabled: !state.config.audit_off_for_benchmarks,
        })
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
    pub name: Option<String>,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>, name: Option<&str>) -> Target {
        Target { kind, id: id.into(), name: name.map(str::to_string) }
    }
    pub fn user(id: &str, email: &str) -> Target {
        Target::new("user", id, Some(email))
    }
    pub fn entity(id: &str, slug: &str) -> Target {
        Target::new("entity", id, Some(slug))
    }
    pub fn license(l: &store::licenses::License) -> Target {
        Target::new("license", &l.id, Some(&format!("{} {}", l.product_sku, l.kind)))
    }
}

/// One event, built up and then recorded in the caller's transaction.
#[must_use]
#[derive(Debug, Clone)]
pub struct Event {
    action: &'static str,
    /// The entity's id and slug; None for the operator chain.
    entity: Option<(String, String)>,
    /// Or: the entity that owns this license (looked up by the INSERT itself).
    license_entity: Option<String>,
    targets: Vec<Target>,
    details: Value,
}

impl Event {
    pub fn new(action: &'static str) -> Event {
        Event { action, entity: None, license_entity: None, targets: Vec::new(), details: json!({}) }
    }
    pub fn entity(mut self, id: &str, slug: &str) -> Event {
        self.entity = Some((id.to_string(), slug.to_string()));
        self
    }
    /// On the chain of the entity that owns `license_id`.
    pub fn entity_of_license(mut self, license_id: &str) -> Event {
        self.license_entity = Some(license_id.to_string());
        self
    }
    pub fn target(mut self, t: Target) -> Event {
        self.targets.push(t);
        self
    }
    /// Facts about the change. Never a password, token, key or other secret.
    pub fn details(mut self, d: Value) -> Event {
        self.details = d;
        self
    }

    fn row(&self, ctx: &Context, now: Millis) -> EventRow {
        // Kept as the view shows them (an event's view parses this back).
        let targets: Vec<views::AuditEventTargetsItem> = self
            .targets
            .iter()
            .map(|t| views::AuditEventTargetsItem { id: t.id.clone(), name: t.name.clone(), kind: t.kind.to_string() })
            .collect();
        EventRow {
            id: store::new_id(),
            chain: self.entity.as_ref().map(|(id, _)| id.clone()).unwrap_or_default(),
            entity: self.entity.as_ref().map(|(_, slug)| slug.clone()),
            at: now,
            actor_type: ctx.actor.kind.to_string(),
            actor_id: ctx.actor.id.clone(),
            actor_name: ctx.actor.name.clone(),
            action: self.action.to_string(),
            // Strings only: it always serialises.
            targets: serde_json::to_string(&targets).unwrap_or_else(|_| "[]".into()),
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            request_id: ctx.request_id.clone(),
            details: self.details.to_string(),
            seq: None,
            hash: None,
            sealed: None,
        }
    }

    /// Append the event in `tx`, the transaction of the change it records.
    pub async fn record(self, tx: &mut Tx, ctx: &Context, now: Millis) -> Result<(), sqlx::Error> {
        if !ctx.enabled {
            return Ok(());
        }
        let row = self.row(ctx, now);
        match &self.license_entity {
            Some(license) => store::audit::insert_event_of_license(&mut **tx, &row, license).await,
            None => store::audit::insert_event(&mut **tx, &row).await,
        }
    }

    /// The row [`Event::record`] would append, and the license whose entity's chain it goes on,
    /// for a caller that writes it inside a larger statement of the same transaction (the
    /// checkout, `store::slots::claim_folded`). None when auditing is off.
    pub fn row_of_license(&self, ctx: &Context, now: Millis) -> Option<(EventRow, String)> {
        let license = self.license_entity.clone()?;
        ctx.enabled.then(|| (self.row(ctx, now), license))
    }

    /// For what changes nothing else (a refused sign-in, a denied seat): its own short transaction.
    pub async fn record_alone(self, state: &AppState, ctx: &Context, now: Millis) -> Result<(), sqlx::Error> {
        if !ctx.enabled {
            return Ok(());
        }
        let row = self.row(ctx, now);
        match &self.license_entity {
            Some(license) => store::audit::insert_event_of_license(&state.db.pool, &row, license).await,
            None => store::audit::insert_event(&state.db.pool, &row).await,
        }
    }
}
