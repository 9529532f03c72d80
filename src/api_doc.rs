//! The OpenAPI 3.1 document of the JSON API, generated from the handlers' own annotations
//! (`#[utoipa::path]` on each handler, `ToSchema` on its request and response types) when the
//! server starts, and served at `GET /openapi.json`.
//!
//! Problem (RFC 9457) responses are declared per handler with [`problems!`]: each entry names an
//! HTTP status and a stable `code` from [`codes`] (a code missing there does not compile), with the
//! catalogue's explanation or one of its own. The OAuth endpoints' RFC 6749 §5.2 errors are
//! declared with [`oauth_errors`].

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        ContentBuilder, HeaderBuilder, RefOr, Response, ResponseBuilder,
        schema::{AllOfBuilder, ObjectBuilder, Ref, Schema, Type},
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};

/// The stable problem `code`s and what each one means where it is not said otherwise.
#[allow(non_upper_case_globals)]
pub mod codes {
    pub const admin_only: &str = "share links are made by the entity's administrators, not with the operator key";
    pub const already_imported: &str = "the file was imported here before";
    pub const already_returned: &str = "the offline license was returned already";
    pub const body_too_large: &str = "the body is larger than 1 MiB";
    pub const domain_taken: &str = "an email domain is verified for another entity";
    pub const entitlement_expired: &str = "past its expiry";
    pub const entity_exists: &str = "the slug is taken";
    pub const group_exists: &str = "the entity has a group of that name";
    pub const internal: &str = "unexpected server error; the body carries `request_id`";
    pub const invalid_cursor: &str = "`after` is not a `next` value";
    pub const invalid_deactivation: &str = "not a deactivation code of this license";
    pub const invalid_email: &str = "not a usable email address";
    pub const invalid_file: &str = "not a usage file, or out of range";
    pub const invalid_fingerprint: &str = "not the text `latchkey onprem fingerprint` prints";
    pub const invalid_json: &str = "the body is not valid JSON";
    pub const invalid_link: &str = "not a link token, or unknown";
    pub const invalid_metadata: &str = "the IdP metadata cannot be used; `detail` says why (not XML, DTD, no IDPSSODescriptor, no or expired certificate, no SSO endpoint)";
    pub const invalid_metadata_url: &str = "`idp_metadata_url` is not an `https://` URL, or carries credentials";
    pub const invalid_query: &str = "an unknown or repeated parameter";
    pub const invalid_request: &str =
        "the JSON does not fit the schema (missing or unknown member, wrong type) or a value is out of range";
    pub const invalid_request_file: &str = "not an activation request";
    pub const invalid_share_link: &str = "not a share link";
    pub const invalid_signature: &str = "not signed by the server the license went to";
    pub const invalid_sku: &str = "the SKU breaks the rules";
    pub const invalid_slug: &str = "the slug breaks the rules";
    pub const last_admin: &str = "an entity keeps at least one administrator";
    pub const lease_expired: &str = "no heartbeat within the lease TTL; check out again";
    pub const lease_revoked: &str =
        "released, disconnected by an administrator, or idle past the license's idle timeout";
    pub const license_expired: &str = "the license has expired";
    pub const license_mismatch: &str = "a license with this id exists for another entity or product";
    pub const license_on_premise: &str = "the license is on an on-premise server already";
    pub const link_expired: &str = "the link expired";
    pub const link_used: &str = "the link was already used";
    pub const no_seat_available: &str = "floating: every seat is in use (`seats`, `in_use` in the body)";
    pub const not_an_administrator: &str = "the user administers no entity at all";
    pub const not_assigned: &str = "that email is not assigned this license";
    pub const not_found: &str = "no such resource, or it belongs to an entity the caller does not administer";
    pub const not_licensed: &str = "the user holds no license of that product";
    pub const not_on_premise: &str = "the license never went to an on-premise server";
    pub const not_on_premise_server: &str = "this server has no LATCHKEY_LICENSE_PUBLIC_KEY_FILE";
    pub const offline_active: &str = "this computer holds an offline license already";
    pub const offline_not_allowed: &str = "the license is floating, or the operator did not set `offline_allowed`";
    pub const onprem_not_allowed: &str = "the license is fixed, or the operator did not set `onprem_allowed`";
    pub const operator_only: &str = "an administrator tried to change `seats` or `expires_at`";
    pub const product_exists: &str = "the SKU is taken or is `portal`";
    pub const public_domain: &str = "a public mail domain (gmail.com, ...) cannot be claimed";
    pub const reassignment_limit: &str = "fixed license: as many revokes or reassignments as seats are used up";
    pub const return_used: &str = "the return file was used already";
    pub const seat_in_use: &str = "fixed: the user's seat is live on another computer";
    pub const seats_below_assigned: &str = "fewer seats than assigned users on a fixed license";
    pub const seats_exhausted: &str = "fixed license: every seat is assigned";
    pub const share_link_expired: &str = "the link expired";
    pub const share_link_revoked: &str = "the administrator stopped the link";
    pub const sso_not_configured: &str = "the entity has no SSO configuration";
    pub const sso_required: &str = "the user's entity signs in through SSO; no password to set";
    pub const sso_untested: &str = "an administrator enables (or changes the IdP of an enabled configuration) before a test sign-in with that IdP configuration passed";
    pub const unauthorized: &str =
        "no or malformed `Authorization`, unknown operator key, or an invalid, expired or revoked access token";
    pub const unknown_group: &str = "the entity has no group of that name";
    pub const unknown_product: &str = "no product with that SKU";
    pub const too_many_scim_tokens: &str = "the entity has 20 live SCIM tokens";
    pub const unsupported_media_type: &str = "the body was not sent as `application/json`";
    pub const user_token_required: &str = "an operator key was sent; this endpoint takes a user's access token";
    pub const weak_password: &str = "shorter than 12 characters, longer than 1024 bytes, the email, a sequence, one repeated character or a very common password";
    pub const wrong_audience: &str = "the access token was not issued to the `portal` client";
    pub const wrong_product: &str = "the request is for another product";
    pub const wrong_server: &str = "the file names another server";
}

