//! Stable machine-readable problem codes: the built-in set and the codes a host adds.
//!
//! A code is the part of an error that programs match on. Its string form is API surface:
//! built-in codes are only ever added, never renamed, repurposed or removed, and every code,
//! built-in or custom, follows one spelling rule: `UPPER_SNAKE_CASE`, 2 to 63 characters,
//! starting with a letter and not ending with `_` (the rule of Google's AIP-193 `reason`).
//! Each code maps to one HTTP status, which it refines and never contradicts.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use serde::{Serialize, Serializer};

use crate::Error;

/// A stable, machine-readable problem code.
///
/// The built-in variants cover what every tenantry crate reports (bad input, missing things,
/// budgets, rate limits, upstream outages). A host adds its own through [`Code::Custom`] with a
/// [`CustomCode`]. On the wire a code is its [`as_str`](Code::as_str) form, e.g. `"NOT_FOUND"`.
///
/// # Example
///
/// ```
/// use tenantry_envelope::Code;
///
/// assert_eq!(Code::BudgetExceeded.as_str(), "BUDGET_EXCEEDED");
/// assert_eq!(Code::BudgetExceeded.http_status(), http::StatusCode::PAYMENT_REQUIRED);
/// assert!(Code::RateLimited.is_retryable());
/// assert_eq!(Code::from_name("NOT_FOUND"), Some(Code::NotFound));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// `INVALID_REQUEST` (400): the request cannot be read: malformed JSON, a bad query string,
    /// a bad path parameter.
    InvalidRequest,
    /// `VALIDATION_FAILED` (422): the request was read but its values are not acceptable;
    /// the problem's details name each bad field with a JSON pointer.
    ValidationFailed,
    /// `UNAUTHENTICATED` (401): no valid credentials came with the request.
    Unauthenticated,
    /// `PERMISSION_DENIED` (403): the caller is known but may not do this.
    PermissionDenied,
    /// `NOT_FOUND` (404): the resource or route does not exist (or is not visible to this tenant).
    NotFound,
    /// `METHOD_NOT_ALLOWED` (405): the route exists but not for this HTTP method.
    MethodNotAllowed,
    /// `CONFLICT` (409): the request conflicts with the current state (a duplicate, a state
    /// transition that is no longer possible).
    Conflict,
    /// `PAYLOAD_TOO_LARGE` (413): the request body is over the size limit.
    PayloadTooLarge,
    /// `UNSUPPORTED_MEDIA_TYPE` (415): the request body has the wrong `Content-Type`.
    UnsupportedMediaType,
    /// `BUDGET_EXCEEDED` (402): the tenant's spending budget does not cover the request; the
    /// problem's details carry the limit. Not retryable until the budget changes.
    BudgetExceeded,
    /// `RATE_LIMITED` (429): too many requests; retry after the hinted delay.
    RateLimited,
    /// `INTERNAL` (500): a bug or an unexpected failure on the server.
    Internal,
    /// `UNAVAILABLE` (503): this service cannot take the request now (starting, stopping,
    /// overloaded); retryable.
    Unavailable,
    /// `UPSTREAM_UNAVAILABLE` (503): a service this one depends on (the model provider, the
    /// database) is failing or overloaded; retryable.
    UpstreamUnavailable,
    /// `UPSTREAM_TIMEOUT` (504): a service this one depends on did not answer in time; retryable.
    UpstreamTimeout,
    /// A code defined by the host application.
    Custom(CustomCode),
}

