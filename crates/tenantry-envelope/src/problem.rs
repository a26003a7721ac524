//! `Problem`: what went wrong, as a stable code for programs and a message for people.

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Code, JsonPointer};

/// An error returned to a client: a stable [`Code`], a human message, whether retrying can
/// help, and optional structured details.
///
/// It travels inside the error envelope (`{"status":"error","error":{...}}`) and can also be
/// served alone as RFC 9457 `application/problem+json` through
/// [`to_problem_details`](Problem::to_problem_details).
///
/// Wire form (absent optional members are omitted):
///
/// ```json
/// {"code":"VALIDATION_FAILED","status":422,"message":"the request has 1 invalid field",
///  "retryable":false,"details":{"fields":[{"pointer":"/max_tokens","message":"must be at most 4096"}]},
///  "request_id":"req_1","retry_after":30}
/// ```
///
/// `status` repeats the HTTP status of the response, so a client that only kept the body still
/// knows it; for a built-in code it is always the code's status. `message` is for people and
/// may change wording; programs match on `code`. `retry_after` is in seconds.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Code, FieldError, JsonPointer, Problem};
///
/// let problem = Problem::new(Code::ValidationFailed, "the request has 1 invalid field")
///     .with_field_error(FieldError::new(
///         JsonPointer::from_segments(["max_tokens"]),
///         "must be at most 4096",
///     ))
///     .with_request_id("req_1");
/// assert_eq!(problem.http_status(), http::StatusCode::UNPROCESSABLE_ENTITY);
/// assert!(!problem.is_retryable());
///
/// let json = serde_json::to_string(&problem)?;
/// assert!(json.starts_with(r#"{"code":"VALIDATION_FAILED","status":422,"#));
/// assert_eq!(serde_json::from_str::<Problem>(&json)?, problem);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Problem {
    #[cfg_attr(feature = "ts", ts(as = "Code"))]
    code: Code,
    /// Always a valid error status (400–599): the code's status.
    status: u16,
    message: String,
    retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    details: Option<Box<Details>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    retry_after: Option<u32>,
}

impl Problem {
    /// A problem with this code and message; retryable if the code is
    /// ([`Code::is_retryable`]), with no details.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let problem = Problem::new(Code::NotFound, "job 42 does not exist");
    /// assert_eq!(problem.to_string(), "NOT_FOUND: job 42 does not exist");
    /// ```
    #[must_use]
    pub fn new(code: impl Into<Code>, message: impl Into<String>) -> Problem {
        let code = code.into();
        Problem {
            status: code.http_status().as_u16(),
            retryable: code.is_retryable(),
            code,
            message: message.into(),
            details: None,
            request_id: None,
            retry_after: None,
        }
    }

    /// `VALIDATION_FAILED` with one field error per bad field.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{FieldError, JsonPointer, Problem};
    ///
    /// let problem = Problem::validation_failed([
    ///     FieldError::new(JsonPointer::from_segments(["tenant"]), "is required"),
    /// ]);
    /// assert_eq!(problem.message(), "the request has 1 invalid field");
    /// assert_eq!(problem.details().unwrap().fields.len(), 1);
    /// ```
    #[must_use]
    pub fn validation_failed(fields: impl IntoIterator<Item = FieldError>) -> Problem {
        let fields: Vec<FieldError> = fields.into_iter().collect();
        let message = match fields.len() {
            1 => "the request has 1 invalid field".to_owned(),
            n => format!("the request has {n} invalid fields"),
        };
        let mut problem = Problem::new(Code::ValidationFailed, message);
        problem.details_mut().fields = fields;
        problem
    }

    /// `BUDGET_EXCEEDED` with the limit that was hit.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Limit, Problem};
    ///
    /// let limit = Limit::new("monthly_spend", "usd_micros", 50_000_000).with_actual(50_000_130);
    /// let problem = Problem::budget_exceeded("the monthly budget of tenant acme is spent", limit);
    /// assert_eq!(problem.code().as_str(), "BUDGET_EXCEEDED");
    /// assert_eq!(problem.details().unwrap().limits[0].max, 50_000_000);
    /// ```
    #[must_use]
    pub fn budget_exceeded(message: impl Into<String>, limit: Limit) -> Problem {
        Problem::new(Code::BudgetExceeded, message).with_limit(limit)
    }

