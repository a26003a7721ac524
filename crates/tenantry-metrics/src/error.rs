//! The crate's one error type.

/// Everything that can go wrong while building, evaluating or running a metrics query.
///
/// A caller maps it through its predicates rather than its variants:
/// [`is_invalid`](Self::is_invalid) (the query, metric or schema is wrong: fix the caller),
/// [`is_retryable`](Self::is_retryable) (the database was unreachable: try again), and
/// [`code`](Self::code), a stable snake_case name for every variant:
///
/// | variant | `code()` | `is_invalid()` | `is_retryable()` |
/// |---|---|---|---|
/// | [`InvalidIdentifier`](Self::InvalidIdentifier) | `invalid_identifier` | yes | no |
/// | [`UnknownColumn`](Self::UnknownColumn) | `unknown_column` | yes | no |
/// | [`UnsupportedType`](Self::UnsupportedType) | `unsupported_type` | yes | no |
/// | [`InvalidId`](Self::InvalidId) | `invalid_id` | yes | no |
/// | [`SchemaMismatch`](Self::SchemaMismatch) | `schema_mismatch` | yes | no |
/// | [`NoMetrics`](Self::NoMetrics) | `no_metrics` | yes | no |
/// | [`DuplicateName`](Self::DuplicateName) | `duplicate_name` | yes | no |
/// | [`DimensionSource`](Self::DimensionSource) | `dimension_source` | yes | no |
/// | [`InvalidScale`](Self::InvalidScale) | `invalid_scale` | yes | no |
/// | [`InvalidPeriod`](Self::InvalidPeriod) | `invalid_period` | yes | no |
/// | [`Overflow`](Self::Overflow) | `overflow` | no | no |
/// | [`Fixture`](Self::Fixture) | `fixture` | no | no |
/// | [`Migrate`](Self::Migrate) | `migration` | no | when the database was unreachable |
/// | [`Database`](Self::Database) | `database` | no | when the database was unreachable |
///
/// There is no `is_not_found`: nothing here looks one thing up. A query over tenants that do
/// not exist returns no rows, not an error.
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
    /// The configured type of a column does not exist on the database (`uuid` or
    /// `timestamptz` on SQLite, ISO-8601 text time on PostgreSQL).
    #[error("{column} cannot be {ty} on {backend}")]
    UnsupportedType {
        /// The columns concerned (`tenant ids`, `user ids` or `occurred_at`).
        column: &'static str,
        /// The configured type.
        ty: &'static str,
        /// The database.
        backend: &'static str,
    },
    /// A tenant id of a [`Scope`](crate::Scope) is not the text form of an id of the
    /// configured [`IdType`](crate::IdType).
    #[error("tenant id {id:?} is not {expected}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// What an id of the configured type looks like.
        expected: &'static str,
    },
    /// The host's database lacks a table or column a query reads, or declares it with another
    /// type than the [`Schema`](crate::Schema) says ([`MetricsQuery::check_schema`](crate::MetricsQuery::check_schema)).
    #[error("the host's schema does not match the metrics: {0}")]
    SchemaMismatch(crate::SchemaMismatch),
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

