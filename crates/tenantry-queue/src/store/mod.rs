//! The `JobStore` trait and its two implementations, SQLite and PostgreSQL.

use async_trait::async_trait;

use crate::TenantId;
use crate::error::Result;
use crate::event::{JobEvent, Position, Subscription};
use crate::ids::JobId;
use crate::ingest::DeadUsage;
use crate::job::{HoldId, Job, JobFilter, Submission, SubmitOptions};
use crate::{Cursor, Page};

mod backend;
mod claiming;
mod claims;
mod clock;
mod cursors;
pub(crate) mod feed;
mod group;
mod jobs;
mod members;
mod outbox;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod repair;
mod results;
mod row;
pub(crate) mod schema;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

/// Keeps the store traits to this crate's two stores: the queue's guarantees (each job ends
/// once, tenants isolated, usage charged once) live in their SQL, so no other implementation
/// could promise them.
mod sealed {
    pub trait Sealed {}
    impl<S: super::backend::Store> Sealed for S {}
}

/// Durable storage of jobs and their events, scoped by tenant on every call.
///
/// Both implementations pass the same behaviour suite. A job of another tenant is reported
/// exactly like a missing job ([`Error::NotFound`](crate::Error::NotFound)).
///
/// The trait is sealed: [`SqliteStore`] and [`PgStore`] are its only implementations. Code
/// generic over a store, or holding a `&dyn JobStore`, works with either.
#[async_trait]
pub trait JobStore: sealed::Sealed + Send + Sync + std::fmt::Debug + 'static {
    /// Validates and stores one request; returns its id.
    ///
    /// With an idempotency key that the tenant already used, returns the earlier job's id
    /// and stores nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) naming the problem (nothing is stored), or
    /// a database error.
    async fn submit(
        &self,
        tenant: &TenantId,
        feature: &str,
        user: &str,
        params: serde_json::Value,
        options: SubmitOptions,
    ) -> Result<JobId> {
        let submission = Submission {
            feature: feature.to_owned(),
            user: user.to_owned(),
            params,
            options,
        };
        let mut ids = self
            .submit_many(tenant, std::slice::from_ref(&submission))
            .await
            .map_err(|e| match e {
                // One request: name the problem itself, not "item 0".
                crate::Error::Invalid(crate::InvalidRequest::Item { reason, .. }) => {
                    crate::Error::Invalid(*reason)
                }
                other => other,
            })?;
        ids.pop().ok_or_else(|| crate::Error::Corrupt {
            what: "submit result",
            detail: "no id returned for one submission".to_owned(),
        })
    }

    /// Validates and stores many requests in one transaction with a constant number of
    /// statements; returns their ids in input order.
    ///
    /// All or nothing: one invalid item rejects the call. Items whose idempotency key was
    /// already used get the earlier job's id.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) with the index of the first invalid item,
    /// or a database error.
    async fn submit_many(
        &self,
        tenant: &TenantId,
        submissions: &[Submission],
    ) -> Result<Vec<JobId>>;

    /// Reads one job.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when the tenant has no such job, or a
    /// database error.
    async fn job(&self, tenant: &TenantId, id: &JobId) -> Result<Job>;

    /// Cancels a job and returns it.
    ///
    /// A job not yet sent (queued, or planned into a batch not yet created) will never be
    /// sent. A job already sent is marked canceled: its result is ignored when it arrives,
    /// but its cost is still recorded if the API billed it. Canceling a canceled job
    /// returns it unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::AlreadyFinished`](crate::Error::AlreadyFinished) when it succeeded, failed or
    /// expired, or a database error.
    async fn cancel(&self, tenant: &TenantId, id: &JobId) -> Result<Job>;

    /// Lists the tenant's jobs, newest first, one page at a time: pass the page's
    /// [`next_cursor`](Page::next_cursor) back to get the next one.
    ///
    /// # Errors
    ///
    /// [`Error::BadCursor`](crate::Error::BadCursor) for a cursor this crate did not make, or
    /// a database error.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Job>>;

    /// The tenant's events after `after`, in order, at most `limit` of them.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn events_after(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: u32,
    ) -> Result<Vec<JobEvent>>;

    /// The position of the tenant's latest event ([`Position::START`] when there is none).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn latest_position(&self, tenant: &TenantId) -> Result<Position>;

    /// Subscribes to the tenant's events from now on.
    ///
    /// # Errors
    ///
    /// A database error while setting up the wake-up channel or reading the position.
    async fn subscribe(&self, tenant: &TenantId) -> Result<Subscription>;

    /// Subscribes to the tenant's events after a position seen earlier (resume after a
    /// restart), then on to new ones.
    ///
    /// # Errors
    ///
    /// A database error while setting up the wake-up channel.
    async fn subscribe_after(&self, tenant: &TenantId, after: Position) -> Result<Subscription>;

    /// The tenant's billed usage that the [`UsageSink`](crate::UsageSink) could not price
    /// (dead letters), oldest first, at most `limit`, each with the sink's reason. Its spend
    /// is missing from the ledger until [`reprice_usage`](Self::reprice_usage).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn dead_usage(&self, tenant: &TenantId, limit: u32) -> Result<Vec<DeadUsage>>;

    /// Hands the tenant's dead-lettered usage back to the sink (once the price book or the
    /// sink is fixed): each record becomes pending again and the engine hands it over at its
    /// next step, with the same [`key`](crate::UsageRecord::key), so a sink that deduplicates
    /// on it charges each request once even if it had recorded it before. Each job handed back
    /// gets a [`JobState::UsageRepriced`](crate::JobState::UsageRepriced) event on the tenant's
    /// stream, in the same transaction. Returns how many records were handed back; usage that
    /// still cannot be priced is dead-lettered again.
    ///
    /// # Errors
    ///
    /// A database error; nothing changes then.
    async fn reprice_usage(&self, tenant: &TenantId) -> Result<u64>;

    /// Of these budget holds of the tenant, those a job may still need: its job is open, or
    /// closed while its request may be out (it keeps its batch) and not failed. A hold not
    /// returned has no job (the submit that took it never stored one) or a job that can no
    /// longer be billed, so its owner may give it back.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn holds_in_use(&self, tenant: &TenantId, holds: &[HoldId]) -> Result<Vec<HoldId>>;

    /// How far `consumer` has read the tenant's event log, as stored by any instance
    /// ([`Position::START`] when it never stored a position). A consumer is a name the host
    /// picks for a reader of the log (the `tenantry` facade's hold releaser is `"holds"`).
    ///
    /// # Errors
    ///
    /// A database error.
    async fn consumer_position(&self, consumer: &str, tenant: &TenantId) -> Result<Position>;

    /// Stores that `consumer` has read the tenant's event log up to `position`. A cursor only
    /// moves forward: a position behind the stored one (a slower instance) changes nothing.
    ///
    /// # Errors
    ///
    /// A database error.
    async fn advance_consumer(
        &self,
        consumer: &str,
        tenant: &TenantId,
        position: Position,
    ) -> Result<()>;
}