/// Problems that whole kinds of endpoint share, named in `problems!(Name [group, ...]: ...)`.
#[allow(non_upper_case_globals)]
pub mod groups {
    use super::codes;

    type Entries = &'static [(u16, &'static str, &'static str)];

    /// What the `Admin` extractor refuses (a caller who is not the operator key nor a `portal`
    /// token of an administrator).
    pub const admin: Entries = &[
        (401, "unauthorized", codes::unauthorized),
        (403, "wrong_audience", codes::wrong_audience),
        (403, "not_an_administrator", codes::not_an_administrator),
    ];
    /// What `ApiJson` refuses before the handler runs.
    pub const json_body: Entries = &[
        (400, "invalid_json", codes::invalid_json),
        (413, "body_too_large", codes::body_too_large),
        (415, "unsupported_media_type", codes::unsupported_media_type),
    ];
}

/// Declare a type listing the problem responses of one operation, for `responses(...)` of its
/// `#[utoipa::path]`: `problems!(Name: 404 not_found, 409 seats_exhausted "fixed: every seat is assigned")`;
/// `problems!(Name [admin, json_body]: ...)` adds the problems of those `groups` first.
#[macro_export]
macro_rules! problems {
    ($name:ident $([$($group:ident),* $(,)?])?: $($status:literal $code:ident $($text:literal)?),* $(,)?) => {
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
                let mut entries: Vec<(u16, &'static str, &'static str)> = Vec::new();
                $($(entries.extend_from_slice($crate::api_doc::groups::$group);)*)?
                entries.extend_from_slice(&[$(($status, stringify!($code), $crate::problems!(@text $code $($text)?))),*]);
                $crate::api_doc::problem_responses(&entries)
            }
        }
    };
    (@text $code:ident) => { $crate::api_doc::codes::$code };
    (@text $code:ident $text:literal) => {{
        let _ = $crate::api_doc::codes::$code;
        $text
    }};
}

fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Not authenticated",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload too large",
        415 => "Unsupported media type",
        422 => "Unprocessable",
        429 => "Too many requests",
        500 => "Internal error",
        503 => "Unavailable",
        _ => "Error",
    }
}

