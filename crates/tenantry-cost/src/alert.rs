//! Budget alerts: each threshold of a budget fires once per window, in the transaction of the
//! hold or the usage line that took the budget to it, and an [`AlertSink`] writes it into the
//! host's event stream in that same transaction.
//!
//! What a budget has used is what its status counts: spent in the window plus live holds, so a
//! reservation reaches a threshold as surely as settled spend. The row in
//! `tenantry_budget_alerts`, keyed by budget, window start and threshold, is what makes an
//! alert fire once: a second crossing in the same window (spend that dropped when a hold was
//! settled below its estimate, then rose again) finds the key taken. A later window, or a new
//! policy (its own row, its own windows), fires again.

use async_trait::async_trait;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};
use tenantry_core::db::Tx;
use tenantry_core::{TenantId, UnixMicros};

use crate::budget::BudgetStatus;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, stored_tenant};
use crate::money::Nanos;
use crate::schema::BudgetAlert as Alerts;

/// A budget reached one of its alert thresholds in the current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetAlert {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The feature of a per-feature budget; `None` for the tenant-wide budget.
    pub feature: Option<String>,
    /// The threshold reached, per mille of the limit.
    pub threshold_permille: u16,
    /// Window start (inclusive).
    pub window_start: UnixMicros,
    /// Window end (exclusive).
    pub window_end: UnixMicros,
    /// The budget's limit for the window.
    pub limit: Nanos,
    /// Spent in the window when it crossed, from the ledger.
    pub spent: Nanos,
    /// Held by live holds when it crossed (the crossing hold included).
    pub held: Nanos,
    /// When the crossing committed (the hold's or the line's time).
    pub crossed_at: UnixMicros,
}

/// The error an [`AlertSink`] reports; the ledger's call fails with
/// [`Error::AlertSink`] and nothing it did is kept.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where alerts go besides `tenantry_budget_alerts`: the host's durable event stream, written in
/// the transaction that crossed the threshold, so an alert exists exactly when its crossing
/// does. Set with [`Ledger::with_alert_sink`].
///
/// ```
/// use tenantry_core::db::Tx;
/// use tenantry_cost::{AlertSink, BudgetAlert, alert::SinkError};
///
/// /// Counts the alerts it is handed (a real sink inserts them into an events table).
/// #[derive(Debug, Default)]
/// struct Count(std::sync::atomic::AtomicUsize);
///
/// #[async_trait::async_trait]
/// impl AlertSink for Count {
///     async fn append(&self, _tx: &mut Tx, alerts: &[BudgetAlert]) -> Result<(), SinkError> {
///         self.0.fetch_add(alerts.len(), std::sync::atomic::Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Writes the alerts in the transaction that crossed their thresholds (before it commits).
    ///
    /// # Errors
    ///
    /// Any error rolls the whole transaction back: the hold, the line and the alerts.
    async fn append(
        &self,
        tx: &mut Tx,
        alerts: &[BudgetAlert],
    ) -> std::result::Result<(), SinkError>;

    /// Called after that transaction committed (for an in-process wake-up). Default: nothing.
    fn committed(&self, alerts: &[BudgetAlert]) {
        let _ = alerts;
    }
}

/// The thresholds of `status` that `used` (spent plus held, after the write) reaches.
fn reached(status: &BudgetStatus, used: i64) -> impl Iterator<Item = u16> + '_ {
    let limit = i128::from(status.policy.limit.0);
    status
        .policy
        .alert_permille
        .iter()
        .copied()
        .filter(move |p| i128::from(used) * 1000 >= limit * i128::from(*p))
}

