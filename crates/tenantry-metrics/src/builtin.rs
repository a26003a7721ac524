//! The built-in metrics, each a small example of the API.
//!
//! Money is integer nano-USD (1e-9 USD); ratios are parts per million ([`PPM`]), truncated
//! toward zero; periods are half-open `[start, end)` ranges of Unix microseconds.
//!
//! The exact SQL each one renders to, per backend, is asserted in
//! [`sql_reference`](crate::sql_reference).
//!
//! Each built-in is built once per thread and parameter set; asking for it again returns a
//! clone that shares the tree (an equal [`Metric`], for a few reference-count increments), so a
//! dashboard rebuilt for every request costs little to build and to drop.
//!
//! # The columns each built-in reads
//!
//! Every query reads the tenants table's `id` and `parent_id` (and `level` when it sets
//! [`level`](crate::MetricsQuery::level)). On top of that, by default column name (rename them
//! with [`Schema::with_column`](crate::Schema::with_column)):
//!
//! | built-in | table: columns |
//! |---|---|
//! | [`users`] | memberships: `tenant_id`, `user_id` |
//! | [`active_users`] | usage: `tenant_id`, `user_id`, `occurred_at`¹ |
//! | [`feature_active_users`] | usage: `tenant_id`, `user_id`, `feature`, `occurred_at`¹ |
//! | [`adoption_rate`] | usage as [`feature_active_users`]; memberships as [`users`] |
//! | [`requests`], [`requests_in`]² | usage: `tenant_id`, `occurred_at`¹ |
//! | [`tokens`], [`tokens_in`]² | usage: `tenant_id`, `occurred_at`¹, `input_tokens`, `cache_write_5m_tokens`, `cache_write_1h_tokens`, `cache_read_tokens`, `output_tokens` |
//! | [`cost`], [`cost_in`]² | usage: `tenant_id`, `occurred_at`¹, `cost_nanos` |
//! | [`cost_per_active_user`] | usage: `tenant_id`, `occurred_at`¹, `cost_nanos`, `user_id` |
//! | [`batch_requests`], [`batch_share`] | usage: `tenant_id`, `occurred_at`¹, `lane` |
//! | [`batch_savings`] | usage: `tenant_id`, `occurred_at`¹, `cost_nanos`, `standard_cost_nanos` |
//! | [`max_inheritance_depth`], [`inheritance_depth_count`], [`permission_holders`] | memberships: `user_id`, `tenant_id`; grants: `tenant_id`, `permission` |
//! | [`max_role_inheritance_depth`], [`role_inheritance_depth_count`], [`role_permission_holders`] | roles: `id`, `parent_id`; role assignments: `user_id`, `tenant_id`, `role_id`; role grants: `role_id`, `permission` |
//!
//! ¹ not read for [`Period::all_time`]. ² plus `feature` and/or `model` when the [`Slice`]
//! names one.
//!
//! Types: tenant and user ids of the schema's [`IdType`](crate::IdType) (the same in every
//! table), `occurred_at` of its [`TimeType`](crate::TimeType), `feature`, `model`, `lane` and
//! `permission` text, token and cost columns 64-bit integers (`BIGINT`; any `INT` type on
//! SQLite), `level` any integer; role ids of any one type. Other columns may exist and are
//! ignored. [`MetricsQuery::check_schema`](crate::MetricsQuery::check_schema) checks a
//! database against exactly what a query reads.

use tenantry_core::UnixMicros;

use crate::error::{Error, Result};
use crate::expr::{Access, Expr, Int, RoleAccess, Usage, access, members, role_access, usage};
use crate::memo::{Builtin, Key, remembered};
use crate::metric::{Metric, count_distinct, count_rows, max, sum};

/// The scale of ratio metrics: parts per million (`1_000_000` = 100 %).
pub const PPM: i64 = 1_000_000;

/// A half-open time range `[start, end)` in Unix microseconds (UTC), compared on
/// `occurred_at` and bound as two parameters; or [`all_time`](Self::all_time), which compares
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    /// `[start, end)`; `None` for all of time (no bound, no predicate).
    bounds: Option<(i64, i64)>,
}

