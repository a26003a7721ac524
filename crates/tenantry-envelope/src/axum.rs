//! axum integration: envelopes as responses, extractors whose rejections are error envelopes,
//! and fallbacks so unknown routes and methods answer with the same shape.
//!
//! Everything a handler can return becomes an envelope with the right status and headers:
//!
//! | value | status | headers |
//! |---|---|---|
//! | [`Envelope::Success`] | 200 | |
//! | [`Envelope::Error`], [`Problem`] | the code's status | `Retry-After` if the problem has one |
//! | [`Envelope::Pending`], [`Operation`] | 202 | `Location: status_url`, `Retry-After` if set |
//! | [`ProblemDetails`] | its status | `Content-Type: application/problem+json`, `Retry-After` |
//!
//! Return `Result<Envelope<T>, Problem>` and convert your errors into [`Problem`] to use `?`.
//! For another success status, return a tuple: `(StatusCode::CREATED, envelope)`.
//!
//! axum's own extractors answer bad input with plain text. Use [`Json`], [`Query`] and [`Path`]
//! from this module instead, and register [`not_found`] and [`method_not_allowed`] as the
//! router's fallbacks, and every failure a client can cause comes back as an error envelope.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::post};
//! use serde::Deserialize;
//! use tenantry_envelope::axum::{Json, method_not_allowed, not_found};
//! use tenantry_envelope::{Code, Envelope, Problem};
//!
//! #[derive(Deserialize)]
//! struct Summarize {
//!     document: String,
//! }
//!
//! async fn summarize(Json(body): Json<Summarize>) -> Result<Envelope<usize>, Problem> {
//!     if body.document.is_empty() {
//!         return Err(Problem::new(Code::InvalidRequest, "the document is empty"));
//!     }
//!     Ok(Envelope::success(body.document.len()))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/v1/summaries", post(summarize))
//!     .fallback(not_found)
//!     .method_not_allowed_fallback(method_not_allowed);
//! ```

use ::axum::body::Bytes;
use ::axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use ::axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use ::axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    Code, Envelope, FieldError, JsonPointer, Operation, PROBLEM_JSON, Problem, ProblemDetails,
};

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        match &self {
            Envelope::Success { .. } => {}
            Envelope::Error { error } => {
                set_retry_after(&mut headers, error.retry_after().map(|d| d.as_secs()))
            }
            Envelope::Pending { operation } => {
                // `Operation` only holds visible-ASCII URLs, so this conversion succeeds.
                if let Ok(location) = HeaderValue::from_str(operation.status_url()) {
                    headers.insert(LOCATION, location);
                }
                set_retry_after(&mut headers, operation.retry_after().map(|d| d.as_secs()));
            }
        }
        json_response(self.http_status(), headers, "application/json", &self)
    }
}

impl IntoResponse for Problem {
    /// The error envelope `{"status":"error","error":...}` with the problem's status.
    fn into_response(self) -> Response {
        Envelope::<()>::error(self).into_response()
    }
}

impl IntoResponse for Operation {
    /// The pending envelope with `202 Accepted`, `Location` and `Retry-After`.
    fn into_response(self) -> Response {
        Envelope::<()>::pending(self).into_response()
    }
}

impl IntoResponse for ProblemDetails {
    /// The RFC 9457 body with `Content-Type: application/problem+json`.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        set_retry_after(&mut headers, self.retry_after.map(u64::from));
        json_response(status, headers, PROBLEM_JSON, &self)
    }
}

fn set_retry_after(headers: &mut HeaderMap, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
}

fn json_response(
    status: StatusCode,
    mut headers: HeaderMap,
    content_type: &'static str,
    body: &impl Serialize,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            (status, headers, bytes).into_response()
        }
        // A host type whose `Serialize` fails (e.g. a map with non-string keys). The client gets
        // an error envelope; the cause stays on the server.
        Err(_) => {
            let problem = Problem::new(Code::Internal, "the response could not be serialized");
            let body = serde_json::to_vec(&Envelope::<()>::error(problem))
                .unwrap_or_else(|_| br#"{"status":"error"}"#.to_vec());
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response()
        }
    }
}