/// Records the thresholds each budget reaches at `used` that it had not reached before in its
/// window, in the caller's transaction, and returns them as alerts (after the sink wrote them).
pub(crate) async fn fire(
    tx: &mut Tx,
    sink: Option<&dyn AlertSink>,
    budgets: &[(BudgetStatus, i64)],
    at: UnixMicros,
) -> Result<Vec<BudgetAlert>> {
    let mut alerts = Vec::new();
    for (status, used) in budgets {
        let levels: Vec<u16> = reached(status, *used).collect();
        if levels.is_empty() {
            continue;
        }
        let fired = Query::select()
            .column(Alerts::Permille)
            .from(Alerts::Table)
            .and_where(Expr::col(Alerts::BudgetId).eq(status.budget_id))
            .and_where(Expr::col(Alerts::WindowStart).eq(status.window_start.0))
            .to_owned();
        let fired: Vec<(i64,)> = tx.fetch_all(&fired).await?;
        let held = used.saturating_sub(status.spent.0);
        for level in levels {
            if fired.iter().any(|(p,)| *p == i64::from(level)) {
                continue;
            }
            let insert = Query::insert()
                .into_table(Alerts::Table)
                .columns([
                    Alerts::BudgetId,
                    Alerts::WindowStart,
                    Alerts::Permille,
                    Alerts::TenantId,
                    Alerts::Feature,
                    Alerts::WindowEnd,
                    Alerts::LimitNanos,
                    Alerts::SpentNanos,
                    Alerts::HeldNanos,
                    Alerts::CrossedAt,
                ])
                .values([
                    status.budget_id.into(),
                    status.window_start.0.into(),
                    i64::from(level).into(),
                    status.policy.tenant_id.as_str().into(),
                    status.policy.feature.clone().into(),
                    status.window_end.0.into(),
                    status.policy.limit.0.into(),
                    status.spent.0.into(),
                    held.into(),
                    at.0.into(),
                ])?
                .on_conflict(
                    OnConflict::columns([Alerts::BudgetId, Alerts::WindowStart, Alerts::Permille])
                        .do_nothing()
                        .to_owned(),
                )
                .to_owned();
            // The budget rows are locked (or the database written by one writer), so the key is
            // free here; the conflict clause keeps "once" true even if it were not.
            if tx.execute(&insert).await? == 1 {
                alerts.push(BudgetAlert {
                    tenant_id: status.policy.tenant_id.clone(),
                    feature: status.policy.feature.clone(),
                    threshold_permille: level,
                    window_start: status.window_start,
                    window_end: status.window_end,
                    limit: status.policy.limit,
                    spent: status.spent,
                    held: Nanos(held),
                    crossed_at: at,
                });
            }
        }
    }
    if let Some(sink) = sink
        && !alerts.is_empty()
    {
        sink.append(tx, &alerts).await.map_err(Error::AlertSink)?;
    }
    Ok(alerts)
}

/// A row of `tenantry_budget_alerts`.
#[derive(sqlx::FromRow)]
struct AlertRow {
    permille: i64,
    tenant_id: String,
    feature: Option<String>,
    window_start: i64,
    window_end: i64,
    limit_nanos: i64,
    spent_nanos: i64,
    held_nanos: i64,
    crossed_at: i64,
}

impl Ledger {
    /// The same ledger, handing every alert it fires to `sink` in the crossing's transaction.
    /// Default: no sink (alerts are still recorded, see [`Budgets::alerts`](crate::Budgets::alerts)).
    #[must_use]
    pub fn with_alert_sink(mut self, sink: std::sync::Arc<dyn AlertSink>) -> Self {
        self.alerts = Some(sink);
        self
    }

    /// Commits `tx`, then tells the sink about the alerts it carried.
    pub(crate) async fn commit_alerts(&self, tx: Tx, alerts: &[BudgetAlert]) -> Result<()> {
        tx.commit().await?;
        if let Some(sink) = &self.alerts
            && !alerts.is_empty()
        {
            sink.committed(alerts);
        }
        Ok(())
    }

    /// The sink, as [`fire`] takes it.
    pub(crate) fn alert_sink(&self) -> Option<&dyn AlertSink> {
        self.alerts.as_deref()
    }
}

impl crate::Budgets<'_> {
    /// Every alert a tenant's budgets fired, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; [`Error::InvalidRow`] for a stored row this version cannot read.
    pub async fn alerts(&self, tenant_id: &TenantId) -> Result<Vec<BudgetAlert>> {
        let stmt = Query::select()
            .columns([
                Alerts::Permille,
                Alerts::TenantId,
                Alerts::Feature,
                Alerts::WindowStart,
                Alerts::WindowEnd,
                Alerts::LimitNanos,
                Alerts::SpentNanos,
                Alerts::HeldNanos,
                Alerts::CrossedAt,
            ])
            .from(Alerts::Table)
            .and_where(Expr::col(Alerts::TenantId).eq(tenant_id.as_str()))
            .order_by(Alerts::CrossedAt, Order::Asc)
            .order_by(Alerts::BudgetId, Order::Asc)
            .order_by(Alerts::Permille, Order::Asc)
            .to_owned();
        let rows: Vec<AlertRow> = self.pool().fetch_all(&stmt).await?;
        rows.into_iter()
            .map(|r| {
                Ok(BudgetAlert {
                    tenant_id: stored_tenant(r.tenant_id)?,
                    feature: r.feature,
                    threshold_permille: u16::try_from(r.permille).map_err(|_| {
                        Error::InvalidRow(format!("alert threshold {}", r.permille))
                    })?,
                    window_start: UnixMicros(r.window_start),
                    window_end: UnixMicros(r.window_end),
                    limit: Nanos(r.limit_nanos),
                    spent: Nanos(r.spent_nanos),
                    held: Nanos(r.held_nanos),
                    crossed_at: UnixMicros(r.crossed_at),
                })
            })
            .collect()
    }
}
