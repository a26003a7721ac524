//! The crate's one error type: what can go wrong when building envelope values.

/// Why a value could not be built.
///
/// Every constructor that validates its input (custom codes, JSON pointers, operation ids and
/// status URLs) returns this error, and deserialization reports the same message through
/// serde, so a bad value never reaches the wire.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{CustomCode, Error};
///
/// let err = CustomCode::parse("not-upper-case", http::StatusCode::CONFLICT).unwrap_err();
/// assert!(matches!(err, Error::InvalidCode { .. }));
/// assert!(err.to_string().contains("not-upper-case"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A problem code does not follow the spelling rule (`UPPER_SNAKE_CASE`, 2 to 63 characters,
    /// starting with a letter, not ending with `_`) or takes the name of a built-in code.
    #[error("invalid problem code `{code}`: {reason}")]
    InvalidCode {
        /// The rejected code, as given.
        code: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// A problem was given an HTTP status outside 400–599: problems describe failures.
    #[error("HTTP status {status} is not an error status (400-599)")]
    NotAnErrorStatus {
        /// The rejected status.
        status: u16,
    },
    /// A JSON pointer (RFC 6901) is malformed.
    #[error("invalid JSON pointer `{pointer}`: {reason}")]
    InvalidPointer {
        /// The rejected pointer, as given.
        pointer: String,
        /// Which part of RFC 6901 it breaks.
        reason: &'static str,
    },
    /// A value that travels in an HTTP header (`Location`, an id) is empty or holds characters a
    /// header cannot carry (control characters, non-ASCII).
    #[error("{field} cannot be sent in an HTTP header: {value:?}")]
    InvalidHeaderValue {
        /// The field the value was meant for.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
    /// Writing the TypeScript definitions failed.
    #[cfg(feature = "ts")]
    #[error("writing the TypeScript definitions failed")]
    TypeScriptExport(#[source] ts_rs::ExportError),
}

/// `Result` with this crate's [`Error`] as the default error type.
///
/// # Example
///
/// ```
/// use tenantry_envelope::CustomCode;
///
/// fn host_code(name: &str) -> tenantry_envelope::Result<CustomCode> {
///     CustomCode::parse(name, http::StatusCode::CONFLICT)
/// }
/// assert!(host_code("DUPLICATE_NAME").is_ok());
/// assert!(host_code("duplicate").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<E: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn messages_name_the_bad_value() {
        let err = Error::InvalidPointer {
            pointer: "items".into(),
            reason: "must start with `/`",
        };
        assert_eq!(
            err.to_string(),
            "invalid JSON pointer `items`: must start with `/`"
        );
    }
}
