//! Results coming back: what each outcome does to its job, and the usage handed to the
//! cost ledger.
//!
//! Usage goes through an outbox: it is stored on the job in the same transaction as the
//! result, then handed to the [`UsageSink`] and marked recorded. A crash in between hands it
//! over again, so the sink sees each billed request at least once and must deduplicate on
//! [`UsageRecord::key`]; it never misses one.

use async_trait::async_trait;
use tenantry_batch::types::{Message, Usage};

use crate::Lane;
use crate::TenantId;
use crate::ids::JobId;
use crate::job::{HoldId, JobError};

/// What the API returned for one job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ItemOutcome {
    /// A message. A `submitted` job becomes `succeeded` with it; a job canceled after
    /// submission keeps its state but its usage is still recorded.
    Succeeded {
        /// The Message; its [`usage`](Message::usage) is what the API billed.
        message: Box<Message>,
    },
    /// No message. Retryable errors (and expired or canceled requests) send the job back to
    /// `queued` until it has been attempted `max_attempts` times, then it fails with this
    /// error; other errors fail it at once.
    Failed {
        /// The error.
        error: JobError,
        /// Whether sending it again may succeed.
        retryable: bool,
    },
}

/// What becomes of a job whose batch ended without a result line for it (a line the API left
/// out, or one that named no readable `custom_id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingResult {
    /// Send it again while it has attempts left, then fail it. The default: the attempt
    /// stays counted, so a job the API keeps dropping ends within `max_attempts` batches.
    #[default]
    Retry,
    /// Fail it at once with a `missing_result` error.
    Fail,
}

/// One result line, matched to its job by `custom_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultItem {
    /// The job (the request's `custom_id`).
    pub job: JobId,
    /// What became of it.
    pub outcome: ItemOutcome,
}

/// What one [`ingest`](crate::ClaimStore::ingest) call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestCounts {
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Jobs that failed for good.
    pub failed: u64,
    /// Jobs sent back to `queued` for another attempt.
    pub retried: u64,
    /// Jobs closed before their result came (canceled, or expired or failed after
    /// submission) whose billed usage was stored.
    pub billed_after_cancel: u64,
    /// Billed results stored off their job row because the job is no longer in this batch
    /// (a duplicate batch, a late urgent call whose job was sent again, the batch copy of
    /// a job that went down the urgent lane): their cost is recorded, the job is unchanged.
    pub billed_elsewhere: u64,
    /// Results that changed nothing (seen before, or unbilled ones for a job no longer in
    /// this batch).
    pub unchanged: u64,
}

impl IngestCounts {
    pub(crate) fn add(&mut self, other: Self) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
        self.billed_after_cancel += other.billed_after_cancel;
        self.billed_elsewhere += other.billed_elsewhere;
        self.unchanged += other.unchanged;
    }
}

/// The billed usage of one request, for the cost ledger.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UsageRecord {
    /// The job; with [`batch`](Self::batch) it is the record's idempotency key.
    pub job: JobId,
    /// The tenant billed.
    pub tenant: TenantId,
    /// The product feature.
    pub feature: String,
    /// The end user.
    pub user: String,
    /// The lane that billed the request: [`Lane::Batch`] for a Message Batch request (the
    /// batch discount applies), [`Lane::Urgent`] for a Messages API call (full price). It is
    /// the lane of the batch or urgent claim that sent it, never read from the usage itself.
    pub lane: Lane,
    /// The model that was asked.
    pub model: String,
    /// The queue's batch id (`qb_…`) the request was billed in, or the claim token
    /// (`qu_…`) of the urgent-lane call; part of [`key`](Self::key), nothing more.
    pub batch: Option<String>,
    /// The API's `usage` object.
    pub usage: Usage,
    /// The budget hold taken for the job at submit ([`SubmitOptions::hold`](crate::SubmitOptions::hold)),
    /// which this usage settles.
    pub hold: Option<HoldId>,
    /// Whether it waits in the extra-usage table (billed off its job row) rather than on
    /// the job row, which is where it is marked recorded.
    pub(crate) extra: bool,
}

impl UsageRecord {
    /// A key unique per billed request: the sink deduplicates on it.
    #[must_use]
    pub fn key(&self) -> String {
        match &self.batch {
            Some(b) => format!("{}:{b}", self.job),
            None => self.job.to_string(),
        }
    }
}

/// Billed usage the [`UsageSink`] could not price, kept in the dead-letter state until
/// [`reprice_usage`](crate::JobStore::reprice_usage) hands it over again. Read with
/// [`dead_usage`](crate::JobStore::dead_usage).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadUsage {
    /// The usage, as it would be handed to the sink.
    pub record: UsageRecord,
    /// Why the sink refused it ([`SinkError::reason`]).
    pub reason: String,
    /// When it was dead-lettered.
    pub dead_at: time::OffsetDateTime,
}

/// Why a [`UsageSink`] did not record a usage record, which decides what becomes of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The usage cannot be priced or recorded as it is (a model missing from the price book,
    /// inconsistent cache counts, a count out of range, a key already used by another
    /// line): handing it over again changes nothing. The record is dead-lettered, with this
    /// error's text as its reason, until [`reprice_usage`](crate::JobStore::reprice_usage)
    /// hands it back.
    #[error("the usage cannot be priced")]
    Unpriceable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The sink cannot record anything right now (its database is down): the record stays
    /// pending and is handed over again at a later step.
    #[error("the usage sink is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SinkError {
    /// [`SinkError::Unpriceable`] with this cause.
    pub fn unpriceable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unpriceable(cause.into())
    }

    /// [`SinkError::Unavailable`] with this cause.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// Whether handing the record over again cannot succeed (it is dead-lettered).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Unpriceable(_))
    }

    /// The cause and its own causes, joined by `: `: the reason stored with a dead letter.
    #[must_use]
    pub fn reason(&self) -> String {
        let (Self::Unpriceable(cause) | Self::Unavailable(cause)) = self;
        let mut reason = cause.to_string();
        let mut next = cause.source();
        while let Some(e) = next {
            reason.push_str(": ");
            reason.push_str(&e.to_string());
            next = e.source();
        }
        reason
    }
}

/// A database failure inside a sink is one that may pass: the record stays pending.
impl From<sqlx::Error> for SinkError {
    fn from(e: sqlx::Error) -> Self {
        Self::unavailable(e)
    }
}

/// Where billed usage goes (the cost crate's ledger implements this).
///
/// Called at least once per billed request, after the result is stored; implementations
/// must deduplicate on [`UsageRecord::key`].
#[async_trait]
pub trait UsageSink: Send + Sync + std::fmt::Debug + 'static {
    /// Records one billed request.
    ///
    /// # Errors
    ///
    /// [`SinkError::Unavailable`] when it may succeed later (the record stays pending and is
    /// handed over again), [`SinkError::Unpriceable`] when it cannot (the record moves to the
    /// dead-letter state, visible through [`dead_usage`](crate::JobStore::dead_usage)).
    async fn record(&self, usage: &UsageRecord) -> Result<(), SinkError>;
}
