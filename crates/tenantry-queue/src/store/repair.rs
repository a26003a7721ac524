//! [`RepairStore`] for both stores, written once over [`Store`](super::backend::Store).

use std::time::Duration;

use async_trait::async_trait;

use crate::TenantId;
use crate::claim::BatchState;
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::job::{HoldId, Job, JobState};
use crate::repair::{BatchInfo, Purge, Purged, RepairStore, StaleJobs};
use crate::store::JobStore;
use crate::store::backend::Store;
use crate::store::outbox;
use crate::store::row::{JobRow, parse_state};
use crate::store::sql::events::NewEvent;
use crate::store::sql::{self, repair};
use crate::validate::{from_micros, micros};

/// Why a retry of a job with these facts is refused, or `None` when it may go ahead. `batch`
/// is the state of the batch record the job kept, when it names one.
fn refusal(
    state: JobState,
    usage_state: Option<&str>,
    batch: Option<Option<&str>>,
) -> Option<&'static str> {
    if !state.can_be_retried() {
        return Some("only a failed, canceled or expired job can be retried");
    }
    if usage_state.is_some_and(|u| u != "recorded") {
        return Some("its billed usage is not recorded yet (re-price dead-lettered usage first)");
    }
    // A job closed while its request was out keeps that request's batch; until the batch
    // ends its result may still arrive and be billed.
    let may_be_out = matches!(state, JobState::Canceled | JobState::Expired)
        && usage_state.is_none()
        && batch.is_some_and(|record| !record.is_some_and(repair::batch_done));
    may_be_out.then_some("its request may still be at the API: retry after its batch has ended")
}

/// A batch record as [`repair::list_batches`] reads it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BatchRow {
    id: String,
    state: String,
    api_batch_id: Option<String>,
    request_count: i64,
    request_bytes: i64,
    created_at: i64,
    updated_at: i64,
    submitted_at: Option<i64>,
    lease_expires_at: Option<i64>,
}

impl TryFrom<BatchRow> for BatchInfo {
    type Error = Error;

    fn try_from(row: BatchRow) -> Result<Self> {
        Ok(Self {
            state: BatchState::parse(&row.state).ok_or_else(|| Error::Corrupt {
                what: "batch state",
                detail: row.state.clone(),
            })?,
            id: row.id,
            api_batch_id: row.api_batch_id,
            requests: u64::try_from(row.request_count).unwrap_or(0),
            bytes: u64::try_from(row.request_bytes).unwrap_or(0),
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            submitted_at: row.submitted_at.map(from_micros),
            lease_expires_at: row.lease_expires_at.map(from_micros),
        })
    }
}

#[async_trait]
impl<S: Store> RepairStore for S {
    async fn retry(&self, tenant: &TenantId, id: &JobId, hold: Option<HoldId>) -> Result<Job> {
        let now = self.clock_now();
        let mut tx = self.begin().await?;
        let facts: Option<(String, Option<String>, Option<String>)> = tx
            .fetch_optional(&repair::retry_facts(tx.backend(), tenant, id))
            .await?;
        let Some((state, batch, usage_state)) = facts else {
            tx.rollback().await?;
            return Err(Error::NotFound { id: id.to_string() });
        };
        let state = parse_state(&state)?;
        let record = match &batch {
            Some(b) => {
                let row: Option<(String,)> = tx.fetch_optional(&repair::batch_state(b)).await?;
                Some(row.map(|(s,)| s))
            }
            None => None,
        };
        let batch_state = record.as_ref().map(Option::as_deref);
        if let Some(reason) = refusal(state, usage_state.as_deref(), batch_state) {
            tx.rollback().await?;
            return Err(Error::NotRetryable {
                id: id.to_string(),
                state,
                reason,
            });
        }
        let changed: Option<(String,)> = tx
            .fetch_optional(&repair::retry_job(tenant, id, hold.map(HoldId::get), now))
            .await?;
        if changed.is_none() {
            // Checked under the row lock on PostgreSQL and the single writer on SQLite: the
            // guard repeats the checks, so this only happens if they disagree.
            tx.rollback().await?;
            return Err(Error::NotRetryable {
                id: id.to_string(),
                state,
                reason: "it changed while being retried",
            });
        }
        let row: Option<JobRow> = tx
            .fetch_optional(&sql::jobs::select_job(tenant, id))
            .await?;
        let event = NewEvent {
            tenant: tenant.as_str().to_owned(),
            job_id: id.as_str().to_owned(),
            state: JobState::Queued,
            at: now,
        };
        self.commit(tx, &[event]).await?;
        row.ok_or_else(|| Error::NotFound { id: id.to_string() })?
            .try_into()
    }

    async fn reprice_job(&self, tenant: &TenantId, id: &JobId) -> Result<u64> {
        // Not found reads as for every job call; the re-pricing itself is tenant-scoped too.
        JobStore::job(self, tenant, id).await?;
        outbox::reprice_all(self, tenant, Some(id)).await
    }

