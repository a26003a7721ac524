//! [`Repair`]: an operator's repairs, with the budget holds kept in step.

use std::time::Duration;

use tenantry_queue::{
    BatchInfo, Cursor, DeadUsage, HoldId, Job, JobFilter, JobId, JobState, Lane, Page, Purge,
    Purged, StaleJobs, TenantId,
};

use crate::error::Result;
use crate::handle::{Tenantry, job_id, tenant_id};
use crate::request::Request;

/// Dead letters and repairs, from [`Tenantry::repair`]: list and inspect failed jobs and usage
/// the ledger could not price, retry jobs, re-price usage, purge finished jobs and old events.
///
/// Every call is scoped by tenant (another tenant's job is "not found") and every change is
/// recorded on the job's event stream in the transaction that makes it: a retry as `queued`,
/// a re-price as [`JobState::UsageRepriced`], a purge as [`JobState::Purged`].
///
/// # Example
///
/// ```no_run
/// # async fn demo(tenantry: tenantry::Tenantry) -> tenantry::Result<()> {
/// let repair = tenantry.repair();
/// for job in repair.failed("acme", 50, None).await?.items() {
///     // A new attempt of the same job, with a new budget hold.
///     let again = repair.retry("acme", job.id.as_str()).await?;
///     println!("{} is {}", again.id, again.state);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Repair<'a> {
    tenantry: &'a Tenantry,
}

impl<'a> Repair<'a> {
    pub(crate) fn new(tenantry: &'a Tenantry) -> Self {
        Self { tenantry }
    }

    /// One page of the tenant's failed jobs, newest first, with their errors (`limit` is
    /// clamped to 1..=1000; 0 means 100).
    ///
    /// # Errors
    ///
    /// A bad tenant id or cursor; a database error.
    pub async fn failed(
        &self,
        tenant: &str,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Job>> {
        let filter = JobFilter::new().states([JobState::Failed]).limit(limit);
        Ok(self
            .tenantry
            .inner
            .store
            .jobs()
            .list(&tenant_id(tenant)?, &filter, cursor)
            .await?)
    }

    /// The tenant's usage the ledger could not price, oldest first, at most `limit`, with the
    /// ledger's reasons (as [`Tenantry::dead_usage`]).
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error.
    pub async fn dead_usage(&self, tenant: &str, limit: u32) -> Result<Vec<DeadUsage>> {
        self.tenantry.dead_usage(tenant, limit).await
    }

    /// Runs a failed, canceled or expired job again: the same job id and idempotency key, a new
    /// attempt (counted before its request is sent). Its new attempt's worst-case cost is held
    /// against the tenant's budgets first, as at submit, and the job carries that hold; the
    /// previous attempt's hold, if it is still held, is given back. A running engine picks it up
    /// at its next step. Returns the job, `queued`.
    ///
    /// # Errors
    ///
    /// Not found (also another tenant's job); [`Error::Cost`](crate::Error::Cost) when the
    /// budget refuses the hold ([`Error::is_budget_exceeded`](crate::Error::is_budget_exceeded));
    /// [`Error::Queue`](crate::Error::Queue) with `NotRetryable` (code `CONFLICT`) for a job
    /// that is open or succeeded, or whose last attempt is not settled (its usage waits for the
    /// ledger, or its request may still be at the API); a database error. Nothing is held or
    /// changed then.
    pub async fn retry(&self, tenant: &str, id: &str) -> Result<Job> {
        let (tenant, id) = (tenant_id(tenant)?, job_id(id)?);
        let inner = &self.tenantry.inner;
        let job = inner.store.jobs().job(&tenant, &id).await?;
        // Refused before any hold is taken, so a full budget does not hide the reason.
        if !job.state.can_be_retried() {
            return Err(tenantry_queue::Error::NotRetryable {
                id: id.to_string(),
                state: job.state,
                reason: "only a failed, canceled or expired job can be retried",
            }
            .into());
        }
        let mut request = Request::new(job.feature.clone(), job.user.clone(), job.params.clone());
        if job.lane == Lane::Urgent {
            request = request.urgent();
        }
        let held = self.tenantry.hold_all(&tenant, &[request]).await?;
        let hold = held.first().copied().map(HoldId::new);
        // Until the job carries the new hold, only this call knows it: whatever fails in
        // between gives it back here (a crash leaves it to the engine's reconciliation of
        // holds with jobs, which finds no job holding it).
        let stored = async {
            tenantry_queue::failpoint!("retry.held");
            Ok::<_, crate::Error>(inner.store.repair().retry(&tenant, &id, hold).await?)
        };
        let after = match stored.await {
            Ok(after) => after,
            Err(e) => {
                self.tenantry.release_all(&held).await;
                return Err(e);
            }
        };
        tenantry_queue::failpoint!("retry.stored");
        // The previous attempt is settled (the queue refuses otherwise): its hold, if still
        // held, can no longer be billed. A crash before this leaves it to the engine's
        // reconciliation of holds with jobs, which finds no job holding it.
        if let Some(old) = job.hold
            && Some(old) != hold
            && let Err(e) = inner.ledger.release(old.get()).await
        {
            tracing::warn!(hold = old.get(), error = %e, "giving back the previous attempt's hold failed; it lapses at its TTL");
        }
        Ok(after)
    }

    /// Hands one job's dead-lettered usage back to the engine once the price book is fixed
    /// (as [`reprice_all`](Self::reprice_all), for one job). Returns how many records.
    ///
    /// # Errors
    ///
    /// Not found (also another tenant's job); a database error.
    pub async fn reprice(&self, tenant: &str, id: &str) -> Result<u64> {
        Ok(self
            .tenantry
            .inner
            .store
            .repair()
            .reprice_job(&tenant_id(tenant)?, &job_id(id)?)
            .await?)
    }

    /// Hands all of the tenant's dead-lettered usage back to the engine (as
    /// [`Tenantry::reprice_usage`]). Returns how many records.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error.
    pub async fn reprice_all(&self, tenant: &str) -> Result<u64> {
        self.tenantry.reprice_usage(tenant).await
    }

    /// Deletes the tenant's jobs that finished before the cutoff and its events older than it,
    /// in small transactions (see [`RepairStore::purge`](tenantry_queue::RepairStore::purge)
    /// for what is always kept). Ledger lines are never purged: they are the audit trail.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error (the transactions committed before it stay).
    pub async fn purge(&self, tenant: &str, purge: &Purge) -> Result<Purged> {
        Ok(self
            .tenantry
            .inner
            .store
            .repair()
            .purge(&tenant_id(tenant)?, purge)
            .await?)
    }

    /// Open jobs that have not changed for `unchanged_for`, per state, every tenant together.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn stale_open_jobs(&self, unchanged_for: Duration) -> Result<Vec<StaleJobs>> {
        Ok(self
            .tenantry
            .inner
            .store
            .repair()
            .stale_open_jobs(unchanged_for)
            .await?)
    }

