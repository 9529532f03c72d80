//! Discovery (RFC 7644 §4): what this service provider supports, its resource types and the
//! schemas of the attributes it keeps.

use axum::{extract::State, http::StatusCode, response::Response};
use serde_json::{Value, json};

use super::{GROUP_SCHEMA, MAX_COUNT, ScimCaller, ScimError, ScimResult, USER_SCHEMA, list_response, scim_json};
use crate::{error::ApiPath, state::AppState};

const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

fn location(state: &AppState, slug: &str, path: &str) -> String {
    state.url(&format!("/scim/v2/{slug}/{path}"))
}

pub async fn service_provider_config(State(state): State<AppState>, caller: ScimCaller) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [SPC_URN],
            "documentationUri": state.url("/openapi.json"),
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_COUNT },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": false },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A SCIM token made by the organisation's administrators (POST /api/v1/entities/{slug}/scim-tokens)",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": location(&state, &caller.slug, "ServiceProviderConfig"),
            },
        }),
    )
}

fn resource_type_values(state: &AppState, slug: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RT_URN], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "An account, identified by its email address", "schema": USER_SCHEMA,
            "schemaExtensions": [],
            "meta": { "resourceType": "ResourceType", "location": location(state, slug, "ResourceTypes/User") },
        }),
        json!({
            "schemas": [RT_URN], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "A group of the organisation's users; licenses may follow its membership",
            "schema": GROUP_SCHEMA, "schemaExtensions": [],
            "meta": { "resourceType": "ResourceType", "location": location(state, slug, "ResourceTypes/Group") },
        }),
    ]
}

pub async fn resource_types(State(state): State<AppState>, caller: ScimCaller) -> Response {
    let items = resource_type_values(&state, &caller.slug);
    scim_json(StatusCode::OK, &list_response(items.len() as i64, 1, items))
}

pub async fn resource_type(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, name)): ApiPath<(String, String)>,
) -> ScimResult<Response> {
    resource_type_values(&state, &caller.slug)
        .into_iter()
        .find(|v| v["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(&name)))
        .map(|v| scim_json(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found("resource types are User and Group"))
}

fn attribute(name: &str, ty: &str, required: bool, mutability: &str, uniqueness: &str, description: &str) -> Value {
    json!({
        "name": name, "type": ty, "multiValued": false, "description": description, "required": required,
        "caseExact": false, "mutability": mutability, "returned": "default", "uniqueness": uniqueness,
    })
}

fn schema_values(state: &AppState, slug: &str) -> Vec<Value> {
    let mut emails = attribute("emails", "complex", false, "readWrite", "none", "The account's one address (work)");
    emails["multiValued"] = true.into();
    emails["subAttributes"] = json!([
        attribute("value", "string", false, "readWrite", "none", "The address: the same as userName"),
        attribute("type", "string", false, "readWrite", "none", "Always `work`"),
        attribute("primary", "boolean", false, "readWrite", "none", "Always true"),
    ]);
    let mut members = attribute("members", "complex", false, "readWrite", "none", "The group's users");
    members["multiValued"] = true.into();
    members["subAttributes"] = json!([
        attribute("value", "string", false, "immutable", "none", "The user's id"),
        attribute("$ref", "reference", false, "immutable", "none", "The user's URI"),
    ]);
    members["subAttributes"][1]["referenceTypes"] = json!(["User"]);
    let mut external = attribute("externalId", "string", false, "readWrite", "none", "The IdP's identifier");
    external["caseExact"] = true.into();
    vec![
        json!({
            "schemas": [SCHEMA_URN], "id": USER_SCHEMA, "name": "User",
            "description": "An account. Only the address, the IdP's identifier and whether it is active are kept; \
                            names and other profile attributes are accepted and not stored.",
            "attributes": [
                attribute("userName", "string", true, "readWrite", "server", "The email address (unique, case-insensitive)"),
                external.clone(),
                attribute("active", "boolean", false, "readWrite", "none",
                          "false: signed out everywhere, seats ended, assignments suspended"),
                emails,
            ],
            "meta": { "resourceType": "Schema", "location": location(state, slug, &format!("Schemas/{USER_SCHEMA}")) },
        }),
        json!({
            "schemas": [SCHEMA_URN], "id": GROUP_SCHEMA, "name": "Group", "description": "A group of users",
            "attributes": [
                attribute("displayName", "string", true, "readWrite", "server", "The group's name"),
                external,
                members,
            ],
            "meta": { "resourceType": "Schema", "location": location(state, slug, &format!("Schemas/{GROUP_SCHEMA}")) },
        }),
    ]
}

pub async fn schemas(State(state): State<AppState>, caller: ScimCaller) -> Response {
    let items = schema_values(&state, &caller.slug);
    scim_json(StatusCode::OK, &list_response(items.len() as i64, 1, items))
}

pub async fn schema(
    State(state): State<AppState>,
    caller: ScimCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ScimResult<Response> {
    schema_values(&state, &caller.slug)
        .into_iter()
        .find(|v| v["id"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&id)))
        .map(|v| scim_json(StatusCode::OK, &v))
        .ok_or_else(|| ScimError::not_found(format!("the schemas are {USER_SCHEMA} and {GROUP_SCHEMA}")))
}

/// Any other path under an entity's SCIM base: an RFC 7644 404 (after the token is checked).
pub async fn unknown(_caller: ScimCaller) -> ScimError {
    ScimError::not_found(
        "no such SCIM endpoint: Users, Groups, ServiceProviderConfig, ResourceTypes and Schemas are served",
    )
}

/// `POST /.search` at the root would search every resource type at once: not supported (501).
pub async fn root_search(_caller: ScimCaller) -> ScimError {
    ScimError::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        None,
        "search one resource type at a time: POST /Users/.search or /Groups/.search",
    )
}
