//! The queue's metrics, recorded through the [`metrics`](https://docs.rs/metrics) facade when
//! the `telemetry` feature is on; the host installs the recorder (a Prometheus exporter, an
//! OpenTelemetry bridge, …). Without the feature, or without a recorder, nothing is recorded.
//!
//! | name | type | unit | labels | what |
//! |---|---|---|---|---|
//! | `tenantry_queue_jobs` | gauge | jobs | `state` (`queued`, `batched`, `submitted`), `tenant` if opted in | open jobs by state (sampled) |
//! | `tenantry_queue_oldest_queued_age_seconds` | gauge | seconds | | age of the oldest queued job, 0 when none (sampled) |
//! | `tenantry_queue_batches_in_flight` | gauge | batches | `state` (`planned`, `creating`, `submitted`) | batch records not over (sampled) |
//! | `tenantry_queue_usage_backlog` | gauge | usage records | | billed usage not yet recorded by the sink (sampled) |
//! | `tenantry_queue_usage_dead_letters` | gauge | usage records | | billed usage the sink could not price (sampled) |
//! | `tenantry_queue_jobs_submitted_total` | counter | jobs | | jobs stored by `submit_many` (a reused idempotency key stores nothing and is not counted) |
//! | `tenantry_queue_results_ingested_total` | counter | results | `outcome` (`succeeded`, `failed`, `retried`, `billed_after_cancel`, `billed_elsewhere`, `unchanged`) | results stored from batches and urgent calls |
//! | `tenantry_queue_retries_total` | counter | jobs | | jobs sent back to `queued` for another attempt (retryable error or missing result) |
//! | `tenantry_queue_usage_recorded_total` | counter | usage records | | usage handed to the sink |
//! | `tenantry_queue_usage_dead_lettered_total` | counter | usage records | | usage moved to the dead letters |
//!
//! The sampled gauges come from [`ClaimStore::snapshot`](crate::ClaimStore::snapshot), taken
//! by the engine at most once per [`EngineConfig::sample_every`](crate::EngineConfig::sample_every)
//! (a few aggregate statements, never per job). Per-tenant labels multiply the series by the
//! number of tenants; they are off unless [`EngineConfig::tenant_labels`](crate::EngineConfig::tenant_labels)
//! turns them on.

/// Gauge: open jobs by `state` (and `tenant` when opted in).
pub const QUEUE_JOBS: &str = "tenantry_queue_jobs";
/// Gauge, seconds: age of the oldest queued job (0 when none is queued).
pub const OLDEST_QUEUED_AGE: &str = "tenantry_queue_oldest_queued_age_seconds";
/// Gauge: batch records in flight by `state`.
pub const BATCHES_IN_FLIGHT: &str = "tenantry_queue_batches_in_flight";
/// Gauge: billed usage not yet recorded by the sink.
pub const USAGE_BACKLOG: &str = "tenantry_queue_usage_backlog";
/// Gauge: billed usage the sink could not price.
pub const USAGE_DEAD_LETTERS: &str = "tenantry_queue_usage_dead_letters";
/// Counter: jobs stored by `submit_many`.
pub const JOBS_SUBMITTED: &str = "tenantry_queue_jobs_submitted_total";
/// Counter: results stored, by `outcome`.
pub const RESULTS_INGESTED: &str = "tenantry_queue_results_ingested_total";
/// Counter: jobs sent back for another attempt.
pub const RETRIES: &str = "tenantry_queue_retries_total";
/// Counter: usage records handed to the sink.
pub const USAGE_RECORDED: &str = "tenantry_queue_usage_recorded_total";
/// Counter: usage records dead-lettered.
pub const USAGE_DEAD_LETTERED: &str = "tenantry_queue_usage_dead_lettered_total";

#[cfg(feature = "telemetry")]
use std::collections::BTreeSet;

use crate::ingest::IngestCounts;
#[cfg(feature = "telemetry")]
use crate::snapshot::QueueSnapshot;

/// Counts jobs stored by one `submit_many` call.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn submitted(jobs: usize) {
    #[cfg(feature = "telemetry")]
    metrics::counter!(JOBS_SUBMITTED).increment(u64::try_from(jobs).unwrap_or(u64::MAX));
}

