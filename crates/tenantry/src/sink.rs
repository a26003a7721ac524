//! The usage sink that connects the queue to the cost ledger: every billed request becomes one
//! ledger line, settling the budget hold taken at submit.
//!
//! The queue hands each billed request over at least once; the ledger records it idempotently
//! on `(source, request_id)` with the queue's [`UsageRecord::key`] as the request id, so a
//! second delivery charges nothing.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tenantry_cost::{AnthropicUsage, Ledger, UnixMicros};
use tenantry_queue::{Lane, UsageRecord, UsageSink};

use crate::db::Store;
use crate::request::reservation_of;

/// The ledger `source` of batch-lane lines.
pub const SOURCE_BATCH: &str = "anthropic-batch";
/// The ledger `source` of urgent-lane (synchronous Messages API) lines.
pub const SOURCE_MESSAGES: &str = "anthropic-messages";

/// Feature tiers and regions assigned to tenants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assignments {
    pub(crate) tiers: HashMap<String, String>,
    pub(crate) regions: HashMap<String, String>,
}

impl Assignments {
    pub(crate) fn tier(&self, tenant: &str) -> Option<String> {
        self.tiers.get(tenant).cloned()
    }
    pub(crate) fn region(&self, tenant: &str) -> Option<String> {
        self.regions.get(tenant).cloned()
    }
}

/// Records the queue's billed usage in the cost ledger.
#[derive(Debug)]
pub(crate) struct LedgerSink {
    pub(crate) ledger: Ledger,
    pub(crate) store: Store,
    pub(crate) assignments: Arc<Assignments>,
}

/// The ledger line of one billed request.
pub(crate) fn ledger_record(
    usage: &UsageRecord,
    assignments: &Assignments,
    at: UnixMicros,
) -> Result<tenantry_cost::UsageRecord, Box<dyn std::error::Error + Send + Sync>> {
    let api: AnthropicUsage = serde_json::from_value(usage.usage.clone())?;
    let lane = match usage.lane {
        Lane::Urgent => tenantry_cost::Lane::Sync,
        _ => api.lane(),
    };
    let source = match usage.batch {
        Some(_) => SOURCE_BATCH,
        None => SOURCE_MESSAGES,
    };
    let tenant = usage.tenant.as_str();
    Ok(tenantry_cost::UsageRecord {
        source: source.to_owned(),
        request_id: usage.key(),
        tenant_id: tenant.to_owned(),
        user_id: Some(usage.user.clone()),
        feature: usage.feature.clone(),
        model: usage.model.clone(),
        lane,
        occurred_at: at,
        job_id: Some(usage.job.to_string()),
        batch_id: usage.batch.clone(),
        tokens: api.buckets()?,
        inference_geo: api.inference_geo.clone(),
        feature_tier: assignments.tier(tenant),
        region: assignments.region(tenant),
    })
}

#[async_trait]
impl UsageSink for LedgerSink {
    async fn record(
        &self,
        usage: &UsageRecord,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let line = ledger_record(usage, &self.assignments, UnixMicros::now())?;
        let hold = match self.store.jobs().job(&usage.tenant, &usage.job).await {
            Ok(job) => reservation_of(&job.metadata),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(Box::new(e)),
        };
        tenantry_queue::failpoint!("sink.hold_read");
        match hold {
            Some(reservation) => self.ledger.settle(reservation, &line).await?,
            None => self.ledger.record(&line).await?,
        };
        Ok(())
    }
}
