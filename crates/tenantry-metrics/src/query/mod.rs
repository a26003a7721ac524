//! `MetricsQuery`, the query builder: which tenants are groups, which metrics are selected,
//! filters, order and limit, and the rows a query returns. The query runs through one of two
//! plans: [`sql_plan`] renders it as one sea-query statement (PostgreSQL and SQLite),
//! [`rust_plan`] evaluates it over a [`Dataset`](crate::Dataset) in memory; both return the
//! same rows.

mod rust_plan;
mod sql_plan;

use std::sync::Arc;

use crate::dimension::Dimension;
use crate::error::{Error, Result};
use crate::expr::SourceKind;
use crate::metric::{AggCall, Metric, MetricFilter, Order};
use crate::schema::Schema;

/// Which tenants become result groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Every tenant.
    All,
    /// The tenants with these ids (bound as values).
    Ids(Vec<String>),
    /// This tenant and every tenant below it.
    Subtree(String),
}

/// The handle of a selected metric, to read its value from a [`MetricRow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Column(usize);

/// One result group: a tenant and the value of each selected metric over its whole subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricRow {
    pub(crate) tenant_id: String,
    pub(crate) dimensions: Vec<(Dimension, String)>,
    pub(crate) values: Vec<Option<i64>>,
    pub(crate) names: Arc<[String]>,
}

impl MetricRow {
    /// The tenant this row is for.
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The value of `dimension` in this row; `None` when the query does not group by it
    /// ([`MetricsQuery::group_by`]).
    #[must_use]
    pub fn dimension(&self, dimension: Dimension) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(d, _)| *d == dimension)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a selected metric (`None` is SQL `NULL`).
    #[must_use]
    pub fn get(&self, column: Column) -> Option<i64> {
        self.values.get(column.0).copied().flatten()
    }

    /// The value of the metric selected under `name`; `None` when it is `NULL` or not selected.
    #[must_use]
    pub fn value(&self, name: &str) -> Option<i64> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values[i]
    }

    /// All values in selection order.
    #[must_use]
    pub fn values(&self) -> &[Option<i64>] {
        &self.values
    }
}

/// The default depth guard of the recursive walks.
pub const DEFAULT_MAX_DEPTH: u32 = 32;

/// The aggregates of a query, each once, and where each aggregate node of its metrics points.
pub(crate) struct Aggregates<'q> {
    pub(crate) calls: Vec<&'q AggCall>,
    /// Each aggregate node by address, with its index in `calls`. A list, not a map: a query
    /// has a few dozen aggregate nodes, and scanning them is cheaper than hashing them.
    index: Vec<(*const AggCall, usize)>,
}

impl Aggregates<'_> {
    /// The index in `calls` of an aggregate node of one of the query's metrics.
    pub(crate) fn of(&self, call: &AggCall) -> usize {
        let address = std::ptr::from_ref(call);
        self.index
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, i)| *i)
            .unwrap_or_else(|| unreachable!("every aggregate node of the query is listed"))
    }
}

/// The names of the selected metrics, in selection order, in one buffer: one allocation per
/// name was a measurable part of building a dashboard.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    text: String,
    ends: Vec<usize>,
}

impl Names {
    fn push(&mut self, name: &str) {
        if self.ends.is_empty() {
            self.text.reserve(256);
            self.ends.reserve(16);
        }
        self.text.push_str(name);
        self.ends.push(self.text.len());
    }

    fn contains(&self, name: &str) -> bool {
        let mut start = 0;
        self.ends.iter().any(|&end| {
            let found =
                end - start == name.len() && self.text.as_bytes()[start..end] == *name.as_bytes();
            start = end;
            found
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, e)| &self.text[s..*e])
    }
}

/// A dashboard query: several metrics for many tenant groups, each group's values recomputed
/// from the base rows of its subtree, in one SQL statement whatever the number
/// of tenants.
///
/// The same query evaluates in Rust on a [`Dataset`](crate::Dataset)
/// ([`MetricsQuery::evaluate`]) with the same result, row for row.
///
/// # Example
/// ```
/// use tenantry_metrics::{builtin, Backend, MetricsQuery, Order, Period, Scope};
/// let may = Period::new(1_777_593_600_000_000, 1_780_272_000_000_000)?;
/// let mut q = MetricsQuery::new();
/// q.scope(Scope::All).level(0);
/// let cost = q.select("cost", builtin::cost(may))?;
/// q.select("adoption_ppm", builtin::adoption_rate("summarize", may))?;
/// q.filter(builtin::cost(may).gt(0)).order_by(builtin::cost(may), Order::Desc).limit(10);
/// let (sql, values) = q.build(Backend::Postgres)?;
/// assert!(sql.starts_with("WITH RECURSIVE"));
/// assert!(!values.0.is_empty());
/// # let _ = cost;
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetricsQuery {
    pub(crate) schema: Schema,
    pub(crate) scope: Scope,
    pub(crate) level: Option<i32>,
    pub(crate) names: Names,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) filters: Vec<MetricFilter>,
    pub(crate) order: Vec<(Metric, Order)>,
    pub(crate) limit: Option<u64>,
    pub(crate) max_depth: u32,
    pub(crate) dimensions: Vec<Dimension>,
}

impl Default for MetricsQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsQuery {
    /// A query over the default schema, scope [`Scope::All`], every level, no limit.
    #[must_use]
    pub fn new() -> Self {
        Self::with_schema(Schema::default())
    }

