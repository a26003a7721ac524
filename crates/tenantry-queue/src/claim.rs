//! The engine's side of the store: claiming jobs into batches, and the batch record that
//! makes a crash around "create batch" recoverable.
//!
//! # Batch records
//!
//! Claiming a batch writes a row to `tenantry_queue_batches` in the same transaction as the
//! jobs' move to `batched`, leased to the claiming worker. Before calling the API, the worker
//! records `creating` ([`ClaimStore::begin_create`]); after it, `submitted` with the API's
//! batch id ([`ClaimStore::finish_create`]). Every step is fenced by owner and state, so a
//! worker whose lease was taken over cannot move the batch on. A batch left in `planned` or
//! `creating` by a dead worker is taken over when its lease expires
//! ([`ClaimStore::take_over_expired`]); one left in `creating` must be reconciled with the
//! API (the create may or may not have happened), never created again blindly.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::Lane;
use crate::TenantId;
use crate::error::Result;
use crate::ids::JobId;
use crate::ingest::{IngestCounts, MissingResult, ResultItem, UsageRecord};
use crate::planner::{FlushPolicy, Plan, TenantBacklog};
use crate::store::JobStore;

fn prefixed(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// One engine instance, the owner of its claims and leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerId(pub(crate) String);

impl WorkerId {
    /// A fresh worker id (`w_` + UUIDv7).
    #[must_use]
    pub fn generate() -> Self {
        Self(prefixed("w_"))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A batch as the queue knows it (`qb_` + UUIDv7), before and after the API knows it, or the
/// claim token of one wave of urgent-lane calls (`qu_` + UUIDv7).
///
/// It carries the [`Lane`] of the calls whose results it fences, set where it is made (a
/// batch record is the batch lane, an urgent claim the urgent lane), so usage billed under it
/// is priced at that lane's rate without reading the lane back from the id's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    id: String,
    lane: Lane,
}

impl BatchId {
    pub(crate) fn generate() -> Self {
        Self::record(prefixed("qb_"))
    }

    pub(crate) fn urgent() -> Self {
        Self {
            id: prefixed("qu_"),
            lane: Lane::Urgent,
        }
    }

    /// A batch record read back from the batches table: every record is a Message Batch.
    pub(crate) fn record(id: String) -> Self {
        Self {
            id,
            lane: Lane::Batch,
        }
    }

    /// The record of a duplicate API batch (`qd_` + the API's id): one per API batch.
    pub(crate) fn duplicate(api_batch_id: &str) -> Self {
        Self::record(format!("qd_{api_batch_id}"))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The lane of the calls whose results this id fences: [`Lane::Batch`] for a batch
    /// record, [`Lane::Urgent`] for an urgent claim token.
    #[must_use]
    pub fn lane(&self) -> Lane {
        self.lane
    }
}

/// The text is not a queue batch id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue batch id (expected `qb_` and 32 hex digits)")]
pub struct ParseBatchIdError;

impl std::str::FromStr for BatchId {
    type Err = ParseBatchIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("qb_").ok_or(ParseBatchIdError)?;
        if hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self::record(s.to_owned()))
        } else {
            Err(ParseBatchIdError)
        }
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Where a batch record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchState {
    /// Jobs claimed; the API has not been called.
    Planned,
    /// The create call is (or was, if the worker died) in flight: reconcile before retrying.
    Creating,
    /// The API accepted the batch; its id is recorded.
    Submitted,
    /// Given up before creation (graceful shutdown); its jobs went back to `queued`.
    Released,
    /// The API ended the batch and its results were ingested.
    Ended,
}

impl BatchState {
    /// The state's stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Creating => "creating",
            Self::Submitted => "submitted",
            Self::Released => "released",
            Self::Ended => "ended",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Planned,
            Self::Creating,
            Self::Submitted,
            Self::Released,
            Self::Ended,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A batch just claimed by [`ClaimStore::claim_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchClaim {
    /// The new batch record.
    pub batch: BatchId,
    /// Its jobs, in fair claim order.
    pub jobs: Vec<JobId>,
    /// Their body bytes, overhead included.
    pub bytes: u64,
}

/// A batch record taken over from a worker whose lease expired.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchRecord {
    /// The batch.
    pub batch: BatchId,
    /// Its state when taken over ([`BatchState::Planned`] or [`BatchState::Creating`]).
    pub state: BatchState,
    /// When the create call was started (microseconds since the epoch), if it was.
    pub create_started_at: Option<i64>,
    /// When the create call was started in the API's clock, as a lower bound (microseconds
    /// since the epoch), if the sender knew the API's clock then. Every batch the call can
    /// have created was created at or after it.
    pub create_sent_api_at: Option<i64>,
}

/// A submitted batch this worker may poll now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollClaim {
    /// The batch.
    pub batch: BatchId,
    /// The API's id for it.
    pub api_batch_id: String,
    /// When the API accepted it (microseconds since the epoch).
    pub submitted_at: i64,
}

/// Urgent jobs claimed for one wave of Messages API calls.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UrgentClaim {
    /// The claim token that fences their results (pass it to [`ClaimStore::ingest`]).
    pub token: BatchId,
    /// The requests.
    pub requests: Vec<BatchRequest>,
}

/// One request of a batch to create: the job id is the `custom_id`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchRequest {
    /// The job, also the request's `custom_id`.
    pub job: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The Messages API request body.
    pub params: serde_json::Value,
}

/// Claiming and batch bookkeeping for the engine, on top of [`JobStore`].
///
/// On PostgreSQL every claim takes its rows with `FOR UPDATE SKIP LOCKED` inside the
/// statement that changes their state, so concurrent engines never claim the same job.
///
/// Sealed like [`JobStore`] (its supertrait): the two stores are its only implementations.
#[async_trait]
pub trait ClaimStore: JobStore {
    /// The store's clock (the database's), in microseconds since the epoch. Every lease,
    /// deadline and poll time is on it, so engines on hosts whose clocks disagree still agree
    /// on when a lease ends.
    fn now(&self) -> i64;

    /// Measures the database clock's offset from this host's again when the last measure
    /// is older than 30 s (a PostgreSQL round trip; nothing on SQLite).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn sync_clock(&self) -> Result<()>;

    /// Extends `worker`'s lease on a batch it holds (`planned`, `creating`, or claimed for a
    /// poll) to `lease` from now, while a call for it is in flight. `false` when it no longer
    /// holds it.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn renew_batch(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<bool>;

    /// Extends `worker`'s lease on the urgent calls of claim `token` still in flight to
    /// `lease` from now. Returns how many it extended.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn renew_urgent(
        &self,
        token: &BatchId,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<u64>;

    /// The open batch-lane backlog, per tenant (what [`planner::plan`](crate::planner::plan) needs).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn backlog(&self) -> Result<Vec<TenantBacklog>>;

    /// Claims the planned jobs into a new batch record leased to `worker`, trimmed to the
    /// policy's byte limit; jobs locked by another worker are skipped. `None` when nothing
    /// could be claimed.
    ///
    /// # Errors
    ///
    /// A database error; nothing is claimed then.
    async fn claim_batch(
        &self,
        worker: &WorkerId,
        plan: &Plan,
        policy: FlushPolicy,
        lease: Duration,
    ) -> Result<Option<BatchClaim>>;

    /// The requests of a batch: its jobs still `batched` (a job canceled since the claim is
    /// left out).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn batch_requests(&self, batch: &BatchId) -> Result<Vec<BatchRequest>>;

    /// Records that the create call is about to start (`planned → creating`), extending the
    /// lease, and freezes the batch's membership: those of `send` still `batched` in it, in
    /// the same transaction, so a job canceled before this is never sent and one canceled after
    /// it is known to be out. Each member's attempt is counted here, since its request may
    /// reach the API from now on. `sent_api_at` is the send time in the API's clock (microseconds,
    /// a lower bound) when the engine knows it. Returns the members to send, or `None` when
    /// `worker` no longer owns the batch in `planned`.
    ///
    /// # Errors
    ///
    /// A database error; nothing changes then.
    async fn begin_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        lease: Duration,
        send: &[JobId],
        sent_api_at: Option<i64>,
    ) -> Result<Option<Vec<JobId>>>;

    /// The jobs whose requests the batch's create sent (or is sending), whatever their state
    /// now; empty before [`begin_create`](Self::begin_create) and after
    /// [`abort_create`](Self::abort_create).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn batch_members(&self, batch: &BatchId) -> Result<Vec<JobId>>;

    /// Records the API's batch id (`creating → submitted`) and moves the batch's `batched`
    /// jobs to `submitted` (their attempt was counted by [`begin_create`](Self::begin_create)). `false` when `worker` no longer owns the
    /// batch in `creating`.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn finish_create(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        api_batch_id: &str,
    ) -> Result<bool>;

    /// Records that the create call certainly did not happen (the API refused it), moving
    /// the batch back to `planned` with its lease ending at `retry_at` (microseconds since
    /// the epoch), when it may be taken over and tried again, and forgetting its members and
    /// the attempt counted for them. `false` when `worker` no
    /// longer owns the batch in `creating`.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn abort_create(&self, batch: &BatchId, worker: &WorkerId, retry_at: i64)
    -> Result<bool>;

    /// Keeps a `creating` batch whose reconciliation must wait (a candidate is still
    /// running) until `at` (microseconds since the epoch), when it may be taken over and
    /// reconciled again. `false` when `worker` no longer owns it.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn defer_reconcile(&self, batch: &BatchId, worker: &WorkerId, at: i64) -> Result<bool>;

    /// Which of these API batch ids are already recorded on a batch (so a reconciliation
    /// does not adopt another batch's).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn known_api_batches(&self, api_ids: &[String]) -> Result<Vec<String>>;

    /// Takes over `planned` and `creating` batches whose lease expired, leasing them to
    /// `worker`.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn take_over_expired(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> Result<Vec<BatchRecord>>;

    /// Graceful shutdown: `worker`'s `planned` batches are released and their jobs go back to
    /// `queued`; its `creating` batches get an expired lease so another worker reconciles
    /// them at once. Returns the number of batches handed back.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn release(&self, worker: &WorkerId) -> Result<u64>;

    /// Claims the submitted batch whose poll is most overdue, so that one worker at a time
    /// polls it; the claim lasts `lease`.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn claim_poll(&self, worker: &WorkerId, lease: Duration) -> Result<Option<PollClaim>>;

    /// Hands a polled batch back until `next_poll_at` (microseconds since the epoch).
    /// `false` when `worker` no longer holds the poll.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn defer_poll(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        next_poll_at: i64,
    ) -> Result<bool>;

    /// Stores one chunk of a batch's results in one transaction, idempotently: a result
    /// seen twice changes nothing. See [`ResultItem`] for what each outcome does.
    ///
    /// # Errors
    ///
    /// A database error; nothing of the chunk is stored then.
    async fn ingest(
        &self,
        batch: &BatchId,
        items: &[ResultItem],
        max_attempts: u32,
    ) -> Result<IngestCounts>;

    /// Marks a fully ingested batch `ended` and, in the same transaction, settles its jobs that
    /// got no result line (still `submitted` in it): sent again while they have attempts left
    /// (of `max_attempts`) or failed with a `missing_result` error, by `missing`. Returns what
    /// settling them changed, or `None` when `worker` no longer holds the batch.
    ///
    /// # Errors
    ///
    /// A database error; nothing changes then.
    async fn end_batch(
        &self,
        batch: &BatchId,
        worker: &WorkerId,
        missing: MissingResult,
        max_attempts: u32,
    ) -> Result<Option<IngestCounts>>;

    /// Claims up to `limit` billed usage records not yet handed to the
    /// [`UsageSink`](crate::UsageSink), for `lease` (so concurrent engines hand each record
    /// over once, and a dead engine's claim comes back).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn claim_usage(
        &self,
        worker: &WorkerId,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<UsageRecord>>;

    /// Marks the usage stored on these jobs' rows as handed to the sink (usage billed off
    /// a job row is marked with [`mark_recorded`](Self::mark_recorded)).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn mark_usage_recorded(&self, jobs: &[JobId]) -> Result<()>;

    /// Marks these records, as returned by [`claim_usage`](Self::claim_usage), as handed
    /// to the sink, wherever each one waits.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn mark_recorded(&self, records: &[UsageRecord]) -> Result<()>;

    /// Moves these records, as returned by [`claim_usage`](Self::claim_usage), to the
    /// dead-letter state, each with the reason the sink gave
    /// ([`SinkError::reason`](crate::SinkError::reason)), and appends a
    /// [`JobState::UsageUnpriced`](crate::JobState::UsageUnpriced) event to each one's tenant
    /// stream, in one transaction. A record recorded meanwhile is left alone. Returns how many
    /// moved.
    ///
    /// # Errors
    ///
    /// A database error; nothing changes then.
    async fn dead_letter_usage(&self, dead: &[(UsageRecord, String)]) -> Result<u64>;

    /// How many usage records are dead letters, every tenant together (what an operator
    /// watches: each one is spend missing from the ledger).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn dead_usage_count(&self) -> Result<u64>;

    /// What an operator watches, every tenant together: open jobs by state (also by tenant
    /// with `per_tenant`), the age of the oldest queued job on the database's clock, batches
    /// in flight, the usage backlog and its dead letters. A few aggregate statements: take it
    /// on a timer, never per job.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn snapshot(&self, per_tenant: bool) -> Result<crate::QueueSnapshot>;

    /// Records an API batch that no batch record points to but that holds the requests of
    /// batch `of` (a duplicate create of it), so it is polled like any submitted batch and
    /// every billed result in it is recorded (as extra usage: its jobs belong to another
    /// batch). It gets `of`'s members, so only results of jobs `of` sent are billed, and one
    /// more attempt each (their requests reached the API once more). Returns
    /// its record's id, or `None` when it was already recorded.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn record_duplicate(&self, api_batch_id: &str, of: &BatchId) -> Result<Option<BatchId>>;

    /// Claims up to `limit` queued urgent-lane jobs for Messages API calls: they become
    /// `submitted` (one more attempt) under a fresh claim token, leased to `worker`. Their
    /// results are stored with [`ingest`](Self::ingest) under that token.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn claim_urgent(
        &self,
        worker: &WorkerId,
        limit: usize,
        lease: Duration,
    ) -> Result<UrgentClaim>;

    /// [`sweep_capped`](Self::sweep_capped) with the engine's default of
    /// [`DEFAULT_MAX_ATTEMPTS`](crate::DEFAULT_MAX_ATTEMPTS) attempts.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn sweep(&self) -> Result<u64> {
        self.sweep_capped(crate::engine::DEFAULT_MAX_ATTEMPTS).await
    }

    /// Sends urgent calls whose worker's lease expired back to `queued` while they have
    /// attempts left (of `max_attempts`), failing them with their last error otherwise,
    /// and applies deadlines to unfinished jobs: `expire` ends the job `expired` (if its
    /// request is out, a billed result is still recorded, as after a cancel); `urgent`
    /// moves a batch-lane job to the urgent lane, out of its batch if it was in one (the
    /// batch copy's billed result, if any, is recorded as extra usage). Returns how many
    /// jobs changed.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn sweep_capped(&self, max_attempts: u32) -> Result<u64>;

    /// Plans and claims the next batch if one is due now: [`backlog`](Self::backlog), then
    /// [`planner::plan`](crate::planner::plan), then [`claim_batch`](Self::claim_batch).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn claim_due(
        &self,
        worker: &WorkerId,
        policy: FlushPolicy,
        lease: Duration,
    ) -> Result<Option<BatchClaim>> {
        let backlog = self.backlog().await?;
        let now = self.now();
        match crate::planner::plan(&backlog, policy, now) {
            Some(plan) => self.claim_batch(worker, &plan, policy, lease).await,
            None => Ok(None),
        }
    }
}