/// What `cancel` returns once the update ran: the job, or why it could not be canceled.
fn cancel_outcome(job: Job) -> Result<Job> {
    match job.state {
        crate::job::JobState::Canceled => Ok(job),
        state if state.is_terminal() => Err(crate::Error::AlreadyFinished {
            id: job.id.to_string(),
            state,
        }),
        _ => Ok(job),
    }
}

/// The job a list cursor points after: a cursor holds the id of the last job of its page.
fn list_position(cursor: &Cursor) -> Result<JobId> {
    cursor.as_str().parse().map_err(|_| crate::Error::BadCursor)
}

/// Turns `page size + 1` rows into a page and the cursor of the next one.
fn page(rows: Vec<row::JobRow>, filter: &JobFilter) -> Result<Page<Job>> {
    let size = usize::try_from(filter.page_size()).unwrap_or(usize::MAX);
    let mut jobs = rows
        .into_iter()
        .map(Job::try_from)
        .collect::<Result<Vec<_>>>()?;
    let next = if jobs.len() > size {
        jobs.truncate(size);
        jobs.last().map(|j| Cursor::new(j.id.as_str()))
    } else {
        None
    };
    Ok(Page::new(jobs, next))
}

/// Backlog rows `(tenant, jobs, params bytes, oldest flush_at)` with the per-request overhead added.
fn backlog_rows(rows: Vec<(String, i64, i64, i64)>) -> Result<Vec<crate::planner::TenantBacklog>> {
    rows.into_iter()
        .map(|(tenant, jobs, bytes, oldest)| {
            let jobs = u64::try_from(jobs).unwrap_or(0);
            Ok(crate::planner::TenantBacklog {
                tenant: TenantId::new(tenant).map_err(|e| crate::Error::Corrupt {
                    what: "tenant",
                    detail: e.to_string(),
                })?,
                jobs,
                bytes: u64::try_from(bytes)
                    .unwrap_or(0)
                    .saturating_add(jobs.saturating_mul(crate::planner::REQUEST_OVERHEAD_BYTES)),
                oldest_flush_at: oldest,
            })
        })
        .collect()
}
