//! The crate's one error type.

use crate::money::Nanos;

/// Everything that can go wrong while pricing, recording or budgeting usage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model is not in the price book (neither as id, alias nor dated id). Never priced at $0.
    #[error("model `{model}` is not in the price book")]
    UnknownModel {
        /// The model id as given.
        model: String,
    },
    /// The price book has the model, but no rate row effective at that time.
    #[error("model `{model}` has no rate effective at {at_micros} µs after the Unix epoch")]
    NoRateAt {
        /// The canonical model id.
        model: String,
        /// The time asked for, Unix microseconds.
        at_micros: i64,
    },
    /// The usage asks for a modifier the model's rate row does not offer.
    #[error("model `{model}` has no price for {modifier}")]
    UnsupportedModifier {
        /// The canonical model id.
        model: String,
        /// The modifier, e.g. `inference_geo "us"`.
        modifier: String,
    },
    /// A value is outside the range the formula is proved exact for.
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The field or column name.
        field: &'static str,
        /// The offending value.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// Provider usage that cannot be split into exclusive buckets.
    #[error("inconsistent usage: {0}")]
    InconsistentUsage(String),
    /// A price book (JSON or TOML) that does not parse or breaks a rule.
    #[error("invalid price book: {0}")]
    InvalidPriceBook(String),
    /// A price-book file could not be parsed as JSON.
    #[error("price book is not valid JSON")]
    PriceBookJson(#[source] serde_json::Error),
    /// A price-book file could not be parsed as TOML.
    #[error("price book is not valid TOML")]
    PriceBookToml(#[source] toml::de::Error),
    /// A named feature tier or region has no multiplier effective at the usage time.
    #[error("no {kind} named `{name}` is effective at {at_micros}")]
    UnknownMultiplier {
        /// `feature tier` or `region`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// The time asked for, Unix microseconds.
        at_micros: i64,
    },
    /// A hold would take a budget past its limit.
    #[error(
        "budget of tenant `{tenant_id}`{} exceeded: limit {limit}, spent {spent}, held {held}, requested {requested}",
        feature.as_ref().map(|f| format!(" feature `{f}`")).unwrap_or_default()
    )]
    BudgetExceeded {
        /// The tenant.
        tenant_id: tenantry_core::TenantId,
        /// The feature, for a per-feature budget; `None` for the tenant-wide budget.
        feature: Option<String>,
        /// The budget's limit for the current window.
        limit: Nanos,
        /// Spent in the window so far, from the ledger.
        spent: Nanos,
        /// Held by live holds.
        held: Nanos,
        /// The amount this request asked to hold.
        requested: Nanos,
        /// Window start, Unix microseconds.
        window_start: i64,
        /// Window end (exclusive), Unix microseconds.
        window_end: i64,
    },
    /// An urgent-lane hold would take a budget past its soft limit. Nothing was held: the
    /// request may be sent down the batch lane instead, at the batch price.
    #[error(
        "soft limit of tenant `{tenant_id}`{} reached: {soft_limit_permille} per mille of limit {limit}, spent {spent}, held {held}, requested {requested}",
        feature.as_ref().map(|f| format!(" feature `{f}`")).unwrap_or_default()
    )]
    SoftLimitReached {
        /// The tenant.
        tenant_id: tenantry_core::TenantId,
        /// The feature, for a per-feature budget; `None` for the tenant-wide budget.
        feature: Option<String>,
        /// The soft limit, per mille of `limit`.
        soft_limit_permille: u16,
        /// The budget's limit for the current window.
        limit: Nanos,
        /// Spent in the window so far, from the ledger.
        spent: Nanos,
        /// Held by live holds.
        held: Nanos,
        /// The amount the call asked to hold against this budget.
        requested: Nanos,
    },
    /// The alert sink failed to write the alerts a call fired; nothing the call did is kept.
    #[error("the budget alert sink failed")]
    AlertSink(#[source] crate::alert::SinkError),
    /// The idempotency key `(source, request_id)` was already recorded for another tenant or
    /// with other usage (model or tokens). Nothing was recorded: one key is one provider
    /// request, charged once to one tenant, so a second, different line under it is refused
    /// instead of being answered with the first one. The message never names the other
    /// tenant.
    #[error(
        "usage `{key_source}`/`{request_id}` is already recorded for another tenant or with other usage"
    )]
    KeyConflict {
        /// The `source` of the key.
        key_source: String,
        /// The `request_id` of the key.
        request_id: String,
    },
    /// A budget policy that breaks a rule (negative limit, empty custom period, …).
    #[error("invalid budget: {0}")]
    InvalidBudget(String),
    /// A reconciliation request that breaks a rule (a range that ends before it starts).
    #[error("invalid reconciliation: {0}")]
    InvalidReconciliation(String),
    /// A line id that does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up: `line`.
        kind: &'static str,
        /// The id.
        id: i64,
    },
    /// A stored row holds a value this version does not know (e.g. an unknown lane).
    #[error("invalid ledger row: {0}")]
    InvalidRow(String),
    /// A time outside the calendar range.
    #[error("time outside the supported calendar range")]
    TimeRange(#[from] tenantry_core::time::OutOfRange),
    /// The database's ledger schema cannot be used by this version: it was migrated by a newer
    /// one, or a migration applied to it differs from the one shipped under the same version.
    /// Nothing was migrated.
    #[error("the ledger's schema cannot be migrated")]
    Migrate(#[source] tenantry_core::migrate::MigrateError),
    /// The database failed.
    #[error("database error")]
    Database(
        #[from]
        #[source]
        sqlx::Error,
    ),
    /// sea-query could not build a statement.
    #[error("could not build SQL")]
    Sql(
        #[from]
        #[source]
        sea_query::error::Error,
    ),
}

impl Error {
    /// `true` for [`Error::BudgetExceeded`].
    #[must_use]
    pub const fn is_budget_exceeded(&self) -> bool {
        matches!(self, Self::BudgetExceeded { .. })
    }

    /// The budget a hold would exceed, in nano-USD, with what spent, held and requested
    /// together would reach; `None` for any other error.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_cost::{Error, Nanos, TenantId};
    ///
    /// let err = Error::BudgetExceeded {
    ///     tenant_id: TenantId::new("acme")?,
    ///     feature: None,
    ///     limit: Nanos(100),
    ///     spent: Nanos(60),
    ///     held: Nanos(30),
    ///     requested: Nanos(20),
    ///     window_start: 0,
    ///     window_end: 1,
    /// };
    /// let limit = err.exceeded_limit().expect("a budget limit");
    /// assert_eq!((limit.name, limit.unit, limit.max, limit.actual), ("budget", "usd_nanos", 100, Some(110)));
    /// # Ok::<(), tenantry_cost::InvalidTenantId>(())
    /// ```
    #[must_use]
    pub fn exceeded_limit(&self) -> Option<tenantry_core::ExceededLimit> {
        let Self::BudgetExceeded {
            limit,
            spent,
            held,
            requested,
            ..
        } = self
        else {
            return None;
        };
        let reached = spent.0.saturating_add(held.0).saturating_add(requested.0);
        let nonnegative = |n: i64| u64::try_from(n).unwrap_or(0);
        Some(
            tenantry_core::ExceededLimit::new("budget", "usd_nanos", nonnegative(limit.0))
                .with_actual(nonnegative(reached)),
        )
    }

    /// `true` for [`Error::SoftLimitReached`]: the request may go down the batch lane instead.
    #[must_use]
    pub const fn is_soft_limit_reached(&self) -> bool {
        matches!(self, Self::SoftLimitReached { .. })
    }

    /// `true` for [`Error::KeyConflict`]: the idempotency key is taken by a different line.
    #[must_use]
    pub const fn is_key_conflict(&self) -> bool {
        matches!(self, Self::KeyConflict { .. })
    }

    /// `true` when the same call fails the same way however often it is tried, until something
    /// changes (the price book, the multipliers, the usage itself): the model or a rate is
    /// missing, the counts are inconsistent or out of range, a multiplier is unknown, or the
    /// key is taken by a different line. `false` for a database or SQL failure, which may pass
    /// on a later try.
    #[must_use]
    pub const fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::UnknownModel { .. }
                | Self::NoRateAt { .. }
                | Self::UnsupportedModifier { .. }
                | Self::OutOfRange { .. }
                | Self::InconsistentUsage(_)
                | Self::UnknownMultiplier { .. }
                | Self::KeyConflict { .. }
                | Self::TimeRange(_)
        )
    }

    /// `true` for [`Error::NotFound`]: the line asked for does not exist.
    #[must_use]
    pub const fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// What kind of failure it is, in the terms every tenantry crate shares: a spent budget, a
    /// model or rate missing from the price book ([`Unpriceable`](tenantry_core::ErrorKind::Unpriceable)),
    /// a count out of range ([`InvalidInput`](tenantry_core::ErrorKind::InvalidInput)), an
    /// idempotency key taken by other usage ([`Conflict`](tenantry_core::ErrorKind::Conflict)),
    /// a database that could not be reached ([`Unavailable`](tenantry_core::ErrorKind::Unavailable)).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::ErrorKind;
    ///
    /// let err = tenantry_cost::Error::UnknownModel { model: "claude-x".into() };
    /// assert_eq!(err.kind(), ErrorKind::Unpriceable);
    /// ```
    #[must_use]
    pub fn kind(&self) -> tenantry_core::ErrorKind {
        use tenantry_core::ErrorKind as K;
        match self {
            Self::BudgetExceeded { .. } | Self::SoftLimitReached { .. } => K::BudgetExceeded,
            Self::UnknownModel { .. }
            | Self::NoRateAt { .. }
            | Self::UnsupportedModifier { .. } => K::Unpriceable,
            Self::OutOfRange { .. }
            | Self::InconsistentUsage(_)
            | Self::UnknownMultiplier { .. }
            | Self::InvalidBudget(_)
            | Self::InvalidReconciliation(_)
            | Self::TimeRange(_) => K::InvalidInput,
            Self::KeyConflict { .. } => K::Conflict,
            Self::NotFound { .. } => K::NotFound,
            Self::Migrate(e) => e.kind(),
            Self::Database(e) => K::of_database(e),
            _ => K::Internal,
        }
    }

    /// `true` when the database could not be reached in time: no connection within the pool's
    /// timeout, a closed pool, or a broken connection. Trying again later may succeed, and
    /// nothing was changed. `false` for everything the database refused (a constraint, a
    /// refused schema) and for every error about the request itself.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// A stable, snake_case code for the kind of error, for logs, metrics and problem
    /// responses. Codes never change meaning; a new variant gets a new code.
    ///
    /// | variant | code |
    /// |---|---|
    /// | [`UnknownModel`](Self::UnknownModel) | `unknown_model` |
    /// | [`NoRateAt`](Self::NoRateAt) | `no_rate_at` |
    /// | [`UnsupportedModifier`](Self::UnsupportedModifier) | `unsupported_modifier` |
    /// | [`OutOfRange`](Self::OutOfRange) | `out_of_range` |
    /// | [`InconsistentUsage`](Self::InconsistentUsage) | `inconsistent_usage` |
    /// | [`InvalidPriceBook`](Self::InvalidPriceBook) | `invalid_price_book` |
    /// | [`PriceBookJson`](Self::PriceBookJson) | `price_book_json` |
    /// | [`PriceBookToml`](Self::PriceBookToml) | `price_book_toml` |
    /// | [`UnknownMultiplier`](Self::UnknownMultiplier) | `unknown_multiplier` |
    /// | [`BudgetExceeded`](Self::BudgetExceeded) | `budget_exceeded` |
    /// | [`SoftLimitReached`](Self::SoftLimitReached) | `soft_limit_reached` |
    /// | [`AlertSink`](Self::AlertSink) | `alert_sink` |
    /// | [`KeyConflict`](Self::KeyConflict) | `key_conflict` |
    /// | [`InvalidBudget`](Self::InvalidBudget) | `invalid_budget` |
    /// | [`InvalidReconciliation`](Self::InvalidReconciliation) | `invalid_reconciliation` |
    /// | [`NotFound`](Self::NotFound) | `not_found` |
    /// | [`InvalidRow`](Self::InvalidRow) | `invalid_row` |
    /// | [`TimeRange`](Self::TimeRange) | `time_out_of_range` |
    /// | [`Migrate`](Self::Migrate) | `schema_refused` |
    /// | [`Database`](Self::Database) | `database` |
    /// | [`Sql`](Self::Sql) | `sql_build` |
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownModel { .. } => "unknown_model",
            Self::NoRateAt { .. } => "no_rate_at",
            Self::UnsupportedModifier { .. } => "unsupported_modifier",
            Self::OutOfRange { .. } => "out_of_range",
            Self::InconsistentUsage(_) => "inconsistent_usage",
            Self::InvalidPriceBook(_) => "invalid_price_book",
            Self::PriceBookJson(_) => "price_book_json",
            Self::PriceBookToml(_) => "price_book_toml",
            Self::UnknownMultiplier { .. } => "unknown_multiplier",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::SoftLimitReached { .. } => "soft_limit_reached",
            Self::AlertSink(_) => "alert_sink",
            Self::KeyConflict { .. } => "key_conflict",
            Self::InvalidBudget(_) => "invalid_budget",
            Self::InvalidReconciliation(_) => "invalid_reconciliation",
            Self::NotFound { .. } => "not_found",
            Self::InvalidRow(_) => "invalid_row",
            Self::TimeRange(_) => "time_out_of_range",
            Self::Migrate(_) => "schema_refused",
            Self::Database(_) => "database",
            Self::Sql(_) => "sql_build",
        }
    }
}