impl Code {
    /// Every built-in code, in declaration order. The list only ever grows.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Code;
    ///
    /// assert!(Code::BUILT_IN.contains(&Code::RateLimited));
    /// assert!(Code::BUILT_IN.iter().all(|code| Code::from_name(code.as_str()).as_ref() == Some(code)));
    /// ```
    pub const BUILT_IN: &'static [Code] = &[
        Code::InvalidRequest,
        Code::ValidationFailed,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::BudgetExceeded,
        Code::RateLimited,
        Code::Internal,
        Code::Unavailable,
        Code::UpstreamUnavailable,
        Code::UpstreamTimeout,
    ];

    /// The wire form of the code, e.g. `"NOT_FOUND"`. Never changes for a given code.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, CustomCode};
    ///
    /// const SEATS: CustomCode = CustomCode::new("SEAT_LIMIT_REACHED", http::StatusCode::FORBIDDEN);
    /// assert_eq!(Code::from(SEATS).as_str(), "SEAT_LIMIT_REACHED");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Code::InvalidRequest => "INVALID_REQUEST",
            Code::ValidationFailed => "VALIDATION_FAILED",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::Conflict => "CONFLICT",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::BudgetExceeded => "BUDGET_EXCEEDED",
            Code::RateLimited => "RATE_LIMITED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Code::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Code::Custom(custom) => custom.as_str(),
        }
    }

    /// The HTTP status a response carrying this code is sent with.
    ///
    /// # Example
    ///
    /// ```
    /// use http::StatusCode;
    /// use tenantry_envelope::Code;
    ///
    /// assert_eq!(Code::NotFound.http_status(), StatusCode::NOT_FOUND);
    /// assert_eq!(Code::UpstreamTimeout.http_status(), StatusCode::GATEWAY_TIMEOUT);
    /// ```
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable | Code::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Code::Custom(custom) => custom.http_status(),
        }
    }

    /// Whether a client may retry the same request later and expect it to succeed.
    ///
    /// True for rate limits and outages; false for everything the client must change first.
    /// Custom codes default to false. A [`Problem`](crate::Problem) can override this per
    /// occurrence.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Code;
    ///
    /// assert!(Code::UpstreamUnavailable.is_retryable());
    /// assert!(!Code::BudgetExceeded.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Code::RateLimited
                | Code::Unavailable
                | Code::UpstreamUnavailable
                | Code::UpstreamTimeout
        )
    }

    /// A short, stable, human-readable summary of the code (the RFC 9457 `title`).
    ///
    /// Custom codes use the reason phrase of their HTTP status.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Code;
    ///
    /// assert_eq!(Code::BudgetExceeded.title(), "Budget exceeded");
    /// ```
    #[must_use]
    pub fn title(&self) -> &'static str {
        match self {
            Code::InvalidRequest => "Invalid request",
            Code::ValidationFailed => "Validation failed",
            Code::Unauthenticated => "Authentication required",
            Code::PermissionDenied => "Permission denied",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::Conflict => "Conflict",
            Code::PayloadTooLarge => "Payload too large",
            Code::UnsupportedMediaType => "Unsupported media type",
            Code::BudgetExceeded => "Budget exceeded",
            Code::RateLimited => "Rate limited",
            Code::Internal => "Internal error",
            Code::Unavailable => "Service unavailable",
            Code::UpstreamUnavailable => "Upstream service unavailable",
            Code::UpstreamTimeout => "Upstream service timed out",
            Code::Custom(custom) => custom.http_status().canonical_reason().unwrap_or("Error"),
        }
    }

    /// The built-in code with this wire name, if there is one.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Code;
    ///
    /// assert_eq!(Code::from_name("RATE_LIMITED"), Some(Code::RateLimited));
    /// assert_eq!(Code::from_name("rate_limited"), None);
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Code> {
        Code::BUILT_IN
            .iter()
            .find(|code| code.as_str() == name)
            .cloned()
    }

    /// Resolves a code read from the wire: a built-in name gives the built-in code (whatever
    /// status came with it), any other name must follow the spelling rule and becomes a custom
    /// code with the status that came with it.
    pub(crate) fn from_wire(name: String, status: u16) -> Result<Code, Error> {
        if let Some(code) = Code::from_name(&name) {
            return Ok(code);
        }
        let status = error_status(status)?;
        check_spelling(&name).map_err(|reason| Error::InvalidCode {
            code: name.clone(),
            reason,
        })?;
        Ok(Code::Custom(CustomCode {
            name: Cow::Owned(name),
            status,
        }))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<CustomCode> for Code {
    fn from(custom: CustomCode) -> Self {
        Code::Custom(custom)
    }
}

/// A problem code defined by the host application, with the HTTP status it is sent with.
///
/// Define custom codes once, as constants: [`CustomCode::new`] is a `const fn` that checks the
/// spelling rule at compile time. A custom code may not take a built-in code's name, so a code
/// string always means one thing on the wire. Custom codes are not retryable by default; set
/// [`Problem::with_retryable`](crate::Problem::with_retryable) per occurrence when they are.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use tenantry_envelope::{CustomCode, Problem};
///
/// pub const SEAT_LIMIT_REACHED: CustomCode =
///     CustomCode::new("SEAT_LIMIT_REACHED", StatusCode::FORBIDDEN);
///
/// let problem = Problem::new(SEAT_LIMIT_REACHED, "all 5 seats of this plan are taken");
/// assert_eq!(problem.code().as_str(), "SEAT_LIMIT_REACHED");
/// assert_eq!(problem.http_status(), StatusCode::FORBIDDEN);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomCode {
    name: Cow<'static, str>,
    status: StatusCode,
}

