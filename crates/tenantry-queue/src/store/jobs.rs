//! [`JobStore`] for both stores, written once over [`Store`](super::backend::Store).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tenantry_core::db::Tx;
use time::OffsetDateTime;

use crate::TenantId;
use crate::error::{Error, Result};
use crate::event::{self, JobEvent, Position, Subscription};
use crate::ids::JobId;
use crate::ingest::DeadUsage;
use crate::job::{HoldId, Job, JobFilter, JobState, Submission};
use crate::store::JobStore;
use crate::store::backend::Store;
use crate::store::row::{EventRow, JobRow, parse_job_id};
use crate::store::sql::{self, events::NewEvent};
use crate::store::{cursors, outbox};
use crate::validate::{micros, prepare_many};
use crate::{Cursor, Page};

/// Whether the job's request may already be at the API, decided under a lock on its batch
/// record (PostgreSQL; SQLite serialises every write): a `batched` job whose batch has not
/// begun its create is not out, and that create, waiting on the lock, will not send it.
async fn request_may_be_out(tx: &mut Tx, tenant: &TenantId, id: &JobId) -> Result<bool> {
    let row: Option<(String, Option<String>)> = tx
        .fetch_optional(&sql::jobs::job_state_and_batch(tenant, id))
        .await?;
    let Some((state, Some(batch))) = row else {
        return Ok(false);
    };
    if state != JobState::Batched.as_str() {
        return Ok(true);
    }
    let record: Option<(String,)> = tx
        .fetch_optional(&sql::jobs::lock_batch_state(tx.backend(), &batch))
        .await?;
    Ok(record.is_some_and(|(state,)| state != crate::claim::BatchState::Planned.as_str()))
}

/// A subscription to `tenant`'s events after `after`, woken through `wake`.
fn follow<S: Store>(
    store: &S,
    tenant: &TenantId,
    after: Position,
    wake: tokio::sync::broadcast::Receiver<crate::event::Wake>,
) -> Subscription {
    event::spawn_subscription(
        Arc::new(store.clone()),
        tenant.clone(),
        after,
        wake,
        store.poll_interval(),
    )
}