impl Period {
    /// The range `[start, end)`, each a [`UnixMicros`] or its raw microsecond count.
    ///
    /// # Errors
    /// [`Error::InvalidPeriod`] when `end < start`.
    ///
    /// # Example
    /// ```
    /// use tenantry_core::UnixMicros;
    /// use tenantry_metrics::Period;
    ///
    /// let june = Period::new(UnixMicros::from_ymd(2026, 6, 1)?, UnixMicros::from_ymd(2026, 7, 1)?)?;
    /// assert_eq!(june, Period::new(1_780_272_000_000_000, 1_782_864_000_000_000)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(start: impl Into<UnixMicros>, end: impl Into<UnixMicros>) -> Result<Self> {
        let (start_micros, end_micros) = (start.into().get(), end.into().get());
        if end_micros < start_micros {
            return Err(Error::InvalidPeriod {
                start: start_micros,
                end: end_micros,
            });
        }
        Ok(Self {
            bounds: Some((start_micros, end_micros)),
        })
    }

    /// All of time: every ledger row, whatever its `occurred_at` (`i64::MAX` included). A
    /// metric over it adds no predicate on `occurred_at` to the SQL, so an index on time is
    /// never needed for it.
    ///
    /// # Example
    /// ```
    /// use tenantry_metrics::{builtin, Backend, MetricsQuery, Period};
    /// let mut q = MetricsQuery::new();
    /// q.select("cost", builtin::cost(Period::all_time()))?;
    /// let (sql, _) = q.build(Backend::Postgres)?;
    /// assert!(!sql.contains("occurred_at"));
    /// # Ok::<(), tenantry_metrics::Error>(())
    /// ```
    #[must_use]
    pub fn all_time() -> Self {
        Self { bounds: None }
    }

    /// The bounds `(start, end)` in Unix microseconds; `None` for [`all_time`](Self::all_time).
    #[must_use]
    pub fn bounds(self) -> Option<(i64, i64)> {
        self.bounds
    }

    /// The period as memo parameters. All of time is `[i64::MAX, i64::MIN]`, which no bounded
    /// period can be (its end is never before its start).
    fn key(self, builtin: Builtin) -> Key<'static> {
        let (start, end) = self.bounds.unwrap_or((i64::MAX, i64::MIN));
        Key::of(builtin).ints([start, end])
    }

    /// `occurred_at` falls in the period; for [`all_time`](Self::all_time) the condition that
    /// always holds, which `and`, `or` and [`Aggregate::filter`](crate::Aggregate::filter) fold
    /// away.
    #[must_use]
    pub fn contains(self) -> Expr<crate::Bool, Usage> {
        match self.bounds {
            Some((start, end)) => usage::occurred_at().in_range(start, end),
            None => Expr::from_node(crate::expr::Node::True),
        }
    }
}

/// Users of a tenant (distinct members of its subtree).
pub fn users() -> Metric {
    remembered(Key::of(Builtin::Users), || {
        count_distinct(members::user_id()).into()
    })
}

/// Distinct users with usage in the period.
pub fn active_users(period: Period) -> Metric {
    remembered(period.key(Builtin::ActiveUsers), || {
        count_distinct(usage::user_id())
            .filter(period.contains())
            .into()
    })
}

/// Distinct users who used `feature` in the period.
pub fn feature_active_users(feature: &str, period: Period) -> Metric {
    let key = period.key(Builtin::FeatureActiveUsers);
    remembered(key.texts([Some(feature), None]), || {
        count_distinct(usage::user_id())
            .filter(period.contains().and(usage::feature().equals(feature)))
            .into()
    })
}

/// Feature adoption rate, in [`PPM`]: users of `feature` in the period / users of the tenant.
/// `NULL` for a tenant without users.
///
/// # Example
/// ```
/// use tenantry_metrics::{builtin, Backend, MetricsQuery, Period, Scope};
/// let mut q = MetricsQuery::new();
/// q.scope(Scope::Ids(vec!["acme".into()]));
/// q.select("adoption", builtin::adoption_rate("summarize", Period::new(0, 10)?))?;
/// let (sql, _) = q.build(Backend::Sqlite)?;
/// assert!(sql.contains(r#"SELECT DISTINCT "f"."tenant_id" AS "tenant_id", "f"."user_id" AS "v" FROM "tenantry_usage" AS "f" NOT INDEXED WHERE "f"."occurred_at" >= ? AND "f"."occurred_at" < ? AND "f"."feature" = ?"#));
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
pub fn adoption_rate(feature: &str, period: Period) -> Metric {
    let key = period.key(Builtin::AdoptionRate);
    remembered(key.texts([Some(feature), None]), || {
        feature_active_users(feature, period)
            .ratio(users(), PPM)
            .unwrap_or_else(|_| unreachable!("PPM is positive"))
    })
}