    /// A query over the host's own table and column names.
    #[must_use]
    pub fn with_schema(schema: Schema) -> Self {
        Self {
            schema,
            scope: Scope::All,
            level: None,
            names: Names::default(),
            metrics: Vec::new(),
            filters: Vec::new(),
            order: Vec::new(),
            limit: None,
            max_depth: DEFAULT_MAX_DEPTH,
            dimensions: Vec::new(),
        }
    }

    /// Which tenants are groups (default [`Scope::All`]).
    pub fn scope(&mut self, scope: Scope) -> &mut Self {
        self.scope = scope;
        self
    }

    /// Only tenants at this level are groups (default: every level). Each group still rolls up
    /// its whole subtree.
    pub fn level(&mut self, level: i32) -> &mut Self {
        self.level = Some(level);
        self
    }

    /// The depth guard of the recursive tree walks (default [`DEFAULT_MAX_DEPTH`]). It ends the
    /// walk on cyclic data identically on PostgreSQL, SQLite and in Rust.
    pub fn max_depth(&mut self, depth: u32) -> &mut Self {
        self.max_depth = depth;
        self
    }

    /// Selects `metric` under `name` and returns its column handle.
    ///
    /// # Errors
    /// [`Error::DuplicateName`] when `name` is already selected.
    pub fn select(&mut self, name: &str, metric: impl Into<Metric>) -> Result<Column> {
        if self.names.contains(name) {
            return Err(Error::DuplicateName(name.to_owned()));
        }
        if self.metrics.is_empty() {
            // A dashboard selects a dozen metrics or more: grow once, not four times.
            self.metrics.reserve(16);
        }
        self.names.push(name);
        self.metrics.push(metric.into());
        Ok(Column(self.metrics.len() - 1))
    }

    /// Keeps only groups for which `filter` holds (`NULL` never holds). Several filters combine
    /// with `AND`.
    pub fn filter(&mut self, filter: MetricFilter) -> &mut Self {
        self.filters.push(filter);
        self
    }

    /// Orders groups by a metric (`NULL` last). Ties, and groups when no order is given, are
    /// ordered by tenant id, byte-wise.
    pub fn order_by(&mut self, metric: impl Into<Metric>, order: Order) -> &mut Self {
        self.order.push((metric.into(), order));
        self
    }

    /// Splits every tenant group by a ledger dimension: one row per tenant and value (per
    /// combination, when called for several dimensions), e.g. requests, tokens and cost per
    /// tenant × feature × model. Calling it again with the same dimension changes nothing.
    ///
    /// A row exists for each value that occurs in at least one ledger row of the tenant's
    /// subtree (whatever the metrics' own filters); a tenant without ledger rows has no row.
    /// Values are recomputed per tenant and value from the subtree's ledger rows, like every
    /// metric. Rows are ordered by the [`order_by`](Self::order_by) metrics, then tenant id,
    /// then the dimension values in grouping order, byte-wise. Every aggregate must read the
    /// usage ledger (see [`Dimension`]).
    ///
    /// # Example
    /// ```
    /// use tenantry_metrics::{builtin, Backend, Dimension, MetricsQuery, Period};
    /// let all = Period::all_time();
    /// let mut q = MetricsQuery::new();
    /// q.level(0).group_by(Dimension::Feature).group_by(Dimension::Model);
    /// q.select("requests", builtin::requests(all))?;
    /// let (sql, _) = q.build(Backend::Postgres)?;
    /// assert!(sql.contains(r#"SELECT "f"."tenant_id" AS "tenant_id", "f"."feature" AS "d0", "f"."model" AS "d1", COUNT(*) AS "c0""#));
    /// assert!(sql.contains(r#"GROUP BY "f"."tenant_id", "f"."feature", "f"."model""#));
    /// assert!(sql.ends_with(r#"ORDER BY "g"."id" COLLATE "C" ASC, "s0"."d0" COLLATE "C" ASC, "s0"."d1" COLLATE "C" ASC"#));
    /// # Ok::<(), tenantry_metrics::Error>(())
    /// ```
    pub fn group_by(&mut self, dimension: Dimension) -> &mut Self {
        if !self.dimensions.contains(&dimension) {
            self.dimensions.push(dimension);
        }
        self
    }

    /// Returns at most `limit` groups.
    pub fn limit(&mut self, limit: u64) -> &mut Self {
        self.limit = Some(limit);
        self
    }

    /// Every aggregate of the query, once each, checked against its dimensions.
    pub(crate) fn aggregates(&self) -> Result<Aggregates<'_>> {
        let mut aggs = Aggregates {
            calls: Vec::with_capacity(self.metrics.len() * 2),
            index: Vec::with_capacity(self.metrics.len() * 2),
        };
        let all = self
            .metrics
            .iter()
            .chain(self.filters.iter().map(|f| &f.metric))
            .chain(self.order.iter().map(|(m, _)| m));
        for m in all {
            m.aggregates(&mut aggs.calls, &mut aggs.index);
        }
        if !self.dimensions.is_empty() {
            for a in &aggs.calls {
                match a.source {
                    SourceKind::Usage => {}
                    SourceKind::Members => {
                        return Err(Error::DimensionSource {
                            table: "memberships",
                        });
                    }
                    SourceKind::Access => return Err(Error::DimensionSource { table: "access" }),
                    SourceKind::RoleAccess => {
                        return Err(Error::DimensionSource {
                            table: "role access",
                        });
                    }
                }
            }
        }
        Ok(aggs)
    }

    pub(crate) fn names(&self) -> Arc<[String]> {
        self.names.iter().map(str::to_owned).collect()
    }
}
