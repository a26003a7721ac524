//! What a job is: its states, lanes, submit options and the stored record.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantry_batch::types::Usage;
use time::OffsetDateTime;

use crate::ids::JobId;
use crate::{Lane, TenantId};

/// Where a job is in its life.
///
/// `queued → batched → submitted → succeeded | failed | canceled | expired`; an urgent job
/// goes `queued → submitted → …` without a batch. The last four are terminal; a repair
/// ([`RepairStore::retry`](crate::RepairStore::retry)) can send a failed, canceled or expired
/// job back to `queued`. Events use three more values that no job is ever in:
/// [`JobState::UsageUnpriced`], [`JobState::UsageRepriced`] and [`JobState::Purged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Stored and waiting to be planned into a batch (or sent, on the urgent lane).
    Queued,
    /// Planned into a batch that has not been created at the API yet.
    Batched,
    /// Sent to the API; waiting for its result.
    Submitted,
    /// The API returned a message; it is stored on the job.
    Succeeded,
    /// The API returned an error that is final (or retries ran out); it is stored on the job.
    Failed,
    /// Canceled by the caller. If it had been billed, its cost was still recorded.
    Canceled,
    /// Its deadline passed before it finished.
    Expired,
    /// Not a state a job is ever in: the value of the [`JobEvent`](crate::JobEvent) that says
    /// the job's billed usage could not be priced and was dead-lettered (see
    /// [`JobStore::dead_usage`](crate::JobStore::dead_usage)). The job itself keeps its state;
    /// the event is not terminal, so a subscriber that waits for terminal states or matches
    /// the states it knows is not misled by it. Its spend is missing from the ledger until
    /// [`JobStore::reprice_usage`](crate::JobStore::reprice_usage) hands it over again.
    UsageUnpriced,
    /// Not a state a job is ever in: the value of the event that says the job's dead-lettered
    /// usage was handed back to the usage sink to be priced again
    /// ([`JobStore::reprice_usage`](crate::JobStore::reprice_usage),
    /// [`RepairStore::reprice_job`](crate::RepairStore::reprice_job)). Not terminal.
    UsageRepriced,
    /// Not a state a job is ever in: the value of the event that says the finished job was
    /// deleted after its retention period ([`RepairStore::purge`](crate::RepairStore::purge));
    /// reading it afterwards answers "not found". Not terminal.
    Purged,
}

impl JobState {
    /// Every state a job can be in, in life order ([`JobState::UsageUnpriced`] is an event,
    /// never a job's state, so it is not one of them).
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Batched,
        Self::Submitted,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::Expired,
    ];

    /// Whether a repair may send a job in this state back to `queued` for a new attempt
    /// ([`RepairStore::retry`](crate::RepairStore::retry)): failed, canceled or expired.
    #[must_use]
    pub fn can_be_retried(self) -> bool {
        matches!(self, Self::Failed | Self::Canceled | Self::Expired)
    }

    /// The values only events carry, never a job: what happened to a job's billing or to its
    /// stored row rather than a state it entered.
    pub const EVENTS_ONLY: [Self; 3] = [Self::UsageUnpriced, Self::UsageRepriced, Self::Purged];

    /// Whether a job can be in this state (every value but [`JobState::EVENTS_ONLY`]).
    #[must_use]
    pub fn is_job_state(self) -> bool {
        !Self::EVENTS_ONLY.contains(&self)
    }

    /// The state's stored and serialized name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Batched => "batched",
            Self::Submitted => "submitted",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::UsageUnpriced => "usage_unpriced",
            Self::UsageRepriced => "usage_repriced",
            Self::Purged => "purged",
        }
    }

    /// Whether the job can no longer change state.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Expired
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a job state name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct ParseStateError(pub String);

impl FromStr for JobState {
    type Err = ParseStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .chain(Self::EVENTS_ONLY)
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

/// What happens to a job still unfinished when its deadline passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadlinePolicy {
    /// The job ends as [`JobState::Expired`].
    #[default]
    Expire,
    /// The job is sent down the urgent lane instead.
    Urgent,
}

impl DeadlinePolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Expire => "expire",
            Self::Urgent => "urgent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "expire" => Some(Self::Expire),
            "urgent" => Some(Self::Urgent),
            _ => None,
        }
    }
}

/// The id of a budget hold taken for a job by whoever submitted it (the `tenantry` facade:
/// the cost ledger's reservation id). The queue stores it on the job and hands it back with
/// the job's billed usage ([`UsageRecord::hold`](crate::UsageRecord::hold)) so the usage can
/// settle it; it means nothing to the queue itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldId(i64);

impl HoldId {
    /// A hold id.
    #[must_use]
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    /// The id as a number.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The default time a batch-lane job may wait before a partial batch is flushed for it.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest max wait accepted (a day: the batch API's own processing window).
pub const MAX_MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Options of one submission. Built with owned setters; every setter states its default.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SubmitOptions {
    pub(crate) lane: Lane,
    pub(crate) max_wait: Duration,
    pub(crate) deadline: Option<OffsetDateTime>,
    pub(crate) on_deadline: DeadlinePolicy,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) metadata: serde_json::Value,
    pub(crate) hold: Option<HoldId>,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            lane: Lane::Batch,
            max_wait: DEFAULT_MAX_WAIT,
            deadline: None,
            on_deadline: DeadlinePolicy::Expire,
            idempotency_key: None,
            metadata: serde_json::Value::Object(serde_json::Map::new()),
            hold: None,
        }
    }
}

