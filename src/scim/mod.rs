//! SCIM 2.0 provisioning (RFC 7643/7644), one service per entity at `/scim/v2/{slug}`: the
//! entity's IdP (Okta, Microsoft Entra ID, ...) creates, updates and deactivates the accounts of
//! the entity's verified email domains and manages groups whose membership licenses can follow.
//! Requests are parsed leniently (the shapes Okta and Entra really send: capitalised op names,
//! `"False"` strings, path-less PATCH, `emails[type eq "work"].value`), answers are strict, and
//! every error is an RFC 7644 error document in `application/scim+json`.
//!
//! Who may call: a bearer token made by the entity's administrators (`tokens.rs`), bound to
//! that entity; only its SHA-256 is stored.

pub mod filter;
mod groups;
mod meta;
pub mod patch;
pub mod sync;
pub mod tokens;
mod users;
pub mod views;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde_json::{Value, json};

use crate::{crypto::secret_hash, error::ApiError, state::AppState, store};

pub use groups::plan as plan_group_filter;
pub use tokens::TOKEN_PREFIX;
pub use users::plan as plan_user_filter;

pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const SCIM_JSON: &str = "application/scim+json";

/// The largest SCIM request body taken (a group PATCH of a thousand members fits many times).
pub const MAX_BODY: usize = 256 * 1024;
/// The most resources one list answers (`count` is capped to it).
pub const MAX_COUNT: i64 = 200;

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(tokens::create, tokens::list, tokens::revoke,))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/entities/{slug}/scim-tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/entities/{slug}/scim-tokens/{id}", delete(tokens::revoke))
        .route("/scim/v2/{slug}/Users", get(users::list).post(users::create))
        .route("/scim/v2/{slug}/.search", post(meta::root_search))
        .route("/scim/v2/{slug}/Users/.search", post(users::search))
        .route("/scim/v2/{slug}/Groups/.search", post(groups::search))
        .route(
            "/scim/v2/{slug}/Users/{id}",
            get(users::get).put(users::replace).patch(users::patch).delete(users::delete),
        )
        .route("/scim/v2/{slug}/Groups", get(groups::list).post(groups::create))
        .route(
            "/scim/v2/{slug}/Groups/{id}",
            get(groups::get).put(groups::replace).patch(groups::patch).delete(groups::delete),
        )
        .route("/scim/v2/{slug}/ServiceProviderConfig", get(meta::service_provider_config))
        .route("/scim/v2/{slug}/ResourceTypes", get(meta::resource_types))
        .route("/scim/v2/{slug}/ResourceTypes/{name}", get(meta::resource_type))
        .route("/scim/v2/{slug}/Schemas", get(meta::schemas))
        .route("/scim/v2/{slug}/Schemas/{id}", get(meta::schema))
        .route("/scim/v2/{slug}/{*rest}", axum::routing::any(meta::unknown))
}

/// An RFC 7644 §3.12 error.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

pub type ScimResult<T> = Result<T, ScimError>;

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type, detail: detail.into() }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "send `Authorization: Bearer <token>` with a live SCIM token of this organisation",
        )
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Problem(p) => {
                let scim_type = match p.status {
                    StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Some("invalidValue"),
                    _ => None,
                };
                let status =
                    if p.status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { p.status };
                ScimError { status, scim_type, detail: p.detail }
            }
            ApiError::OAuth(o) => ScimError { status: o.status, scim_type: None, detail: o.description },
            ApiError::Internal(err) => {
                let id = crate::error::current_request_id();
                tracing::error!(request_id = %id, error = ?err, "internal error");
                ScimError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    scim_type: None,
                    detail: format!("something went wrong on our side; quote request id {id}"),
                }
            }
        }
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_URN],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        let mut resp = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A SCIM answer: JSON as `application/scim+json`.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))], body.to_string()).into_response()
}

/// The entity a SCIM request is for, proven by its bearer token.
#[derive(Debug, Clone)]
pub struct ScimCaller {
    pub entity_id: String,
    pub slug: String,
    /// The audit context of the request: the entity's IdP, by its token.
    pub ctx: crate::audit::Context,
}

impl ScimCaller {
    /// An audit event on the entity's chain, by the IdP.
    pub fn event(&self, action: &'static str) -> crate::audit::Event {
        crate::audit::Event::new(action).entity(&self.entity_id, &self.slug)
    }
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| ScimError::unauthorized())?;
        let slug = params.iter().find(|(k, _)| *k == "slug").map(|(_, v)| v.to_string()).unwrap_or_default();
        let token = crate::auth::bearer(parts).map_err(|_| ScimError::unauthorized())?;
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(ScimError::unauthorized());
        }
        // A token of another entity, a revoked one and an unknown one get the same answer.
        let Some((token_id, token_name, entity_id, token_slug, last_used)) =
            store::scim::token_by_hash(&state.db.pool, &secret_hash(token)).await?
        else {
            return Err(ScimError::unauthorized());
        };
        if token_slug != slug {
            tracing::warn!(entity = %token_slug, "a SCIM token was presented for another organisation");
            return Err(ScimError::unauthorized());
        }
        let now = state.now();
        if last_used.is_none_or(|t| now - t >= 60_000) {
            store::scim::touch_token(&state.db.pool, &token_id, now).await?;
        }
        let ctx = crate::audit::Context::from_request_parts(parts, state).await.unwrap_or_else(|e| match e {});
        let actor =
            crate::audit::Actor { kind: "system", id: Some(token_id), name: Some(format!("SCIM token {token_name}")) };
        Ok(ScimCaller { entity_id, slug, ctx: ctx.by(actor) })
    }
}