/// Requests (ledger rows) in the period.
pub fn requests(period: Period) -> Metric {
    remembered(period.key(Builtin::Requests), || {
        count_rows::<Usage>().filter(period.contains()).into()
    })
}

/// All tokens of a request: the five exclusive buckets added up.
#[must_use]
pub fn total_tokens() -> Expr<Int, Usage> {
    usage::input_tokens()
        + usage::cache_write_5m_tokens()
        + usage::cache_write_1h_tokens()
        + usage::cache_read_tokens()
        + usage::output_tokens()
}

/// Tokens in the period (`NULL` without usage).
pub fn tokens(period: Period) -> Metric {
    remembered(period.key(Builtin::Tokens), || {
        sum(total_tokens()).filter(period.contains()).into()
    })
}

/// Charged cost in the period, nano-USD (`NULL` without usage).
///
/// # Example
/// ```
/// use tenantry_metrics::{builtin, Backend, MetricsQuery, Period};
/// let mut q = MetricsQuery::new();
/// q.select("cost", builtin::cost(Period::new(0, 10)?))?;
/// let (sql, _) = q.build(Backend::Postgres)?;
/// // Per tenant first, then summed over each subtree and cast back to BIGINT.
/// assert!(sql.contains(r#"SUM("f"."cost_nanos") FILTER (WHERE "f"."occurred_at" >= $"#));
/// assert!(sql.contains(r#"CAST(SUM("pre"."c0") AS BIGINT) AS "a0""#));
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
pub fn cost(period: Period) -> Metric {
    remembered(period.key(Builtin::Cost), || {
        sum(usage::cost_nanos()).filter(period.contains()).into()
    })
}

/// AI inference cost per active user in the period, nano-USD, truncated; `NULL` without active
/// users.
pub fn cost_per_active_user(period: Period) -> Metric {
    remembered(period.key(Builtin::CostPerActiveUser), || {
        cost(period).per(active_users(period))
    })
}

/// A slice of the ledger: one feature and/or one model (`None` = any).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Slice {
    /// Only this feature.
    pub feature: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

impl Slice {
    /// The whole ledger: any feature, any model.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only lines of `feature`.
    #[must_use]
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// Only lines of `model`.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The slice and period as memo parameters.
    fn key(&self, builtin: Builtin, period: Period) -> Key<'_> {
        period
            .key(builtin)
            .texts([self.feature.as_deref(), self.model.as_deref()])
    }

    fn condition(&self, period: Period) -> Expr<crate::Bool, Usage> {
        let mut c = period.contains();
        if let Some(f) = &self.feature {
            c = c.and(usage::feature().equals(f.as_str()));
        }
        if let Some(m) = &self.model {
            c = c.and(usage::model().equals(m.as_str()));
        }
        c
    }
}

/// Requests of one feature/model slice in the period.
pub fn requests_in(slice: &Slice, period: Period) -> Metric {
    remembered(slice.key(Builtin::RequestsIn, period), || {
        count_rows::<Usage>().filter(slice.condition(period)).into()
    })
}

/// Tokens of one feature/model slice in the period.
pub fn tokens_in(slice: &Slice, period: Period) -> Metric {
    remembered(slice.key(Builtin::TokensIn, period), || {
        sum(total_tokens()).filter(slice.condition(period)).into()
    })
}

/// Charged cost of one feature/model slice in the period, nano-USD.
pub fn cost_in(slice: &Slice, period: Period) -> Metric {
    remembered(slice.key(Builtin::CostIn, period), || {
        sum(usage::cost_nanos())
            .filter(slice.condition(period))
            .into()
    })
}

/// Requests that went through Message Batches in the period.
pub fn batch_requests(period: Period) -> Metric {
    remembered(period.key(Builtin::BatchRequests), || {
        count_rows::<Usage>()
            .filter(period.contains().and(usage::lane().equals("batch")))
            .into()
    })
}

/// Share of requests that went through batches, in [`PPM`]; `NULL` without requests.
pub fn batch_share(period: Period) -> Metric {
    remembered(period.key(Builtin::BatchShare), || {
        batch_requests(period)
            .ratio(requests(period), PPM)
            .unwrap_or_else(|_| unreachable!("PPM is positive"))
    })
}

