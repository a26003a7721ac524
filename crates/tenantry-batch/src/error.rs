//! The crate's one error type and its predicates.

use std::fmt;
use std::time::Duration;

use crate::types::{ErrorObject, ErrorType, MessageBatch};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the API.
///
/// No variant ever carries the API key: neither `Debug` nor `Display` can show it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error status (after any retries).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The request could not be sent or its response not received (after any retries).
    #[error("HTTP transport failed")]
    Transport(#[source] reqwest::Error),
    /// The call did not finish within its overall deadline.
    #[error("gave up after {0:?} (overall timeout)")]
    Timeout(Duration),
    /// A batch create may or may not have happened (the connection was lost or timed out after
    /// the body was sent), and reconciling against the batch list did not find exactly one match.
    /// The batches that could be it are in `candidates`; nothing was retried.
    #[error("batch create outcome unknown: {} candidate batch(es) found", candidates.len())]
    CreateOutcomeUnknown {
        /// Batches created in the attempt's window with the same number of requests.
        candidates: Vec<MessageBatch>,
        /// What made the outcome unknown.
        #[source]
        source: Box<Error>,
    },
    /// The batch was refused before sending: which request (by index) broke which rule.
    #[error("batch request {}: {rule}", index.map_or_else(|| "(batch)".to_owned(), |i| format!("#{i}")))]
    Validation {
        /// Index of the offending request, or `None` for a rule about the whole batch.
        index: Option<usize>,
        /// The rule that was broken.
        rule: ValidationRule,
    },
    /// A response body was not the JSON this crate expects.
    #[error("could not decode the {what} response")]
    Decode {
        /// Which response.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A request could not be serialized to JSON.
    #[error("could not encode the {what}")]
    Encode {
        /// Which request.
        what: &'static str,
        /// The encoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A batch id is empty or contains characters that cannot be part of a URL path.
    #[error("invalid batch id {0:?}")]
    InvalidId(String),
    /// Reading a results body failed (a source other than this client's HTTP connection).
    #[error("reading the results failed")]
    Io(#[source] std::io::Error),
    /// A line of a results file is not a valid result. The stream can go on after it.
    #[error("malformed result on line {line}{}", custom_id.as_deref().map(|id| format!(" (custom_id {id})")).unwrap_or_default())]
    MalformedResult {
        /// 1-based line number in the results file.
        line: u64,
        /// The line's `custom_id`, if it could be read.
        custom_id: Option<String>,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The results file ended early (connection lost mid-file) and resuming was not possible.
    #[error("results stream truncated after {received} result(s){}", expected.map(|e| format!(" of {e}")).unwrap_or_default())]
    TruncatedResults {
        /// Results handed out so far.
        received: u64,
        /// Results the batch holds, when known.
        expected: Option<u64>,
    },
    /// Every download of the results file ended cleanly, each with fewer results than the
    /// batch holds: the API left some requests out. The results that were there have been
    /// handed out; the missing ones have no result to wait for.
    #[error("results file complete with {received} of {expected} result(s)")]
    MissingResults {
        /// Results handed out.
        received: u64,
        /// Results the batch holds.
        expected: u64,
    },
    /// The batch has no results to download (not ended yet, or archived).
    #[error("batch {batch_id} has no results yet")]
    ResultsUnavailable {
        /// The batch.
        batch_id: String,
    },
    /// The configuration is unusable (missing key, bad URL or header value).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A decimal amount (the cost report's `amount`) is not `-?DIGITS(.DIGITS)?` with at
    /// most 24 decimals, or does not fit.
    #[error("invalid decimal amount {0:?}")]
    InvalidAmount(String),
    /// A report page said more pages follow but gave no new `next_page` token; following
    /// it would fetch the same page forever.
    #[error("the {0} said has_more without a new next_page token")]
    PagingStalled(&'static str),
}

impl Error {
    /// The HTTP status of an API error.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.status),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
            Self::CreateOutcomeUnknown { source, .. } => source.status(),
            _ => None,
        }
    }

    /// The `request-id` of the failed response, for support requests.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.request_id.as_deref(),
            Self::CreateOutcomeUnknown { source, .. } => source.request_id(),
            _ => None,
        }
    }

    /// The API error, when the API answered with one.
    #[must_use]
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }

    /// Whether trying the same call again later may succeed, by the official SDKs' rules:
    /// 408, 409, 429 (except a spend-limit stop), ≥ 500, connection errors and timeouts.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(api) => api.retryable,
            Self::Transport(_) | Self::Timeout(_) | Self::TruncatedResults { .. } => true,
            _ => false,
        }
    }

    /// Whether this is a 429 (rate limit or spend limit).
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// Whether this is a spend-limit stop (`enforced_spend_limit_reached`), never retried.
    #[must_use]
    pub fn is_spend_limit(&self) -> bool {
        matches!(self, Self::Api(api) if api.error.error_code() == Some(crate::retry::SPEND_LIMIT_CODE))
    }

    /// Whether the API said the thing asked for does not exist (404): an unknown batch id, an
    /// archived results file.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// What kind of failure it is, in the terms every tenantry crate shares: a retryable answer
    /// or a lost connection is [`Unavailable`](tenantry_core::ErrorKind::Unavailable), a 404
    /// [`NotFound`](tenantry_core::ErrorKind::NotFound), a request the API or this client refused
    /// [`InvalidInput`](tenantry_core::ErrorKind::InvalidInput).
    #[must_use]
    pub fn kind(&self) -> tenantry_core::ErrorKind {
        use tenantry_core::ErrorKind as K;
        if self.is_retryable() {
            return K::Unavailable;
        }
        match self {
            _ if self.is_not_found() => K::NotFound,
            Self::Api(api) if api.status == 409 => K::Conflict,
            Self::Api(api) if matches!(api.status, 400 | 413 | 422) => K::InvalidInput,
            Self::Validation { .. } | Self::InvalidId(_) | Self::InvalidAmount(_) => {
                K::InvalidInput
            }
            _ => K::Internal,
        }
    }

    /// A stable snake_case name for the kind of error, for logs, metrics and scripts.
    ///
    /// | variant | code |
    /// |---|---|
    /// | `Api` | `api_error` |
    /// | `Transport` | `transport` |
    /// | `Timeout` | `timeout` |
    /// | `CreateOutcomeUnknown` | `create_outcome_unknown` |
    /// | `Validation` | `validation` |
    /// | `Decode` | `decode` |
    /// | `Encode` | `encode` |
    /// | `InvalidId` | `invalid_id` |
    /// | `Io` | `io` |
    /// | `MalformedResult` | `malformed_result` |
    /// | `TruncatedResults` | `truncated_results` |
    /// | `MissingResults` | `missing_results` |
    /// | `ResultsUnavailable` | `results_unavailable` |
    /// | `Config` | `config` |
    /// | `InvalidAmount` | `invalid_amount` |
    /// | `PagingStalled` | `paging_stalled` |
    ///
    /// # Example
    ///
    /// ```
    /// let err = tenantry_batch::Error::InvalidId("a/b".into());
    /// assert_eq!(err.code(), "invalid_id");
    /// assert!(!err.is_retryable() && !err.is_not_found());
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(_) => "api_error",
            Self::Transport(_) => "transport",
            Self::Timeout(_) => "timeout",
            Self::CreateOutcomeUnknown { .. } => "create_outcome_unknown",
            Self::Validation { .. } => "validation",
            Self::Decode { .. } => "decode",
            Self::Encode { .. } => "encode",
            Self::InvalidId(_) => "invalid_id",
            Self::Io(_) => "io",
            Self::MalformedResult { .. } => "malformed_result",
            Self::TruncatedResults { .. } => "truncated_results",
            Self::MissingResults { .. } => "missing_results",
            Self::ResultsUnavailable { .. } => "results_unavailable",
            Self::Config(_) => "config",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::PagingStalled(_) => "paging_stalled",
        }
    }

    pub(crate) fn validation(index: Option<usize>, rule: ValidationRule) -> Self {
        Self::Validation { index, rule }
    }
}

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The error object (`type`, `message`, `details`).
    pub error: ErrorObject,
    /// The `request-id` response header (or the body's `request_id`).
    pub request_id: Option<String>,
    /// Whether the retry rules consider this answer retryable (including `x-should-retry`).
    pub retryable: bool,
}

