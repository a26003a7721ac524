//! The I/O-free steps of claiming that both stores share.

use std::time::Duration;

use crate::claim::{BatchId, BatchRecord, BatchRequest, BatchState};
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::ingest::{IngestCounts, ItemOutcome, ResultItem, UsageRecord};
use crate::job::{JobState, Lane};
use crate::planner::{Claimed, FlushPolicy, REQUEST_OVERHEAD_BYTES, fit_bytes};
use crate::store::row::parse_job_id;
use crate::store::sql::{self, NewEvent};

/// `now` plus a lease, in stored microseconds.
pub(crate) fn lease_until(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

/// A tenant's claimed rows `(id, request_bytes, flush_at)` in its flush order.
pub(crate) fn claimed_rows(
    tenant: &TenantId,
    mut rows: Vec<(String, i64, i64)>,
) -> Vec<Claimed<String>> {
    rows.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    rows.into_iter()
        .map(|(id, bytes, _)| Claimed {
            key: id,
            tenant: tenant.clone(),
            bytes: u64::try_from(bytes).unwrap_or(0) + REQUEST_OVERHEAD_BYTES,
        })
        .collect()
}

/// Splits a claim into kept and given-back jobs. A single job larger than the policy's
/// byte limit (never larger than the API's, see [`MAX_REQUEST_BYTES`](crate::MAX_REQUEST_BYTES))
/// still goes out alone rather than blocking its tenant.
pub(crate) fn settle(
    claimed: Vec<Claimed<String>>,
    policy: FlushPolicy,
) -> (Vec<Claimed<String>>, Vec<Claimed<String>>) {
    let (mut keep, mut back) = fit_bytes(claimed, policy.bytes());
    if keep.is_empty() && !back.is_empty() {
        keep.push(back.remove(0));
    }
    (keep, back)
}

/// One event per job entering `state`.
pub(crate) fn events(
    rows: impl IntoIterator<Item = (String, String)>,
    state: JobState,
    at: i64,
) -> Vec<NewEvent> {
    rows.into_iter()
        .map(|(job_id, tenant)| NewEvent {
            tenant,
            job_id,
            state,
            at,
        })
        .collect()
}

/// Rows `(id, state, create_started_at)` of taken-over batches.
pub(crate) fn records(rows: Vec<(String, String, Option<i64>)>) -> Result<Vec<BatchRecord>> {
    rows.into_iter()
        .map(|(id, state, create_started_at)| {
            Ok(BatchRecord {
                batch: BatchId(id),
                state: BatchState::parse(&state).ok_or_else(|| Error::Corrupt {
                    what: "batch state",
                    detail: state.clone(),
                })?,
                create_started_at,
            })
        })
        .collect()
}

/// Rows `(id, tenant, params)` of a batch's requests.
pub(crate) fn requests(rows: Vec<(String, String, String)>) -> Result<Vec<BatchRequest>> {
    rows.into_iter()
        .map(|(id, tenant, params)| {
            Ok(BatchRequest {
                job: parse_job_id(&id)?,
                tenant: TenantId::new(tenant).map_err(|e| Error::Corrupt {
                    what: "tenant",
                    detail: e.to_string(),
                })?,
                params: serde_json::from_str(&params).map_err(Error::Json)?,
            })
        })
        .collect()
}

/// What a matched ingest statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Succeed,
    BillCanceled,
    Retry,
    Fail,
}

impl Step {
    /// The state the job entered (an event), if it changed state.
    pub(crate) fn entered(self) -> Option<JobState> {
        match self {
            Self::Succeed => Some(JobState::Succeeded),
            Self::BillCanceled => None,
            Self::Retry => Some(JobState::Queued),
            Self::Fail => Some(JobState::Failed),
        }
    }

    pub(crate) fn count(self, counts: &mut IngestCounts) {
        match self {
            Self::Succeed => counts.succeeded += 1,
            Self::BillCanceled => counts.billed_after_cancel += 1,
            Self::Retry => counts.retried += 1,
            Self::Fail => counts.failed += 1,
        }
    }
}

/// The guarded updates that may apply to one result, tried in order until one matches;
/// none matching means the result was seen before.
pub(crate) fn ingest_steps(
    item: &ResultItem,
    batch: &BatchId,
    max_attempts: u32,
    now: i64,
) -> Result<Vec<(Step, sea_query::UpdateStatement)>> {
    let to_json = |v: &serde_json::Value| v.to_string();
    Ok(match &item.outcome {
        ItemOutcome::Succeeded { message, usage } => vec![
            (
                Step::Succeed,
                sql::succeed_job(&item.job, batch, to_json(message), to_json(usage), now),
            ),
            (
                Step::BillCanceled,
                sql::bill_canceled_job(&item.job, batch, to_json(usage), now),
            ),
        ],
        ItemOutcome::Failed { error, retryable } => {
            let error = serde_json::to_string(error).map_err(Error::Json)?;
            let mut steps = Vec::with_capacity(2);
            if *retryable {
                steps.push((
                    Step::Retry,
                    sql::retry_job(&item.job, batch, error.clone(), max_attempts, now),
                ));
            }
            steps.push((Step::Fail, sql::fail_job(&item.job, batch, error, now)));
            steps
        }
    })
}

/// A row returned by [`sql::claim_usage`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UsageRow {
    id: String,
    tenant: String,
    feature: String,
    user_id: String,
    lane: String,
    params: String,
    batch_id: Option<String>,
    usage: Option<String>,
}

/// Rows of [`sql::claim_usage`] as records for the sink.
pub(crate) fn usage_records(rows: Vec<UsageRow>) -> Result<Vec<UsageRecord>> {
    rows.into_iter()
        .map(|row| {
            let params: serde_json::Value =
                serde_json::from_str(&row.params).map_err(Error::Json)?;
            Ok(UsageRecord {
                job: parse_job_id(&row.id)?,
                tenant: TenantId::new(row.tenant).map_err(|e| Error::Corrupt {
                    what: "tenant",
                    detail: e.to_string(),
                })?,
                feature: row.feature,
                user: row.user_id,
                lane: Lane::parse(&row.lane).ok_or_else(|| Error::Corrupt {
                    what: "lane",
                    detail: row.lane.clone(),
                })?,
                model: params["model"].as_str().unwrap_or_default().to_owned(),
                batch: row.batch_id,
                usage: row
                    .usage
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(Error::Json)?
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
