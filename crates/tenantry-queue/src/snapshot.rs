//! What an operator watches, read from the tables in a handful of aggregate statements: open
//! jobs by state, the oldest queued job, batches in flight, the usage outbox and its dead
//! letters. One read serves a metrics sampler or an admin view; it is never taken per job.

use std::time::Duration;

use crate::TenantId;
use crate::claim::BatchState;
use crate::job::JobState;

/// Jobs that are not finished: the states queue depth is counted in.
pub(crate) const OPEN_STATES: [JobState; 3] =
    [JobState::Queued, JobState::Batched, JobState::Submitted];

/// Batch records whose batch is not over: planned, being created, or submitted to the API.
pub(crate) const IN_FLIGHT_STATES: [BatchState; 3] = [
    BatchState::Planned,
    BatchState::Creating,
    BatchState::Submitted,
];

/// The queue's state at one moment, every tenant together unless asked per tenant
/// ([`ClaimStore::snapshot`](crate::ClaimStore::snapshot)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueSnapshot {
    /// Open jobs by state (`queued`, `batched` or `submitted`), and by tenant when asked (`None`
    /// otherwise). States with no job are absent.
    pub depth: Vec<Depth>,
    /// How long the oldest queued job has waited, on the database's clock; `None` when no
    /// job is queued.
    pub oldest_queued_age: Option<Duration>,
    /// Batch records in flight, by state (`planned`, `creating` or `submitted`); absent states have none.
    pub batches_in_flight: Vec<(BatchState, u64)>,
    /// Billed usage stored but not yet recorded by the usage sink (pending or being handed
    /// over), both outboxes together.
    pub usage_backlog: u64,
    /// Billed usage the sink could not price (dead letters), both outboxes together.
    pub usage_dead_letters: u64,
}

/// One row of [`QueueSnapshot::depth`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Depth {
    /// The state.
    pub state: JobState,
    /// The tenant, when the snapshot was taken per tenant.
    pub tenant: Option<TenantId>,
    /// Jobs in that state (of that tenant).
    pub jobs: u64,
}

impl QueueSnapshot {
    /// Open jobs in `state`, every tenant together.
    #[must_use]
    pub fn jobs_in(&self, state: JobState) -> u64 {
        self.depth
            .iter()
            .filter(|d| d.state == state)
            .map(|d| d.jobs)
            .sum()
    }

    /// Batch records in flight in `state`.
    #[must_use]
    pub fn batches_in(&self, state: BatchState) -> u64 {
        self.batches_in_flight
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .sum()
    }
}