impl ApiError {
    /// The error's type.
    #[must_use]
    pub fn kind(&self) -> &ErrorType {
        &self.error.kind
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "API error {} {}: {}",
            self.status, self.error.kind, self.error.message
        )?;
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

/// A rule of the batch API that a request or batch broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationRule {
    /// `custom_id` must match `^[a-zA-Z0-9_-]{1,64}$`.
    CustomIdPattern {
        /// The offending id.
        custom_id: String,
    },
    /// `custom_id` must be unique within the batch.
    DuplicateCustomId {
        /// The duplicated id.
        custom_id: String,
        /// Index of the request that used it first.
        first_index: usize,
    },
    /// A batch holds at most this many requests.
    TooManyRequests {
        /// The limit.
        limit: usize,
    },
    /// The serialized body must stay within this many bytes.
    BodyTooLarge {
        /// The size the body would have.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// `stream` must not be `true` in a batch.
    StreamSet,
    /// `max_tokens` must be at least 1 in a batch.
    MaxTokensZero,
    /// A batch needs at least one request.
    Empty,
}

impl fmt::Display for ValidationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CustomIdPattern { custom_id } => write!(
                f,
                "custom_id {custom_id:?} must be 1 to 64 characters of [a-zA-Z0-9_-]"
            ),
            Self::DuplicateCustomId {
                custom_id,
                first_index,
            } => {
                write!(
                    f,
                    "custom_id {custom_id:?} is already used by request #{first_index}"
                )
            }
            Self::TooManyRequests { limit } => write!(f, "a batch holds at most {limit} requests"),
            Self::BodyTooLarge { bytes, limit } => {
                write!(
                    f,
                    "the batch body would be {bytes} bytes, over the {limit}-byte limit"
                )
            }
            Self::StreamSet => f.write_str("`stream` must not be true in a batch"),
            Self::MaxTokensZero => f.write_str("`max_tokens` must be at least 1 in a batch"),
            Self::Empty => f.write_str("a batch needs at least one request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<Error>();
    }

    #[test]
    fn validation_names_index_and_rule() {
        let e = Error::validation(Some(3), ValidationRule::MaxTokensZero);
        assert_eq!(
            e.to_string(),
            "batch request #3: `max_tokens` must be at least 1 in a batch"
        );
    }
}