impl SubmitOptions {
    /// Default options: batch lane, 60 s max wait, no deadline, no idempotency key, empty
    /// metadata, no hold.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lane. Default [`Lane::Batch`].
    pub fn lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }

    /// The longest the job waits before a partial batch is flushed for it. Default 60 s;
    /// between 1 ms and 24 h.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// A deadline after which an unfinished job is handled by `policy`. Default: none.
    pub fn deadline(mut self, deadline: OffsetDateTime, policy: DeadlinePolicy) -> Self {
        self.deadline = Some(deadline);
        self.on_deadline = policy;
        self
    }

    /// An idempotency key: submitting again with the same key (same tenant) returns the
    /// first job and stores nothing. Default: none. 1 to 255 bytes.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Caller data stored with the job, a JSON object. Default `{}`.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The budget hold taken for the job, stored on it and handed back with its billed
    /// usage ([`UsageRecord::hold`](crate::UsageRecord::hold)). Default: none.
    pub fn hold(mut self, hold: HoldId) -> Self {
        self.hold = Some(hold);
        self
    }
}

/// One request of a [`submit_many`](crate::JobStore::submit_many) call.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The product feature the request serves (for cost reports).
    pub feature: String,
    /// The end user the request serves (for cost reports).
    pub user: String,
    /// The Messages API request body (`model`, `max_tokens`, `messages`, …) as JSON.
    pub params: serde_json::Value,
    /// Lane, wait, deadline, idempotency key and metadata.
    pub options: SubmitOptions,
}

impl Submission {
    /// A submission with default options.
    #[must_use]
    pub fn new(
        feature: impl Into<String>,
        user: impl Into<String>,
        params: serde_json::Value,
    ) -> Self {
        Self {
            feature: feature.into(),
            user: user.into(),
            params,
            options: SubmitOptions::default(),
        }
    }

    /// The same submission with other options.
    #[must_use]
    pub fn with_options(mut self, options: SubmitOptions) -> Self {
        self.options = options;
        self
    }
}

/// An API error stored on a failed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// The error `type` (`invalid_request_error`, `overloaded_error`, `expired`, …).
    pub kind: String,
    /// The human-readable message.
    pub message: String,
}

/// A stored job, as returned by [`job`](crate::JobStore::job) and [`list`](crate::JobStore::list).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// The id, also the batch request's `custom_id`.
    pub id: JobId,
    /// The owning tenant.
    pub tenant: TenantId,
    /// The product feature.
    pub feature: String,
    /// The end user.
    pub user: String,
    /// The lane.
    pub lane: Lane,
    /// The current state.
    pub state: JobState,
    /// The request body.
    pub params: serde_json::Value,
    /// The caller's metadata.
    pub metadata: serde_json::Value,
    /// The idempotency key, if one was given.
    pub idempotency_key: Option<String>,
    /// The max wait before a partial batch is flushed.
    pub max_wait: Duration,
    /// The deadline, if any.
    pub deadline: Option<OffsetDateTime>,
    /// What happens at the deadline.
    pub on_deadline: DeadlinePolicy,
    /// How many times the request was sent to the API.
    pub attempts: u32,
    /// The batch the job is (or was last) part of.
    pub batch_id: Option<String>,
    /// The Message returned by the API, when succeeded.
    pub result: Option<serde_json::Value>,
    /// The error, when failed; a job that succeeded after a retry keeps its last error.
    pub error: Option<JobError>,
    /// The billed usage reported by the API, when it billed the request.
    pub usage: Option<Usage>,
    /// The budget hold taken for it at submit, if any ([`SubmitOptions::hold`]).
    pub hold: Option<HoldId>,
    /// When the job was stored.
    pub created_at: OffsetDateTime,
    /// When the job last changed.
    pub updated_at: OffsetDateTime,
    /// When the job reached its terminal state.
    pub finished_at: Option<OffsetDateTime>,
}

/// Which jobs [`list`](crate::JobStore::list) returns. Empty means all of the tenant's jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct JobFilter {
    pub(crate) states: Vec<JobState>,
    pub(crate) feature: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) limit: u32,
}

/// The default and largest page size of [`list`](crate::JobStore::list).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page size of [`list`](crate::JobStore::list).
pub const MAX_PAGE_SIZE: u32 = 1000;

impl JobFilter {
    /// All jobs, 100 per page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only jobs in one of these states. Default: any state.
    pub fn states(mut self, states: impl IntoIterator<Item = JobState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Only jobs of this feature. Default: any.
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// Only jobs of this user. Default: any.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Page size. Default 100; clamped to 1..=1000.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub(crate) fn page_size(&self) -> u32 {
        if self.limit == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.limit.min(MAX_PAGE_SIZE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_by_name() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>(), Ok(st));
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("running".parse::<JobState>().is_err());
        assert_eq!(
            "usage_unpriced".parse::<JobState>(),
            Ok(JobState::UsageUnpriced)
        );
        assert!(!JobState::UsageUnpriced.is_terminal());
        for event in JobState::EVENTS_ONLY {
            assert_eq!(event.as_str().parse::<JobState>(), Ok(event));
            assert!(!event.is_terminal() && !event.is_job_state());
            assert!(!JobState::ALL.contains(&event));
        }
        assert!(JobState::ALL.into_iter().all(JobState::is_job_state));
        let retried: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.can_be_retried())
            .collect();
        assert_eq!(
            retried,
            [JobState::Failed, JobState::Canceled, JobState::Expired]
        );
        let terminal: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                JobState::Succeeded,
                JobState::Failed,
                JobState::Canceled,
                JobState::Expired
            ]
        );
    }

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(JobFilter::new().page_size(), DEFAULT_PAGE_SIZE);
        assert_eq!(JobFilter::new().limit(5).page_size(), 5);
        assert_eq!(JobFilter::new().limit(50_000).page_size(), MAX_PAGE_SIZE);
    }
}
