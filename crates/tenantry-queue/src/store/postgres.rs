//! The production store: PostgreSQL, shared by many processes.
//!
//! # Events
//!
//! Each transaction that changes a job appends its events last: it takes a
//! transaction-scoped advisory lock per tenant involved (in sorted order), inserts the
//! events, and sends `NOTIFY tenantry_queue_events, '<tenant>'`. Holding the tenant's lock
//! from before the sequence number is drawn until commit makes a tenant's positions commit
//! in order, so "everything after my last position" never skips an event that commits late.
//! The notification is only a wake-up: one listener connection per store (application name
//! `tenantry-queue-listener`) forwards it to subscriptions, which then read the events table.
//! When the listener loses its connection it reconnects, re-`LISTEN`s and wakes every
//! subscription to catch up; a poll timer backs all of this up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_query::{Expr, Func, Query};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, broadcast};

use crate::error::{Error, Result};
use crate::event::{self, JobEvent, Position, Subscription, Wake};
use crate::ids::{JobId, TenantId};
use crate::job::{Cursor, Job, JobFilter, JobState, Page, Submission};
use crate::store::JobStore;
use crate::store::row::{EventRow, JobRow};
use crate::store::schema::{self, Dialect, Migrations};
use crate::store::sql::{self, NewEvent, render};
use crate::validate::{micros, prepare_many};

pub(super) const D: Dialect = Dialect::Postgres;
/// Rows per multi-row insert, within PostgreSQL's 65,535 bind parameters.
pub(super) const CHUNK: usize = 2000;
/// The notification channel.
pub(crate) const CHANNEL: &str = "tenantry_queue_events";
/// The application name of the listener connection (to find it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "tenantry-queue-listener";
/// Advisory lock class of the per-tenant event lock (`pg_advisory_xact_lock(int4, int4)`).
const EVENT_LOCK_CLASS: i32 = 0x7471_6576;
/// Advisory lock key serialising migrations (`pg_advisory_xact_lock(int8)`).
const MIGRATION_LOCK: i64 = 0x7471_6d69_6772_6174;
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A [`JobStore`] on PostgreSQL: many service instances may share one database.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use tenantry_queue::{JobStore, PgStore, SubmitOptions, TenantId};
///
/// let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
/// let store = PgStore::open(pool).await?;
/// let tenant = TenantId::new("acme")?;
/// let mut events = store.subscribe(&tenant).await?;
/// let params = serde_json::json!({
///     "model": "claude-sonnet-4-5", "max_tokens": 256,
///     "messages": [{"role": "user", "content": "Hello"}]
/// });
/// let id = store.submit(&tenant, "chat", "user-1", params, SubmitOptions::new()).await?;
/// let first = events.next().await.expect("stream is live")?;
/// assert_eq!(first.job_id, id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) pool: PgPool,
    hub: OnceCell<Hub>,
    poll: Duration,
}

/// The store's single listener task and the channel it wakes subscriptions through.
#[derive(Debug)]
struct Hub {
    wake: broadcast::Sender<Wake>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Opens the store on a pool, applying any pending migrations first (serialised across
    /// processes by an advisory lock).
    ///
    /// # Errors
    ///
    /// A database error, or [`Error::SchemaTooNew`] when the database was migrated by a
    /// newer version of this crate.
    pub async fn open(pool: PgPool) -> Result<Self> {
        migrate(&pool).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                hub: OnceCell::new(),
                poll: event::DEFAULT_POLL_INTERVAL,
            }),
        })
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The same store with another subscription poll interval (default 2 s).
    #[must_use]
    pub fn with_poll_interval(self, poll: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                hub: OnceCell::new(),
                poll,
            }),
        }
    }

    async fn hub(&self) -> Result<&Hub> {
        self.inner
            .hub
            .get_or_try_init(|| start_hub(&self.inner.pool))
            .await
    }
}

