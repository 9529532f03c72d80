//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! build their answers as these types, so the document and the answer are one definition; an
//! event's view is also what its hash is computed over (without `hash`, see [`super::chain`]).
//!
//! Members are declared in alphabetical order (of their names in JSON): the answers were built
//! with `json!` before, whose objects serialise their members sorted, and the same order keeps
//! them byte for byte as they were (the tests below check it).

use serde::Serialize;
use utoipa::ToSchema;

/// Who acted.
#[derive(Serialize, ToSchema)]
pub struct AuditEventActor {
    /// the key's or account's id; null for `system`, and for a failed sign-in of an address without an account
    #[schema(required = true)]
    pub id: Option<String>,
    /// the key's name, the account's email, or what the system was doing
    #[schema(required = true)]
    pub name: Option<String>,
    /// one of: `operator_key`, `user`, `system`, `product`
    #[serde(rename = "type")]
    pub kind: String,
}

/// What an event was about.
#[derive(Serialize, ToSchema)]
pub struct AuditEventTargetsItem {
    /// its identifier
    pub id: String,
    /// a readable name (an email, a slug, a license's product and type); null: none
    #[schema(required = true)]
    pub name: Option<String>,
    /// what it is, e.g. `license`, `user`, `entity`, `share_link`
    #[serde(rename = "type")]
    pub kind: String,
}

/// An audit event as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    /// what happened, e.g. `assignment.created`
    pub action: String,
    pub actor: AuditEventActor,
    /// RFC 3339, UTC, millisecond precision
    #[schema(format = DateTime)]
    pub at: String,
    /// facts about the change (free-form per action); never a secret
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// the entity's slug; null for the operator's own events
    #[schema(required = true)]
    pub entity: Option<String>,
    /// hex SHA-256 of the previous event's hash and this event's canonical JSON (null only before
    /// the event is sealed; the API shows sealed events)
    #[schema(value_type = String)]
    pub hash: Option<String>,
    /// identifier (UUID)
    pub id: String,
    /// the client's address
    #[schema(required = true)]
    pub ip: Option<String>,
    /// the `x-request-id` of the request
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// position in its chain (the entity's, or the operator's); set when the event is sealed
    #[schema(value_type = i64)]
    pub seq: Option<i64>,
    /// what the event was about, as recorded
    #[schema(value_type = Vec<AuditEventTargetsItem>)]
    pub targets: serde_json::Value,
    /// the client's `User-Agent`
    #[schema(required = true)]
    pub user_agent: Option<String>,
}

/// A page of audit events.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// pass as `after`; null on the last page
    #[schema(required = true)]
    pub next: Option<String>,
}

/// A signed checkpoint of a chain.
#[derive(Serialize, ToSchema)]
pub struct AuditCheckpoint {
    /// RFC 3339, UTC, millisecond precision
    #[schema(format = DateTime)]
    pub at: String,
    /// the entity's slug; null: the operator chain
    #[schema(required = true)]
    pub entity: Option<String>,
    /// the hash of the event at `seq`
    pub hash: String,
    /// the chain position it vouches for
    pub seq: i64,
    /// compact JWS, typ `audit-checkpoint+jwt`, claims entity/seq/hash; keys in /.well-known/jwks.json
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_doc::assert_as_json_macro;

    #[test]
    fn views_serialise_their_members_sorted() {
        let at = || "2026-11-30T12:00:00.123Z".to_string();
        let s = |v: &str| v.to_string();
        assert_as_json_macro(&AuditPage {
            events: vec![AuditEvent {
                action: s("license.created"),
                actor: AuditEventActor { id: None, name: Some(s("a@b.c")), kind: s("user") },
                at: at(),
                details: serde_json::json!({ "b": 1, "a": { "d": 2, "c": 3 } }),
                entity: Some(s("acme")),
                hash: Some(s("9b")),
                id: s("e"),
                ip: None,
                request_id: Some(s("r")),
                seq: Some(1),
                targets: serde_json::json!([{ "type": "license", "id": "l", "name": null }]),
                user_agent: None,
            }],
            next: None,
        });
        assert_as_json_macro(&AuditCheckpoint { at: at(), entity: None, hash: s("9b"), seq: 3, signature: s("eyJ") });
    }
}
