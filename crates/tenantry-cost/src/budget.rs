//! Budgets: effective-dated policies, windows derived from the ledger, reached through
//! [`Ledger::budgets`].
//!
//! A budget never has a counter to reset. Its spend in a window is `SUM(cost_nanos)` of the
//! ledger lines whose `occurred_at` falls in the window, plus the live holds; the window
//! is computed from the policy (calendar month or day in UTC, or a custom length anchored at
//! the policy's start), so there is no reset job to race, and a new policy starts a new window.
//! Holds are taken against them by [`Ledger::hold`].

use sea_query::{Expr, ExprTrait, Func, LockType, Order, Query, SelectStatement};
use serde::{Deserialize, Serialize};
use tenantry_core::db::Tx;
use tenantry_core::time::OutOfRange;
use tenantry_core::{TenantId, UnixMicros};
use time::{Date, Month};

use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::money::Nanos;
use crate::schema::{Budget, Reservation, Usage};

/// How a budget's windows are cut: the recurring window its limit applies to (stored in the
/// budget's `period` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Window {
    /// Calendar months, UTC.
    Month,
    /// Calendar days, UTC.
    Day,
    /// Fixed-length windows anchored at the policy's `effective_from`.
    Custom {
        /// Window length in microseconds (> 0).
        length_micros: i64,
    },
}

/// A budget policy: a limit per window for a tenant, or for one feature of a tenant, from
/// `effective_from` until a later policy for the same scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetPolicy {
    /// The tenant.
    pub tenant_id: TenantId,
    /// `None` for the tenant-wide budget, or the feature it limits.
    pub feature: Option<String>,
    /// How windows are cut.
    pub window: Window,
    /// The limit per window.
    pub limit: Nanos,
    /// When the policy starts. The first window of a policy starts here, never earlier.
    pub effective_from: UnixMicros,
    /// Alert thresholds, per mille of the limit (`800` = 80 %), ascending: each fires one
    /// [`BudgetAlert`](crate::BudgetAlert) per window, when spent plus held first reaches it.
    #[serde(default)]
    pub alert_permille: Vec<u16>,
    /// The soft limit, per mille of the limit: an urgent-lane hold that would take the budget
    /// past it is refused with [`Error::SoftLimitReached`] (so the caller can send the request
    /// down the batch lane) instead of [`Error::BudgetExceeded`]. `None`: no soft limit.
    #[serde(default)]
    pub soft_limit_permille: Option<u16>,
}

impl BudgetPolicy {
    /// The tenant-wide budget of `tenant_id`: `limit` per `window` from `effective_from`.
    /// [`for_feature`](Self::for_feature) narrows it to one feature.
    #[must_use]
    pub fn new(
        tenant_id: TenantId,
        window: Window,
        limit: Nanos,
        effective_from: UnixMicros,
    ) -> Self {
        Self {
            tenant_id,
            feature: None,
            window,
            limit,
            effective_from,
            alert_permille: Vec::new(),
            soft_limit_permille: None,
        }
    }

    /// Alert thresholds, per mille of the limit (`[800, 900, 1000]` for 80 %, 90 % and
    /// 100 %), each from 1 to [`MAX_PERMILLE`](Self::MAX_PERMILLE). Default: none.
    #[must_use]
    pub fn with_alerts(mut self, permille: impl IntoIterator<Item = u16>) -> Self {
        let mut levels: Vec<u16> = permille.into_iter().collect();
        levels.sort_unstable();
        levels.dedup();
        self.alert_permille = levels;
        self
    }

    /// A soft limit, per mille of the limit, from 1 to [`MAX_PERMILLE`](Self::MAX_PERMILLE).
    /// Default: none.
    #[must_use]
    pub fn with_soft_limit(mut self, permille: u16) -> Self {
        self.soft_limit_permille = Some(permille);
        self
    }

    /// The largest threshold or soft limit accepted: 10× the limit.
    pub const MAX_PERMILLE: u16 = 10_000;

    /// The same budget for one feature of the tenant.
    #[must_use]
    pub fn for_feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }
}

/// A budget's state in its current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetStatus {
    /// The policy in force.
    pub policy: BudgetPolicy,
    /// Window start (inclusive).
    pub window_start: UnixMicros,
    /// Window end (exclusive).
    pub window_end: UnixMicros,
    /// Spent in the window, from the ledger.
    pub spent: Nanos,
    /// Held by live holds.
    pub held: Nanos,
    /// The policy's row, the key of its alerts.
    #[serde(skip)]
    pub(crate) budget_id: i64,
}