/// A SCIM request body: `application/scim+json` (or `application/json`), a JSON object, at most
/// `MAX_BODY` bytes, no NUL characters.
pub struct ScimBody(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime != SCIM_JSON && mime != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send the body as application/scim+json",
            ));
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| {
            ScimError::new(StatusCode::PAYLOAD_TOO_LARGE, None, format!("the body is larger than {MAX_BODY} bytes"))
        })?;
        decode_body(&bytes).map(ScimBody)
    }
}

/// Decode a SCIM body (also used by the fuzz suite).
pub fn decode_body(bytes: &[u8]) -> ScimResult<serde_json::Map<String, Value>> {
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) || bytes.contains(&0) {
        return Err(ScimError::bad("invalidValue", "text must not contain NUL characters"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ScimError::bad("invalidSyntax", "the body must be a JSON object")),
        Err(e) => Err(ScimError::bad("invalidSyntax", format!("the body is not valid JSON: {e}"))),
    }
}

/// The parameters of a list or a search: filter, startIndex (1-based), count, and which
/// attributes to return (`attributes`, `excludedAttributes`; RFC 7644 §3.4.2.5).
#[derive(Debug, Clone)]
pub struct ListParams {
    pub filter: Option<filter::Filter>,
    pub start_index: i64,
    pub count: i64,
    /// Top-level attribute names, lower-cased.
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

/// `urn:...:User:emails.value` -> `emails`: the top-level attribute a reference names.
fn top_level(reference: &str) -> String {
    let name = reference.trim().rsplit(':').next().unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_ascii_lowercase()
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { filter: None, start_index: 1, count: 100, attributes: Vec::new(), excluded: Vec::new() }
    }
}

impl ListParams {
    /// The parameters of a `POST .../.search` body (a SearchRequest).
    pub fn from_body(body: &serde_json::Map<String, Value>) -> ScimResult<ListParams> {
        let mut p = ListParams::default();
        if let Some(f) = attr(body, "filter") {
            let Some(f) = f.as_str() else { return Err(ScimError::bad("invalidFilter", "`filter` is a string")) };
            p.filter = Some(
                filter::parse(f)
                    .map_err(|e| ScimError::bad("invalidFilter", format!("the filter does not parse: {e}")))?,
            );
        }
        let number = |k: &str| -> ScimResult<Option<i64>> {
            match attr(body, k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::bad("invalidValue", format!("`{k}` must be an integer"))),
            }
        };
        if let Some(i) = number("startIndex")? {
            p.start_index = i.max(1);
        }
        if let Some(c) = number("count")? {
            p.count = c.clamp(0, MAX_COUNT);
        }
        let names = |k: &str| -> ScimResult<Vec<String>> {
            match attr(body, k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(top_level)
                            .ok_or_else(|| ScimError::bad("invalidValue", format!("`{k}` lists attribute names")))
                    })
                    .collect(),
                Some(_) => Err(ScimError::bad("invalidValue", format!("`{k}` is an array of attribute names"))),
            }
        };
        p.attributes = names("attributes")?;
        p.excluded = names("excludedAttributes")?;
        Ok(p)
    }

    /// Keep what `attributes` asks for (or drop what `excludedAttributes` names); `id` and
    /// `schemas` are always returned.
    pub fn project(&self, mut v: Value) -> Value {
        if let Value::Object(m) = &mut v {
            let always = |k: &str| k == "id" || k == "schemas";
            if !self.attributes.is_empty() {
                m.retain(|k, _| always(k) || self.attributes.contains(&k.to_ascii_lowercase()));
            } else {
                m.retain(|k, _| always(k) || !self.excluded.contains(&k.to_ascii_lowercase()));
            }
        }
        v
    }

    /// Whether a group's members are to be read at all.
    pub fn wants(&self, attribute: &str) -> bool {
        if self.attributes.is_empty() {
            !self.excluded.iter().any(|a| a == attribute)
        } else {
            self.attributes.iter().any(|a| a == attribute)
        }
    }

    pub fn parse(query: Option<&str>) -> ScimResult<ListParams> {
        let mut p = ListParams::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let number = |what: &str| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::bad("invalidValue", format!("`{what}` must be an integer, not `{}`", v.escape_default()))
                })
            };
            match k.to_ascii_lowercase().as_str() {
                "filter" => {
                    let f = filter::parse(&v)
                        .map_err(|e| ScimError::bad("invalidFilter", format!("the filter does not parse: {e}")))?;
                    p.filter = Some(f);
                }
                // RFC 7644 §3.4.2.4: below 1 means 1, a negative count means 0.
                "startindex" => p.start_index = number("startIndex")?.max(1),
                "count" => p.count = number("count")?.clamp(0, MAX_COUNT),
                "excludedattributes" => p.excluded = v.split(',').map(top_level).collect(),
                "attributes" => p.attributes = v.split(',').map(top_level).collect(),
                _ => {}
            }
        }
        Ok(p)
    }

    pub fn offset(&self) -> i64 {
        self.start_index - 1
    }
}

pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// A SCIM boolean as IdPs send it: `true`/`false`, or the strings `"True"`/`"False"` (any case).
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The value of `key` in a SCIM object, matching the attribute name case-insensitively.
pub fn attr<'v>(obj: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}
