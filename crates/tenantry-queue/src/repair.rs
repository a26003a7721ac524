//! Repairs an operator makes: retrying finished jobs, re-pricing one job's dead-lettered usage,
//! purging finished jobs and old events after a retention period, and the health figures a
//! check reads (open jobs that stopped moving, live listeners, the database's clock).

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::TenantId;
use crate::claim::BatchState;
use crate::error::Result;
use crate::ids::JobId;
use crate::job::{HoldId, Job, JobState};
use crate::store::JobStore;

/// Rows a purge deletes per transaction unless told otherwise.
pub const DEFAULT_PURGE_BATCH: u32 = 500;
/// The most rows a purge deletes per transaction.
pub const MAX_PURGE_BATCH: u32 = 10_000;

/// What [`RepairStore::purge`] deletes: the tenant's jobs that finished before a time, and its
/// events older than it, a bounded number of rows per transaction.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tenantry_queue::{DEFAULT_PURGE_BATCH, Purge};
///
/// let thirty_days_ago = time::OffsetDateTime::now_utc() - Duration::from_secs(30 * 86_400);
/// let purge = Purge::before(thirty_days_ago).batch_size(200);
/// assert_eq!(purge.rows_per_transaction(), 200);
/// assert_eq!(Purge::before(thirty_days_ago).rows_per_transaction(), DEFAULT_PURGE_BATCH);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Purge {
    pub(crate) before: OffsetDateTime,
    pub(crate) batch: u32,
}

impl Purge {
    /// Jobs that finished before `cutoff` and events older than it, 500 rows per transaction.
    pub fn before(cutoff: OffsetDateTime) -> Self {
        Self {
            before: cutoff,
            batch: DEFAULT_PURGE_BATCH,
        }
    }

    /// Rows deleted per transaction. Default [`DEFAULT_PURGE_BATCH`]; clamped to
    /// `1..=`[`MAX_PURGE_BATCH`].
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch = rows.clamp(1, MAX_PURGE_BATCH);
        self
    }

    /// The cutoff.
    #[must_use]
    pub fn cutoff(&self) -> OffsetDateTime {
        self.before
    }

    /// Rows deleted per transaction.
    #[must_use]
    pub fn rows_per_transaction(&self) -> u32 {
        self.batch
    }
}

/// What a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purged {
    /// Jobs deleted (each announced by a [`JobState::Purged`] event).
    pub jobs: u64,
    /// Events deleted.
    pub events: u64,
    /// Transactions it took, none holding more than the batch size of rows.
    pub transactions: u64,
}

/// Open jobs in one state that have not changed for a while, every tenant together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleJobs {
    /// The open state (queued, batched or submitted).
    pub state: JobState,
    /// How many jobs.
    pub jobs: u64,
    /// When the one that has waited longest last changed.
    pub oldest_change: OffsetDateTime,
}

/// A batch record as an operator sees it. Batches hold requests of many tenants, so this view
/// is for operators, never for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchInfo {
    /// The queue's id (`qb_…`, or `qd_…` for a duplicate API batch).
    pub id: String,
    /// Where it is.
    pub state: BatchState,
    /// The API's id, once the create returned.
    pub api_batch_id: Option<String>,
    /// Requests planned into it.
    pub requests: u64,
    /// Their bytes, overhead included.
    pub bytes: u64,
    /// When it was planned.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// When the API accepted it.
    pub submitted_at: Option<OffsetDateTime>,
    /// When its lease (a claim, or its next poll) ends.
    pub lease_expires_at: Option<OffsetDateTime>,
}