    /// The database's clock minus this host's, in microseconds (0 on SQLite).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn clock_offset_micros(&self) -> Result<i64> {
        Ok(self
            .tenantry
            .inner
            .store
            .repair()
            .clock_offset_micros()
            .await?)
    }

    /// The newest `limit` batch records (1..=1000), every tenant's: an operator's view.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn batches(&self, limit: u32) -> Result<Vec<BatchInfo>> {
        Ok(self.tenantry.inner.store.repair().batches(limit).await?)
    }

    /// One batch record, by the queue's id or the API's, with its jobs (`tenant, job, state`);
    /// `None` when there is none.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn batch(
        &self,
        id: &str,
    ) -> Result<Option<(BatchInfo, Vec<(TenantId, JobId, JobState)>)>> {
        let repair = self.tenantry.inner.store.repair();
        let Some(batch) = repair.batch(id).await? else {
            return Ok(None);
        };
        let jobs = repair.batch_jobs(&batch.id).await?;
        Ok(Some((batch, jobs)))
    }

    /// Asks the engine to reconcile a submitted batch (by the queue's id) with the API now:
    /// the next engine step polls it and ingests its results if it has ended, instead of
    /// waiting for its next scheduled poll. `false` when nothing changed: the batch is being
    /// polled or is already due, or it is not `submitted` (a batch left `creating` is
    /// reconciled with the API's batch list by the engine that takes it over when its lease
    /// ends; an ended one has nothing left to ask).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn poll_batch_now(&self, id: &str) -> Result<bool> {
        Ok(self.tenantry.inner.store.repair().poll_now(id).await?)
    }

    /// Open event listener connections on the database (PostgreSQL), `None` on SQLite.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn listeners(&self) -> Result<Option<u64>> {
        Ok(self.tenantry.inner.store.repair().listeners().await?)
    }
}
