//! [`ClaimStore`] for both stores, written once over [`Store`](super::backend::Store). On PostgreSQL claims
//! skip rows locked by other workers inside the claiming statement; on SQLite every write
//! is serialised by `BEGIN IMMEDIATE`.

use std::time::Duration;

use async_trait::async_trait;
use tenantry_core::db::Tx;

use crate::TenantId;
use crate::claim::{
    BatchClaim, BatchId, BatchRecord, BatchRequest, BatchState, ClaimStore, PollClaim, UrgentClaim,
    WorkerId,
};
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::ingest::{IngestCounts, ItemOutcome, MissingResult, ResultItem, UsageRecord};
use crate::job::{JobError, JobState};
use crate::planner::{FlushPolicy, Plan, TenantBacklog};
use crate::store::backend::Store;
use crate::store::claiming::{self, lease_until};
use crate::store::outbox::{self, Outbox};
use crate::store::row::parse_job_id;
use crate::store::schema::Batches;
use crate::store::sql;
use crate::store::{members, results};

/// Moves a batch record on, fenced by owner and state, in one statement.
async fn advance<S: Store>(
    store: &S,
    batch: &BatchId,
    worker: &WorkerId,
    (from, to): (BatchState, BatchState),
    extra: Vec<(Batches, sea_query::Expr)>,
    now: i64,
) -> Result<bool> {
    let changed: Option<(String,)> = store
        .pool()
        .fetch_optional(&sql::batches::advance_batch(
            batch, worker, from, to, extra, now,
        ))
        .await?;
    Ok(changed.is_some())
}