    /// `RATE_LIMITED`, retryable after `retry_after`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenantry_envelope::Problem;
    ///
    /// let problem = Problem::rate_limited("slow down", Duration::from_millis(1500));
    /// assert_eq!(problem.retry_after(), Some(Duration::from_secs(2)));
    /// ```
    #[must_use]
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Problem {
        Problem::new(Code::RateLimited, message).with_retry_after(retry_after)
    }

    /// Overrides whether retrying can help (the default comes from the code).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let problem = Problem::new(Code::Internal, "the database restarted").with_retryable(true);
    /// assert!(problem.is_retryable());
    /// ```
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Problem {
        self.retryable = retryable;
        self
    }

    /// Sets the id of the request this problem answers, for support and log correlation.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let problem = Problem::new(Code::NotFound, "no job").with_request_id("req_42");
    /// assert_eq!(problem.request_id(), Some("req_42"));
    /// ```
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Problem {
        self.request_id = Some(request_id.into());
        self
    }

    /// Adds a field error to the details.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, FieldError, JsonPointer, Problem};
    ///
    /// let problem = Problem::new(Code::ValidationFailed, "bad model")
    ///     .with_field_error(FieldError::new(JsonPointer::from_segments(["model"]), "unknown model"));
    /// assert_eq!(problem.details().unwrap().fields[0].pointer.as_str(), "/model");
    /// ```
    #[must_use]
    pub fn with_field_error(mut self, field: FieldError) -> Problem {
        self.details_mut().fields.push(field);
        self
    }

    /// Adds a limit to the details.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Limit, Problem};
    ///
    /// let problem = Problem::new(Code::PayloadTooLarge, "too many requests in one batch")
    ///     .with_limit(Limit::new("batch_requests", "requests", 100_000).with_actual(100_001));
    /// assert_eq!(problem.details().unwrap().limits[0].actual, Some(100_001));
    /// ```
    #[must_use]
    pub fn with_limit(mut self, limit: Limit) -> Problem {
        self.details_mut().limits.push(limit);
        self
    }

    /// Sets the delay after which a retry may succeed. Sent in whole seconds, rounded up
    /// (and as the `Retry-After` header by the `axum` integration).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// let problem = Problem::new(Code::UpstreamUnavailable, "the provider is overloaded")
    ///     .with_retry_after(Duration::from_secs(30));
    /// assert_eq!(problem.retry_after(), Some(Duration::from_secs(30)));
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Problem {
        self.retry_after = Some(whole_seconds(delay));
        self
    }

    /// The machine-readable code.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert_eq!(Problem::new(Code::Conflict, "m").code(), &Code::Conflict);
    /// ```
    #[must_use]
    pub fn code(&self) -> &Code {
        &self.code
    }

    /// The HTTP status this problem is sent with (the code's status).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert_eq!(Problem::new(Code::RateLimited, "m").http_status(), http::StatusCode::TOO_MANY_REQUESTS);
    /// ```
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The human-readable message.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert_eq!(Problem::new(Code::NotFound, "no job 7").message(), "no job 7");
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same request later can succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert!(Problem::new(Code::UpstreamTimeout, "m").is_retryable());
    /// assert!(!Problem::new(Code::InvalidRequest, "m").is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Field errors and limits, if any were attached.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert!(Problem::new(Code::NotFound, "m").details().is_none());
    /// ```
    #[must_use]
    pub fn details(&self) -> Option<&Details> {
        self.details.as_deref()
    }

    /// The id of the request this problem answers.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Problem};
    ///
    /// assert_eq!(Problem::new(Code::NotFound, "m").request_id(), None);
    /// ```
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The delay after which a retry may succeed.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenantry_envelope::Problem;
    ///
    /// assert_eq!(Problem::rate_limited("m", Duration::from_secs(4)).retry_after(), Some(Duration::from_secs(4)));
    /// ```
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
            .map(|secs| Duration::from_secs(u64::from(secs)))
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Problem {}

/// Whole seconds, rounded up, saturating at `u32::MAX` (136 years).
pub(crate) fn whole_seconds(delay: Duration) -> u32 {
    let secs = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The wire form read back; the code is resolved against the built-in set afterwards.
#[derive(Deserialize)]
struct ProblemWire {
    code: String,
    status: u16,
    message: String,
    retryable: bool,
    #[serde(default)]
    details: Option<Box<Details>>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    retry_after: Option<u32>,
}

impl<'de> Deserialize<'de> for Problem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ProblemWire::deserialize(deserializer)?;
        let code = Code::from_wire(wire.code, wire.status).map_err(serde::de::Error::custom)?;
        Ok(Problem {
            status: code.http_status().as_u16(),
            code,
            message: wire.message,
            retryable: wire.retryable,
            details: wire.details,
            request_id: wire.request_id,
            retry_after: wire.retry_after,
        })
    }
}

