//! [`ErrorKind`]: the few kinds of failure every crate's error falls into, so a caller (the
//! facade, an HTTP layer, a retry loop) decides what to do without matching another crate's
//! variants.

use std::fmt;

/// What kind of failure an error is, across the crates.
///
/// Each crate's `Error::kind()` answers it; the facade turns it into an HTTP problem, and a
/// caller decides on it whether to retry, report or fix its input.
///
/// # Example
///
/// ```
/// use tenantry_core::ErrorKind;
///
/// assert!(ErrorKind::Unavailable.is_retryable());
/// assert!(!ErrorKind::InvalidInput.is_retryable());
/// assert_eq!(ErrorKind::BudgetExceeded.as_str(), "budget_exceeded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input breaks a rule (which field, which limit is in the error); nothing
    /// changed.
    InvalidInput,
    /// The thing asked for does not exist for this tenant (another tenant's is "not found" too).
    NotFound,
    /// The request conflicts with the current state: a finished job, a key already taken.
    Conflict,
    /// A budget would be exceeded; nothing was sent or held.
    BudgetExceeded,
    /// The usage cannot be priced: the model or a modifier is not in the price book.
    Unpriceable,
    /// A dependency (the database, the API) could not be reached or timed out; trying again
    /// later may succeed.
    Unavailable,
    /// Anything else: a bug, a corrupt row, a schema this code does not know.
    Internal,
}

impl ErrorKind {
    /// The kind's stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Unpriceable => "unpriceable",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// Whether trying the same call again later may succeed.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable)
    }

    /// The kind of a database driver error: a connection or pool problem is
    /// [`Unavailable`](Self::Unavailable), anything else [`Internal`](Self::Internal). A
    /// constraint that one of our statements broke is our fault, not the caller's; the crates
    /// report the conflicts a caller can cause (a key taken, a finished job) as their own
    /// variants.
    #[cfg(feature = "sql")]
    #[must_use]
    pub fn of_database(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limit an input broke: what is limited, in which unit, the limit and what the input
/// reached. Errors that refuse input for exceeding a limit name it through an
/// `exceeded_limit()` accessor, so a caller (the facade's HTTP problem, a client retrying with
/// smaller input) reads it without matching another crate's variants.
///
/// # Example
///
/// ```
/// use tenantry_core::ExceededLimit;
///
/// let limit = ExceededLimit::new("params.max_tokens", "tokens", 128_000).with_actual(200_000);
/// assert_eq!((limit.name, limit.max, limit.actual), ("params.max_tokens", 128_000, Some(200_000)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExceededLimit {
    /// What is limited, as the caller names it (a field path such as `params.max_tokens`, or
    /// `budget`).
    pub name: &'static str,
    /// The unit of `max` and `actual` (`tokens`, `bytes`, `usd_nanos`).
    pub unit: &'static str,
    /// The limit.
    pub max: u64,
    /// What the input reached or would have reached, when known.
    pub actual: Option<u64>,
}

impl ExceededLimit {
    /// A limit of `max` `unit`s on `name`, with no reached value.
    #[must_use]
    pub const fn new(name: &'static str, unit: &'static str, max: u64) -> Self {
        Self {
            name,
            unit,
            max,
            actual: None,
        }
    }

    /// Sets the value the input reached.
    #[must_use]
    pub const fn with_actual(mut self, actual: u64) -> Self {
        self.actual = Some(actual);
        self
    }
}
