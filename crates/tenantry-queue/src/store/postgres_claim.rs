//! [`ClaimStore`] on PostgreSQL: claims skip rows locked by other workers.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::claim::{
    BatchClaim, BatchId, BatchRecord, BatchRequest, BatchState, ClaimStore, PollClaim, UrgentClaim,
    WorkerId,
};
use crate::error::Result;
use crate::ids::JobId;
use crate::ingest::{IngestCounts, ResultItem, UsageRecord};
use crate::job::JobState;
use crate::planner::{FlushPolicy, Plan, TenantBacklog};
use crate::store::claiming::{self, lease_until};
use crate::store::postgres::{CHUNK, D, PgStore, append_events};
use crate::store::schema::Batches;
use crate::store::sql::{self, NewEvent, render};
use crate::validate::micros;

#[async_trait]
impl ClaimStore for PgStore {
    async fn backlog(&self) -> Result<Vec<TenantBacklog>> {
        let (q, v) = render(&sql::backlog(), D);
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as_with(q, v)
            .fetch_all(&self.inner.pool)
            .await?;
        super::backlog_rows(rows)
    }

    async fn claim_batch(
        &self,
        worker: &WorkerId,
        plan: &Plan,
        policy: FlushPolicy,
        lease: Duration,
    ) -> Result<Option<BatchClaim>> {
        let now = micros(OffsetDateTime::now_utc());
        let batch = BatchId::generate();
        let mut tx = self.inner.pool.begin().await?;
        let mut claimed = Vec::new();
        for (tenant, quota) in &plan.quotas {
            let (q, v) = render(&sql::claim_jobs(D, tenant, *quota, &batch, now), D);
            let rows: Vec<(String, i64, i64)> =
                sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
            claimed.extend(claiming::claimed_rows(tenant, rows));
        }
        if claimed.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let (keep, back) = claiming::settle(claimed, policy);
        let back: Vec<String> = back.into_iter().map(|c| c.key).collect();
        for ids in back.chunks(CHUNK) {
            let (q, v) = render(&sql::unclaim_jobs(&batch, ids.to_vec()), D);
            sqlx::query_with(q, v).execute(&mut *tx).await?;
        }
        let bytes = keep.iter().map(|c| c.bytes).sum();
        let (q, v) = render(
            &sql::insert_batch(
                &batch,
                worker,
                lease_until(now, lease),
                keep.len(),
                bytes,
                now,
            ),
            D,
        );
        sqlx::query_with(q, v).execute(&mut *tx).await?;
        let events = claiming::events(
            keep.iter()
                .map(|c| (c.key.clone(), c.tenant.as_str().to_owned())),
            JobState::Batched,
            now,
        );
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        let jobs = keep
            .into_iter()
            .map(|c| super::row::parse_job_id(&c.key))
            .collect::<Result<_>>()?;
        Ok(Some(BatchClaim { batch, jobs, bytes }))
    }

    async fn batch_requests(&self, batch: &BatchId) -> Result<Vec<BatchRequest>> {
        let (q, v) = render(&sql::batch_requests(batch), D);
        let rows = sqlx::query_as_with(q, v)
            .fetch_all(&self.inner.pool)
            .await?;
        claiming::requests(rows)
    }

    async fn begin_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<bool> {
        let now = micros(OffsetDateTime::now_utc());
        let extra = vec![
            (Batches::CreateStartedAt, now.into()),
            (Batches::LeaseExpiresAt, lease_until(now, lease).into()),
        ];
        let (q, v) = render(
            &sql::advance_batch(
                batch,
                worker,
                BatchState::Planned,
                BatchState::Creating,
                extra,
                now,
            ),
            D,
        );
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(changed.is_some())
    }