/// Structured context of a problem: the bad fields of the request and the limits that were hit.
///
/// Both lists are omitted from the wire when empty.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Details, FieldError, JsonPointer};
///
/// let mut details = Details::default();
/// details.fields.push(FieldError::new(JsonPointer::from_segments(["items", "0"]), "is empty"));
/// assert_eq!(serde_json::to_string(&details)?, r#"{"fields":[{"pointer":"/items/0","message":"is empty"}]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct Details {
    /// One entry per bad field of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
    /// The limits the request ran into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
}

/// One bad field of the request: where it is (a JSON pointer) and what is wrong with it.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{FieldError, JsonPointer};
///
/// let field = FieldError::new(JsonPointer::parse("/requests/2/params/model")?, "unknown model");
/// assert_eq!(field.pointer.as_str(), "/requests/2/params/model");
/// # Ok::<(), tenantry_envelope::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct FieldError {
    /// Where the bad value is in the request body.
    pub pointer: JsonPointer,
    /// What is wrong with it, for people.
    pub message: String,
}

impl FieldError {
    /// A field error at `pointer`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{FieldError, JsonPointer};
    ///
    /// let field = FieldError::new(JsonPointer::from_segments(["tenant"]), "is required");
    /// assert_eq!(field.message, "is required");
    /// ```
    #[must_use]
    pub fn new(pointer: JsonPointer, message: impl Into<String>) -> FieldError {
        FieldError {
            pointer,
            message: message.into(),
        }
    }
}

/// A limit the request ran into: which one, in which unit, the maximum and the actual value.
///
/// `max` and `actual` are exact integers in `unit` (e.g. `usd_micros`, `requests`, `bytes`).
/// On the wire they are decimal **strings**, so values above 2^53 survive JavaScript's
/// `JSON.parse`; reading accepts strings and plain numbers.
///
/// # Example
///
/// ```
/// use tenantry_envelope::Limit;
///
/// let limit = Limit::new("body_size", "bytes", 1_048_576).with_actual(2_000_000);
/// assert_eq!(
///     serde_json::to_string(&limit)?,
///     r#"{"name":"body_size","unit":"bytes","max":"1048576","actual":"2000000"}"#,
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct Limit {
    /// What is limited, e.g. `monthly_spend`.
    pub name: String,
    /// The unit of `max` and `actual`, e.g. `usd_micros`.
    pub unit: String,
    /// The limit.
    #[serde(with = "exact_u64")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub max: u64,
    /// The value the request reached or would have reached, when known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "exact_u64::option"
    )]
    #[cfg_attr(feature = "ts", ts(type = "string", optional))]
    pub actual: Option<u64>,
}

impl From<tenantry_core::ExceededLimit> for Limit {
    /// The wire form of the limit an error names.
    fn from(limit: tenantry_core::ExceededLimit) -> Self {
        let wire = Limit::new(limit.name, limit.unit, limit.max);
        match limit.actual {
            Some(actual) => wire.with_actual(actual),
            None => wire,
        }
    }
}

impl Limit {
    /// A limit of `max` `unit`s on `name`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Limit;
    ///
    /// let limit = Limit::new("monthly_spend", "usd_micros", 50_000_000);
    /// assert_eq!((limit.max, limit.actual), (50_000_000, None));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, unit: impl Into<String>, max: u64) -> Limit {
        Limit {
            name: name.into(),
            unit: unit.into(),
            max,
            actual: None,
        }
    }

    /// Sets the value the request reached.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Limit;
    ///
    /// assert_eq!(Limit::new("body_size", "bytes", 10).with_actual(11).actual, Some(11));
    /// ```
    #[must_use]
    pub fn with_actual(mut self, actual: u64) -> Limit {
        self.actual = Some(actual);
        self
    }
}