impl Window {
    fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Day => "day",
            Self::Custom { .. } => "custom",
        }
    }

    fn length(self) -> Option<i64> {
        match self {
            Self::Custom { length_micros } => Some(length_micros),
            _ => None,
        }
    }

    fn parse(kind: &str, length: Option<i64>) -> Result<Self> {
        match (kind, length) {
            ("month", _) => Ok(Self::Month),
            ("day", _) => Ok(Self::Day),
            ("custom", Some(length_micros)) if length_micros > 0 => {
                Ok(Self::Custom { length_micros })
            }
            _ => Err(Error::InvalidRow(format!(
                "stored budget period `{kind}` is invalid"
            ))),
        }
    }
}

/// The window of `window` containing `at`, never starting before `effective_from`.
///
/// # Errors
///
/// [`Error::TimeRange`] outside the calendar range, [`Error::InvalidBudget`] for a custom
/// period that is not positive.
pub fn budget_window(
    window: Window,
    effective_from: UnixMicros,
    at: UnixMicros,
) -> Result<(UnixMicros, UnixMicros)> {
    let (start, end) = match window {
        Window::Month => {
            let d = at.to_datetime()?.date();
            let first = first_of_month(d.year(), d.month())?;
            let next = match d.month() {
                Month::December => first_of_month(d.year() + 1, Month::January)?,
                m => first_of_month(d.year(), m.next())?,
            };
            (UnixMicros::from_date(first), UnixMicros::from_date(next))
        }
        Window::Day => {
            let d = at.to_datetime()?.date();
            let next = d.next_day().ok_or(Error::TimeRange(OutOfRange(at.0)))?;
            (UnixMicros::from_date(d), UnixMicros::from_date(next))
        }
        Window::Custom { length_micros } => {
            if length_micros <= 0 {
                return Err(Error::InvalidBudget(
                    "custom period must be positive".into(),
                ));
            }
            // Checked: a window past the ends of `i64` is a time out of range, never a wrap.
            let start =
                at.0.checked_sub(effective_from.0)
                    .map(|since| since.div_euclid(length_micros))
                    .and_then(|n| n.checked_mul(length_micros))
                    .and_then(|offset| effective_from.0.checked_add(offset))
                    .ok_or(Error::TimeRange(OutOfRange(at.0)))?;
            let end = start
                .checked_add(length_micros)
                .ok_or(Error::TimeRange(OutOfRange(at.0)))?;
            (UnixMicros(start), UnixMicros(end))
        }
    };
    Ok((start.max(effective_from), end))
}

fn first_of_month(year: i32, month: Month) -> Result<Date> {
    Date::from_calendar_date(year, month, 1).map_err(|_| Error::TimeRange(OutOfRange(0)))
}

/// `SELECT … FROM tenantry_budgets WHERE tenant_id = ? FOR UPDATE` (the lock clause renders
/// only on PostgreSQL).
pub(crate) fn lock_budgets(tenant_id: &str) -> SelectStatement {
    Query::select()
        .columns([
            Budget::Id,
            Budget::Feature,
            Budget::Period,
            Budget::PeriodMicros,
            Budget::LimitNanos,
            Budget::EffectiveFrom,
            Budget::AlertPermille,
            Budget::SoftPermille,
        ])
        .from(Budget::Table)
        .and_where(Expr::col(Budget::TenantId).eq(tenant_id))
        .order_by(Budget::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned()
}

fn sum_bigint<T: sea_query::IntoColumnRef>(col: T) -> Expr {
    // SUM(bigint) is numeric on PostgreSQL: cast back so both backends return an i64.
    Expr::expr(Func::coalesce([Expr::col(col).sum(), Expr::val(0_i64)])).cast_as("bigint")
}

fn spent_select(
    tenant_id: &str,
    feature: Option<&str>,
    start: UnixMicros,
    end: UnixMicros,
) -> SelectStatement {
    let mut q = Query::select();
    q.expr(sum_bigint(Usage::CostNanos))
        .from(Usage::Table)
        .and_where(Expr::col(Usage::TenantId).eq(tenant_id))
        .and_where(Expr::col(Usage::OccurredAt).gte(start.0))
        .and_where(Expr::col(Usage::OccurredAt).lt(end.0));
    if let Some(f) = feature {
        q.and_where(Expr::col(Usage::Feature).eq(f));
    }
    q
}

fn held_select(tenant_id: &str, feature: Option<&str>, at: UnixMicros) -> SelectStatement {
    let mut q = Query::select();
    q.expr(sum_bigint(Reservation::AmountNanos))
        .from(Reservation::Table)
        .and_where(Expr::col(Reservation::TenantId).eq(tenant_id))
        .and_where(Expr::col(Reservation::State).eq("held"))
        .and_where(Expr::col(Reservation::ExpiresAt).gt(at.0));
    if let Some(f) = feature {
        q.and_where(Expr::col(Reservation::Feature).eq(f));
    }
    q
}

/// A row of `tenantry_budgets`, as [`lock_budgets`] reads it.
#[derive(sqlx::FromRow)]
struct StoredPolicy {
    id: i64,
    feature: Option<String>,
    period: String,
    period_micros: Option<i64>,
    limit_nanos: i64,
    effective_from: i64,
    alert_permille: Option<String>,
    soft_permille: Option<i64>,
}

struct PolicyRow {
    id: i64,
    feature: Option<String>,
    window: Window,
    limit: i64,
    effective_from: i64,
    alerts: Vec<u16>,
    soft: Option<u16>,
}

impl StoredPolicy {
    fn parse(self) -> Result<PolicyRow> {
        let alerts = match self.alert_permille.as_deref() {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|_| {
                Error::InvalidRow(format!("stored alert thresholds of budget {}", self.id))
            })?,
        };
        let soft = self
            .soft_permille
            .map(u16::try_from)
            .transpose()
            .map_err(|_| Error::InvalidRow(format!("stored soft limit of budget {}", self.id)))?;
        Ok(PolicyRow {
            id: self.id,
            feature: self.feature,
            window: Window::parse(&self.period, self.period_micros)?,
            limit: self.limit_nanos,
            effective_from: self.effective_from,
            alerts,
            soft,
        })
    }
}

