//! Durable multi-tenant queue that turns AI requests into Message Batches and results
//! into events.
//!
//! A host submits requests for its tenants; each becomes a *job* row in a [`JobStore`]
//! (SQLite for one host, PostgreSQL for many). Every state change of a job is appended,
//! in the same transaction, to an ordered events table, and pushed to the tenant's
//! [`Subscription`]s. Every call is scoped by [`TenantId`]: another tenant's job is "not
//! found", and a subscription only ever sees its own tenant's events.
//!
//! # Example
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::StreamExt;
//! use tenantry_queue::{JobState, JobStore, SqliteStore, SubmitOptions, TenantId};
//!
//! let store = SqliteStore::open(sqlx::SqlitePool::connect("sqlite::memory:").await?).await?;
//! let tenant = TenantId::new("acme")?;
//! let mut events = store.subscribe(&tenant).await?;
//!
//! let params = serde_json::json!({
//!     "model": "claude-sonnet-4-5", "max_tokens": 256,
//!     "messages": [{"role": "user", "content": "Summarise this ticket"}]
//! });
//! let options = SubmitOptions::new().idempotency_key("ticket-42");
//! let id = store.submit(&tenant, "triage", "user-7", params, options).await?;
//!
//! let event = events.next().await.expect("subscription is live")?;
//! assert_eq!((event.job_id, event.state), (id.clone(), JobState::Queued));
//!
//! let job = store.cancel(&tenant, &id).await?;
//! assert_eq!(job.state, JobState::Canceled);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Jobs
//!
//! States: `queued → batched → submitted → succeeded | failed | canceled | expired`
//! ([`JobState`]). Submissions are validated before anything is stored
//! ([`InvalidRequest`] names the problem). An idempotency key returns the first job for
//! the same key. [`JobStore::submit_many`] stores a whole list in one transaction with
//! multi-row statements.
//!
//! # Events
//!
//! [`JobStore::subscribe`] returns a stream of [`JobEvent`]s (job id, new state,
//! [`Position`]). The events table is the truth; PostgreSQL `NOTIFY` (or an in-process
//! channel with SQLite) only wakes the subscription up, and a poll timer backs it up, so a
//! dropped listener connection loses no event: after reconnecting the subscription reads
//! everything after its last position. See [`PgStore`] for the ordering guarantee.
//!
//! # Batching
//!
//! [`planner`] decides when a batch closes (max requests, max bytes, or the oldest job's
//! max wait) and shares its slots fairly between tenants. [`ClaimStore`] claims the planned
//! jobs (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so engines sharing a database never claim
//! the same job), and records each batch before and after the create call so a crash in
//! between is reconciled rather than resent. [`Engine`] drives it all against the
//! `tenantry-batch` client: create, poll, ingest results idempotently, retry what is
//! retryable, serve the urgent lane through the Messages API, and hand billed usage to a
//! [`UsageSink`] (the cost ledger).
//!
//! # Repairs
//!
//! [`RepairStore`] is what an operator (or the `tenantry` admin binary) uses: retry a failed,
//! canceled or expired job (same job, same idempotency key, a new attempt counted before it is
//! sent), re-price one job's dead-lettered usage, purge finished jobs and old events after a
//! retention period in small transactions ([`Purge`]), and read the figures a health check
//! needs. Each repair is scoped by tenant and recorded on the job's event stream.
//!
//! # Telemetry
//!
//! Every public call of the store and every engine step is a `tracing` span with the tenant,
//! job, batch and API ids it works on, and OpenTelemetry's GenAI names for provider, model and
//! token counts; no span or event carries a prompt, a completion or a key. With the
//! `telemetry` feature the queue also records metrics through the `metrics` facade: queue
//! depth by state, the oldest queued job, batches in flight, the usage backlog and its dead
//! letters (read by [`ClaimStore::snapshot`] on a timer), results ingested and retries. The
//! names, units and labels are in [`telemetry`].
//!
//! # Storage
//!
//! All SQL is built with sea-query and runs through `tenantry-core`'s SQL layer with bound
//! values. The queue's migrations are the [`MIGRATIONS`] component of `tenantry-core`'s
//! runner (versioned, checksummed, recorded in `tenantry_migrations`);
//! [`SqliteStore::open`] and [`PgStore::open`] apply the pending ones.
#![deny(missing_docs)]
// With one database driver (or none) compiled in, the other backend's paths are unused by
// design; the default features build and test both.
#![cfg_attr(
    not(all(feature = "postgres", feature = "sqlite")),
    allow(
        dead_code,
        unused_imports,
        unused_macros,
        unused_variables,
        unreachable_code
    )
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub(crate) mod claim;
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!(
    "tenantry-queue stores jobs in a database: enable its `postgres` or `sqlite` feature"
);

mod engine;
mod error;
mod event;
// Test-only: the crash-point explorer's hooks, not part of the API a host builds on.
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub mod failpoints;
mod ids;
mod ingest;
mod job;
pub mod planner;
mod repair;
mod snapshot;
mod store;
pub mod telemetry;
mod validate;

pub use claim::{
    BatchClaim, BatchId, BatchRecord, BatchRequest, BatchState, ClaimStore, ParseBatchIdError,
    PollClaim, UrgentClaim, WorkerId,
};
pub use engine::{DEFAULT_MAX_ATTEMPTS, Engine, EngineConfig, StepReport};
pub use error::{Error, InvalidRequest, Result};
pub use event::{DEFAULT_POLL_INTERVAL, JobEvent, Position, Subscription};
pub use ids::{JobId, ParseJobIdError};
pub use ingest::{
    DeadUsage, IngestCounts, ItemOutcome, MissingResult, ResultItem, SinkError, UsageRecord,
    UsageSink,
};
pub use job::{
    DEFAULT_MAX_WAIT, DEFAULT_PAGE_SIZE, DeadlinePolicy, HoldId, Job, JobError, JobFilter,
    JobState, MAX_MAX_WAIT, MAX_PAGE_SIZE, ParseStateError, Submission, SubmitOptions,
};
pub use repair::{
    BatchInfo, DEFAULT_PURGE_BATCH, MAX_PURGE_BATCH, Purge, Purged, RepairStore, StaleJobs,
};
pub use snapshot::{Depth, QueueSnapshot};
pub use store::JobStore;
#[cfg(feature = "postgres")]
pub use store::PgStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::feed::{Change, Changes, Feed, FeedEvent, FeedSubscription, NewFeedEvent};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::postgres::{DEFAULT_LISTENER_HEARTBEAT, LISTENER_APPLICATION_NAME};
pub use store::schema::MIGRATIONS;
pub use tenantry_core::{Cursor, InvalidTenantId, Lane, Page, TENANT_ID_MAX, TenantId};
/// Without the `failpoints` feature a crash point is nothing at all.
#[cfg(not(feature = "failpoints"))]
#[doc(hidden)]
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {};
}

pub use validate::{MAX_FIELD_BYTES, MAX_OUTPUT_TOKENS, MAX_REQUEST_BYTES, check_max_tokens};
