//! The crate's one error type.

/// Everything that can go wrong while building, evaluating or running a metrics query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured table or column name is not a plain SQL identifier
    /// (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes).
    #[error("invalid SQL identifier {0:?}: expected [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes")]
    InvalidIdentifier(String),
    /// A schema override named a column that the table does not have.
    #[error("table {table} has no column {column:?} to rename")]
    UnknownColumn {
        /// The logical table (`tenants`, `usage`, …).
        table: &'static str,
        /// The column name that was not found.
        column: String,
    },
    /// The query selects no metric.
    #[error("a metrics query must select at least one metric")]
    NoMetrics,
    /// Two selected metrics share a name.
    #[error("metric name {0:?} is selected twice")]
    DuplicateName(String),
    /// A query grouped by a ledger [`Dimension`](crate::Dimension) has an aggregate over a
    /// source without that dimension (memberships, or effective access through the tenant or
    /// the role tree).
    #[error(
        "a query grouped by feature, model or lane can only aggregate the usage ledger, not {table}"
    )]
    DimensionSource {
        /// The fact source that has no such dimension (`memberships`, `access` or
        /// `role access`).
        table: &'static str,
    },
    /// A ratio was built with a scale that is not positive.
    #[error("ratio scale must be positive, got {0}")]
    InvalidScale(i64),
    /// Integer arithmetic left the `i64` range. PostgreSQL raises `bigint out of range` and SQLite
    /// `integer overflow` for the same input, so the Rust evaluator refuses it as well.
    #[error("integer overflow while evaluating {0}")]
    Overflow(&'static str),
    /// A period ends before it starts.
    #[error("period ends ({end}) before it starts ({start})")]
    InvalidPeriod {
        /// Start, Unix microseconds.
        start: i64,
        /// End, Unix microseconds.
        end: i64,
    },
    /// A fixture insert could not be built (a row with the wrong number of values).
    #[error("fixture insert could not be built")]
    Fixture(#[source] sea_query::error::Error),
    /// The metrics' migrations could not be applied.
    #[error("migrating the metrics tables failed")]
    Migrate(#[source] tenantry_core::migrate::MigrateError),
    /// The database rejected or failed the query.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl From<tenantry_core::migrate::MigrateError> for Error {
    fn from(e: tenantry_core::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<super::Error>();
    }
}
