//! Spend reports over the ledger, reached through [`Ledger::reports`]: per tenant, feature,
//! user, model or lane, and what batching saved.

use sea_query::{Expr, ExprTrait, Func, Order, Query, SelectStatement};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ledger::Ledger;
use crate::money::Nanos;
use crate::schema::Usage;
use tenantry_core::{TenantId, UnixMicros};

/// What a spend report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupBy {
    /// One row per tenant.
    Tenant,
    /// One row per feature.
    Feature,
    /// One row per end user (`None` key for lines without one).
    User,
    /// One row per model.
    Model,
    /// One row per lane: batch versus synchronous spend.
    Lane,
}

impl GroupBy {
    const fn column(self) -> Usage {
        match self {
            Self::Tenant => Usage::TenantId,
            Self::Feature => Usage::Feature,
            Self::User => Usage::UserId,
            Self::Model => Usage::Model,
            Self::Lane => Usage::Lane,
        }
    }
}

/// A spend report: lines with `from ≤ occurred_at < to`, optionally for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpendQuery {
    /// Restrict to one tenant (`None`: every tenant).
    pub tenant_id: Option<TenantId>,
    /// Period start (inclusive).
    pub from: UnixMicros,
    /// Period end (exclusive).
    pub to: UnixMicros,
    /// The grouping.
    pub group_by: GroupBy,
}

impl SpendQuery {
    /// Every tenant's lines with `from ≤ occurred_at < to`, grouped by `group_by`;
    /// [`for_tenant`](Self::for_tenant) keeps one tenant's.
    #[must_use]
    pub fn new(from: UnixMicros, to: UnixMicros, group_by: GroupBy) -> Self {
        Self {
            tenant_id: None,
            from,
            to,
            group_by,
        }
    }

    /// The same report restricted to one tenant.
    #[must_use]
    pub fn for_tenant(mut self, tenant_id: TenantId) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }
}

/// One row of a spend report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpendRow {
    /// The group's key (tenant, feature, user, model or lane); `None` for lines without a user.
    pub key: Option<String>,
    /// Charged spend.
    pub cost: Nanos,
    /// The same usage at synchronous prices.
    pub standard_cost: Nanos,
    /// Number of ledger lines.
    pub lines: i64,
}

impl SpendRow {
    /// What batching saved in this group: `standard_cost − cost`.
    #[must_use]
    pub fn saved_by_batching(&self) -> Nanos {
        self.standard_cost - self.cost
    }
}

fn sum(col: Usage) -> Expr {
    Expr::expr(Func::coalesce([Expr::col(col).sum(), Expr::val(0_i64)])).cast_as("bigint")
}

/// The report's statement. Values are bound, never spliced.
///
/// ```
/// use sea_query::PostgresQueryBuilder;
/// use tenantry_cost::{GroupBy, SpendQuery, UnixMicros, report};
/// let q = SpendQuery::new(UnixMicros(0), UnixMicros(10), GroupBy::Lane).for_tenant("acme".parse()?);
/// let (sql, values) = report::spend_statement(&q).build(PostgresQueryBuilder);
/// assert_eq!(sql, r#"SELECT "lane", CAST(COALESCE(SUM("cost_nanos"), $1) AS bigint), CAST(COALESCE(SUM("standard_cost_nanos"), $2) AS bigint), COUNT(*) FROM "tenantry_usage" WHERE "occurred_at" >= $3 AND "occurred_at" < $4 AND "tenant_id" = $5 GROUP BY "lane" ORDER BY "lane" ASC"#);
/// assert_eq!(values.0.len(), 5);
/// # Ok::<(), tenantry_cost::InvalidTenantId>(())
/// ```
#[must_use]
pub fn spend_statement(q: &SpendQuery) -> SelectStatement {
    let key = q.group_by.column();
    let mut stmt = Query::select();
    stmt.column(key)
        .expr(sum(Usage::CostNanos))
        .expr(sum(Usage::StandardCostNanos))
        .expr(Expr::col(sea_query::Asterisk).count())
        .from(Usage::Table)
        .and_where(Expr::col(Usage::OccurredAt).gte(q.from.0))
        .and_where(Expr::col(Usage::OccurredAt).lt(q.to.0));
    if let Some(t) = &q.tenant_id {
        stmt.and_where(Expr::col(Usage::TenantId).eq(t.as_str()));
    }
    stmt.group_by_col(key).order_by(key, Order::Asc);
    stmt
}

/// Spend reports over the ledger: [`Ledger::reports`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_cost::{GroupBy, Ledger, Nanos, PriceBook, SpendQuery, TenantId, UnixMicros};
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
///     .connect("sqlite::memory:").await?;
/// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
/// ledger.migrate().await?;
/// let (from, to) = (UnixMicros::from_ymd(2026, 3, 1)?, UnixMicros::from_ymd(2026, 4, 1)?);
/// let acme: TenantId = "acme".parse()?;
/// let rows = ledger.reports().spend(&SpendQuery::new(from, to, GroupBy::Feature)
///     .for_tenant(acme.clone())).await?;
/// assert!(rows.is_empty());
/// assert_eq!(ledger.reports().saved_by_batching(Some(&acme), from, to).await?, Nanos::ZERO);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Reports<'a> {
    ledger: &'a Ledger,
}

impl Ledger {
    /// Spend reports: by tenant, feature, user, model or lane, and what batching saved.
    #[must_use]
    pub fn reports(&self) -> Reports<'_> {
        Reports { ledger: self }
    }
}

impl Reports<'_> {
    /// Spend over a period, grouped as asked. Group by [`GroupBy::Lane`] for batch versus
    /// synchronous spend; every row carries what batching saved.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`].
    pub async fn spend(&self, q: &SpendQuery) -> Result<Vec<SpendRow>> {
        let stmt = spend_statement(q);
        let rows: Vec<(Option<String>, i64, i64, i64)> = self.ledger.pool.fetch_all(&stmt).await?;
        Ok(rows
            .into_iter()
            .map(|(key, cost, standard_cost, lines)| SpendRow {
                key,
                cost: Nanos(cost),
                standard_cost: Nanos(standard_cost),
                lines,
            })
            .collect())
    }

    /// What batching saved over a period (all tenants, or one): the standard-price cost of the
    /// batch lines minus what they were charged.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`].
    pub async fn saved_by_batching(
        &self,
        tenant_id: Option<&TenantId>,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Nanos> {
        let rows = self
            .spend(&SpendQuery {
                tenant_id: tenant_id.cloned(),
                from,
                to,
                group_by: GroupBy::Lane,
            })
            .await?;
        Ok(rows.iter().map(SpendRow::saved_by_batching).sum())
    }
}