/// Money saved by batching in the period, nano-USD: standard (synchronous) price minus the
/// charged price, summed.
pub fn batch_savings(period: Period) -> Metric {
    remembered(period.key(Builtin::BatchSavings), || {
        sum(usage::standard_cost_nanos() - usage::cost_nanos())
            .filter(period.contains())
            .into()
    })
}

/// The change of a metric between two periods: `metric(current) - metric(previous)`.
///
/// ```
/// use tenantry_metrics::{builtin, Period};
/// let growth = builtin::delta(builtin::requests, Period::new(10, 20)?, Period::new(0, 10)?);
/// # let _ = growth;
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
pub fn delta(metric: impl Fn(Period) -> Metric, current: Period, previous: Period) -> Metric {
    metric(current).minus(metric(previous))
}

fn permission_is(permission: &str) -> Expr<crate::Bool, Access> {
    access::permission().equals(permission)
}

/// Permission inheritance depth, the maximum over a tenant's subtree: for each member and
/// `permission`, how many levels above the membership tenant the nearest grant sits; `NULL` when
/// nobody holds it.
pub fn max_inheritance_depth(permission: &str) -> Metric {
    let key = Key::of(Builtin::MaxInheritanceDepth).texts([Some(permission), None]);
    remembered(key, || {
        max(access::depth())
            .filter(permission_is(permission))
            .into()
    })
}

/// Permission inheritance depth distribution: memberships holding `permission` through a grant
/// exactly `depth` levels up.
pub fn inheritance_depth_count(permission: &str, depth: i64) -> Metric {
    let key = Key::of(Builtin::InheritanceDepthCount)
        .ints([depth, 0])
        .texts([Some(permission), None]);
    remembered(key, || {
        count_rows::<Access>()
            .filter(permission_is(permission).and(access::depth().equals(depth)))
            .into()
    })
}

/// Memberships holding `permission` (directly or inherited).
pub fn permission_holders(permission: &str) -> Metric {
    let key = Key::of(Builtin::PermissionHolders).texts([Some(permission), None]);
    remembered(key, || {
        count_rows::<Access>()
            .filter(permission_is(permission))
            .into()
    })
}

fn role_permission_is(permission: &str) -> Expr<crate::Bool, RoleAccess> {
    role_access::permission().equals(permission)
}

/// Permission inheritance depth through the role tree, the maximum over a tenant's subtree: for
/// each user holding a role in a tenant and `permission`, how many levels above the assigned
/// role the nearest role holding `permission` sits (the smallest over the user's roles in that
/// tenant); `NULL` when nobody holds it through a role.
///
/// Roles inherit every permission of their parent role. The walk up the role tree ends at the
/// query's [`max_depth`](crate::MetricsQuery::max_depth), also on cyclic role data.
///
/// # Example
/// ```
/// use tenantry_metrics::{builtin, Backend, MetricsQuery, Scope};
/// let mut q = MetricsQuery::new();
/// q.scope(Scope::Subtree("acme".into())).level(1);
/// q.select("admin_role_depth", builtin::max_role_inheritance_depth("admin"))?;
/// let (sql, _) = q.build(Backend::Sqlite)?;
/// assert!(sql.contains(r#""mq_role_up" ("node_id", "ancestor_id", "depth")"#));
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
pub fn max_role_inheritance_depth(permission: &str) -> Metric {
    let key = Key::of(Builtin::MaxRoleInheritanceDepth).texts([Some(permission), None]);
    remembered(key, || {
        max(role_access::depth())
            .filter(role_permission_is(permission))
            .into()
    })
}

/// Permission inheritance depth distribution through the role tree: (tenant, user) role
/// holders whose nearest role holding `permission` sits exactly `depth` levels above an
/// assigned role.
pub fn role_inheritance_depth_count(permission: &str, depth: i64) -> Metric {
    let key = Key::of(Builtin::RoleInheritanceDepthCount)
        .ints([depth, 0])
        .texts([Some(permission), None]);
    remembered(key, || {
        count_rows::<RoleAccess>()
            .filter(role_permission_is(permission).and(role_access::depth().equals(depth)))
            .into()
    })
}

/// (tenant, user) pairs holding `permission` through one of their roles (directly or
/// inherited from a parent role).
pub fn role_permission_holders(permission: &str) -> Metric {
    let key = Key::of(Builtin::RolePermissionHolders).texts([Some(permission), None]);
    remembered(key, || {
        count_rows::<RoleAccess>()
            .filter(role_permission_is(permission))
            .into()
    })
}
