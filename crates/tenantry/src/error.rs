//! The facade's one error type, and how each error becomes an envelope problem with a stable code.

use http::StatusCode;
use tenantry_core::ErrorKind;
use tenantry_envelope::{Code, CustomCode, Envelope, Problem};

/// The job was canceled before it finished (`409`).
pub const JOB_CANCELED: CustomCode = CustomCode::new("JOB_CANCELED", StatusCode::CONFLICT);
/// The job's deadline passed before it finished (`410`).
pub const JOB_EXPIRED: CustomCode = CustomCode::new("JOB_EXPIRED", StatusCode::GONE);
/// The model refused or failed the request for good (`422`).
pub const JOB_FAILED: CustomCode = CustomCode::new("JOB_FAILED", StatusCode::UNPROCESSABLE_ENTITY);

/// Everything that can go wrong in a [`Tenantry`](crate::Tenantry) call.
///
/// Every error converts into a [`Problem`] with a stable code ([`Error::code`]), so a handler
/// can answer with an error envelope: `Err(e) => Envelope::from(e)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given an unusable setting (which one is in the message).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The queue refused or failed: an invalid request, an unknown job, a finished job, or its database.
    #[error("job queue error")]
    Queue(#[source] tenantry_queue::Error),
    /// The cost ledger refused or failed: a spent budget, an unpriceable model, or its database.
    #[error("cost ledger error")]
    Cost(#[source] tenantry_cost::Error),
    /// The API client could not be set up.
    #[error("API client error")]
    Client(#[source] tenantry_batch::Error),
    /// The database could not be reached or a statement failed.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database's schema could not be migrated: it is newer than this code, a released
    /// migration was edited, or a migration failed (nothing was applied then).
    #[error("database schema error")]
    Schema(#[source] tenantry_core::migrate::MigrateError),
    /// A metrics query could not be built or run.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[error("metrics error")]
    Metrics(#[source] tenantry_metrics::Error),
    /// The provider's usage or cost report holds something the ledger cannot be reconciled
    /// with as it is (another currency, a count that does not fit).
    #[error("provider report cannot be reconciled: {0}")]
    ProviderReport(String),
    /// The engine task panicked or was aborted.
    #[error("engine task failed")]
    Engine(#[source] tokio::task::JoinError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tenantry_queue::Error> for Error {
    fn from(e: tenantry_queue::Error) -> Self {
        Self::Queue(e)
    }
}

impl From<tenantry_queue::InvalidRequest> for Error {
    fn from(e: tenantry_queue::InvalidRequest) -> Self {
        Self::Queue(tenantry_queue::Error::Invalid(e))
    }
}

impl From<tenantry_queue::InvalidTenantId> for Error {
    fn from(e: tenantry_queue::InvalidTenantId) -> Self {
        Self::Queue(e.into())
    }
}

impl From<tenantry_cost::Error> for Error {
    fn from(e: tenantry_cost::Error) -> Self {
        Self::Cost(e)
    }
}

impl From<tenantry_batch::Error> for Error {
    fn from(e: tenantry_batch::Error) -> Self {
        Self::Client(e)
    }
}

impl From<tenantry_core::migrate::MigrateError> for Error {
    fn from(e: tenantry_core::migrate::MigrateError) -> Self {
        Self::Schema(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

#[cfg(feature = "metrics")]
impl From<tenantry_metrics::Error> for Error {
    fn from(e: tenantry_metrics::Error) -> Self {
        Self::Metrics(e)
    }
}

impl Error {
    /// What kind of failure it is, as the crate that failed classifies it.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Queue(e) => e.kind(),
            Self::Cost(e) => e.kind(),
            Self::Client(e) => e.kind(),
            Self::Database(e) => ErrorKind::of_database(e),
            Self::Schema(e) => e.kind(),
            #[cfg(feature = "metrics")]
            Self::Metrics(e) => e.kind(),
            Self::Config(_) | Self::Engine(_) | Self::ProviderReport(_) => ErrorKind::Internal,
        }
    }

    /// The stable problem code a client sees for this error, from its [`kind`](Self::kind).
    ///
    /// | kind | code |
    /// |---|---|
    /// | invalid input (a request, a tenant id, a token count out of range) | `VALIDATION_FAILED` (422) |
    /// | not found (an unknown job, also another tenant's) | `NOT_FOUND` (404) |
    /// | conflict (a finished job, a ledger key taken by other usage) | `CONFLICT` (409) |
    /// | budget exceeded | `BUDGET_EXCEEDED` (402) |
    /// | unpriceable (a model not in the price book) | `INVALID_REQUEST` (400) |
    /// | unavailable (the database unreachable) | `UNAVAILABLE` (503) |
    /// | anything else | `INTERNAL` (500) |
    #[must_use]
    pub fn code(&self) -> Code {
        match self.kind() {
            ErrorKind::InvalidInput => Code::ValidationFailed,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::Conflict,
            ErrorKind::BudgetExceeded => Code::BudgetExceeded,
            ErrorKind::Unpriceable => Code::InvalidRequest,
            ErrorKind::Unavailable => Code::Unavailable,
            _ => Code::Internal,
        }
    }

    /// Whether the error is a spent budget.
    #[must_use]
    pub fn is_budget_exceeded(&self) -> bool {
        matches!(self, Self::Cost(e) if e.is_budget_exceeded())
    }

    /// Whether the error means "no such job for this tenant".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Queue(e) if e.is_not_found())
    }

    /// The limit the input exceeded (a budget, `params.max_tokens`, the request's size), as the
    /// crate that refused it names it; `None` for any other error.
    #[must_use]
    pub fn exceeded_limit(&self) -> Option<tenantry_core::ExceededLimit> {
        match self {
            Self::Cost(e) => e.exceeded_limit(),
            Self::Queue(e) => e.exceeded_limit(),
            _ => None,
        }
    }

    /// The problem a client sees, with the exceeded limit when there is one. Internal errors
    /// keep their details out of the message.
    #[must_use]
    pub fn to_problem(&self) -> Problem {
        let code = self.code();
        let problem = if matches!(code, Code::Internal | Code::Unavailable) {
            Problem::new(code, "the request could not be completed; try again later")
        } else {
            Problem::new(code, chain(self))
        };
        match self.exceeded_limit() {
            Some(limit) => problem.with_limit(limit.into()),
            None => problem,
        }
    }
}

/// The message of an error and of its causes, without the wrapper's own words.
fn chain(e: &Error) -> String {
    let mut source = std::error::Error::source(e);
    let mut parts = Vec::new();
    while let Some(s) = source {
        let text = s.to_string();
        // Some causes repeat their own cause in their message: show each text once.
        if !parts
            .last()
            .is_some_and(|last: &String| last.contains(&text))
        {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        e.to_problem()
    }
}

impl<T> From<Error> for Envelope<T> {
    fn from(e: Error) -> Self {
        Envelope::error(e.to_problem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn codes_are_stable() {
        let e = Error::from(tenantry_queue::Error::NotFound { id: "j".into() });
        assert_eq!(e.code(), Code::NotFound);
        assert!(e.is_not_found());
        assert_eq!(Problem::from(e).http_status(), StatusCode::NOT_FOUND);

        let e = Error::from(tenantry_queue::InvalidRequest::Model);
        assert_eq!(e.code(), Code::ValidationFailed);
        assert_eq!(
            e.to_problem().message(),
            "invalid request: params.model must be a non-empty string"
        );

        let e = Error::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.to_problem().is_retryable());
    }

    #[test]
    fn budget_problem_carries_the_limit() {
        let e = Error::from(tenantry_cost::Error::BudgetExceeded {
            tenant_id: tenantry_cost::TenantId::new("acme").unwrap(),
            feature: None,
            limit: tenantry_cost::Nanos(100),
            spent: tenantry_cost::Nanos(60),
            held: tenantry_cost::Nanos(30),
            requested: tenantry_cost::Nanos(20),
            window_start: 0,
            window_end: 1,
        });
        assert!(e.is_budget_exceeded());
        let p = e.to_problem();
        assert_eq!(p.code(), &Code::BudgetExceeded);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["details"]["limits"][0]["max"], "100");
        assert_eq!(json["details"]["limits"][0]["actual"], "110");
    }

    #[test]
    fn a_refused_request_names_its_limit_even_inside_submit_many() {
        let too_large = tenantry_queue::InvalidRequest::TooLarge {
            size: 300,
            max: 256,
        };
        let item = tenantry_queue::InvalidRequest::Item {
            index: 3,
            reason: Box::new(tenantry_queue::InvalidRequest::MaxTokensAbove { max: 128_000 }),
        };
        let json = |e: Error| serde_json::to_value(e.to_problem()).unwrap();
        let limits = &json(Error::from(too_large))["details"]["limits"][0];
        assert_eq!(
            (limits["name"].as_str(), limits["unit"].as_str()),
            (Some("request"), Some("bytes"))
        );
        assert_eq!(
            (limits["max"].as_str(), limits["actual"].as_str()),
            (Some("256"), Some("300"))
        );
        let limits = &json(Error::from(item))["details"]["limits"][0];
        assert_eq!(limits["name"], "params.max_tokens");
        assert_eq!(limits["max"], "128000");
        assert!(
            json(Error::from(tenantry_queue::InvalidRequest::Model))["details"]["limits"].is_null()
        );
    }

    #[test]
    fn internal_errors_hide_details() {
        let e = Error::Config("secret detail".into());
        assert_eq!(e.code(), Code::Internal);
        assert!(!e.to_problem().message().contains("secret"));
    }
}