/// A JSON request body, like `axum::Json`, whose rejections are [`Problem`]s:
///
/// | failure | code |
/// |---|---|
/// | `Content-Type` missing or not JSON | `UNSUPPORTED_MEDIA_TYPE` (415) |
/// | body over the size limit | `PAYLOAD_TOO_LARGE` (413) |
/// | body unreadable, or not valid JSON | `INVALID_REQUEST` (400) |
/// | valid JSON of the wrong shape | `VALIDATION_FAILED` (422), with a field error whose pointer names the bad (or missing) member |
///
/// # Example
///
/// ```
/// use serde::Deserialize;
/// use tenantry_envelope::Envelope;
/// use tenantry_envelope::axum::Json;
///
/// #[derive(Deserialize)]
/// struct Submit {
///     tenant: String,
/// }
///
/// async fn submit(Json(body): Json<Submit>) -> Envelope<String> {
///     Envelope::success(body.tenant)
/// }
/// let app: axum::Router = axum::Router::new().route("/v1/jobs", axum::routing::post(submit));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(Problem::new(
                Code::UnsupportedMediaType,
                "expected a request body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_problem)?;
        parse_json(&bytes).map(Json)
    }
}

/// `Option<Json<T>>`: `None` when the request has no `Content-Type` (no body was sent), the
/// same rejections as [`Json`] otherwise.
///
/// # Example
///
/// ```
/// use tenantry_envelope::Envelope;
/// use tenantry_envelope::axum::Json;
///
/// async fn cancel(body: Option<Json<String>>) -> Envelope<String> {
///     Envelope::success(body.map_or_else(|| "no reason given".to_owned(), |Json(reason)| reason))
/// }
/// let app: axum::Router = axum::Router::new().route("/v1/jobs/cancel", axum::routing::post(cancel));
/// ```
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if req.headers().get(CONTENT_TYPE).is_none() {
            return Ok(None);
        }
        <Json<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// `application/json`, or any `application/*+json`, parameters ignored (as axum does).
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn bytes_problem(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            Code::PayloadTooLarge,
            "the request body is larger than this endpoint accepts",
        )
    } else {
        Problem::new(
            Code::InvalidRequest,
            format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ),
        )
    }
}

/// Deserializes a JSON body, turning serde's errors into problems that point at the bad member.
///
/// The success path is one plain `serde_json` pass. Only a failed body is read again: once to
/// tell "not JSON at all" (`INVALID_REQUEST`, even when a valid prefix already had the wrong
/// shape) from "JSON of the wrong shape", and once with path tracking to find the bad member.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let first = match serde_json::from_slice::<T>(bytes) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let not_json = |err: serde_json::Error| {
        Problem::new(
            Code::InvalidRequest,
            format!("the request body is not valid JSON: {err}"),
        )
    };
    if !first.is_data() {
        return Err(not_json(first));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(not_json)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) => err,
        // Unreachable for deterministic `Deserialize` impls; report the first error without a path.
        Ok(_) => {
            let message = without_position(&first);
            return Err(Problem::validation_failed([FieldError::new(
                JsonPointer::root(),
                message,
            )]));
        }
    };
    let path = err.path().clone();
    let message = without_position(err.inner());
    Err(Problem::validation_failed([FieldError::new(
        pointer_to(&path, &message),
        message,
    )]))
}

/// serde_json's message without its " at line L column C" suffix (the pointer says where).
fn without_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    message
        .strip_suffix(&suffix)
        .map(str::to_owned)
        .unwrap_or(message)
}

/// The JSON pointer of the member serde stopped at; for a missing member, the member itself.
fn pointer_to(path: &serde_path_to_error::Path, message: &str) -> JsonPointer {
    use serde_path_to_error::Segment;
    let mut segments: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        segments.push(field.to_owned());
    }
    JsonPointer::from_segments(segments)
}

