//! Budget alerts on the tenant's event stream: the ledger hands each alert it fires to this
//! sink, which appends it to the queue's [`Feed`] in the crossing's own transaction (the
//! ledger and the queue share one database), so an alert is on the stream exactly when the
//! hold or the line that crossed the threshold is in the ledger.

use async_trait::async_trait;
use tenantry_core::db::Tx;
use tenantry_cost::alert::SinkError;
use tenantry_cost::{AlertSink, BudgetAlert};
use tenantry_queue::{Feed, NewFeedEvent};

/// The type of a budget alert on the event stream: a budget reached one of its thresholds.
/// Its detail is the [`BudgetAlert`], as JSON.
pub const BUDGET_THRESHOLD: &str = "budget.threshold";

/// Appends the ledger's alerts to the feed.
#[derive(Debug)]
pub(crate) struct FeedAlerts {
    pub(crate) feed: Feed,
}

#[async_trait]
impl AlertSink for FeedAlerts {
    async fn append(&self, tx: &mut Tx, alerts: &[BudgetAlert]) -> Result<(), SinkError> {
        let mut events = Vec::with_capacity(alerts.len());
        for a in alerts {
            events.push(NewFeedEvent::new(
                a.tenant_id.clone(),
                BUDGET_THRESHOLD,
                serde_json::to_value(a)?,
                a.crossed_at.0,
            ));
        }
        self.feed.append(tx, &events).await?;
        tenantry_queue::failpoint!("alerts.appended");
        Ok(())
    }

    fn committed(&self, alerts: &[BudgetAlert]) {
        let mut tenants: Vec<_> = alerts.iter().map(|a| a.tenant_id.clone()).collect();
        tenants.dedup();
        self.feed.committed(&tenants);
    }
}