impl Error {
    /// The error's stable name, in snake_case (the table on [`Error`]). It never changes for a
    /// variant once released; a new variant gets a new code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidIdentifier(_) => "invalid_identifier",
            Self::UnknownColumn { .. } => "unknown_column",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::InvalidId { .. } => "invalid_id",
            Self::SchemaMismatch(_) => "schema_mismatch",
            Self::NoMetrics => "no_metrics",
            Self::DuplicateName(_) => "duplicate_name",
            Self::DimensionSource { .. } => "dimension_source",
            Self::InvalidScale(_) => "invalid_scale",
            Self::Overflow(_) => "overflow",
            Self::InvalidPeriod { .. } => "invalid_period",
            Self::Fixture(_) => "fixture",
            Self::Migrate(_) => "migration",
            Self::Database(_) => "database",
        }
    }

    /// What kind of failure it is, in the terms every tenantry crate shares: a definition or
    /// input that breaks a rule is [`InvalidInput`](tenantry_core::ErrorKind::InvalidInput), a
    /// database that could not be reached [`Unavailable`](tenantry_core::ErrorKind::Unavailable),
    /// anything else [`Internal`](tenantry_core::ErrorKind::Internal).
    #[must_use]
    pub fn kind(&self) -> tenantry_core::ErrorKind {
        match self {
            _ if self.is_invalid() => tenantry_core::ErrorKind::InvalidInput,
            Self::Database(e) => tenantry_core::ErrorKind::of_database(e),
            Self::Migrate(e) => e.kind(),
            _ => tenantry_core::ErrorKind::Internal,
        }
    }

    /// Whether the query, a metric, a period or the schema is wrong: the same call fails the
    /// same way until the caller changes it (a `400`, not a `500`).
    #[must_use]
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::InvalidIdentifier(_)
                | Self::UnknownColumn { .. }
                | Self::UnsupportedType { .. }
                | Self::InvalidId { .. }
                | Self::SchemaMismatch(_)
                | Self::NoMetrics
                | Self::DuplicateName(_)
                | Self::DimensionSource { .. }
                | Self::InvalidScale(_)
                | Self::InvalidPeriod { .. }
        )
    }

    /// Whether trying again may succeed: the database could not be reached (an I/O error, the
    /// pool timed out or was closed), not a refusal of the query or the schema.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl From<tenantry_core::migrate::MigrateError> for Error {
    fn from(e: tenantry_core::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// One of each variant.
    fn every_variant() -> Vec<Error> {
        vec![
            Error::InvalidIdentifier("a b".into()),
            Error::UnknownColumn {
                table: "usage",
                column: "x".into(),
            },
            Error::UnsupportedType {
                column: "tenant ids",
                ty: "uuid",
                backend: "sqlite",
            },
            Error::InvalidId {
                id: "x".into(),
                expected: "a decimal integer",
            },
            Error::SchemaMismatch(crate::SchemaMismatch::default()),
            Error::NoMetrics,
            Error::DuplicateName("cost".into()),
            Error::DimensionSource {
                table: "memberships",
            },
            Error::InvalidScale(0),
            Error::Overflow("sum"),
            Error::InvalidPeriod { start: 2, end: 1 },
            Error::Fixture(sea_query::error::Error::ColValNumMismatch {
                col_len: 1,
                val_len: 2,
            }),
            Error::Migrate(tenantry_core::migrate::MigrateError::TooNew {
                component: "metrics",
                found: 3,
                supported: 2,
            }),
            Error::Database(sqlx::Error::RowNotFound),
        ]
    }

    #[test]
    fn codes_are_stable_snake_case_and_distinct() {
        let codes: Vec<_> = every_variant().iter().map(Error::code).collect();
        assert_eq!(
            codes,
            [
                "invalid_identifier",
                "unknown_column",
                "unsupported_type",
                "invalid_id",
                "schema_mismatch",
                "no_metrics",
                "duplicate_name",
                "dimension_source",
                "invalid_scale",
                "overflow",
                "invalid_period",
                "fixture",
                "migration",
                "database",
            ]
        );
    }

    #[test]
    fn definitions_are_invalid_and_the_database_is_not() {
        let invalid: Vec<_> = every_variant()
            .iter()
            .filter(|e| e.is_invalid())
            .map(Error::code)
            .collect();
        assert_eq!(
            invalid,
            [
                "invalid_identifier",
                "unknown_column",
                "unsupported_type",
                "invalid_id",
                "schema_mismatch",
                "no_metrics",
                "duplicate_name",
                "dimension_source",
                "invalid_scale",
                "invalid_period",
            ]
        );
    }

    #[test]
    fn only_an_unreachable_database_is_retryable() {
        assert!(every_variant().iter().all(|e| !e.is_retryable()));
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(
            Error::Migrate(tenantry_core::migrate::MigrateError::Database(
                sqlx::Error::PoolTimedOut
            ))
            .is_retryable()
        );
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<super::Error>();
    }
}