/// A query string, like `axum::extract::Query`, whose rejection is an `INVALID_REQUEST`
/// [`Problem`] naming the bad parameter.
///
/// # Example
///
/// ```
/// use serde::Deserialize;
/// use tenantry_envelope::{Envelope, Page};
/// use tenantry_envelope::axum::Query;
///
/// #[derive(Deserialize)]
/// struct List {
///     limit: Option<u32>,
/// }
///
/// async fn list(Query(query): Query<List>) -> Envelope<Page<u32>> {
///     Envelope::success(Page::last((0..query.limit.unwrap_or(3)).collect()))
/// }
/// let app: axum::Router = axum::Router::new().route("/v1/summaries", axum::routing::get(list));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        ::axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|::axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                Problem::new(
                    Code::InvalidRequest,
                    format!("the query string is invalid: {}", rejection.body_text()),
                )
            })
    }
}

/// Path parameters, like `axum::extract::Path`, whose rejection is an `INVALID_REQUEST`
/// [`Problem`] (or `INTERNAL` when the route itself is wrong).
///
/// # Example
///
/// ```
/// use tenantry_envelope::Envelope;
/// use tenantry_envelope::axum::Path;
///
/// async fn job(Path(id): Path<u64>) -> Envelope<String> {
///     Envelope::success(id.to_string())
/// }
/// let app: axum::Router = axum::Router::new().route("/v1/jobs/{id}", axum::routing::get(job));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        ::axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|::axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| {
                if rejection.status().is_server_error() {
                    Problem::new(
                        Code::Internal,
                        "the route's path parameters do not match its handler",
                    )
                } else {
                    Problem::new(
                        Code::InvalidRequest,
                        format!("the path is invalid: {}", rejection.body_text()),
                    )
                }
            })
    }
}

/// Router fallback: a `NOT_FOUND` error envelope naming the method and path.
///
/// Register with `Router::fallback(not_found)`.
///
/// # Example
///
/// ```
/// use axum::Router;
/// use tenantry_envelope::axum::not_found;
///
/// let app: Router = Router::new().fallback(not_found);
/// ```
pub async fn not_found(method: Method, uri: Uri) -> Problem {
    Problem::new(
        Code::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
}

/// Method fallback: a `METHOD_NOT_ALLOWED` error envelope naming the method and path (axum
/// still adds the `Allow` header).
///
/// Register with `Router::method_not_allowed_fallback(method_not_allowed)`.
///
/// # Example
///
/// ```
/// use axum::Router;
/// use tenantry_envelope::axum::method_not_allowed;
///
/// let app: Router = Router::new().method_not_allowed_fallback(method_not_allowed);
/// ```
pub async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        Code::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // fields are read by serde only
    struct Body {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        count: u32,
    }

    fn field_of(problem: &Problem) -> (&str, &str) {
        let field = &problem.details().unwrap().fields[0];
        (field.pointer.as_str(), field.message.as_str())
    }

    #[test]
    fn wrong_type_points_at_the_member() {
        let problem =
            parse_json::<Body>(br#"{"items":[{"name":"a","count":1},{"name":"b","count":"x"}]}"#)
                .unwrap_err();
        assert_eq!(problem.code(), &Code::ValidationFailed);
        let (pointer, message) = field_of(&problem);
        assert_eq!(pointer, "/items/1/count");
        assert!(
            message.starts_with("invalid type: string \"x\", expected u32"),
            "{message}"
        );
    }

    #[test]
    fn missing_member_points_at_itself() {
        let problem = parse_json::<Body>(br#"{"items":[{"name":"a"}]}"#).unwrap_err();
        assert_eq!(
            field_of(&problem),
            ("/items/0/count", "missing field `count`")
        );
    }

    #[test]
    fn syntax_errors_are_invalid_requests() {
        for body in [&br#"{"items":"#[..], b"{} trailing", b""] {
            let problem = parse_json::<Body>(body).unwrap_err();
            assert_eq!(problem.code(), &Code::InvalidRequest, "{problem}");
            assert!(
                problem
                    .message()
                    .starts_with("the request body is not valid JSON"),
                "{problem}"
            );
        }
    }

    #[test]
    fn json_content_types() {
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/problem+json", true),
            ("text/json", false),
            ("application/jsonx", false),
            ("text/plain", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(has_json_content_type(&headers), ok, "{value}");
        }
        assert!(!has_json_content_type(&HeaderMap::new()));
    }
}