impl From<tenantry_core::migrate::MigrateError> for Error {
    /// A failed statement stays a database error (so [`Error::is_retryable`] judges it like
    /// any other); only a refused schema is [`Error::Migrate`].
    fn from(e: tenantry_core::migrate::MigrateError) -> Self {
        match e {
            tenantry_core::migrate::MigrateError::Database(e) => Self::Database(e),
            other => Self::Migrate(other),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<Error>();
    }

    #[test]
    fn predicates_and_codes() {
        use tenantry_core::migrate::MigrateError;

        let not_found = Error::NotFound {
            kind: "line",
            id: 7,
        };
        assert!(not_found.is_not_found() && !not_found.is_retryable());
        assert_eq!(not_found.code(), "not_found");
        for retryable in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ] {
            let e = Error::from(retryable);
            assert!(e.is_retryable(), "{e:?}");
            assert_eq!(e.code(), "database");
        }
        // What the database refused stays refused: a constraint, a row that is not there.
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_retryable());
        assert!(!Error::Database(sqlx::Error::Protocol("check".into())).is_retryable());
        let too_new = Error::from(MigrateError::TooNew {
            component: "cost",
            found: 2,
            supported: 1,
        });
        assert!(matches!(too_new, Error::Migrate(_)) && !too_new.is_retryable());
        assert_eq!(too_new.code(), "schema_refused");
        // A migration statement that failed on the wire is a database error like any other.
        let failed = Error::from(MigrateError::Database(sqlx::Error::PoolTimedOut));
        assert!(matches!(failed, Error::Database(_)) && failed.is_retryable());
        let codes = [
            Error::UnknownModel { model: "m".into() }.code(),
            Error::InvalidBudget("b".into()).code(),
            Error::TimeRange(tenantry_core::time::OutOfRange(0)).code(),
            Error::InconsistentUsage("u".into()).code(),
            Error::Sql(sea_query::error::Error::ColValNumMismatch {
                col_len: 1,
                val_len: 2,
            })
            .code(),
        ];
        assert_eq!(
            codes,
            [
                "unknown_model",
                "invalid_budget",
                "time_out_of_range",
                "inconsistent_usage",
                "sql_build"
            ]
        );
    }

    #[test]
    fn budget_error_carries_the_numbers() {
        let e = Error::BudgetExceeded {
            tenant_id: tenantry_core::TenantId::new("t1").unwrap(),
            feature: Some("summaries".into()),
            limit: Nanos(10),
            spent: Nanos(4),
            held: Nanos(5),
            requested: Nanos(2),
            window_start: 0,
            window_end: 1,
        };
        assert!(e.is_budget_exceeded());
        assert_eq!(e.code(), "budget_exceeded");
        assert!(!e.is_permanent() && !e.is_retryable() && !e.is_not_found());
        assert!(Error::UnknownModel { model: "m".into() }.is_permanent());
        assert!(!Error::Database(sqlx::Error::PoolTimedOut).is_permanent());
        assert_eq!(
            e.to_string(),
            "budget of tenant `t1` feature `summaries` exceeded: limit $0.000000010, spent $0.000000004, held $0.000000005, requested $0.000000002"
        );
    }
}
