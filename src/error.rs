//! One error type for the whole HTTP surface. JSON API errors are RFC 9457 problem documents with a
//! stable `code`; OAuth endpoints answer in RFC 6749 §5.2 form. Internal errors are logged with their
//! cause chain and answered as a bare 500 carrying only the request id.

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Request, rejection::*},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after: Option<u64>,
}

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub extra: Map<String, Value>,
    pub retry_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{} {}: {}", .0.status, .0.code, .0.detail)]
    Problem(Box<Problem>),
    #[error("oauth {}: {}", .0.error, .0.description)]
    OAuth(Box<OAuthError>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Text the database cannot hold (a NUL, bad UTF-8) is the client's mistake, not ours.
        if let sqlx::Error::Database(d) = &e
            && d.code().as_deref() == Some("22021")
        {
            return ApiError::unprocessable("invalid_request", "text must not contain NUL characters");
        }
        // The database is out of reach for now (restarting, overloaded, a connection dropped):
        // the request did nothing. Say so, and when to come back, so clients back off and retry
        // instead of counting a failure.
        if crate::store::is_transient(&e) {
            tracing::warn!(error = %e, "database unavailable; answering 503");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service cannot reach its database right now; try again in a moment",
            )
            .retry_after(1);
        }
        ApiError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Problem(Box::new(Problem {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }))
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }
    pub fn gone(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, code, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn too_many(code: &'static str, detail: impl Into<String>, retry_after_s: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail).retry_after(retry_after_s)
    }
    pub fn internal(msg: &'static str) -> Self {
        ApiError::Internal(anyhow::anyhow!(msg))
    }

    /// Answer with `Retry-After` (at least one second).
    pub fn retry_after(mut self, secs: u64) -> Self {
        match &mut self {
            ApiError::Problem(p) => p.retry_after = Some(secs.max(1)),
            ApiError::OAuth(o) => o.retry_after = Some(secs.max(1)),
            ApiError::Internal(_) => {}
        }
        self
    }

    /// Add a member to the problem (or OAuth error) body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        match &mut self {
            ApiError::Problem(p) => {
                p.extra.insert(key.into(), value.into());
            }
            ApiError::OAuth(o) => {
                o.extra.insert(key.into(), value.into());
            }
            ApiError::Internal(_) => {}
        }
        self
    }

    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        ApiError::OAuth(Box::new(OAuthError {
            status,
            error,
            description: description.into(),
            extra: Map::new(),
            retry_after: None,
        }))
    }
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
    pub fn oauth_slow_down(retry_after_s: u64) -> Self {
        Self::oauth(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!("too many failed sign-in attempts; try again in {} s", retry_after_s.max(1)),
        )
        .retry_after(retry_after_s)
    }

    /// Turn a problem into the OAuth form (for errors raised by shared code inside OAuth endpoints).
    pub fn into_oauth(self) -> Self {
        match self {
            ApiError::Problem(p) => {
                let error = match p.status {
                    StatusCode::TOO_MANY_REQUESTS => "slow_down",
                    StatusCode::UNAUTHORIZED => "invalid_client",
                    StatusCode::INTERNAL_SERVER_ERROR => "server_error",
                    StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
                    _ => "invalid_request",
                };
                ApiError::OAuth(Box::new(OAuthError {
                    status: p.status,
                    error,
                    description: p.detail,
                    extra: p.extra,
                    retry_after: p.retry_after,
                }))
            }
            other => other,
        }
    }

    /// `code: detail` of a client error, for a command line to print (internal errors: their cause).
    pub fn detail_text(&self) -> String {
        match self {
            ApiError::Problem(p) => format!("{}: {}", p.code, p.detail),
            ApiError::OAuth(o) => format!("{}: {}", o.error, o.description),
            ApiError::Internal(e) => format!("{e:#}"),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Problem(p) => p.code,
            ApiError::OAuth(o) => o.error,
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Problem(p) => p.status,
            ApiError::OAuth(o) => o.status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn with_retry_after(mut resp: Response, retry_after: Option<u64>) -> Response {
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Problem(p) => {
                let mut body = Map::new();
                body.insert("type".into(), "about:blank".into());
                body.insert("title".into(), p.status.canonical_reason().unwrap_or("Error").into());
                body.insert("status".into(), p.status.as_u16().into());
                body.insert("code".into(), p.code.into());
                body.insert("detail".into(), p.detail.into());
                for (k, v) in p.extra {
                    body.entry(k).or_insert(v);
                }
                let resp = (
                    p.status,
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))],
                    Value::Object(body).to_string(),
                )
                    .into_response();
                with_retry_after(resp, p.retry_after)
            }
            ApiError::OAuth(o) => {
                let mut body = Map::new();
                body.insert("error".into(), o.error.into());
                body.insert("error_description".into(), o.description.into());
                for (k, v) in o.extra {
                    body.entry(k).or_insert(v);
                }
                let mut resp = (o.status, Json(Value::Object(body))).into_response();
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if o.status == StatusCode::UNAUTHORIZED {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                with_retry_after(resp, o.retry_after)
            }
            ApiError::Internal(err) => {
                let id = current_request_id();
                tracing::error!(request_id = %id, error = ?err, "internal error");
                let body = json!({
                    "type": "about:blank",
                    "title": "Internal Server Error",
                    "status": 500,
                    "code": "internal",
                    "detail": format!("something went wrong on our side; quote request id {id}"),
                    "request_id": id,
                });
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))],
                    body.to_string(),
                )
                    .into_response()
            }
        }
    }
}

