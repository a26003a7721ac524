//! RFC 9457 `application/problem+json` rendering of a [`Problem`].

use serde::{Deserialize, Serialize};

use crate::{Code, FieldError, JsonPointer, Limit, Problem};

/// The media type of [`ProblemDetails`] bodies.
///
/// # Example
///
/// ```
/// use tenantry_envelope::PROBLEM_JSON;
///
/// assert_eq!(PROBLEM_JSON, "application/problem+json");
/// ```
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A [`Problem`] in the shape of RFC 9457 Problem Details, for clients and gateways that
/// expect `application/problem+json` rather than the envelope.
///
/// Standard members: `type`, `title`, `status`, `detail` (the problem's message) and, when set,
/// `instance`. Extension members: `code`, `retryable`, `errors` (the field errors, as RFC 9457
/// §3 suggests: `{detail, pointer}`), `limits`, `request_id`, `retry_after`.
///
/// `type` is `about:blank` unless [`with_type_base`](ProblemDetails::with_type_base) sets a base
/// URI that the code is appended to; with `about:blank` the `title` is the HTTP reason phrase,
/// as the RFC asks, otherwise the code's [`title`](crate::Code::title).
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Code, Problem};
///
/// let details = Problem::new(Code::NotFound, "no job 42")
///     .to_problem_details()
///     .with_type_base("https://docs.example.com/problems#");
/// assert_eq!(
///     serde_json::to_value(&details)?,
///     serde_json::json!({
///         "type": "https://docs.example.com/problems#NOT_FOUND",
///         "title": "Not found",
///         "status": 404,
///         "detail": "no job 42",
///         "code": "NOT_FOUND",
///         "retryable": false,
///     }),
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct ProblemDetails {
    /// URI reference naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Explanation of this occurrence, for people.
    pub detail: String,
    /// URI reference naming this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub instance: Option<String>,
    /// The problem's stable code (extension member).
    pub code: String,
    /// Whether retrying can help (extension member).
    pub retryable: bool,
    /// One entry per bad field (extension member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The limits that were hit (extension member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    /// The id of the request (extension member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub request_id: Option<String>,
    /// Seconds to wait before retrying (extension member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub retry_after: Option<u32>,
}

impl ProblemDetails {
    /// Names the problem type `{base}{CODE}` (e.g. a documentation page with one anchor per
    /// code) and uses the code's title.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let details = Problem::new(Code::RateLimited, "m").to_problem_details().with_type_base("urn:problem:");
    /// assert_eq!((details.type_uri.as_str(), details.title.as_str()), ("urn:problem:RATE_LIMITED", "Rate limited"));
    /// ```
    #[must_use]
    pub fn with_type_base(mut self, base: &str) -> ProblemDetails {
        self.type_uri = format!("{base}{}", self.code);
        if let Some(code) = Code::from_name(&self.code) {
            self.title = code.title().to_owned();
        }
        self
    }

    /// Sets the `instance` member.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let details = Problem::new(Code::NotFound, "m").to_problem_details().with_instance("/v1/jobs/7");
    /// assert_eq!(details.instance.as_deref(), Some("/v1/jobs/7"));
    /// ```
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> ProblemDetails {
        self.instance = Some(instance.into());
        self
    }
}

/// One bad field in RFC 9457 form: `{"detail": ..., "pointer": ...}`.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Code, FieldError, JsonPointer, Problem};
///
/// let details = Problem::new(Code::ValidationFailed, "m")
///     .with_field_error(FieldError::new(JsonPointer::from_segments(["tenant"]), "is required"))
///     .to_problem_details();
/// assert_eq!(serde_json::to_value(&details.errors)?, serde_json::json!([{"detail": "is required", "pointer": "/tenant"}]));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct FieldProblem {
    /// What is wrong with the field.
    pub detail: String,
    /// Where the field is in the request body.
    pub pointer: JsonPointer,
}

impl From<&FieldError> for FieldProblem {
    fn from(field: &FieldError) -> Self {
        FieldProblem {
            detail: field.message.clone(),
            pointer: field.pointer.clone(),
        }
    }
}

impl Problem {
    /// This problem as RFC 9457 Problem Details (`type` is `about:blank`).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenantry_envelope::Problem;
    ///
    /// let details = Problem::rate_limited("slow down", Duration::from_secs(3)).to_problem_details();
    /// assert_eq!(details.type_uri, "about:blank");
    /// assert_eq!(details.title, "Too Many Requests");
    /// assert_eq!(details.retry_after, Some(3));
    /// ```
    #[must_use]
    pub fn to_problem_details(&self) -> ProblemDetails {
        let status = self.http_status();
        let details = self.details();
        ProblemDetails {
            type_uri: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.message().to_owned(),
            instance: None,
            code: self.code().as_str().to_owned(),
            retryable: self.is_retryable(),
            errors: details
                .map(|d| d.fields.iter().map(FieldProblem::from).collect())
                .unwrap_or_default(),
            limits: details.map(|d| d.limits.clone()).unwrap_or_default(),
            request_id: self.request_id().map(str::to_owned),
            retry_after: self.retry_after().map(crate::problem::whole_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;
    use crate::CustomCode;

    #[test]
    fn every_member_is_carried_over_and_reads_back() {
        let problem = Problem::validation_failed([FieldError::new(
            JsonPointer::from_segments(["a", "0"]),
            "bad",
        )])
        .with_limit(Limit::new("n", "items", 3).with_actual(4))
        .with_request_id("req_1")
        .with_retry_after(Duration::from_secs(9));
        let details = problem.to_problem_details().with_instance("/v1/things");
        let json = serde_json::to_value(&details).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "the request has 1 invalid field",
                "instance": "/v1/things",
                "code": "VALIDATION_FAILED",
                "retryable": false,
                "errors": [{"detail": "bad", "pointer": "/a/0"}],
                "limits": [{"name": "n", "unit": "items", "max": "3", "actual": "4"}],
                "request_id": "req_1",
                "retry_after": 9,
            })
        );
        assert_eq!(
            serde_json::from_value::<ProblemDetails>(json).unwrap(),
            details
        );
    }

    #[test]
    fn custom_codes_keep_the_status_phrase_as_title() {
        let code = CustomCode::new("QUOTA_FROZEN", StatusCode::LOCKED);
        let details = Problem::new(code, "m")
            .to_problem_details()
            .with_type_base("https://example.com/p/");
        assert_eq!(details.type_uri, "https://example.com/p/QUOTA_FROZEN");
        assert_eq!(details.title, "Locked");
        assert_eq!(details.status, 423);
    }
}