    async fn finish_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        api_batch_id: &str,
    ) -> Result<bool> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let extra = vec![
            (Batches::ApiBatchId, api_batch_id.into()),
            (Batches::SubmittedAt, now.into()),
            // Due for its first poll at once; the poller spaces the next ones.
            (Batches::LeaseExpiresAt, now.into()),
        ];
        let (q, v) = render(
            &sql::advance_batch(
                batch,
                worker,
                BatchState::Creating,
                BatchState::Submitted,
                extra,
                now,
            ),
            D,
        );
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&mut *tx)
            .await?;
        if changed.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        let (q, v) = render(&sql::submit_batch_jobs(batch, now), D);
        let rows: Vec<(String, String)> = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        let events = claiming::events(rows, JobState::Submitted, now);
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn abort_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        retry_at: i64,
    ) -> Result<bool> {
        let now = micros(OffsetDateTime::now_utc());
        let extra = vec![
            (Batches::LeaseExpiresAt, retry_at.into()),
            (Batches::CreateStartedAt, Option::<i64>::None.into()),
        ];
        let (q, v) = render(
            &sql::advance_batch(
                batch,
                worker,
                BatchState::Creating,
                BatchState::Planned,
                extra,
                now,
            ),
            D,
        );
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(changed.is_some())
    }

    async fn defer_reconcile(&self, batch: &BatchId, worker: &WorkerId, at: i64) -> Result<bool> {
        let now = micros(OffsetDateTime::now_utc());
        let extra = vec![(Batches::LeaseExpiresAt, at.into())];
        let (q, v) = render(
            &sql::advance_batch(
                batch,
                worker,
                BatchState::Creating,
                BatchState::Creating,
                extra,
                now,
            ),
            D,
        );
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(changed.is_some())
    }

    async fn known_api_batches(&self, api_ids: &[String]) -> Result<Vec<String>> {
        let mut known = Vec::new();
        for ids in api_ids.chunks(CHUNK) {
            let (q, v) = render(&sql::known_api_batches(ids.to_vec()), D);
            let rows: Vec<String> = sqlx::query_scalar_with(q, v)
                .fetch_all(&self.inner.pool)
                .await?;
            known.extend(rows);
        }
        Ok(known)
    }

    async fn take_over_expired(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<Vec<BatchRecord>> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(
            &sql::take_over_batches(D, worker, lease_until(now, lease), now),
            D,
        );
        let rows = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        claiming::records(rows)
    }

    async fn release(&self, worker: &WorkerId) -> Result<u64> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(&sql::release_planned(worker, now), D);
        let released: Vec<String> = sqlx::query_scalar_with(q, v).fetch_all(&mut *tx).await?;
        let mut events = Vec::new();
        for ids in released.chunks(CHUNK) {
            let (q, v) = render(&sql::requeue_batches(ids.to_vec(), now), D);
            let rows: Vec<(String, String)> = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
            events.extend(claiming::events(rows, JobState::Queued, now));
        }
        append_events(&mut tx, &events).await?;
        let (q, v) = render(&sql::expire_creating(worker, now), D);
        let expired: Vec<String> = sqlx::query_scalar_with(q, v).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(u64::try_from(released.len() + expired.len()).unwrap_or(u64::MAX))
    }

    async fn claim_poll(&self, worker: &WorkerId, lease: Duration) -> Result<Option<PollClaim>> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(&sql::claim_poll(D, worker, lease_until(now, lease), now), D);
        let row: Option<(String, Option<String>, Option<i64>)> =
            sqlx::query_as_with(q, v).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(row.map(|(id, api, at)| PollClaim {
            batch: BatchId(id),
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
        let now = micros(OffsetDateTime::now_utc());
        let (q, v) = render(&sql::defer_poll(batch, worker, next_poll_at, now), D);
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(changed.is_some())
    }

    async fn ingest(
        &self,
        batch: &BatchId,
        items: &[ResultItem],
        max_attempts: u32,
    ) -> Result<IngestCounts> {
        let now = micros(OffsetDateTime::now_utc());
        let mut counts = IngestCounts::default();
        let mut events = Vec::new();
        let mut tx = self.inner.pool.begin().await?;
        for item in items {
            let mut matched = false;
            for (step, stmt) in claiming::ingest_steps(item, batch, max_attempts, now)? {
                let (q, v) = render(&stmt, D);
                let row: Option<(String, String)> =
                    sqlx::query_as_with(q, v).fetch_optional(&mut *tx).await?;
                if let Some((id, tenant)) = row {
                    step.count(&mut counts);
                    if let Some(state) = step.entered() {
                        events.push(NewEvent {
                            tenant,
                            job_id: id,
                            state,
                            at: now,
                        });
                    }
                    matched = true;
                    break;
                }
            }
            if !matched {
                counts.unchanged += 1;
            }
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn end_batch(&self, batch: &BatchId, worker: &WorkerId) -> Result<bool> {
        let now = micros(OffsetDateTime::now_utc());
        let (q, v) = render(
            &sql::advance_batch(
                batch,
                worker,
                BatchState::Submitted,
                BatchState::Ended,
                vec![],
                now,
            ),
            D,
        );
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(changed.is_some())
    }

    async fn claim_usage(
        &self,
        worker: &WorkerId,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<UsageRecord>> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(
            &sql::claim_usage(D, worker, limit, lease_until(now, lease), now),
            D,
        );
        let rows = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        claiming::usage_records(rows)
    }

    async fn mark_usage_recorded(&self, jobs: &[JobId]) -> Result<()> {
        for ids in jobs.chunks(CHUNK) {
            let ids = ids.iter().map(|j| j.as_str().to_owned()).collect();
            let (q, v) = render(&sql::mark_usage_recorded(ids), D);
            sqlx::query_with(q, v).execute(&self.inner.pool).await?;
        }
        Ok(())
    }

    async fn claim_urgent(
        &self,
        worker: &WorkerId,
        limit: usize,
        lease: Duration,
    ) -> Result<UrgentClaim> {
        let now = micros(OffsetDateTime::now_utc());
        let token = BatchId::urgent();
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(
            &sql::claim_urgent(D, worker, &token, limit, lease_until(now, lease), now),
            D,
        );
        let rows: Vec<(String, String, String)> =
            sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        let events = claiming::events(
            rows.iter()
                .map(|(id, tenant, _)| (id.clone(), tenant.clone())),
            JobState::Submitted,
            now,
        );
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(UrgentClaim {
            token,
            requests: claiming::requests(rows)?,
        })
    }

    async fn sweep(&self) -> Result<u64> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(&sql::requeue_stale_urgent(now), D);
        let requeued: Vec<(String, String)> = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        let (q, v) = render(&sql::expire_overdue(now), D);
        let expired: Vec<(String, String)> = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
        let (q, v) = render(&sql::promote_overdue(now), D);
        let promoted: Vec<String> = sqlx::query_scalar_with(q, v).fetch_all(&mut *tx).await?;
        let changed = requeued.len() + expired.len() + promoted.len();
        let mut events = claiming::events(requeued, JobState::Queued, now);
        events.extend(claiming::events(expired, JobState::Expired, now));
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}
