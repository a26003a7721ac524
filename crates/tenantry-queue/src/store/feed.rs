//! A tenant's whole event stream as other systems read it: the job events, plus the events
//! other components append in their own transactions (the cost ledger's budget alerts), each
//! with its type and detail.
//!
//! Both live in the one events table, in one order per tenant: an event that names no job is a
//! row with an empty `job_id`, its type in `state` and its JSON in `detail`. Job subscriptions
//! ([`JobStore::subscribe`](crate::JobStore::subscribe)) leave those rows out; a [`Feed`] reads
//! everything. Appending takes the same per-tenant lock and queues the same wake-up as the
//! queue's own writes, so positions still commit in order and a feed subscription is woken
//! as fast as a job subscription.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use sea_query::{Expr, ExprTrait, Order, Query};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};

use crate::TenantId;
use crate::error::{Error, Result};
use crate::event::{Position, Wake};
use crate::ids::JobId;
use crate::store::backend::{Store, lock_and_notify};
use crate::store::schema::Events;
use crate::validate::from_micros;
use tenantry_core::db::{Pool, Tx};

/// One event of a tenant's stream, as a [`Feed`] reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FeedEvent {
    /// Where it sits in the tenant's log (the same positions as [`JobEvent`](crate::JobEvent)s).
    pub position: Position,
    /// The tenant.
    pub tenant: TenantId,
    /// The event's type: `job.<state>` for a job event (`job.succeeded`), or the type its
    /// writer gave it (`budget.threshold`).
    pub kind: String,
    /// The job, for a job event.
    pub job_id: Option<JobId>,
    /// When it committed (to the microsecond).
    pub at: OffsetDateTime,
    /// The detail its writer stored, for an event that names no job.
    pub detail: Option<serde_json::Value>,
}

/// An event another component appends to a tenant's stream, in its own transaction
/// ([`Feed::append`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewFeedEvent {
    /// The tenant whose stream it joins.
    pub tenant: TenantId,
    /// Its type, e.g. `budget.threshold` (not starting with `job.`, which job events use).
    pub kind: String,
    /// Its detail.
    pub detail: serde_json::Value,
    /// When it happened, in microseconds since the epoch.
    pub at_micros: i64,
}

impl NewFeedEvent {
    /// An event of type `kind` for `tenant`, with its detail, happening at `at_micros`.
    #[must_use]
    pub fn new(
        tenant: TenantId,
        kind: impl Into<String>,
        detail: serde_json::Value,
        at_micros: i64,
    ) -> Self {
        Self {
            tenant,
            kind: kind.into(),
            detail,
            at_micros,
        }
    }
}

/// What a store gives its feed: the pool, the wake-ups and the poll interval.
#[async_trait]
trait Source: Send + Sync + std::fmt::Debug {
    fn pool(&self) -> &Pool;
    async fn wake(&self) -> Result<broadcast::Receiver<Wake>>;
    fn poll_interval(&self) -> Duration;
    fn committed(&self, tenants: &[&str]);
}

#[async_trait]
impl<S: Store> Source for S {
    fn pool(&self) -> &Pool {
        Store::pool(self)
    }
    async fn wake(&self) -> Result<broadcast::Receiver<Wake>> {
        Store::wake(self).await
    }
    fn poll_interval(&self) -> Duration {
        Store::poll_interval(self)
    }
    fn committed(&self, tenants: &[&str]) {
        Store::committed(self, tenants);
    }
}

/// Every tenant's whole event stream on a store: read it, follow it, append to it in a
/// transaction of the same database.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_queue::{Feed, NewFeedEvent, Position, SqliteStore, TenantId};
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let store = SqliteStore::open(pool).await?;
/// let feed = Feed::from(store);
/// let acme = TenantId::new("acme")?;
/// let mut tx = feed.begin().await?;
/// let alert = NewFeedEvent::new(acme.clone(), "budget.threshold",
///     serde_json::json!({"threshold_permille": 800}), 1_767_225_600_000_000);
/// feed.append(&mut tx, &[alert]).await?;
/// feed.commit(tx, std::slice::from_ref(&acme)).await?;
/// let events = feed.events_after(&acme, Position::START, 100).await?;
/// assert_eq!(events[0].kind, "budget.threshold");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Feed {
    source: Arc<dyn Source>,
}

