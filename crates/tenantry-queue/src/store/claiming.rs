//! The I/O-free steps of claiming that both stores share.

use std::time::Duration;

use crate::TenantId;
use crate::claim::{BatchId, BatchRecord, BatchRequest, BatchState};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::planner::{Claimed, FlushPolicy, REQUEST_OVERHEAD_BYTES, fit_bytes};
use crate::store::row::parse_job_id;
use crate::store::sql::events::NewEvent;

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

/// Rows `(id, state, create_started_at, create_sent_api_at)` of taken-over batches.
pub(crate) fn records(
    rows: Vec<(String, String, Option<i64>, Option<i64>)>,
) -> Result<Vec<BatchRecord>> {
    rows.into_iter()
        .map(|(id, state, create_started_at, create_sent_api_at)| {
            Ok(BatchRecord {
                batch: BatchId::record(id),
                state: BatchState::parse(&state).ok_or_else(|| Error::Corrupt {
                    what: "batch state",
                    detail: state.clone(),
                })?,
                create_started_at,
                create_sent_api_at,
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