/// `u64` as a decimal string on the wire; reads strings and numbers.
mod exact_u64 {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(ExactU64)
    }

    struct ExactU64;

    impl Visitor<'_> for ExactU64 {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer as a decimal string")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
            value
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }

    pub(super) mod option {
        use serde::{Deserializer, Serializer};

        #[allow(clippy::ref_option)] // serde's `with` passes `&Option<u64>`
        pub(in super::super) fn serialize<S: Serializer>(
            value: &Option<u64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<u64>, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CustomCode;

    #[test]
    fn problem_stays_small_enough_for_result_err() {
        // clippy's `result_large_err` fires above 128 bytes; hosts return `Result<_, Problem>`.
        assert!(
            std::mem::size_of::<Problem>() <= 128,
            "{}",
            std::mem::size_of::<Problem>()
        );
    }

    #[test]
    fn retryable_defaults_come_from_the_code_and_can_be_overridden() {
        assert!(Problem::new(Code::UpstreamUnavailable, "down").is_retryable());
        assert!(!Problem::new(Code::Internal, "bug").is_retryable());
        assert!(
            Problem::new(Code::Internal, "flaky")
                .with_retryable(true)
                .is_retryable()
        );
    }

    #[test]
    fn minimal_problem_omits_optional_members() {
        let json = serde_json::to_value(Problem::new(Code::NotFound, "no such job")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code":"NOT_FOUND","status":404,"message":"no such job","retryable":false})
        );
    }

    #[test]
    fn custom_code_round_trips_with_its_status() {
        const QUOTA_FROZEN: CustomCode = CustomCode::new("QUOTA_FROZEN", StatusCode::LOCKED);
        let problem = Problem::new(QUOTA_FROZEN, "frozen").with_retryable(true);
        let json = serde_json::to_string(&problem).unwrap();
        assert!(json.contains(r#""status":423"#), "{json}");
        let back: Problem = serde_json::from_str(&json).unwrap();
        assert_eq!(back, problem);
        assert_eq!(back.http_status(), StatusCode::LOCKED);
    }

    #[test]
    fn built_in_code_keeps_its_own_status_whatever_the_wire_says() {
        let problem: Problem = serde_json::from_str(
            r#"{"code":"NOT_FOUND","status":410,"message":"m","retryable":false}"#,
        )
        .unwrap();
        assert_eq!(problem.http_status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn bad_codes_and_statuses_are_named_in_the_error() {
        let err = serde_json::from_str::<Problem>(
            r#"{"code":"oops","status":400,"message":"m","retryable":false}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid problem code `oops`"),
            "{err}"
        );
        let err = serde_json::from_str::<Problem>(
            r#"{"code":"FINE_CODE","status":200,"message":"m","retryable":false}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("HTTP status 200 is not an error status"),
            "{err}"
        );
        let err = serde_json::from_str::<Problem>(
            r#"{"code":"NOT_FOUND","status":404,"retryable":false}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing field `message`"), "{err}");
    }

    #[test]
    fn limits_are_exact_strings_and_read_numbers_too() {
        let big = Limit::new("tokens", "tokens", u64::MAX).with_actual(9_007_199_254_740_993);
        let json = serde_json::to_string(&big).unwrap();
        assert!(json.contains(r#""max":"18446744073709551615""#), "{json}");
        assert_eq!(serde_json::from_str::<Limit>(&json).unwrap(), big);
        let from_numbers: Limit =
            serde_json::from_str(r#"{"name":"n","unit":"u","max":5,"actual":7}"#).unwrap();
        assert_eq!(from_numbers, Limit::new("n", "u", 5).with_actual(7));
        let err =
            serde_json::from_str::<Limit>(r#"{"name":"n","unit":"u","max":"-1"}"#).unwrap_err();
        assert!(err.to_string().contains("decimal string"), "{err}");
        let without_actual: Limit =
            serde_json::from_str(r#"{"name":"n","unit":"u","max":"5"}"#).unwrap();
        assert_eq!(without_actual.actual, None);
    }

    #[test]
    fn retry_after_rounds_up_and_saturates() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::MAX), u32::MAX);
    }

    #[test]
    fn validation_failed_counts_fields() {
        let fields =
            (0..3).map(|i| FieldError::new(JsonPointer::from_segments([i.to_string()]), "bad"));
        let problem = Problem::validation_failed(fields);
        assert_eq!(problem.message(), "the request has 3 invalid fields");
        assert_eq!(problem.http_status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