/// Decode a JSON request body: an object (not an array that serde would read field by field), no
/// NUL characters (PostgreSQL cannot store them, so no backend does), syntax errors as 400
/// `invalid_json`, shape errors as 422 `invalid_request`.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::bad_request("invalid_json", "the body is empty; send a JSON object")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::unprocessable("invalid_request", "the body must be a JSON object")),
    }
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(ApiError::unprocessable("invalid_request", "text must not contain NUL characters"));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        }
        serde_json::error::Category::Data => {
            ApiError::unprocessable("invalid_request", format!("the JSON does not fit: {e}"))
        }
    })
}

async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    let ct = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large"))?;
    if !is_json && !bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    Ok(bytes)
}

/// A JSON object body, with problem-document rejections (see `decode_json`).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct_missing = !req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        let bytes = json_body(req, state).await?;
        if ct_missing && bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        decode_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON object body: none at all means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        decode_json(&bytes).map(OptionalJson)
    }
}

/// Form body for the JSON API's form endpoints; rejections become OAuth `invalid_request`
/// (the OAuth endpoints are the form-encoded ones).
pub struct OAuthForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OAuthForm<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(OAuthForm(v)),
            Err(FormRejection::InvalidFormContentType(_)) => {
                Err(ApiError::invalid_request("send the body as application/x-www-form-urlencoded"))
            }
            Err(FormRejection::FailedToDeserializeForm(e)) => {
                Err(ApiError::invalid_request(format!("malformed form: {}", e.body_text())))
            }
            Err(FormRejection::FailedToDeserializeFormBody(e)) => {
                Err(ApiError::invalid_request(format!("malformed form: {}", e.body_text())))
            }
            Err(e) => Err(ApiError::invalid_request(e.body_text())),
        }
    }
}

/// Query string whose rejections are problem documents.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// Path parameters whose rejections are problem documents.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::not_found(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn an_unreachable_database_is_503_with_retry_after_and_other_database_errors_500() {
        use std::io::{Error, ErrorKind};
        let unreachable = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(Error::from(ErrorKind::ConnectionReset)),
            sqlx::Error::Io(Error::from(ErrorKind::ConnectionRefused)),
            sqlx::Error::Io(Error::from(ErrorKind::UnexpectedEof)),
            sqlx::Error::Io(Error::from(ErrorKind::BrokenPipe)),
            sqlx::Error::Protocol("unexpected end of stream".into()),
        ];
        for e in unreachable {
            let what = format!("{e:?}");
            let r = ApiError::from(e).into_response();
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"), "{what}");
        }
        for e in [sqlx::Error::RowNotFound, sqlx::Error::ColumnNotFound("x".into())] {
            let r = ApiError::from(e).into_response();
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }

    /// Real database errors from a real SQLite: a constraint violation is ours to answer (500
    /// here, callers map it), a database locked past its busy timeout is 503.
    #[tokio::test]
    async fn sqlite_busy_is_transient_and_a_constraint_violation_is_not() {
        use sqlx::{Connection, sqlite::SqliteConnectOptions};
        let dir = std::env::temp_dir().join(format!("latchkey-err-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = SqliteConnectOptions::new().filename(dir.join("t.db")).create_if_missing(true);
        let mut a = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(&mut a).await.unwrap();
        sqlx::raw_sql("INSERT INTO t VALUES (1)").execute(&mut a).await.unwrap();
        let dup = sqlx::raw_sql("INSERT INTO t VALUES (1)").execute(&mut a).await.unwrap_err();
        assert!(!crate::store::is_transient(&dup), "{dup:?}");
        let mut b =
            sqlx::SqliteConnection::connect_with(&opts.clone().busy_timeout(std::time::Duration::ZERO)).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut a).await.unwrap();
        let busy = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut b).await.unwrap_err();
        assert!(crate::store::is_transient(&busy), "{busy:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
