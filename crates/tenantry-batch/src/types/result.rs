//! One line of a batch's results file, and the API's error object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::Message;
use super::open_enum::open_enum;

/// One line of the results file: which request, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchResult {
    /// The `custom_id` the request was submitted with.
    pub custom_id: String,
    /// What became of the request.
    pub result: ResultOutcome,
}

/// What became of one request of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
// Results are streamed one at a time, so an unboxed message saves an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum ResultOutcome {
    /// The model answered (billed).
    Succeeded {
        /// The answer.
        message: Message,
    },
    /// The request failed (not billed); read `error.error.kind`.
    Errored {
        /// The error envelope.
        error: ErrorResponse,
    },
    /// The batch was canceled before this request was sent to the model (not billed).
    Canceled,
    /// The batch expired before this request was sent to the model (not billed).
    Expired,
    /// An outcome this version of the crate does not know.
    #[serde(other)]
    Unknown,
}

/// The API's error envelope: `{"type":"error","error":{…},"request_id":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorResponse {
    /// The error itself.
    pub error: ErrorObject,
    /// The id of the failed request, when known.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The inner error object: a type, a message and optional details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorObject {
    /// What kind of error.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Human-readable description.
    #[serde(default)]
    pub message: String,
    /// Extra machine-readable details, e.g. `{"error_code": "enforced_spend_limit_reached"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorObject {
    /// `details.error_code`, when present.
    #[must_use]
    pub fn error_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("error_code")?.as_str()
    }
}

open_enum! {
    /// The kind of an API error. The API says these values will grow.
    ErrorType {
        /// 400: the request is malformed; fix it before resending.
        InvalidRequest = "invalid_request_error",
        /// 401: bad key.
        Authentication = "authentication_error",
        /// 402: billing problem.
        Billing = "billing_error",
        /// 403: the key lacks permission.
        Permission = "permission_error",
        /// 404: no such resource.
        NotFound = "not_found_error",
        /// 409: conflicts with the resource's state.
        Conflict = "conflict_error",
        /// 413: the request body is too large.
        RequestTooLarge = "request_too_large",
        /// 429: rate or spend limit.
        RateLimit = "rate_limit_error",
        /// 500: internal error.
        Api = "api_error",
        /// 504: timed out while processing.
        Timeout = "timeout_error",
        /// 529: temporarily overloaded.
        Overloaded = "overloaded_error",
    }
}