#[async_trait]
impl<S: Store> JobStore for S {
    #[tracing::instrument(name = "tenantry.queue.submit_many", level = "info", skip_all,
        fields(tenant = %tenant, jobs = submissions.len()))]
    async fn submit_many(
        &self,
        tenant: &TenantId,
        submissions: &[Submission],
    ) -> Result<Vec<JobId>> {
        // Deadlines and flush times are on the database's clock, like every lease.
        let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.clock_now()) * 1000)
            .map_err(|e| Error::Corrupt {
                what: "database clock",
                detail: e.to_string(),
            })?;
        let jobs = prepare_many(tenant, submissions, now)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let inserted = self.insert_new_jobs(tenant, &jobs, micros(now)).await?;
        crate::telemetry::submitted(inserted.len());
        let dup_keys: Vec<String> = jobs
            .iter()
            .filter(|j| !inserted.contains(j.id.as_str()))
            .filter_map(|j| j.idempotency_key.clone())
            .collect();
        // The jobs holding these keys are committed: a conflicting insert waits for the
        // transaction that holds the key to end.
        let mut existing = HashMap::new();
        for keys in dup_keys.chunks(S::CHUNK) {
            let rows: Vec<(String, String)> = self
                .pool()
                .fetch_all(&sql::submit::jobs_by_keys(tenant, keys.to_vec()))
                .await?;
            existing.extend(rows.into_iter().map(|(id, key)| (key, id)));
        }
        jobs.into_iter()
            .map(|j| {
                if inserted.contains(j.id.as_str()) {
                    return Ok(j.id);
                }
                let key = j.idempotency_key.unwrap_or_default();
                let id = existing.get(&key).ok_or_else(|| Error::Corrupt {
                    what: "idempotency key",
                    detail: "conflicting insert but no job holds the key".to_owned(),
                })?;
                parse_job_id(id)
            })
            .collect()
    }

    async fn job(&self, tenant: &TenantId, id: &JobId) -> Result<Job> {
        let row: Option<JobRow> = self
            .pool()
            .fetch_optional(&sql::jobs::select_job(tenant, id))
            .await?;
        row.ok_or_else(|| Error::NotFound { id: id.to_string() })?
            .try_into()
    }

    #[tracing::instrument(name = "tenantry.queue.cancel", level = "info", skip_all,
        fields(tenant = %tenant, job = %id))]
    async fn cancel(&self, tenant: &TenantId, id: &JobId) -> Result<Job> {
        let now = self.clock_now();
        let mut tx = self.begin().await?;
        let request_out = request_may_be_out(&mut tx, tenant, id).await?;
        let changed: Option<(String,)> = tx
            .fetch_optional(&sql::jobs::cancel_job(tenant, id, now, request_out))
            .await?;
        let row: Option<JobRow> = tx
            .fetch_optional(&sql::jobs::select_job(tenant, id))
            .await?;
        let events: Vec<NewEvent> = changed
            .map(|_| NewEvent {
                tenant: tenant.as_str().to_owned(),
                job_id: id.as_str().to_owned(),
                state: JobState::Canceled,
                at: now,
            })
            .into_iter()
            .collect();
        self.commit(tx, &events).await?;
        let job: Job = row
            .ok_or_else(|| Error::NotFound { id: id.to_string() })?
            .try_into()?;
        super::cancel_outcome(job)
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Job>> {
        let before = cursor.map(super::list_position).transpose()?;
        let rows: Vec<JobRow> = self
            .pool()
            .fetch_all(&sql::jobs::list_jobs(tenant, filter, before.as_ref()))
            .await?;
        super::page(rows, filter)
    }

    async fn events_after(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        let rows: Vec<EventRow> = self
            .pool()
            .fetch_all(&sql::events::events_after(tenant, after, limit))
            .await?;
        rows.into_iter().map(|r| r.into_event(tenant)).collect()
    }

    async fn latest_position(&self, tenant: &TenantId) -> Result<Position> {
        let seq: Option<(Option<i64>,)> = self
            .pool()
            .fetch_optional(&sql::events::latest_position(tenant))
            .await?;
        Ok(Position(seq.and_then(|(s,)| s).unwrap_or(0)))
    }

    async fn subscribe(&self, tenant: &TenantId) -> Result<Subscription> {
        // The wake-up receiver is taken (on PostgreSQL: LISTEN committed) before the
        // position is read, so nothing committed after that read is missed.
        let wake = self.wake().await?;
        let after = self.latest_position(tenant).await?;
        Ok(follow(self, tenant, after, wake))
    }

    async fn subscribe_after(&self, tenant: &TenantId, after: Position) -> Result<Subscription> {
        let wake = self.wake().await?;
        Ok(follow(self, tenant, after, wake))
    }

    async fn dead_usage(&self, tenant: &TenantId, limit: u32) -> Result<Vec<DeadUsage>> {
        outbox::dead_of(self, tenant, limit).await
    }

    async fn reprice_usage(&self, tenant: &TenantId) -> Result<u64> {
        outbox::reprice_all(self, tenant, None).await
    }

    async fn holds_in_use(&self, tenant: &TenantId, holds: &[HoldId]) -> Result<Vec<HoldId>> {
        let mut in_use = Vec::new();
        for chunk in holds.chunks(S::CHUNK) {
            let ids = chunk.iter().map(|h| h.get()).collect();
            let rows: Vec<(i64,)> = self
                .pool()
                .fetch_all(&sql::jobs::holds_in_use(tenant, ids))
                .await?;
            in_use.extend(rows.into_iter().map(|(id,)| HoldId::new(id)));
        }
        Ok(in_use)
    }

    async fn consumer_position(&self, consumer: &str, tenant: &TenantId) -> Result<Position> {
        let position: Option<(i64,)> = self
            .pool()
            .fetch_optional(&cursors::position(consumer, tenant))
            .await?;
        Ok(position.map_or(Position::START, |(p,)| Position(p)))
    }

    async fn advance_consumer(
        &self,
        consumer: &str,
        tenant: &TenantId,
        position: Position,
    ) -> Result<()> {
        self.pool()
            .execute(&cursors::advance(consumer, tenant, position))
            .await?;
        Ok(())
    }
}