/// Repairs on top of [`JobStore`], every one scoped by tenant and recorded on the job's event
/// stream, in the transaction that makes it.
///
/// Sealed like [`JobStore`] (its supertrait): the two stores are its only implementations.
///
/// # Example
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_queue::{JobState, JobStore, RepairStore, SqliteStore, SubmitOptions, TenantId};
///
/// let store = SqliteStore::open(sqlx::SqlitePool::connect("sqlite::memory:").await?).await?;
/// let acme = TenantId::new("acme")?;
/// let params = serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 64,
///     "messages": [{"role": "user", "content": "hi"}]});
/// let id = store.submit(&acme, "triage", "user-7", params, SubmitOptions::new()).await?;
/// store.cancel(&acme, &id).await?;
///
/// // Canceled before it was sent: it may run again, same job, same idempotency key.
/// let job = store.retry(&acme, &id, None).await?;
/// assert_eq!(job.state, JobState::Queued);
/// // Another tenant's job is not found.
/// let globex = TenantId::new("globex")?;
/// assert!(store.retry(&globex, &id, None).await.unwrap_err().is_not_found());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait RepairStore: JobStore {
    /// Sends a failed, canceled or expired job back to `queued` for a new attempt: the same
    /// job id and idempotency key, due at once, out of its old batch, with `hold` as the budget
    /// hold of the new attempt (`None`: none). A deadline that has passed is cleared (it would
    /// end the job again at once); its last error stays until a result replaces it. The attempt
    /// is counted, as for every job, in the transaction that records the request may be sent
    /// (a batch's create, an urgent claim), before anything is sent. Appends a `queued` event.
    ///
    /// Refused, changing nothing, while the job's billed usage is not yet recorded (pending,
    /// being handed over, or dead-lettered: re-price it first), and for a job canceled or
    /// expired while its request was out until that request's batch has ended (its result
    /// could still arrive).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) (also for another tenant's job),
    /// [`Error::NotRetryable`](crate::Error::NotRetryable) naming the state and the reason, or a
    /// database error.
    async fn retry(&self, tenant: &TenantId, id: &JobId, hold: Option<HoldId>) -> Result<Job>;

    /// [`JobStore::reprice_usage`] for one job: hands its dead-lettered usage (on its row and
    /// billed off it) back to the sink, with a [`JobState::UsageRepriced`] event. Returns how
    /// many records were handed back (0 when it had none).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when the tenant has no such job, or a
    /// database error.
    async fn reprice_job(&self, tenant: &TenantId, id: &JobId) -> Result<u64>;

    /// Deletes the tenant's jobs that finished before the purge's cutoff, and its events older
    /// than it, in transactions of at most [`Purge::batch_size`] rows each, so no transaction
    /// holds many rows or runs long; on PostgreSQL rows another transaction holds are skipped.
    /// Each deleted job gets a [`JobState::Purged`] event in the transaction that deletes it.
    ///
    /// Kept whatever their age: unfinished jobs and their events; jobs whose billed usage is not
    /// recorded yet (also usage billed off their row); jobs a batch that has not ended sent
    /// (its results could still name them). Batch records are shared by tenants and stay.
    ///
    /// # Errors
    ///
    /// A database error; the transactions committed before it stay.
    async fn purge(&self, tenant: &TenantId, purge: &Purge) -> Result<Purged>;

    /// Per open state, every tenant together, the jobs that have not changed for
    /// `unchanged_for` (on the database's clock): an engine that stopped, or a batch the API
    /// is slow with. States without such jobs are left out.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn stale_open_jobs(&self, unchanged_for: Duration) -> Result<Vec<StaleJobs>>;

    /// The database's clock minus this host's, in microseconds, measured now (0 on SQLite,
    /// which runs on the host's clock). Leases and deadlines are on the database's clock.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn clock_offset_micros(&self) -> Result<i64>;

    /// The newest `limit` batch records, every tenant's (an operator's view).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn batches(&self, limit: u32) -> Result<Vec<BatchInfo>>;

    /// One batch record, by the queue's id or the API's; `None` when there is none.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn batch(&self, id: &str) -> Result<Option<BatchInfo>>;

    /// The jobs of a batch record (by the queue's id), every tenant's: `(tenant, job, state)`
    /// of those it sent and those planned into it, in id order (an operator's view).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn batch_jobs(&self, id: &str) -> Result<Vec<(TenantId, JobId, JobState)>>;

    /// Makes a submitted batch (by the queue's id) due now, so the next engine step asks the
    /// API for its status and ingests its results if it has ended, instead of waiting for its
    /// next scheduled poll. Only a batch no engine is polling this moment is touched (a poll in
    /// progress answers the same question); returns whether it was made due. A batch in any
    /// other state is left alone: one left `creating` is reconciled with the API's batch list
    /// by the engine that takes it over when its lease ends, and an ended one has nothing left
    /// to ask.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn poll_now(&self, id: &str) -> Result<bool>;

    /// How many event listener connections are open on the database (PostgreSQL: sessions of
    /// [`LISTENER_APPLICATION_NAME`](crate::LISTENER_APPLICATION_NAME); one per process that
    /// subscribes). `None` on SQLite, whose events travel inside the process.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn listeners(&self) -> Result<Option<u64>>;
}