#[cfg(feature = "sqlite")]
impl From<crate::SqliteStore> for Feed {
    fn from(store: crate::SqliteStore) -> Self {
        Self {
            source: Arc::new(store),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<crate::PgStore> for Feed {
    fn from(store: crate::PgStore) -> Self {
        Self {
            source: Arc::new(store),
        }
    }
}

/// A row of the events table with its detail.
#[derive(sqlx::FromRow)]
struct FeedRow {
    seq: i64,
    job_id: String,
    state: String,
    at: i64,
    detail: Option<String>,
}

impl FeedRow {
    fn into_event(self, tenant: &TenantId) -> Result<FeedEvent> {
        let (kind, job_id, detail) = if self.job_id.is_empty() {
            let detail = self
                .detail
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(|e| Error::Corrupt {
                    what: "event detail",
                    detail: format!("event {}: {e}", self.seq),
                })?;
            (self.state, None, detail)
        } else {
            let job: JobId = self.job_id.parse().map_err(|_| Error::Corrupt {
                what: "event job id",
                detail: format!("event {}", self.seq),
            })?;
            (format!("job.{}", self.state), Some(job), None)
        };
        Ok(FeedEvent {
            position: Position(self.seq),
            tenant: tenant.clone(),
            kind,
            job_id,
            at: from_micros(self.at),
            detail,
        })
    }
}

impl Feed {
    /// A transaction on the store's database, to append events in with [`append`](Self::append).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.source.pool().begin().await?)
    }

    /// Appends events to their tenants' streams in `tx` (a transaction of the store's
    /// database, from [`begin`](Self::begin) or from another component on the same pool):
    /// they exist exactly when the rest of that transaction does. After the commit, call
    /// [`committed`](Self::committed) (or commit with [`commit`](Self::commit)) so this
    /// process's subscriptions are woken at once.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a type that is empty or starts with
    /// `job.`; a database error.
    pub async fn append(&self, tx: &mut Tx, events: &[NewFeedEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        for e in events {
            if e.kind.is_empty() || e.kind.len() > MAX_KIND || e.kind.starts_with("job.") {
                return Err(Error::Invalid(crate::InvalidRequest::Field {
                    field: "event kind (not `job.…`)",
                    max: MAX_KIND,
                }));
            }
        }
        let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        lock_and_notify(tx, &tenants).await?;
        let mut insert = Query::insert();
        insert.into_table(Events::Table).columns([
            Events::Tenant,
            Events::JobId,
            Events::State,
            Events::At,
            Events::Detail,
        ]);
        for e in events {
            insert.values_panic([
                e.tenant.as_str().into(),
                "".into(),
                e.kind.as_str().into(),
                e.at_micros.into(),
                e.detail.to_string().into(),
            ]);
        }
        tx.execute(&insert).await?;
        Ok(())
    }

    /// Wakes this process's subscriptions of `tenants` after a commit that appended to them.
    pub fn committed(&self, tenants: &[TenantId]) {
        let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        self.source.committed(&names);
    }

    /// Commits `tx` and wakes the subscriptions of `tenants`.
    ///
    /// # Errors
    ///
    /// A database error (nothing was committed).
    pub async fn commit(&self, tx: Tx, tenants: &[TenantId]) -> Result<()> {
        tx.commit().await?;
        self.committed(tenants);
        Ok(())
    }

    /// A tenant's events after `after`, in order, at most `limit`.
    ///
    /// # Errors
    ///
    /// A database error; [`Error::Corrupt`](crate::Error::Corrupt) for a row this version
    /// cannot read.
    pub async fn events_after(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: u32,
    ) -> Result<Vec<FeedEvent>> {
        let select = Query::select()
            .columns([
                Events::Seq,
                Events::JobId,
                Events::State,
                Events::At,
                Events::Detail,
            ])
            .from(Events::Table)
            .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(Events::Seq).gt(after.get()))
            .order_by(Events::Seq, Order::Asc)
            .limit(u64::from(limit))
            .to_owned();
        let rows: Vec<FeedRow> = self.source.pool().fetch_all(&select).await?;
        rows.into_iter().map(|r| r.into_event(tenant)).collect()
    }

    /// The position of a tenant's latest event ([`Position::START`] when none).
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn latest_position(&self, tenant: &TenantId) -> Result<Position> {
        let select = Query::select()
            .expr(Expr::col(Events::Seq).max())
            .from(Events::Table)
            .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
            .to_owned();
        let seq: Option<(Option<i64>,)> = self.source.pool().fetch_optional(&select).await?;
        Ok(Position(seq.and_then(|(s,)| s).unwrap_or(0)))
    }

    /// The store's database, for a consumer that keeps its own tables beside the stream.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        self.source.pool()
    }

    /// Wake-ups of new events, for a consumer that follows many tenants (a webhook sender).
    /// Take it before reading, so nothing committed after the read is missed.
    ///
    /// # Errors
    ///
    /// A database error (PostgreSQL: starting the listener).
    pub async fn changes(&self) -> Result<Changes> {
        Ok(Changes {
            rx: Some(self.source.wake().await?),
            poll: self.source.poll_interval(),
        })
    }

    /// Follows a tenant's stream from after `after`: every event, in order, without gaps.
    ///
    /// # Errors
    ///
    /// A database error (PostgreSQL: starting the listener).
    pub async fn subscribe_after(
        &self,
        tenant: &TenantId,
        after: Position,
    ) -> Result<FeedSubscription> {
        let mut changes = self.changes().await?;
        let (tx, rx) = mpsc::channel(1024);
        let feed = self.clone();
        let tenant = tenant.clone();
        let task = tokio::spawn(async move {
            let mut last = after;
            loop {
                loop {
                    match feed.events_after(&tenant, last, PAGE).await {
                        Ok(events) => {
                            let full = events.len() >= PAGE as usize;
                            for e in events {
                                last = e.position;
                                if tx.send(Ok(e)).await.is_err() {
                                    return;
                                }
                            }
                            if !full {
                                break;
                            }
                        }
                        Err(e) => {
                            if tx.send(Err(e)).await.is_err() {
                                return;
                            }
                            break;
                        }
                    }
                }
                tokio::select! {
                    () = tx.closed() => return,
                    () = changes.wait_for(&tenant) => {}
                }
            }
        });
        Ok(FeedSubscription { rx, task })
    }
}

/// The longest event type accepted, in bytes.
const MAX_KIND: usize = 64;

/// Events read per page by a feed subscription.
const PAGE: u32 = 500;

/// Which tenants' streams may have grown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// This tenant's.
    Tenant(String),
    /// Any (wake-ups may have been lost, or the poll interval passed): read everything.
    Any,
}

