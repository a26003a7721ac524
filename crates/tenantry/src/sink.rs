//! The usage sink that connects the queue to the cost ledger: every billed request becomes one
//! ledger line, settling the budget hold taken at submit.
//!
//! The queue hands each billed request over at least once; the ledger records it idempotently
//! on `(source, request_id)` with the queue's [`UsageRecord::key`] as the request id, so a
//! second delivery charges nothing. Usage the ledger cannot price is reported as
//! [`SinkError::Unpriceable`], which the queue dead-letters until it is re-priced.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tenantry_batch::types::Usage;
use tenantry_cost::{CacheCreation, Ledger, TokenBuckets, UnixMicros};
use tenantry_queue::{Lane, SinkError, UsageRecord, UsageSink};

/// The ledger `source` of batch-lane lines.
pub const SOURCE_BATCH: &str = "anthropic-batch";
/// The ledger `source` of urgent-lane (synchronous Messages API) lines.
pub const SOURCE_MESSAGES: &str = "anthropic-messages";

/// How a queue lane is charged in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerLane {
    /// The ledger's lane: its price.
    pub(crate) lane: tenantry_cost::Lane,
    /// The `source` of its lines.
    pub(crate) source: &'static str,
}

/// The one place the facade maps the queue's lane to the ledger's: the batch lane is priced at
/// the batch rate and recorded as [`SOURCE_BATCH`], the urgent lane at the synchronous rate as
/// [`SOURCE_MESSAGES`]. `None` for a lane this version does not know: it is never priced by
/// a guess.
pub(crate) fn ledger_lane(lane: Lane) -> Option<LedgerLane> {
    match lane {
        Lane::Batch => Some(LedgerLane {
            lane: tenantry_cost::Lane::Batch,
            source: SOURCE_BATCH,
        }),
        Lane::Urgent => Some(LedgerLane {
            lane: tenantry_cost::Lane::Urgent,
            source: SOURCE_MESSAGES,
        }),
        _ => None,
    }
}

/// The API's usage as the ledger reads it, field by field (no JSON round trip that could lose
/// a field). `service_tier` is carried along but never decides the price: the lane does.
fn anthropic_usage(usage: &Usage) -> tenantry_cost::Usage {
    let mut api = tenantry_cost::Usage::new(usage.input_tokens, usage.output_tokens);
    api.cache_creation_input_tokens = usage.cache_creation_input_tokens;
    api.cache_read_input_tokens = usage.cache_read_input_tokens;
    api.cache_creation = usage
        .cache_creation
        .as_ref()
        .map(|c| CacheCreation::new(c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens));
    api.service_tier = usage.service_tier.as_ref().map(|t| t.as_str().into());
    api.inference_geo = usage.inference_geo.clone();
    api
}

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
    pub(crate) assignments: Arc<Assignments>,
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
}

/// The ledger line of one billed request.
///
/// # Errors
///
/// [`SinkError::Unpriceable`] when the lane is unknown or the counts cannot be split into
/// buckets (inconsistent cache counts, a count out of range).
pub(crate) fn ledger_record(
    usage: &UsageRecord,
    assignments: &Assignments,
    at: UnixMicros,
) -> Result<tenantry_cost::LedgerEntry, SinkError> {
    let lane = ledger_lane(usage.lane).ok_or_else(|| {
        SinkError::unpriceable(format!(
            "lane `{}` has no ledger price",
            usage.lane.as_str()
        ))
    })?;
    let api = anthropic_usage(&usage.usage);
    let tenant = usage.tenant.as_str();
    let mut entry = tenantry_cost::LedgerEntry::new(
        lane.source.to_owned(),
        usage.key(),
        usage.tenant.clone(),
        usage.feature.clone(),
        usage.model.clone(),
        lane.lane,
        at,
    )
    .with_user(usage.user.clone())
    .with_tokens(TokenBuckets::from_usage(&api).map_err(sink_error)?);
    entry.job_id = Some(usage.job.to_string());
    entry.batch_id = usage.batch.clone();
    entry.inference_geo = api.inference_geo.clone();
    entry.feature_tier = assignments.tier(tenant);
    entry.region = assignments.region(tenant);
    Ok(entry)
}

/// A ledger error as the queue should treat it: usage the ledger refuses as it is stays
/// refused until the price book (or the multipliers) change, anything else may pass later.
fn sink_error(e: tenantry_cost::Error) -> SinkError {
    if e.is_permanent() {
        SinkError::unpriceable(e)
    } else {
        SinkError::unavailable(e)
    }
}

#[async_trait]
impl UsageSink for LedgerSink {
    async fn record(&self, usage: &UsageRecord) -> Result<(), SinkError> {
        let line = ledger_record(usage, &self.assignments, UnixMicros::now())?;
        tenantry_queue::failpoint!("sink.line_built");
        let recorded = match usage.hold {
            Some(hold) => self.ledger.settle(hold.get(), &line).await,
            None => self.ledger.record(&line).await,
        }
        .map_err(sink_error)?;
        if !recorded.duplicate {
            self.telemetry.charged(usage, recorded.cost.cost);
        }
        Ok(())
    }
}
