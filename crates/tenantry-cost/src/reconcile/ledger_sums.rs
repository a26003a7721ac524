//! The ledger side of a reconciliation: one aggregate query that sums a range of days by
//! tenant, UTC day, model, lane, context window, inference geo and rate snapshot.
//!
//! The rates and provider multipliers are part of the grouping so the provider's cost of
//! each sum is exact in Rust (`Σ tokens × rate × batch ‰ × geo ‰`) without summing money in
//! SQL, where it would not fit a `bigint`.

use sea_query::{Expr, ExprTrait, Func, Iden, Query, SelectStatement};
use time::{Date, Duration, OffsetDateTime};

use super::ReconcileRequest;
use crate::error::Result;
use crate::formula::{Rates, TokenBuckets};
use crate::ledger::Ledger;
use crate::schema::Usage;

/// Microseconds in a day: `occurred_at / MICROS_PER_DAY` is the UTC day number.
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Prompts (input + cache writes + cache reads) above this are in the `200k-1M` window.
const LONG_CONTEXT_PROMPT: i64 = 200_000;

/// Names of the derived columns and the subquery.
#[derive(Debug, Clone, Copy, Iden)]
enum Derived {
    #[iden = "u"]
    Sub,
    Day,
    ContextWindow,
    Geo,
}

/// One group of ledger rows.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct LedgerSum {
    pub(crate) tenant_id: String,
    /// Days since the Unix epoch (UTC).
    pub(crate) day: i64,
    pub(crate) model: String,
    pub(crate) lane: String,
    pub(crate) context_window: String,
    pub(crate) geo: String,
    pub(crate) input_rate: i64,
    pub(crate) cache_write_5m_rate: i64,
    pub(crate) cache_write_1h_rate: i64,
    pub(crate) cache_read_rate: i64,
    pub(crate) output_rate: i64,
    pub(crate) batch_permille: i64,
    pub(crate) geo_permille: i64,
    pub(crate) input_tokens: i64,
    pub(crate) cache_write_5m_tokens: i64,
    pub(crate) cache_write_1h_tokens: i64,
    pub(crate) cache_read_tokens: i64,
    pub(crate) output_tokens: i64,
}

impl LedgerSum {
    pub(crate) fn tokens(&self) -> TokenBuckets {
        TokenBuckets {
            input: self.input_tokens,
            cache_write_5m: self.cache_write_5m_tokens,
            cache_write_1h: self.cache_write_1h_tokens,
            cache_read: self.cache_read_tokens,
            output: self.output_tokens,
        }
    }

    pub(crate) fn rates(&self) -> Rates {
        Rates {
            input: self.input_rate,
            cache_write_5m: self.cache_write_5m_rate,
            cache_write_1h: self.cache_write_1h_rate,
            cache_read: self.cache_read_rate,
            output: self.output_rate,
        }
    }

    /// The UTC date of [`LedgerSum::day`].
    pub(crate) fn date(&self) -> Option<Date> {
        OffsetDateTime::UNIX_EPOCH
            .checked_add(Duration::days(self.day))
            .map(OffsetDateTime::date)
    }
}

const RATE_COLUMNS: [Usage; 7] = [
    Usage::InputRate,
    Usage::CacheWrite5mRate,
    Usage::CacheWrite1hRate,
    Usage::CacheReadRate,
    Usage::OutputRate,
    Usage::BatchPermille,
    Usage::GeoPermille,
];
const TOKEN_COLUMNS: [Usage; 5] = [
    Usage::InputTokens,
    Usage::CacheWrite5mTokens,
    Usage::CacheWrite1hTokens,
    Usage::CacheReadTokens,
    Usage::OutputTokens,
];