async fn listener(options: &PgConnectOptions) -> Result<PgListener> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Connects and `LISTEN`s (committed before this returns), then forwards notifications.
async fn start_hub(pool: &PgPool) -> Result<Hub> {
    let options = (*pool.connect_options())
        .clone()
        .application_name(LISTENER_APPLICATION_NAME);
    let first = listener(&options).await?;
    let (wake, _) = broadcast::channel(4096);
    let sender = wake.clone();
    let task = tokio::spawn(async move {
        let mut current = Some(first);
        let mut delay = RECONNECT_MIN;
        loop {
            let Some(l) = current.as_mut() else {
                match listener(&options).await {
                    Ok(l) => {
                        current = Some(l);
                        delay = RECONNECT_MIN;
                        // Wake-ups sent while disconnected are lost: everyone catches up.
                        let _ = sender.send(Wake::All);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "queue event listener cannot reconnect");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RECONNECT_MAX);
                    }
                }
                continue;
            };
            match l.try_recv().await {
                Ok(Some(n)) => {
                    let _ = sender.send(Wake::Tenant(n.payload().to_owned()));
                }
                // Reconnected and listening again; anything in between was lost.
                Ok(None) => {
                    let _ = sender.send(Wake::All);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "queue event listener lost its connection");
                    // Rebuilt above on the next turn, which then wakes everyone.
                    current = None;
                }
            }
        }
    });
    Ok(Hub { wake, task })
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    let (q, v) = render(
        Query::select().expr(Func::cust("pg_advisory_xact_lock").arg(MIGRATION_LOCK)),
        D,
    );
    sqlx::query_with(q, v).execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(schema::migrations_table(D)))
        .execute(&mut *tx)
        .await?;
    let (q, v) = render(
        &Query::select()
            .column(Migrations::Version)
            .from(Migrations::Table)
            .to_owned(),
        D,
    );
    let applied: HashSet<i64> = sqlx::query_scalar_with(q, v)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let shipped = schema::migrations(D);
    let newest = shipped.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.iter().max()
        && found > newest
    {
        return Err(Error::SchemaTooNew {
            found,
            supported: newest,
        });
    }
    for m in shipped
        .into_iter()
        .filter(|m| !applied.contains(&m.version))
    {
        for stmt in m.statements {
            sqlx::query(sqlx::AssertSqlSafe(stmt))
                .execute(&mut *tx)
                .await?;
        }
        let (q, v) = render(
            Query::insert()
                .into_table(Migrations::Table)
                .columns([Migrations::Version, Migrations::Name, Migrations::AppliedAt])
                .values_panic([
                    m.version.into(),
                    m.name.into(),
                    micros(OffsetDateTime::now_utc()).into(),
                ]),
            D,
        );
        sqlx::query_with(q, v).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Appends events as the last step of a transaction: tenant locks in sorted order, the
/// rows, then one wake-up per tenant.
pub(super) async fn append_events(conn: &mut PgConnection, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for t in &tenants {
        let (q, v) = render(
            Query::select().expr(
                Func::cust("pg_advisory_xact_lock")
                    .arg(EVENT_LOCK_CLASS)
                    .arg(Func::cust("hashtext").arg(Expr::val(*t))),
            ),
            D,
        );
        sqlx::query_with(q, v).execute(&mut *conn).await?;
    }
    for chunk in events.chunks(CHUNK) {
        let (q, v) = render(&sql::insert_events(chunk), D);
        sqlx::query_with(q, v).execute(&mut *conn).await?;
    }
    for t in &tenants {
        let (q, v) = render(
            Query::select().expr(Func::cust("pg_notify").arg(CHANNEL).arg(*t)),
            D,
        );
        sqlx::query_with(q, v).execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl JobStore for PgStore {
    async fn submit_many(
        &self,
        tenant: &TenantId,
        submissions: &[Submission],
    ) -> Result<Vec<JobId>> {
        let now = OffsetDateTime::now_utc();
        let jobs = prepare_many(tenant, submissions, now)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.inner.pool.begin().await?;
        let mut inserted = HashSet::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            let (q, v) = render(&sql::insert_jobs(chunk), D);
            let ids: Vec<String> = sqlx::query_scalar_with(q, v).fetch_all(&mut *tx).await?;
            inserted.extend(ids);
        }
        let dup_keys: Vec<String> = jobs
            .iter()
            .filter(|j| !inserted.contains(j.id.as_str()))
            .filter_map(|j| j.idempotency_key.clone())
            .collect();
        let mut existing = HashMap::new();
        for keys in dup_keys.chunks(CHUNK) {
            let (q, v) = render(&sql::jobs_by_keys(tenant, keys.to_vec()), D);
            let rows: Vec<(String, String)> = sqlx::query_as_with(q, v).fetch_all(&mut *tx).await?;
            existing.extend(rows.into_iter().map(|(id, key)| (key, id)));
        }
        let at = micros(now);
        let events: Vec<NewEvent> = jobs
            .iter()
            .filter(|j| inserted.contains(j.id.as_str()))
            .map(|j| NewEvent {
                tenant: tenant.as_str().to_owned(),
                job_id: j.id.as_str().to_owned(),
                state: JobState::Queued,
                at,
            })
            .collect();
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
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
                super::row::parse_job_id(id)
            })
            .collect()
    }

    async fn job(&self, tenant: &TenantId, id: &JobId) -> Result<Job> {
        let (q, v) = render(&sql::select_job(tenant, id), D);
        let row: Option<JobRow> = sqlx::query_as_with(q, v)
            .fetch_optional(&self.inner.pool)
            .await?;
        row.ok_or_else(|| Error::NotFound { id: id.to_string() })?
            .try_into()
    }

    async fn cancel(&self, tenant: &TenantId, id: &JobId) -> Result<Job> {
        let now = micros(OffsetDateTime::now_utc());
        let mut tx = self.inner.pool.begin().await?;
        let (q, v) = render(&sql::cancel_job(tenant, id, now), D);
        let changed: Option<String> = sqlx::query_scalar_with(q, v)
            .fetch_optional(&mut *tx)
            .await?;
        if changed.is_some() {
            let event = NewEvent {
                tenant: tenant.as_str().to_owned(),
                job_id: id.as_str().to_owned(),
                state: JobState::Canceled,
                at: now,
            };
            append_events(&mut tx, &[event]).await?;
        }
        let (q, v) = render(&sql::select_job(tenant, id), D);
        let row: Option<JobRow> = sqlx::query_as_with(q, v).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
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
    ) -> Result<Page> {
        let (q, v) = render(&sql::list_jobs(tenant, filter, cursor), D);
        let rows: Vec<JobRow> = sqlx::query_as_with(q, v)
            .fetch_all(&self.inner.pool)
            .await?;
        super::page(rows, filter)
    }

    async fn events_after(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        let (q, v) = render(&sql::events_after(tenant, after, limit), D);
        let rows: Vec<EventRow> = sqlx::query_as_with(q, v)
            .fetch_all(&self.inner.pool)
            .await?;
        rows.into_iter().map(|r| r.into_event(tenant)).collect()
    }

    async fn latest_position(&self, tenant: &TenantId) -> Result<Position> {
        let (q, v) = render(&sql::latest_position(tenant), D);
        let seq: Option<i64> = sqlx::query_scalar_with(q, v)
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(Position(seq.unwrap_or(0)))
    }

    async fn subscribe(&self, tenant: &TenantId) -> Result<Subscription> {
        // LISTEN is committed (hub started) and the wake-up receiver taken before the
        // position is read, so nothing committed after that read is missed.
        let wake = self.hub().await?.wake.subscribe();
        let after = self.latest_position(tenant).await?;
        Ok(event::spawn_subscription(
            Arc::new(self.clone()),
            tenant.clone(),
            after,
            wake,
            self.inner.poll,
        ))
    }

    async fn subscribe_after(&self, tenant: &TenantId, after: Position) -> Result<Subscription> {
        let wake = self.hub().await?.wake.subscribe();
        Ok(event::spawn_subscription(
            Arc::new(self.clone()),
            tenant.clone(),
            after,
            wake,
            self.inner.poll,
        ))
    }
}