/// The policies in force at `at` for the tenant scope and the `feature` scope.
fn in_force(rows: Vec<PolicyRow>, feature: &str, at: UnixMicros) -> Vec<PolicyRow> {
    let mut tenant: Option<PolicyRow> = None;
    let mut feat: Option<PolicyRow> = None;
    for r in rows {
        if r.effective_from > at.0 {
            continue;
        }
        let slot = match r.feature.as_deref() {
            None => &mut tenant,
            Some(f) if f == feature => &mut feat,
            Some(_) => continue,
        };
        if slot
            .as_ref()
            .is_none_or(|s| s.effective_from <= r.effective_from)
        {
            *slot = Some(r);
        }
    }
    tenant.into_iter().chain(feat).collect()
}

/// Locks the tenant's budgets (PostgreSQL: `FOR UPDATE`) and reads each one in force for
/// `feature` at `at`, with its window's spend and live holds.
pub(crate) async fn load_status(
    tx: &mut Tx,
    tenant: &TenantId,
    feature: &str,
    at: UnixMicros,
) -> Result<Vec<BudgetStatus>> {
    load(tx, tenant, feature, at, false).await
}

/// As [`load_status`], for the budgets in force that have alert thresholds only (what a new
/// ledger line is checked against).
pub(crate) async fn load_alerting(
    tx: &mut Tx,
    tenant: &TenantId,
    feature: &str,
    at: UnixMicros,
) -> Result<Vec<BudgetStatus>> {
    load(tx, tenant, feature, at, true).await
}

async fn load(
    tx: &mut Tx,
    tenant: &TenantId,
    feature: &str,
    at: UnixMicros,
    alerting_only: bool,
) -> Result<Vec<BudgetStatus>> {
    let rows: Vec<StoredPolicy> = tx.fetch_all(&lock_budgets(tenant.as_str())).await?;
    let policies = rows
        .into_iter()
        .map(StoredPolicy::parse)
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for p in in_force(policies, feature, at) {
        if alerting_only && p.alerts.is_empty() {
            continue;
        }
        let (start, end) = budget_window(p.window, UnixMicros(p.effective_from), at)?;
        let (spent,): (i64,) = tx
            .fetch_one(&spent_select(
                tenant.as_str(),
                p.feature.as_deref(),
                start,
                end,
            ))
            .await?;
        let (held,): (i64,) = tx
            .fetch_one(&held_select(tenant.as_str(), p.feature.as_deref(), at))
            .await?;
        out.push(BudgetStatus {
            policy: BudgetPolicy {
                tenant_id: tenant.clone(),
                feature: p.feature,
                window: p.window,
                limit: Nanos(p.limit),
                effective_from: UnixMicros(p.effective_from),
                alert_permille: p.alerts,
                soft_limit_permille: p.soft,
            },
            window_start: start,
            window_end: end,
            spent: Nanos(spent),
            held: Nanos(held),
            budget_id: p.id,
        });
    }
    Ok(out)
}
/// The ledger's budget policies and their current windows: [`Ledger::budgets`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_cost::{BudgetPolicy, Ledger, Nanos, PriceBook, UnixMicros, Window};
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
///     .connect("sqlite::memory:").await?;
/// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
/// ledger.migrate().await?;
/// let at = UnixMicros::from_ymd(2026, 3, 1)?;
/// ledger.budgets().set(&BudgetPolicy::new("acme".parse()?, Window::Month,
///     Nanos(10_000_000), at)).await?;
/// let status = ledger.budgets().status(&"acme".parse()?, "chat", at).await?;
/// assert_eq!((status[0].policy.limit, status[0].spent), (Nanos(10_000_000), Nanos::ZERO));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Budgets<'a> {
    ledger: &'a Ledger,
}