impl CustomCode {
    /// Defines a custom code from a static name, checked at compile time when used in a `const`.
    ///
    /// # Panics
    ///
    /// If `name` breaks the spelling rule or takes a built-in name, or `status` is not in
    /// 400–599. In a `const` item this is a compile error.
    ///
    /// # Example
    ///
    /// ```
    /// use http::StatusCode;
    /// use tenantry_envelope::CustomCode;
    ///
    /// const QUOTA_FROZEN: CustomCode = CustomCode::new("QUOTA_FROZEN", StatusCode::LOCKED);
    /// assert_eq!(QUOTA_FROZEN.http_status(), StatusCode::LOCKED);
    /// ```
    ///
    /// A name that breaks the rule does not compile:
    ///
    /// ```compile_fail
    /// const BAD: tenantry_envelope::CustomCode =
    ///     tenantry_envelope::CustomCode::new("quota-frozen", http::StatusCode::LOCKED);
    /// let _ = BAD;
    /// ```
    #[must_use]
    pub const fn new(name: &'static str, status: StatusCode) -> CustomCode {
        if let Err(reason) = check_spelling(name) {
            panic!("{}", reason);
        }
        let code = status.as_u16();
        if code < 400 || code > 599 {
            panic!("a problem code's HTTP status must be in 400-599");
        }
        CustomCode {
            name: Cow::Borrowed(name),
            status,
        }
    }

    /// Defines a custom code from a name known only at run time (configuration, a database).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCode`] if `name` breaks the spelling rule or takes a built-in name;
    /// [`Error::NotAnErrorStatus`] if `status` is not in 400–599.
    ///
    /// # Example
    ///
    /// ```
    /// use http::StatusCode;
    /// use tenantry_envelope::CustomCode;
    ///
    /// let code = CustomCode::parse(String::from("QUOTA_FROZEN"), StatusCode::CONFLICT)?;
    /// assert_eq!(code.as_str(), "QUOTA_FROZEN");
    /// assert!(CustomCode::parse("NOT_FOUND", StatusCode::NOT_FOUND).is_err());
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    pub fn parse(name: impl Into<String>, status: StatusCode) -> Result<CustomCode, Error> {
        let name = name.into();
        check_spelling(&name).map_err(|reason| Error::InvalidCode {
            code: name.clone(),
            reason,
        })?;
        let status = error_status(status.as_u16())?;
        Ok(CustomCode {
            name: Cow::Owned(name),
            status,
        })
    }

    /// The wire form of the code.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::CustomCode;
    ///
    /// let code = CustomCode::new("QUOTA_FROZEN", http::StatusCode::LOCKED);
    /// assert_eq!(code.as_str(), "QUOTA_FROZEN");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The HTTP status a response carrying this code is sent with.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::CustomCode;
    ///
    /// let code = CustomCode::new("QUOTA_FROZEN", http::StatusCode::LOCKED);
    /// assert_eq!(code.http_status(), http::StatusCode::LOCKED);
    /// ```
    #[must_use]
    pub const fn http_status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for CustomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The longest code the spelling rule allows.
const MAX_CODE_LEN: usize = 63;

/// Checks the spelling rule and that the name is not a built-in one. `const` so that
/// [`CustomCode::new`] can run it at compile time.
const fn check_spelling(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.len() < 2 || bytes.len() > MAX_CODE_LEN {
        return Err("a code has 2 to 63 characters");
    }
    if !bytes[0].is_ascii_uppercase() {
        return Err("a code starts with an upper-case ASCII letter");
    }
    if bytes[bytes.len() - 1] == b'_' {
        return Err("a code does not end with `_`");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return Err("a code holds only upper-case ASCII letters, digits and `_`");
        }
        i += 1;
    }
    let mut k = 0;
    while k < BUILT_IN_NAMES.len() {
        if eq_bytes(BUILT_IN_NAMES[k].as_bytes(), bytes) {
            return Err("the name belongs to a built-in code");
        }
        k += 1;
    }
    Ok(())
}

/// The built-in names, for the `const` check above (which cannot call `Code::as_str`). A unit
/// test keeps it equal to `Code::BUILT_IN`.
const BUILT_IN_NAMES: &[&str] = &[
    "INVALID_REQUEST",
    "VALIDATION_FAILED",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "BUDGET_EXCEEDED",
    "RATE_LIMITED",
    "INTERNAL",
    "UNAVAILABLE",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
];

const fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// An HTTP status that a problem may carry: 400–599.
pub(crate) fn error_status(status: u16) -> Result<StatusCode, Error> {
    match StatusCode::from_u16(status) {
        Ok(code) if (400..=599).contains(&status) => Ok(code),
        _ => Err(Error::NotAnErrorStatus { status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full list of built-in codes and their statuses. Codes are API surface: this test
    /// changes only by appending.
    #[test]
    fn built_in_codes_are_stable() {
        let table: Vec<(String, u16, bool)> = Code::BUILT_IN
            .iter()
            .map(|code| {
                (
                    code.as_str().to_owned(),
                    code.http_status().as_u16(),
                    code.is_retryable(),
                )
            })
            .collect();
        let expected = [
            ("INVALID_REQUEST", 400, false),
            ("VALIDATION_FAILED", 422, false),
            ("UNAUTHENTICATED", 401, false),
            ("PERMISSION_DENIED", 403, false),
            ("NOT_FOUND", 404, false),
            ("METHOD_NOT_ALLOWED", 405, false),
            ("CONFLICT", 409, false),
            ("PAYLOAD_TOO_LARGE", 413, false),
            ("UNSUPPORTED_MEDIA_TYPE", 415, false),
            ("BUDGET_EXCEEDED", 402, false),
            ("RATE_LIMITED", 429, true),
            ("INTERNAL", 500, false),
            ("UNAVAILABLE", 503, true),
            ("UPSTREAM_UNAVAILABLE", 503, true),
            ("UPSTREAM_TIMEOUT", 504, true),
        ];
        let expected: Vec<(String, u16, bool)> = expected
            .iter()
            .map(|(name, status, retry)| ((*name).to_owned(), *status, *retry))
            .collect();
        assert_eq!(table, expected);
    }

    #[test]
    fn const_name_list_matches_the_enum() {
        let names: Vec<&str> = Code::BUILT_IN.iter().map(Code::as_str).collect();
        assert_eq!(names, BUILT_IN_NAMES);
    }

    #[test]
    fn every_built_in_code_follows_the_spelling_rule() {
        for code in Code::BUILT_IN {
            // The rule minus the "not a built-in name" clause.
            let name = code.as_str();
            assert!(name.len() >= 2 && name.len() <= MAX_CODE_LEN, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(!name.ends_with('_'), "{name}");
            assert_eq!(
                check_spelling(name),
                Err("the name belongs to a built-in code")
            );
        }
    }

    #[test]
    fn spelling_rule_rejects_each_kind_of_mistake() {
        let cases = [
            ("", "a code has 2 to 63 characters"),
            ("A", "a code has 2 to 63 characters"),
            (
                "quota_frozen",
                "a code starts with an upper-case ASCII letter",
            ),
            ("1QUOTA", "a code starts with an upper-case ASCII letter"),
            ("QUOTA_", "a code does not end with `_`"),
            (
                "QUOTA-FROZEN",
                "a code holds only upper-case ASCII letters, digits and `_`",
            ),
            (
                "QUOTA_Frozen",
                "a code holds only upper-case ASCII letters, digits and `_`",
            ),
            ("CONFLICT", "the name belongs to a built-in code"),
        ];
        for (name, reason) in cases {
            assert_eq!(check_spelling(name), Err(reason), "{name:?}");
        }
        let longest = "Q".repeat(MAX_CODE_LEN);
        assert_eq!(check_spelling(&longest), Ok(()));
        assert!(check_spelling(&"Q".repeat(MAX_CODE_LEN + 1)).is_err());
        assert_eq!(check_spelling("QUOTA_FROZEN_2"), Ok(()));
    }

    #[test]
    fn custom_codes_need_an_error_status() {
        assert!(matches!(
            CustomCode::parse("MOVED_AWAY", StatusCode::MOVED_PERMANENTLY),
            Err(Error::NotAnErrorStatus { status: 301 })
        ));
        let code = CustomCode::parse("QUOTA_FROZEN", StatusCode::LOCKED).unwrap();
        assert_eq!(Code::from(code).http_status(), StatusCode::LOCKED);
    }

    #[test]
    #[should_panic(expected = "a code starts with an upper-case ASCII letter")]
    fn const_constructor_panics_on_a_bad_name() {
        let _ = CustomCode::new("lower", StatusCode::CONFLICT);
    }

    #[test]
    fn wire_names_resolve_to_built_ins_first() {
        assert_eq!(
            Code::from_wire("NOT_FOUND".into(), 410).unwrap(),
            Code::NotFound
        );
        let custom = Code::from_wire("GONE_FOR_GOOD".into(), 410).unwrap();
        assert_eq!(custom.as_str(), "GONE_FOR_GOOD");
        assert_eq!(custom.http_status(), StatusCode::GONE);
        assert!(Code::from_wire("gone".into(), 410).is_err());
        assert!(Code::from_wire("GONE_FOR_GOOD".into(), 200).is_err());
    }

    #[test]
    fn custom_titles_use_the_status_phrase() {
        let code = Code::from(CustomCode::new("QUOTA_FROZEN", StatusCode::LOCKED));
        assert_eq!(code.title(), "Locked");
    }
}
