//! The one error type of the queue crate and its `Result` alias.

use tenantry_core::InvalidTenantId;
use tenantry_core::migrate::MigrateError;

use crate::job::JobState;

/// Everything that can go wrong in the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was rejected at submit time; nothing was stored.
    #[error("invalid request: {0}")]
    Invalid(#[from] InvalidRequest),
    /// No job with this id exists for this tenant (another tenant's job is reported the same way).
    #[error("job {id} not found")]
    NotFound {
        /// The id that was looked up.
        id: String,
    },
    /// The job already reached a terminal state other than `canceled` and cannot be canceled.
    #[error("job {id} is already {state}")]
    AlreadyFinished {
        /// The job.
        id: String,
        /// The terminal state it is in.
        state: JobState,
    },
    /// The job cannot be retried now ([`RepairStore::retry`](crate::RepairStore::retry)):
    /// it is not failed, canceled or expired, or its last attempt is not settled yet. Nothing
    /// changed.
    #[error("job {id} ({state}) cannot be retried: {reason}")]
    NotRetryable {
        /// The job.
        id: String,
        /// The state it is in.
        state: JobState,
        /// Why, in words.
        reason: &'static str,
    },
    /// A list cursor that this crate did not produce.
    #[error("malformed list cursor")]
    BadCursor,
    /// The database failed.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A stored row could not be read back (corrupt or written by an incompatible version).
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it could not be read.
        detail: String,
    },
    /// A stored JSON value could not be decoded.
    #[error("stored JSON is unreadable")]
    Json(#[source] serde_json::Error),
    /// The queue's schema could not be migrated: the database was migrated by a newer version
    /// of this crate ([`MigrateError::TooNew`]), a shipped migration differs from the one
    /// applied ([`MigrateError::Edited`]), or a statement failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl Error {
    /// Whether the caller's input was rejected and nothing changed: an invalid submission
    /// ([`Error::Invalid`]) or a list cursor this crate did not make ([`Error::BadCursor`]).
    #[must_use]
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::BadCursor)
    }

    /// Whether the error means "no such job for this tenant".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether trying again later may succeed: the database could not be reached (I/O error,
    /// no pooled connection within the timeout, pool closed), also while migrating. A
    /// constraint violation, a rejected request or an unreadable row is not retryable.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// What kind of failure it is, in the terms every tenantry crate shares: rejected input,
    /// an unknown job, a finished job ([`Conflict`](tenantry_core::ErrorKind::Conflict)), an
    /// unreachable database ([`Unavailable`](tenantry_core::ErrorKind::Unavailable)), or
    /// anything else ([`Internal`](tenantry_core::ErrorKind::Internal)).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::ErrorKind;
    ///
    /// assert_eq!(tenantry_queue::Error::BadCursor.kind(), ErrorKind::InvalidInput);
    /// ```
    #[must_use]
    pub fn kind(&self) -> tenantry_core::ErrorKind {
        use tenantry_core::ErrorKind as K;
        match self {
            _ if self.is_invalid_request() => K::InvalidInput,
            Self::NotFound { .. } => K::NotFound,
            Self::AlreadyFinished { .. } | Self::NotRetryable { .. } => K::Conflict,
            Self::Database(e) => K::of_database(e),
            Self::Migrate(e) => e.kind(),
            _ => K::Internal,
        }
    }

    /// The limit a refused request exceeded (`params.max_tokens` in tokens, the request's
    /// size in bytes), looking through a `submit_many` item to its reason; `None` for any other
    /// error.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_queue::{Error, InvalidRequest};
    ///
    /// let err = Error::Invalid(InvalidRequest::TooLarge { size: 300, max: 256 });
    /// let limit = err.exceeded_limit().expect("a size limit");
    /// assert_eq!((limit.name, limit.unit, limit.max, limit.actual), ("request", "bytes", 256, Some(300)));
    /// ```
    #[must_use]
    pub fn exceeded_limit(&self) -> Option<tenantry_core::ExceededLimit> {
        let Self::Invalid(invalid) = self else {
            return None;
        };
        invalid.exceeded_limit()
    }

    /// A stable snake_case code naming the error, for logs, metrics and API responses; codes
    /// are never renamed or reused.
    ///
    /// | error | code |
    /// |---|---|
    /// | [`Error::Invalid`] | `invalid_request` |
    /// | [`Error::NotFound`] | `not_found` |
    /// | [`Error::AlreadyFinished`] | `already_finished` |
    /// | [`Error::NotRetryable`] | `not_retryable` |
    /// | [`Error::BadCursor`] | `bad_cursor` |
    /// | [`Error::Database`] | `database` |
    /// | [`Error::Corrupt`] | `corrupt_row` |
    /// | [`Error::Json`] | `corrupt_json` |
    /// | [`Error::Migrate`] with [`MigrateError::TooNew`] | `schema_too_new` |
    /// | [`Error::Migrate`] with [`MigrateError::Edited`] | `schema_edited` |
    /// | [`Error::Migrate`], any other cause | `migration_failed` |
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NotFound { .. } => "not_found",
            Self::AlreadyFinished { .. } => "already_finished",
            Self::NotRetryable { .. } => "not_retryable",
            Self::BadCursor => "bad_cursor",
            Self::Database(_) => "database",
            Self::Corrupt { .. } => "corrupt_row",
            Self::Json(_) => "corrupt_json",
            Self::Migrate(MigrateError::TooNew { .. }) => "schema_too_new",
            Self::Migrate(MigrateError::Edited { .. }) => "schema_edited",
            Self::Migrate(_) => "migration_failed",
        }
    }
}