    async fn purge(&self, tenant: &TenantId, purge: &Purge) -> Result<Purged> {
        let before = micros(purge.before);
        let limit = purge.batch;
        let mut done = Purged::default();
        loop {
            let now = self.clock_now();
            let mut tx = self.begin().await?;
            let picked: Vec<(String,)> = tx
                .fetch_all(&repair::purgeable_jobs(tx.backend(), tenant, before, limit))
                .await?;
            let ids: Vec<String> = picked.into_iter().map(|(id,)| id).collect();
            if ids.is_empty() {
                tx.rollback().await?;
                break;
            }
            let deleted: Vec<(String,)> = tx
                .fetch_all(&repair::delete_jobs(tenant, ids.clone()))
                .await?;
            tx.execute(&repair::delete_members(ids.clone())).await?;
            tx.execute(&repair::delete_extra_usage(tenant, ids)).await?;
            let events: Vec<NewEvent> = deleted
                .into_iter()
                .map(|(job_id,)| NewEvent {
                    tenant: tenant.as_str().to_owned(),
                    job_id,
                    state: JobState::Purged,
                    at: now,
                })
                .collect();
            let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
            self.commit(tx, &events).await?;
            done.jobs += count;
            done.transactions += 1;
            if count < u64::from(limit) {
                break;
            }
        }
        loop {
            let mut tx = self.begin().await?;
            let picked: Vec<(i64,)> = tx
                .fetch_all(&repair::purgeable_events(tenant, before, limit))
                .await?;
            let seqs: Vec<i64> = picked.into_iter().map(|(seq,)| seq).collect();
            if seqs.is_empty() {
                tx.rollback().await?;
                break;
            }
            let n = u64::try_from(seqs.len()).unwrap_or(u64::MAX);
            done.events += tx.execute(&repair::delete_events(tenant, seqs)).await?;
            tx.commit().await?;
            done.transactions += 1;
            if n < u64::from(limit) {
                break;
            }
        }
        Ok(done)
    }

    async fn stale_open_jobs(&self, unchanged_for: Duration) -> Result<Vec<StaleJobs>> {
        Store::sync_clock(self).await?;
        let age = i64::try_from(unchanged_for.as_micros()).unwrap_or(i64::MAX);
        let before = self.clock_now().saturating_sub(age);
        let rows: Vec<(String, i64, Option<i64>)> = self
            .pool()
            .fetch_all(&repair::stale_open_jobs(before))
            .await?;
        let mut stale = rows
            .into_iter()
            .map(|(state, jobs, oldest)| {
                Ok(StaleJobs {
                    state: parse_state(&state)?,
                    jobs: u64::try_from(jobs).unwrap_or(0),
                    oldest_change: from_micros(oldest.unwrap_or(before)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        stale.sort_by_key(|s| JobState::ALL.iter().position(|st| *st == s.state));
        Ok(stale)
    }

    async fn clock_offset_micros(&self) -> Result<i64> {
        Store::sync_clock(self).await?;
        Ok(self.clock_now().saturating_sub(super::clock::host_now()))
    }

    async fn batches(&self, limit: u32) -> Result<Vec<BatchInfo>> {
        let rows: Vec<BatchRow> = self
            .pool()
            .fetch_all(&repair::list_batches(limit.clamp(1, 1000)))
            .await?;
        rows.into_iter().map(BatchInfo::try_from).collect()
    }

    async fn batch(&self, id: &str) -> Result<Option<BatchInfo>> {
        let row: Option<BatchRow> = self
            .pool()
            .fetch_optional(&repair::select_batch(id))
            .await?;
        row.map(BatchInfo::try_from).transpose()
    }

    async fn batch_jobs(&self, id: &str) -> Result<Vec<(TenantId, JobId, JobState)>> {
        let rows: Vec<(String, String, String)> =
            self.pool().fetch_all(&repair::batch_jobs(id)).await?;
        rows.into_iter()
            .map(|(job, tenant, state)| {
                Ok((
                    TenantId::new(tenant).map_err(|e| Error::Corrupt {
                        what: "tenant",
                        detail: e.to_string(),
                    })?,
                    crate::store::row::parse_job_id(&job)?,
                    parse_state(&state)?,
                ))
            })
            .collect()
    }

    async fn poll_now(&self, id: &str) -> Result<bool> {
        let due = self
            .pool()
            .execute(&repair::poll_now(id, self.clock_now()))
            .await?;
        Ok(due > 0)
    }

    async fn listeners(&self) -> Result<Option<u64>> {
        self.listener_count().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settled_closed_jobs_whose_request_came_back_are_retried() {
        let ended = Some(Some("ended"));
        assert_eq!(refusal(JobState::Failed, None, ended), None);
        assert_eq!(refusal(JobState::Failed, Some("recorded"), None), None);
        assert!(refusal(JobState::Succeeded, None, None).is_some());
        assert!(refusal(JobState::Queued, None, None).is_some());
        for unsettled in ["pending", "sending", "dead"] {
            assert!(refusal(JobState::Failed, Some(unsettled), ended).is_some());
        }
        // Canceled before it was sent (no batch), or after its batch ended: fine.
        assert_eq!(refusal(JobState::Canceled, None, None), None);
        assert_eq!(refusal(JobState::Canceled, None, ended), None);
        assert_eq!(
            refusal(JobState::Expired, None, Some(Some("released"))),
            None
        );
        // Canceled while its batch runs, or while an urgent call (no record) was out: not yet.
        assert!(refusal(JobState::Canceled, None, Some(Some("submitted"))).is_some());
        assert!(refusal(JobState::Expired, None, Some(None)).is_some());
        // Billed and recorded already: nothing more can come of that request.
        assert_eq!(
            refusal(
                JobState::Canceled,
                Some("recorded"),
                Some(Some("submitted"))
            ),
            None
        );
    }
}
