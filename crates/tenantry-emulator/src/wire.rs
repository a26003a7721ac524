//! Wire-level building blocks shared by every endpoint: error types and bodies, timestamps.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

/// The `error.type` values of the real API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorType {
    /// `invalid_request_error` (400): the request's format or content is wrong.
    InvalidRequest,
    /// `authentication_error` (401): missing or unknown API key.
    Authentication,
    /// `permission_error` (403).
    Permission,
    /// `not_found_error` (404).
    NotFound,
    /// `request_too_large` (413): the body exceeds the endpoint's byte limit.
    RequestTooLarge,
    /// `rate_limit_error` (429).
    RateLimit,
    /// `api_error` (500): an internal error; retry with backoff.
    Api,
    /// `timeout_error` (504).
    Timeout,
    /// `overloaded_error` (529).
    Overloaded,
}

impl ErrorType {
    /// The value of the `type` field on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::Api => "api_error",
            Self::Timeout => "timeout_error",
            Self::Overloaded => "overloaded_error",
        }
    }

    /// The HTTP status the real API pairs with this type.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::Permission => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimit => 429,
            Self::Api => 500,
            Self::Timeout => 504,
            Self::Overloaded => 529,
        }
    }

    /// Parses a wire `type` value.
    #[must_use]
    pub fn from_wire(value: &str) -> Option<Self> {
        [
            Self::InvalidRequest,
            Self::Authentication,
            Self::Permission,
            Self::NotFound,
            Self::RequestTooLarge,
            Self::RateLimit,
            Self::Api,
            Self::Timeout,
            Self::Overloaded,
        ]
        .into_iter()
        .find(|t| t.as_str() == value)
    }

    /// The real API's default message for this type.
    pub(crate) fn default_message(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::Authentication => "Authentication error",
            Self::Permission => "Permission denied",
            Self::NotFound => "Not found",
            Self::RequestTooLarge => "Request exceeds the maximum allowed number of bytes.",
            Self::RateLimit => "Rate limited",
            Self::Api => "Internal server error",
            Self::Timeout => "Request timed out",
            Self::Overloaded => "Overloaded",
        }
    }
}

/// An error answer, rendered by the server's outer layer (which knows the `request-id`).
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error_type: ErrorType,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) should_retry: Option<bool>,
}

impl ApiError {
    pub(crate) fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status: error_type.status(),
            error_type,
            message: message.into(),
            retry_after: None,
            should_retry: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequest, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, message)
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            ErrorType::RequestTooLarge,
            ErrorType::RequestTooLarge.default_message(),
        )
    }

    /// The JSON body with the given request id.
    pub(crate) fn body(&self, request_id: Option<&str>) -> String {
        error_body(self.error_type.as_str(), &self.message, request_id)
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":…,"message":…},"request_id":…}`, keys in the real API's order.
pub(crate) fn error_body(error_type: &str, message: &str, request_id: Option<&str>) -> String {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail {
            kind: error_type,
            message,
        },
        request_id,
    };
    serde_json::to_string(&body).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert("retry-after", HeaderValue::from(secs));
            headers.insert(
                "retry-after-ms",
                HeaderValue::from(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        if let Some(retry) = self.should_retry {
            headers.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

const RFC3339_MICROS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// RFC 3339 in UTC with exactly six fractional digits, as the real API writes timestamps.
pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_MICROS)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let at = time::macros::datetime!(2024-09-24 18:37:24.100435 UTC);
        assert_eq!(timestamp(at), "2024-09-24T18:37:24.100435Z");
    }

    #[test]
    fn error_types_round_trip() {
        for t in [
            ErrorType::InvalidRequest,
            ErrorType::Overloaded,
            ErrorType::RequestTooLarge,
        ] {
            assert_eq!(ErrorType::from_wire(t.as_str()), Some(t));
        }
        assert_eq!(ErrorType::Overloaded.status(), 529);
        assert_eq!(ErrorType::from_wire("nope"), None);
    }

    #[test]
    fn error_body_has_the_real_shape() {
        let text = ApiError::not_found("x").body(Some("req_1"));
        assert_eq!(
            text,
            r#"{"type":"error","error":{"type":"not_found_error","message":"x"},"request_id":"req_1"}"#
        );
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["error"]["message"], "x");
        assert_eq!(body["request_id"], "req_1");
    }
}