/// What exactly is wrong with a submitted request; each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The tenant id is empty, too long or contains characters outside `[A-Za-z0-9_.:@-]`.
    #[error("tenant id must be 1..={max} characters of [A-Za-z0-9_.:@-]")]
    TenantId {
        /// The maximum length.
        max: usize,
    },
    /// A text field (feature, user, idempotency key) is empty or too long.
    #[error("{field} must be 1..={max} bytes")]
    Field {
        /// Which field.
        field: &'static str,
        /// The maximum length in bytes.
        max: usize,
    },
    /// `params` is not a JSON object.
    #[error("params must be a JSON object")]
    ParamsNotObject,
    /// `params.model` is missing or not a non-empty string.
    #[error("params.model must be a non-empty string")]
    Model,
    /// `params.max_tokens` is missing, not an integer or below 1.
    #[error("params.max_tokens must be an integer >= 1")]
    MaxTokens,
    /// `params.max_tokens` is above the largest output the API allows any model
    /// ([`MAX_OUTPUT_TOKENS`](crate::MAX_OUTPUT_TOKENS)).
    #[error("params.max_tokens must be at most {max}")]
    MaxTokensAbove {
        /// The limit.
        max: u64,
    },
    /// `params.messages` is missing or not a non-empty array.
    #[error("params.messages must be a non-empty array")]
    Messages,
    /// `params.stream` is set to true; batched and queued requests are never streamed.
    #[error("params.stream must be absent or false")]
    Stream,
    /// `params.custom_id` was given; the queue assigns custom ids itself.
    #[error("params must not carry a custom_id; the queue assigns it")]
    CustomId,
    /// The serialized request is larger than the per-request limit.
    #[error("request is {size} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// `params` is not a Messages API request the client can send (a field of the wrong
    /// type, an unknown role or content block, a missing field, …).
    #[error("params are not a valid Messages request: {detail}")]
    Params {
        /// The decoder's description, naming the field and what was expected.
        detail: String,
    },
    /// The request breaks one of the client's batch rules (see
    /// [`tenantry_batch::validate_request`]) not covered by a more specific variant.
    #[error("request breaks a batch rule: {0}")]
    BatchRule(tenantry_batch::ValidationRule),
    /// `metadata` is not a JSON object.
    #[error("metadata must be a JSON object")]
    MetadataNotObject,
    /// A max wait of zero or beyond the limit.
    #[error("max_wait must be between 1 ms and {max_secs} s")]
    MaxWait {
        /// The maximum in seconds.
        max_secs: u64,
    },
    /// Two requests in one `submit_many` call share an idempotency key.
    #[error("idempotency key repeated within one submit_many call at index {index}")]
    DuplicateKey {
        /// The index of the second occurrence.
        index: usize,
    },
    /// A `submit_many` item is invalid; the whole call is rejected.
    #[error("item {index} is invalid")]
    Item {
        /// The index of the invalid item.
        index: usize,
        /// What is wrong with it.
        #[source]
        reason: Box<InvalidRequest>,
    },
}

impl From<InvalidTenantId> for InvalidRequest {
    fn from(e: InvalidTenantId) -> Self {
        Self::TenantId { max: e.max }
    }
}

impl From<InvalidTenantId> for Error {
    fn from(e: InvalidTenantId) -> Self {
        Self::Invalid(e.into())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl InvalidRequest {
    /// The limit this request exceeded, looking through a `submit_many` item to its reason;
    /// `None` for a rule that is not a numeric limit.
    #[must_use]
    pub fn exceeded_limit(&self) -> Option<tenantry_core::ExceededLimit> {
        use tenantry_core::ExceededLimit;
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match self {
            Self::Item { reason, .. } => reason.exceeded_limit(),
            Self::MaxTokensAbove { max } => {
                Some(ExceededLimit::new("params.max_tokens", "tokens", *max))
            }
            Self::TooLarge { size, max } => Some(
                ExceededLimit::new("request", "bytes", as_u64(*max)).with_actual(as_u64(*size)),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<Error>();
        check::<InvalidRequest>();
    }

    #[test]
    fn predicates_and_codes() {
        let unreachable = Error::Database(sqlx::Error::PoolTimedOut);
        assert!(unreachable.is_retryable());
        assert_eq!(unreachable.code(), "database");
        let constraint = Error::Database(sqlx::Error::RowNotFound);
        assert!(!constraint.is_retryable());
        let invalid = Error::from(InvalidRequest::Model);
        assert!(invalid.is_invalid_request() && !invalid.is_retryable());
        assert_eq!(invalid.code(), "invalid_request");
        assert!(Error::BadCursor.is_invalid_request());
        let missing = Error::NotFound { id: "job_1".into() };
        assert!(missing.is_not_found() && !missing.is_invalid_request());
        assert_eq!(missing.code(), "not_found");
        let busy = Error::NotRetryable {
            id: "job_1".into(),
            state: JobState::Succeeded,
            reason: "it succeeded",
        };
        assert_eq!(busy.kind(), tenantry_core::ErrorKind::Conflict);
        assert_eq!(busy.code(), "not_retryable");
        let too_new = Error::Migrate(MigrateError::TooNew {
            component: "queue",
            found: 99,
            supported: 9,
        });
        assert_eq!(too_new.code(), "schema_too_new");
        assert!(!too_new.is_retryable());
        assert!(Error::Migrate(MigrateError::Database(sqlx::Error::PoolTimedOut)).is_retryable());
    }

    #[test]
    fn cause_is_not_repeated_in_message() {
        let e = Error::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(e.to_string(), "database error");
        assert!(std::error::Error::source(&e).is_some());
    }
}