/// Wake-ups of a store's new events ([`Feed::changes`]), backed by the store's poll interval.
#[derive(Debug)]
pub struct Changes {
    rx: Option<broadcast::Receiver<Wake>>,
    poll: Duration,
}

impl Changes {
    /// The next wake-up, or [`Change::Any`] after the poll interval without one.
    pub async fn next(&mut self) -> Change {
        let Some(rx) = self.rx.as_mut() else {
            tokio::time::sleep(self.poll).await;
            return Change::Any;
        };
        match tokio::time::timeout(self.poll, rx.recv()).await {
            Ok(Ok(Wake::Tenant(t))) => Change::Tenant(t),
            Ok(Ok(Wake::All) | Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => Change::Any,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                self.rx = None;
                Change::Any
            }
        }
    }

    async fn wait_for(&mut self, tenant: &TenantId) {
        loop {
            match self.next().await {
                Change::Tenant(t) if t != tenant.as_str() => {}
                _ => return,
            }
        }
    }
}

/// A live stream of one tenant's [`FeedEvent`]s ([`Feed::subscribe_after`]); dropping it stops
/// its task.
#[derive(Debug)]
pub struct FeedSubscription {
    rx: mpsc::Receiver<Result<FeedEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FeedSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for FeedSubscription {
    type Item = Result<FeedEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