/// Moves a batch record on inside `tx`, fenced by owner and state, so what the step does
/// next commits with it; `None` (the transaction rolled back) when `worker` no longer holds
/// the batch in `from`.
async fn advance_in(
    mut tx: Tx,
    batch: &BatchId,
    worker: &WorkerId,
    (from, to): (BatchState, BatchState),
    extra: Vec<(Batches, sea_query::Expr)>,
    now: i64,
) -> Result<Option<Tx>> {
    let changed: Option<(String,)> = tx
        .fetch_optional(&sql::batches::advance_batch(
            batch, worker, from, to, extra, now,
        ))
        .await?;
    if changed.is_none() {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}

/// Marks rows of one outbox, named by `(job, batch)`, recorded.
async fn mark<S: Store>(store: &S, outbox: Outbox, keys: &[(&str, &str)]) -> Result<()> {
    for chunk in keys.chunks(S::CHUNK / 2) {
        store
            .pool()
            .execute(&outbox::mark_recorded(outbox, chunk))
            .await?;
    }
    Ok(())
}

#[async_trait]
impl<S: Store> ClaimStore for S {
    fn now(&self) -> i64 {
        self.clock_now()
    }

    async fn sync_clock(&self) -> Result<()> {
        Store::sync_clock(self).await
    }

    async fn renew_batch(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<bool> {
        let now = self.clock_now();
        let renewed: Option<(String,)> = self
            .pool()
            .fetch_optional(&sql::batches::renew_batch(
                batch,
                worker,
                lease_until(now, lease),
                now,
            ))
            .await?;
        Ok(renewed.is_some())
    }

    async fn renew_urgent(
        &self,
        token: &BatchId,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<u64> {
        let now = self.clock_now();
        Ok(self
            .pool()
            .execute(&sql::urgent::renew_urgent(
                token,
                worker,
                lease_until(now, lease),
                now,
            ))
            .await?)
    }

    async fn backlog(&self) -> Result<Vec<TenantBacklog>> {
        let rows: Vec<(String, i64, i64, i64)> =
            self.pool().fetch_all(&sql::claims::backlog()).await?;
        super::backlog_rows(rows)
    }

    async fn claim_batch(
        &self,
        worker: &WorkerId,
        plan: &Plan,
        policy: FlushPolicy,
        lease: Duration,
    ) -> Result<Option<BatchClaim>> {
        let now = self.clock_now();
        let d = self.pool().backend();
        let batch = BatchId::generate();
        let mut tx = self.begin().await?;
        let mut claimed = Vec::new();
        for (tenant, quota) in &plan.quotas {
            let rows: Vec<(String, i64, i64)> = tx
                .fetch_all(&sql::claims::claim_jobs(d, tenant, *quota, &batch, now))
                .await?;
            claimed.extend(claiming::claimed_rows(tenant, rows));
        }
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (keep, back) = claiming::settle(claimed, policy);
        let back: Vec<String> = back.into_iter().map(|c| c.key).collect();
        for ids in back.chunks(S::CHUNK) {
            tx.execute(&sql::claims::unclaim_jobs(&batch, ids.to_vec()))
                .await?;
        }
        let bytes = keep.iter().map(|c| c.bytes).sum();
        tx.execute(&sql::batches::insert_batch(
            &batch,
            worker,
            lease_until(now, lease),
            keep.len(),
            bytes,
            now,
        ))
        .await?;
        let events = claiming::events(
            keep.iter()
                .map(|c| (c.key.clone(), c.tenant.as_str().to_owned())),
            JobState::Batched,
            now,
        );
        self.commit(tx, &events).await?;
        let jobs = keep
            .into_iter()
            .map(|c| super::row::parse_job_id(&c.key))
            .collect::<Result<_>>()?;
        Ok(Some(BatchClaim { batch, jobs, bytes }))
    }

    async fn batch_requests(&self, batch: &BatchId) -> Result<Vec<BatchRequest>> {
        let rows = self
            .pool()
            .fetch_all(&sql::batches::batch_requests(batch))
            .await?;
        claiming::requests(rows)
    }

    async fn begin_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        lease: Duration,
        send: &[JobId],
        sent_api_at: Option<i64>,
    ) -> Result<Option<Vec<JobId>>> {
        let now = self.clock_now();
        let extra = vec![
            (Batches::CreateStartedAt, now.into()),
            (Batches::CreateSentApiAt, sent_api_at.into()),
            (Batches::LeaseExpiresAt, lease_until(now, lease).into()),
        ];
        let tx = self.begin().await?;
        // The batch row is updated first: a cancel locks it before touching its job, so the
        // two serialise and the cancel sees whether the job was frozen in.
        let step = (BatchState::Planned, BatchState::Creating);
        let Some(mut tx) = advance_in(tx, batch, worker, step, extra, now).await? else {
            return Ok(None);
        };
        // Dying here, between the two statements, must leave the batch `planned`.
        crate::failpoint!("store.begin_create.unfrozen");
        let ids: Vec<String> = send.iter().map(|j| j.as_str().to_owned()).collect();
        let mut frozen = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(S::CHUNK) {
            let rows: Vec<(String,)> = tx
                .fetch_all(&members::freeze(batch, chunk.to_vec()))
                .await?;
            for (id,) in rows {
                frozen.push(parse_job_id(&id)?);
            }
        }
        // From here the requests may reach the API: the attempt counts whatever becomes of
        // each job, so a request is never out more often than its job's attempts say.
        tx.execute(&members::count_attempt(batch, 1)).await?;
        tx.commit().await?;
        frozen.sort();
        Ok(Some(frozen))
    }

    async fn batch_members(&self, batch: &BatchId) -> Result<Vec<JobId>> {
        let rows: Vec<(String,)> = self.pool().fetch_all(&members::of(batch)).await?;
        rows.into_iter().map(|(id,)| parse_job_id(&id)).collect()
    }

    async fn finish_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        api_batch_id: &str,
    ) -> Result<bool> {
        let now = self.clock_now();
        let tx = self.begin().await?;
        // No API batch (nothing was left to send) is recorded as none, not as an empty id.
        let api_batch_id = Some(api_batch_id).filter(|id| !id.is_empty());
        let extra = vec![
            (Batches::ApiBatchId, api_batch_id.into()),
            (Batches::SubmittedAt, now.into()),
            // Due for its first poll at once; the poller spaces the next ones.
            (Batches::LeaseExpiresAt, now.into()),
        ];
        let step = (BatchState::Creating, BatchState::Submitted);
        let Some(mut tx) = advance_in(tx, batch, worker, step, extra, now).await? else {
            return Ok(false);
        };
        let rows: Vec<(String, String)> = tx
            .fetch_all(&sql::batches::submit_batch_jobs(batch, now))
            .await?;
        let events = claiming::events(rows, JobState::Submitted, now);
        self.commit(tx, &events).await?;
        Ok(true)
    }

    async fn abort_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        retry_at: i64,
    ) -> Result<bool> {
        let now = self.clock_now();
        let extra = vec![
            (Batches::LeaseExpiresAt, retry_at.into()),
            (Batches::CreateStartedAt, Option::<i64>::None.into()),
            (Batches::CreateSentApiAt, Option::<i64>::None.into()),
        ];
        let tx = self.begin().await?;
        let step = (BatchState::Creating, BatchState::Planned);
        let Some(mut tx) = advance_in(tx, batch, worker, step, extra, now).await? else {
            return Ok(false);
        };
        // The create did not happen: neither did the attempt counted when it began.
        tx.execute(&members::count_attempt(batch, -1)).await?;
        tx.execute(&members::clear(batch)).await?;
        tx.execute(&sql::batches::unsent_closed_members(batch, now))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn defer_reconcile(&self, batch: &BatchId, worker: &WorkerId, at: i64) -> Result<bool> {
        let extra = vec![(Batches::LeaseExpiresAt, at.into())];
        let step = (BatchState::Creating, BatchState::Creating);
        advance(self, batch, worker, step, extra, self.clock_now()).await
    }

    async fn known_api_batches(&self, api_ids: &[String]) -> Result<Vec<String>> {
        let mut known = Vec::new();
        for ids in api_ids.chunks(S::CHUNK) {
            let rows: Vec<(String,)> = self
                .pool()
                .fetch_all(&sql::polls::known_api_batches(ids.to_vec()))
                .await?;
            known.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(known)
    }

    async fn take_over_expired(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<Vec<BatchRecord>> {
        let now = self.clock_now();
        let mut tx = self.begin().await?;
        let rows = tx
            .fetch_all(&sql::batches::take_over_batches(
                self.pool().backend(),
                worker,
                lease_until(now, lease),
                now,
            ))
            .await?;
        tx.commit().await?;
        claiming::records(rows)
    }

    async fn release(&self, worker: &WorkerId) -> Result<u64> {
        let now = self.clock_now();
        let mut tx = self.begin().await?;
        let released: Vec<(String,)> = tx
            .fetch_all(&sql::batches::release_planned(worker, now))
            .await?;
        let released: Vec<String> = released.into_iter().map(|(id,)| id).collect();
        let mut events = Vec::new();
        for ids in released.chunks(S::CHUNK) {
            let rows: Vec<(String, String)> = tx
                .fetch_all(&sql::batches::requeue_batches(ids.to_vec(), now))
                .await?;
            events.extend(claiming::events(rows, JobState::Queued, now));
        }
        let expired: Vec<(String,)> = tx
            .fetch_all(&sql::batches::expire_creating(worker, now))
            .await?;
        self.commit(tx, &events).await?;
        Ok(u64::try_from(released.len() + expired.len()).unwrap_or(u64::MAX))
    }

    async fn claim_poll(&self, worker: &WorkerId, lease: Duration) -> Result<Option<PollClaim>> {
        let now = self.clock_now();
        let mut tx = self.begin().await?;
        let row: Option<(String, Option<String>, Option<i64>)> = tx
            .fetch_optional(&sql::polls::claim_poll(
                self.pool().backend(),
                worker,
                lease_until(now, lease),
                now,
            ))
            .await?;
        tx.commit().await?;
        Ok(row.map(|(id, api, at)| PollClaim {
            batch: BatchId::record(id),
            api_batch_id: api.unwrap_or_default(),
            submitted_at: at.unwrap_or(now),
        }))
    }

    async fn defer_poll(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        next_poll_at: i64,
    ) -> Result<bool> {
        let changed: Option<(String,)> = self
            .pool()
            .fetch_optional(&sql::polls::defer_poll(
                batch,
                worker,
                next_poll_at,
                self.clock_now(),
            ))
            .await?;
        Ok(changed.is_some())
    }

    #[tracing::instrument(name = "tenantry.queue.ingest_chunk", level = "info", skip_all,
        fields(batch = %batch, results = items.len(), succeeded, failed, retried))]
    async fn ingest(
        &self,
        batch: &BatchId,
        items: &[ResultItem],
        max_attempts: u32,
    ) -> Result<IngestCounts> {
        let now = self.clock_now();
        let encoded = results::encode(items)?;
        let mut changed = Vec::with_capacity(encoded.rows.len());
        let mut extra = 0;
        let mut tx = self.begin().await?;
        for chunk in encoded.rows.chunks(S::CHUNK) {
            let rows: Vec<results::Changed> = tx
                .fetch_all(&results::store_results(chunk, batch, max_attempts, now))
                .await?;
            // Only a billed result that matched no job row of this batch can be billed
            // elsewhere; usually there is none and the statement is skipped.
            let rest = results::unmatched(chunk, &rows);
            changed.extend(rows);
            if let Some(stmt) = results::store_extra_usage(&rest, batch, now) {
                let stored: Vec<(String,)> = tx.fetch_all(&stmt).await?;
                extra += stored.len();
            }
        }
        let (counts, events) = results::settle(&encoded, changed, extra, now)?;
        self.commit(tx, &events).await?;
        let span = tracing::Span::current();
        span.record("succeeded", counts.succeeded);
        span.record("failed", counts.failed);
        span.record("retried", counts.retried);
        crate::telemetry::ingested(&counts);
        Ok(counts)
    }

    async fn end_batch(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        missing: MissingResult,
        max_attempts: u32,
    ) -> Result<Option<IngestCounts>> {
        let now = self.clock_now();
        let tx = self.begin().await?;
        let step = (BatchState::Submitted, BatchState::Ended);
        let Some(mut tx) = advance_in(tx, batch, worker, step, vec![], now).await? else {
            return Ok(None);
        };
        let open: Vec<(String,)> = tx.fetch_all(&sql::batches::open_jobs_of(batch)).await?;
        let error = crate::job::JobError {
            kind: "missing_result".to_owned(),
            message: "the batch ended without a readable result for this request".to_owned(),
        };
        let items = open
            .into_iter()
            .map(|(id,)| {
                Ok(ResultItem {
                    job: parse_job_id(&id)?,
                    outcome: ItemOutcome::Failed {
                        error: error.clone(),
                        retryable: missing == MissingResult::Retry,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let encoded = results::encode(&items)?;
        let mut swept = Vec::with_capacity(encoded.rows.len());
        for chunk in encoded.rows.chunks(S::CHUNK) {
            swept.extend(
                tx.fetch_all::<results::Changed>(&results::store_results(
                    chunk,
                    batch,
                    max_attempts,
                    now,
                ))
                .await?,
            );
        }
        let (counts, events) = results::settle(&encoded, swept, 0, now)?;
        self.commit(tx, &events).await?;
        crate::telemetry::retried(counts.retried);
        Ok(Some(counts))
    }

    async fn claim_usage(
        &self,
        worker: &WorkerId,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<UsageRecord>> {
        let now = self.clock_now();
        let mut records = Vec::new();
        let mut tx = self.begin().await?;
        for outbox in Outbox::ALL {
            let left = limit.saturating_sub(u32::try_from(records.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            let stmt = outbox::claim_usage(
                outbox,
                self.pool().backend(),
                worker,
                left,
                lease_until(now, lease),
                now,
            );
            let rows = tx.fetch_all(&stmt).await?;
            records.extend(outbox::usage_records(rows, outbox)?);
        }
        tx.commit().await?;
        Ok(records)
    }

    async fn mark_usage_recorded(&self, jobs: &[JobId]) -> Result<()> {
        let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.as_str(), "")).collect();
        mark(self, Outbox::Jobs, &keys).await
    }

    async fn mark_recorded(&self, records: &[UsageRecord]) -> Result<()> {
        for outbox in Outbox::ALL {
            let keys: Vec<(&str, &str)> = records
                .iter()
                .filter(|r| r.extra == (outbox == Outbox::Extra))
                .map(|r| (r.job.as_str(), r.batch.as_deref().unwrap_or_default()))
                .collect();
            mark(self, outbox, &keys).await?;
            // The two outboxes are marked apart: dying in between hands the rest over again.
            crate::failpoint!("store.mark_recorded.one_outbox");
        }
        Ok(())
    }

    async fn dead_letter_usage(&self, dead: &[(UsageRecord, String)]) -> Result<u64> {
        outbox::dead_letter(self, dead).await
    }

    async fn dead_usage_count(&self) -> Result<u64> {
        outbox::dead_count(self).await
    }

    async fn snapshot(&self, per_tenant: bool) -> Result<crate::QueueSnapshot> {
        use crate::snapshot::{Depth, QueueSnapshot};
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let depth = if per_tenant {
            let rows: Vec<(String, String, i64)> =
                self.pool().fetch_all(&sql::snapshot::depth(true)).await?;
            rows.into_iter()
                .filter_map(|(state, tenant, n)| {
                    Some(Depth {
                        state: state.parse::<JobState>().ok()?,
                        tenant: TenantId::new(tenant).ok(),
                        jobs: count(n),
                    })
                })
                .collect()
        } else {
            let rows: Vec<(String, i64)> =
                self.pool().fetch_all(&sql::snapshot::depth(false)).await?;
            rows.into_iter()
                .filter_map(|(state, n)| {
                    Some(Depth {
                        state: state.parse::<JobState>().ok()?,
                        tenant: None,
                        jobs: count(n),
                    })
                })
                .collect()
        };
        let oldest: Option<(Option<i64>,)> = self
            .pool()
            .fetch_optional(&sql::snapshot::oldest_queued())
            .await?;
        let oldest_queued_age = oldest.and_then(|(at,)| at).map(|at| {
            Duration::from_micros(u64::try_from(self.clock_now().saturating_sub(at)).unwrap_or(0))
        });
        let batches: Vec<(String, i64)> = self
            .pool()
            .fetch_all(&sql::snapshot::batches_in_flight())
            .await?;
        Ok(QueueSnapshot {
            depth,
            oldest_queued_age,
            batches_in_flight: batches
                .into_iter()
                .filter_map(|(state, n)| Some((BatchState::parse(&state)?, count(n))))
                .collect(),
            usage_backlog: outbox::backlog_count(self).await?,
            usage_dead_letters: outbox::dead_count(self).await?,
        })
    }

    async fn record_duplicate(&self, api_batch_id: &str, of: &BatchId) -> Result<Option<BatchId>> {
        let batch = BatchId::duplicate(api_batch_id);
        let mut tx = self.begin().await?;
        let stored: Option<(String,)> = tx
            .fetch_optional(&sql::batches::insert_duplicate(
                &batch,
                api_batch_id,
                self.clock_now(),
            ))
            .await?;
        if stored.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.execute(&members::copy(of, &batch)).await?;
        // A second create of the same requests: each reached the API once more.
        tx.execute(&members::count_attempt(&batch, 1)).await?;
        tx.commit().await?;
        Ok(Some(batch))
    }

    async fn claim_urgent(
        &self,
        worker: &WorkerId,
        limit: usize,
        lease: Duration,
    ) -> Result<UrgentClaim> {
        let now = self.clock_now();
        let token = BatchId::urgent();
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String, String)> = tx
            .fetch_all(&sql::urgent::claim_urgent(
                self.pool().backend(),
                worker,
                &token,
                limit,
                lease_until(now, lease),
                now,
            ))
            .await?;
        if !rows.is_empty() {
            tx.execute(&members::freeze_claimed(&token)).await?;
        }
        let events = claiming::events(
            rows.iter()
                .map(|(id, tenant, _)| (id.clone(), tenant.clone())),
            JobState::Submitted,
            now,
        );
        self.commit(tx, &events).await?;
        Ok(UrgentClaim {
            token,
            requests: claiming::requests(rows)?,
        })
    }

    async fn sweep_capped(&self, max_attempts: u32) -> Result<u64> {
        let now = self.clock_now();
        let lost = serde_json::to_string(&JobError {
            kind: "urgent_call_lost".to_owned(),
            message: "the worker making the urgent call stopped before storing its result, \
                      and no attempt is left"
                .to_owned(),
        })
        .map_err(Error::Json)?;
        let mut tx = self.begin().await?;
        let requeued: Vec<(String, String)> = tx
            .fetch_all(&sql::urgent::requeue_stale_urgent(now, max_attempts))
            .await?;
        let failed: Vec<(String, String)> = tx
            .fetch_all(&sql::urgent::fail_stale_urgent(now, max_attempts, lost))
            .await?;
        let expired: Vec<(String, String)> =
            tx.fetch_all(&sql::deadlines::expire_overdue(now)).await?;
        // Queued jobs only change lane (no event); jobs already in a batch leave it.
        let promoted: Vec<(String, String)> = tx
            .fetch_all(&sql::deadlines::promote_overdue(now, &[JobState::Queued]))
            .await?;
        let pulled: Vec<(String, String)> = tx
            .fetch_all(&sql::deadlines::promote_overdue(
                now,
                &[JobState::Batched, JobState::Submitted],
            ))
            .await?;
        let changed = requeued.len() + failed.len() + expired.len() + promoted.len() + pulled.len();
        let mut events = claiming::events(requeued, JobState::Queued, now);
        events.extend(claiming::events(failed, JobState::Failed, now));
        events.extend(claiming::events(expired, JobState::Expired, now));
        events.extend(claiming::events(pulled, JobState::Queued, now));
        self.commit(tx, &events).await?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}