/// Counts what one ingest changed; `retried` also counts as retries.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn ingested(counts: &IngestCounts) {
    #[cfg(feature = "telemetry")]
    {
        let outcomes = [
            ("succeeded", counts.succeeded),
            ("failed", counts.failed),
            ("retried", counts.retried),
            ("billed_after_cancel", counts.billed_after_cancel),
            ("billed_elsewhere", counts.billed_elsewhere),
            ("unchanged", counts.unchanged),
        ];
        for (outcome, n) in outcomes {
            if n > 0 {
                metrics::counter!(RESULTS_INGESTED, "outcome" => outcome).increment(n);
            }
        }
        retried(counts.retried);
    }
}

/// Counts jobs sent back for another attempt.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn retried(jobs: u64) {
    #[cfg(feature = "telemetry")]
    if jobs > 0 {
        metrics::counter!(RETRIES).increment(jobs);
    }
}

/// Counts a usage flush.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn usage_flushed(recorded: u64, dead_lettered: u64) {
    #[cfg(feature = "telemetry")]
    {
        if recorded > 0 {
            metrics::counter!(USAGE_RECORDED).increment(recorded);
        }
        if dead_lettered > 0 {
            metrics::counter!(USAGE_DEAD_LETTERED).increment(dead_lettered);
        }
    }
}

/// Sets the sampled gauges from a snapshot. Every open state and in-flight batch state is
/// set, to 0 when absent, so a drained queue reads 0 rather than its last value.
#[cfg(feature = "telemetry")]
pub(crate) fn sampled(snapshot: &QueueSnapshot, per_tenant: bool) {
    #[cfg(feature = "telemetry")]
    {
        #[expect(
            clippy::cast_precision_loss,
            reason = "gauges are floats; counts stay far below 2^53"
        )]
        let float = |n: u64| n as f64;
        if per_tenant {
            // A tenant whose jobs all finished is absent from the snapshot: its series go
            // to 0 once, then are left alone.
            static LAST: std::sync::Mutex<BTreeSet<(&'static str, String)>> =
                std::sync::Mutex::new(BTreeSet::new());
            let mut now = BTreeSet::new();
            for d in &snapshot.depth {
                let tenant = d.tenant.as_ref().map_or("", |t| t.as_str()).to_owned();
                metrics::gauge!(QUEUE_JOBS, "state" => d.state.as_str(), "tenant" => tenant.clone())
                    .set(float(d.jobs));
                now.insert((d.state.as_str(), tenant));
            }
            let mut last = LAST
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (state, tenant) in last.difference(&now) {
                metrics::gauge!(QUEUE_JOBS, "state" => *state, "tenant" => tenant.clone()).set(0.0);
            }
            *last = now;
        } else {
            for state in crate::snapshot::OPEN_STATES {
                metrics::gauge!(QUEUE_JOBS, "state" => state.as_str())
                    .set(float(snapshot.jobs_in(state)));
            }
        }
        metrics::gauge!(OLDEST_QUEUED_AGE).set(
            snapshot
                .oldest_queued_age
                .map_or(0.0, |age| age.as_secs_f64()),
        );
        for state in crate::snapshot::IN_FLIGHT_STATES {
            metrics::gauge!(BATCHES_IN_FLIGHT, "state" => state.as_str())
                .set(float(snapshot.batches_in(state)));
        }
        metrics::gauge!(USAGE_BACKLOG).set(float(snapshot.usage_backlog));
        metrics::gauge!(USAGE_DEAD_LETTERS).set(float(snapshot.usage_dead_letters));
    }
}

/// The provider, as OpenTelemetry's GenAI conventions name it (`gen_ai.provider.name`).
pub(crate) const PROVIDER: &str = "anthropic";

/// Records the API's token counts on `span` under OpenTelemetry's GenAI attribute names.
/// `gen_ai.usage.input_tokens` is every input token (the conventions count cached ones in
/// it); the API's own `input_tokens` is the uncached part.
pub(crate) fn record_usage(span: &tracing::Span, usage: &tenantry_core::Usage) {
    if span.is_disabled() {
        return;
    }
    let read = usage.cache_read_input_tokens.unwrap_or(0);
    let written = usage.cache_creation_input_tokens.unwrap_or(0);
    span.record(
        "gen_ai.usage.input_tokens",
        usage
            .input_tokens
            .saturating_add(read)
            .saturating_add(written),
    );
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
    span.record("gen_ai.usage.cache_read.input_tokens", read);
    span.record("gen_ai.usage.cache_creation.input_tokens", written);
}