/// The aggregate over `[from, to)` (Unix microseconds), per tenant only when `by_tenant`
/// (attribution needs it; the organization's sums group into far fewer, cheaper groups).
/// Values are bound, never spliced.
pub(crate) fn statement(from: i64, to: i64, by_tenant: bool) -> SelectStatement {
    let prompt = Expr::col(Usage::InputTokens)
        .add(Expr::col(Usage::CacheWrite5mTokens))
        .add(Expr::col(Usage::CacheWrite1hTokens))
        .add(Expr::col(Usage::CacheReadTokens));
    let window = Expr::case(prompt.gt(LONG_CONTEXT_PROMPT), "200k-1M").finally("0-200k");
    let mut inner = Query::select();
    inner
        .columns([Usage::TenantId, Usage::Model, Usage::Lane])
        .expr_as(
            Expr::col(Usage::OccurredAt).div(MICROS_PER_DAY),
            Derived::Day,
        )
        .expr_as(window, Derived::ContextWindow)
        .expr_as(
            Func::coalesce([Expr::col(Usage::InferenceGeo), Expr::val("global")]),
            Derived::Geo,
        )
        .columns(RATE_COLUMNS)
        .columns(TOKEN_COLUMNS)
        .from(Usage::Table)
        .and_where(Expr::col(Usage::OccurredAt).gte(from))
        .and_where(Expr::col(Usage::OccurredAt).lt(to));
    let mut outer = Query::select();
    if by_tenant {
        outer.column(Usage::TenantId);
    } else {
        outer.expr_as(Expr::val(""), Usage::TenantId);
    }
    outer
        .column(Derived::Day)
        .column(Usage::Model)
        .column(Usage::Lane)
        .column(Derived::ContextWindow)
        .column(Derived::Geo)
        .columns(RATE_COLUMNS);
    for col in TOKEN_COLUMNS {
        outer.expr_as(Expr::col(col).sum().cast_as("bigint"), col);
    }
    outer.from_subquery(inner, Derived::Sub);
    if by_tenant {
        outer.group_by_col(Usage::TenantId);
    }
    outer
        .group_by_col(Derived::Day)
        .group_by_col(Usage::Model)
        .group_by_col(Usage::Lane)
        .group_by_col(Derived::ContextWindow)
        .group_by_col(Derived::Geo)
        .group_by_columns(RATE_COLUMNS);
    outer
}

/// The ledger's sums over the request's days.
pub(crate) async fn sum(ledger: &Ledger, request: &ReconcileRequest) -> Result<Vec<LedgerSum>> {
    let from = tenantry_core::UnixMicros::from_date(request.from);
    let to = match request.to.next_day() {
        Some(day) => tenantry_core::UnixMicros::from_date(day),
        None => tenantry_core::UnixMicros(i64::MAX),
    };
    let by_tenant = !matches!(request.attribution, super::Attribution::Organization);
    let stmt = statement(from.0, to.0, by_tenant);
    let mut tx = ledger.pool.begin().await?;
    if tx.backend() == tenantry_core::db::Backend::Postgres {
        // One large aggregate: compiling it costs PostgreSQL's JIT more than it saves.
        tx.execute_schema("SET LOCAL jit = off").await?;
    }
    let sums = tx.fetch_all(&stmt).await?;
    tx.commit().await?;
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_query::PostgresQueryBuilder;

    #[test]
    fn the_aggregate_binds_every_value() {
        let (sql, values) = statement(0, 10, true).build(PostgresQueryBuilder);
        assert!(
            sql.starts_with(
                r#"SELECT "tenant_id", "day", "model", "lane", "context_window", "geo""#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#"CAST(SUM("input_tokens") AS bigint) AS "input_tokens""#),
            "{sql}"
        );
        assert!(sql.contains(r#"FROM (SELECT "tenant_id", "model", "lane", "occurred_at" / $1 AS "day", (CASE WHEN"#), "{sql}");
        assert!(sql.contains(r#"GROUP BY "tenant_id", "day", "model", "lane", "context_window", "geo", "input_rate""#), "{sql}");
        assert!(
            !sql.contains("86400000000") && !sql.contains("200000"),
            "{sql}"
        );
        assert_eq!(values.0.len(), 7);
        let (sql, _) = statement(0, 10, false).build(PostgresQueryBuilder);
        assert!(
            sql.starts_with(r#"SELECT $1 AS "tenant_id", "day""#),
            "{sql}"
        );
        assert!(sql.contains(r#"GROUP BY "day", "model""#), "{sql}");
    }
}