impl Ledger {
    /// The budget policies: set one, read where each stands in its current window.
    #[must_use]
    pub fn budgets(&self) -> Budgets<'_> {
        Budgets { ledger: self }
    }
}

impl Budgets<'_> {
    pub(crate) fn pool(&self) -> &tenantry_core::db::Pool {
        &self.ledger.pool
    }

    /// Adds a budget policy. Policies are effective-dated rows: a change is a new policy with
    /// a later `effective_from`, and its first window starts there.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBudget`] for a negative limit or a non-positive custom period,
    /// [`Error::Database`].
    pub async fn set(&self, policy: &BudgetPolicy) -> Result<()> {
        if policy.limit.0 < 0 {
            return Err(Error::InvalidBudget("limit must not be negative".into()));
        }
        if policy.window.length().is_some_and(|l| l <= 0) {
            return Err(Error::InvalidBudget(
                "custom period must be positive".into(),
            ));
        }
        let permille_ok = |p: &u16| (1..=BudgetPolicy::MAX_PERMILLE).contains(p);
        if !policy.alert_permille.iter().all(permille_ok) {
            return Err(Error::InvalidBudget(format!(
                "alert thresholds must be 1..={} per mille",
                BudgetPolicy::MAX_PERMILLE
            )));
        }
        if !policy.soft_limit_permille.iter().all(permille_ok) {
            return Err(Error::InvalidBudget(format!(
                "soft limit must be 1..={} per mille",
                BudgetPolicy::MAX_PERMILLE
            )));
        }
        let mut levels = policy.alert_permille.clone();
        levels.sort_unstable();
        levels.dedup();
        let alerts = (!levels.is_empty())
            .then(|| serde_json::to_string(&levels))
            .transpose()
            .map_err(|e| Error::InvalidBudget(e.to_string()))?;
        let stmt = Query::insert()
            .into_table(Budget::Table)
            .columns([
                Budget::TenantId,
                Budget::Feature,
                Budget::Period,
                Budget::PeriodMicros,
                Budget::LimitNanos,
                Budget::EffectiveFrom,
                Budget::AlertPermille,
                Budget::SoftPermille,
            ])
            .values([
                policy.tenant_id.as_str().into(),
                policy.feature.clone().into(),
                policy.window.as_str().into(),
                policy.window.length().into(),
                policy.limit.0.into(),
                policy.effective_from.0.into(),
                alerts.into(),
                policy.soft_limit_permille.map(i64::from).into(),
            ])?
            .to_owned();
        self.ledger.pool.execute(&stmt).await?;
        Ok(())
    }

    /// The budgets in force for a tenant's feature at `at`, with their current window's spend.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn status(
        &self,
        tenant_id: &TenantId,
        feature: &str,
        at: UnixMicros,
    ) -> Result<Vec<BudgetStatus>> {
        let mut tx = self.ledger.pool.begin().await?;
        let statuses = load_status(&mut tx, tenant_id, feature, at).await?;
        tx.commit().await?;
        Ok(statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_windows_are_calendar_months_cut_at_policy_start() {
        let eff = UnixMicros::from_ymd(2026, 1, 15).unwrap();
        let at = UnixMicros::from_ymd(2026, 1, 20).unwrap();
        let (s, e) = budget_window(Window::Month, eff, at).unwrap();
        assert_eq!(s, eff);
        assert_eq!(e, UnixMicros::from_ymd(2026, 2, 1).unwrap());
        let at = UnixMicros::from_ymd(2026, 12, 31).unwrap();
        let (s, e) = budget_window(Window::Month, eff, at).unwrap();
        assert_eq!(s, UnixMicros::from_ymd(2026, 12, 1).unwrap());
        assert_eq!(e, UnixMicros::from_ymd(2027, 1, 1).unwrap());
    }

    #[test]
    fn custom_windows_are_anchored_at_policy_start() {
        let eff = UnixMicros(1_000);
        let (s, e) = budget_window(
            Window::Custom { length_micros: 100 },
            eff,
            UnixMicros(1_250),
        )
        .unwrap();
        assert_eq!((s.0, e.0), (1_200, 1_300));
        let (s, _) = budget_window(Window::Day, eff, UnixMicros(1_250)).unwrap();
        assert_eq!(s, eff);
    }
}