/// `schema` narrowed to the given values of its string member `member`.
fn narrowed(schema: &str, member: &str, values: &[&str]) -> Schema {
    let mut values: Vec<&str> = values.to_vec();
    values.sort_unstable();
    values.dedup();
    let only =
        ObjectBuilder::new().property(member, ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)));
    AllOfBuilder::new().item(Ref::from_schema_name(schema)).item(only).build().into()
}

/// The responses of `(status, code, meaning)` entries: one per status, its description listing
/// the codes, its schema `Problem` with `code` narrowed to them.
pub fn problem_responses(entries: &[(u16, &'static str, &'static str)]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<(&str, &str)>> = BTreeMap::new();
    for &(status, code, text) in entries {
        by_status.entry(status).or_default().push((code, text));
    }
    by_status
        .into_iter()
        .map(|(status, list)| {
            let mut description = format!("{}\n\n`code` values:", title(status));
            for (code, text) in &list {
                description.push_str(&format!("\n- `{code}`: {text}"));
            }
            let codes: Vec<&str> = list.iter().map(|(c, _)| *c).collect();
            let content = ContentBuilder::new().schema(Some(narrowed("Problem", "code", &codes))).build();
            let response =
                ResponseBuilder::new().description(description).content("application/problem+json", content).build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// The responses of an OAuth endpoint's errors (RFC 6749 §5.2): `(status, title, [(error, meaning)])`.
/// One status of an OAuth endpoint's errors: the status, its title, and `(error, meaning)` pairs.
pub type OAuthErrorStatus<'a> = (u16, &'a str, &'a [(&'a str, &'a str)]);

pub fn oauth_errors(entries: &[OAuthErrorStatus]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .iter()
        .map(|&(status, title, list)| {
            let mut description = format!("{title} (RFC 6749 §5.2 form)\n\n`error` values:");
            for (error, text) in list {
                description.push_str(&format!("\n- `{error}`: {text}"));
            }
            let errors: Vec<&str> = list.iter().map(|(e, _)| *e).collect();
            let content = ContentBuilder::new().schema(Some(narrowed("OAuthError", "error", &errors))).build();
            let mut response = ResponseBuilder::new().description(description).content("application/json", content);
            if status == 429 {
                let header = HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds to wait"))
                    .build();
                response = response.header("Retry-After", header);
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// RFC 9457 problem document. `code` is the stable, machine-readable reason. Some problems carry
/// more members (`seats` and `in_use` with `no_seat_available`, `request_id` with `internal`).
/// (What `error::ApiError` answers; described here, built there.)
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    #[schema(value_type = String, pattern = "^about:blank$")]
    r#type: &'static str,
    /// the HTTP reason phrase
    title: String,
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    code: String,
    /// a human-readable explanation
    detail: String,
    /// only with `internal` (500): quote it to the operator
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    request_id: Option<String>,
    /// only with `no_seat_available`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    seats: Option<i64>,
    /// only with `no_seat_available`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    in_use: Option<i64>,
}

/// OAuth 2.0 error (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct OAuthError {
    error: String,
    error_description: String,
    /// only with `sso_required`: where the user signs in through their organisation's IdP
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = "uri")]
    login_url: Option<String>,
    /// only with the device grant's `slow_down`: the new polling interval in seconds
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    interval: Option<i64>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut operator = Http::new(HttpAuthScheme::Bearer);
        operator.description = Some("operator key `lk_op_...` (the vendor's staff)".into());
        components.add_security_scheme("operatorKey", SecurityScheme::Http(operator));
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description =
            Some("a user's access token from /oauth/token; the administration API wants one issued to `portal`".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "latchkey",
        description = "Identity, SSO and license seats for desktop software. The reference with prose and guides is docs/ in the repository.\n\nErrors of the JSON API are `application/problem+json` (RFC 9457) with a stable `code`; the OAuth endpoints answer errors in RFC 6749 §5.2 form. Authentication is `Authorization: Bearer` with either an operator key (`lk_op_...`) or a user's access token (a JWT from /oauth/token). The administration API takes an access token issued to the `portal` client (its user must administer the entity) or the operator key; another entity's resources answer 404 like missing ones. Request bodies are limited to 1 MiB. Integer members take JSON integer literals (`5`, not `5.0`). The browser pages (/login, /account/*, /device, /share/*, /saml/*) are not described here.",
    ),
    components(schemas(Problem, OAuthError)),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// The whole document: every router's `Doc` merged.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        crate::ops::Doc::openapi(),
        crate::oauth::Doc::openapi(),
        crate::licenses::Doc::openapi(),
        crate::saml::Doc::openapi(),
        crate::audit::api::Doc::openapi(),
        crate::accounts::Doc::openapi(),
        crate::onprem::Doc::openapi(),
        crate::scim::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

/// The document as served: `servers` names this server's public URL.
pub fn json(base_url: &str) -> anyhow::Result<Vec<u8>> {
    let mut doc = document();
    doc.servers = Some(vec![utoipa::openapi::server::Server::new(base_url)]);
    camel_case_links(&mut doc);
    Ok(serde_json::to_vec(&doc)?)
}

/// utoipa 5.5 writes a response link's fixed fields as `operation_id`, `operation_ref` and
/// `request_body`; OpenAPI names them `operationId`, `operationRef` and `requestBody` (and a
/// validator refuses the others). They are moved to those names here.
fn camel_case_links(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            for response in op.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                for link in response.links.values_mut() {
                    let RefOr::T(link) = link else { continue };
                    let mut fields = Vec::new();
                    if !link.operation_id.is_empty() {
                        fields.push(("operationId", serde_json::Value::from(std::mem::take(&mut link.operation_id))));
                    }
                    if !link.operation_ref.is_empty() {
                        fields.push(("operationRef", serde_json::Value::from(std::mem::take(&mut link.operation_ref))));
                    }
                    if let Some(body) = link.request_body.take() {
                        fields.push(("requestBody", body));
                    }
                    let extensions = link.extensions.get_or_insert_with(Default::default);
                    for (name, value) in fields {
                        extensions.insert(name.to_string(), value);
                    }
                }
            }
        }
    }
}

/// Asserts that `view` serialises as the same members built with `json!` would: byte for byte,
/// objects' members in sorted order at every level (as a [`serde_json::Value`] writes them). The
/// views' members are declared in that order so that answers once built with `json!` stay as
/// they were.
#[cfg(test)]
#[track_caller]
pub fn assert_as_json_macro<T: Serialize>(view: &T) {
    let typed = serde_json::to_string(view).unwrap();
    let value = serde_json::to_string(&serde_json::to_value(view).unwrap()).unwrap();
    assert_eq!(typed, value, "the members are not declared in sorted order");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every operation is named once, says what it does, answers something on success, and
    /// describes its problem responses with the codes it can return.
    #[test]
    fn every_operation_is_named_once_and_describes_its_answers() {
        let doc: serde_json::Value = serde_json::from_slice(&super::json("http://localhost").unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "http://localhost");
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_string()), "{id} names two operations");
                assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{id}: no summary");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')), "{id}: no success");
                for (status, r) in responses {
                    if let Some(c) = r["content"].get("application/problem+json")
                        && status != "400"
                    {
                        let codes = &c["schema"]["allOf"][1]["properties"]["code"]["enum"];
                        assert!(codes.as_array().is_some_and(|a| !a.is_empty()), "{id} {status}: no codes");
                    }
                }
            }
        }
        assert!(ids.len() > 50, "{ids:?}");
        // Response links name an operation of the document, in OpenAPI's spelling.
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for r in op["responses"].as_object().unwrap().values() {
                    for (name, link) in r["links"].as_object().into_iter().flatten() {
                        assert!(link.get("operation_id").is_none(), "{name}: {link}");
                        let target = link["operationId"].as_str().unwrap_or_else(|| panic!("{name}: {link}"));
                        assert!(ids.contains(target), "{name} links to {target}, which is no operation");
                        links += 1;
                    }
                }
            }
        }
        assert!(links > 5, "{links} links");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
        assert_eq!(schemes["operatorKey"]["scheme"], "bearer");
    }
}
