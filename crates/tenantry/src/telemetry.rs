#![doc = include_str!("telemetry.md")]

use std::collections::BTreeSet;
use std::sync::Mutex;

use tenantry_cost::{Ledger, Nanos};
use tenantry_queue::{TenantId, UsageRecord};

/// Counter, nano-USD: spend recorded in the ledger by `feature`, `model`, `lane` (and
/// `tenant` when opted in).
pub const SPEND: &str = "tenantry_spend_nano_usd_total";
/// Gauge, nano-USD: what a budget has left in its current window (limit − spent − held), by
/// `tenant`, `feature` (`*` for the tenant-wide budget) and `window`. Only with tenant labels.
pub const BUDGET_REMAINING: &str = "tenantry_budget_remaining_nano_usd";

/// The facade's metrics: spend as the ledger records it, and the budgets it was charged to.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "telemetry"), allow(dead_code))]
pub(crate) struct Telemetry {
    tenant_labels: bool,
    /// `(tenant, feature)` charged since this process started: the budgets sampled.
    charged: Mutex<BTreeSet<(TenantId, String)>>,
}

impl Telemetry {
    pub(crate) fn new(tenant_labels: bool) -> Self {
        Self {
            tenant_labels,
            charged: Mutex::default(),
        }
    }

    /// Counts a line the ledger recorded (not a duplicate delivery).
    #[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
    pub(crate) fn charged(&self, usage: &UsageRecord, cost: Nanos) {
        #[cfg(feature = "telemetry")]
        {
            let nanos = u64::try_from(cost.0).unwrap_or(0);
            let lane = usage.lane.as_str();
            if self.tenant_labels {
                ::metrics::counter!(SPEND, "feature" => usage.feature.clone(),
                    "model" => usage.model.clone(), "lane" => lane,
                    "tenant" => usage.tenant.as_str().to_owned())
                .increment(nanos);
                self.charged
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert((usage.tenant.clone(), usage.feature.clone()));
            } else {
                ::metrics::counter!(SPEND, "feature" => usage.feature.clone(),
                    "model" => usage.model.clone(), "lane" => lane)
                .increment(nanos);
            }
        }
    }

    /// Reads what the budgets charged so far have left into [`BUDGET_REMAINING`]; with tenant
    /// labels only (a budget is one tenant's). One status read per `(tenant, feature)` pair.
    #[cfg_attr(
        not(feature = "telemetry"),
        allow(unused_variables, clippy::unused_async)
    )]
    pub(crate) async fn sample_budgets(&self, ledger: &Ledger) {
        #[cfg(feature = "telemetry")]
        {
            let pairs: Vec<(TenantId, String)> = self
                .charged
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .cloned()
                .collect();
            let now = tenantry_cost::UnixMicros::now();
            for (tenant, feature) in pairs {
                let statuses = match ledger.budgets().status(&tenant, &feature, now).await {
                    Ok(statuses) => statuses,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading budget status for the metrics failed");
                        return;
                    }
                };
                for s in statuses {
                    let left = s.policy.limit - s.spent - s.held;
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "a gauge is a float; the ledger keeps the exact amount"
                    )]
                    let left = left.0 as f64;
                    let window = match s.policy.window {
                        tenantry_cost::Window::Day => "day",
                        tenantry_cost::Window::Month => "month",
                        _ => "custom",
                    };
                    ::metrics::gauge!(BUDGET_REMAINING, "tenant" => tenant.as_str().to_owned(),
                        "feature" => s.policy.feature.clone().unwrap_or_else(|| "*".to_owned()),
                        "window" => window)
                    .set(left);
                }
            }
        }
    }
}
