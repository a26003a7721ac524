//! The embedded store: SQLite, for one process.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions (SQLite has one writer at a time, so the
//! event log's order is the commit order). Subscriptions are woken through an in-process
//! channel after each commit; several processes sharing one SQLite file still see each
//! other's events through the poll timer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::event::{self, JobEvent, Position, Subscription, Wake};
use crate::ids::{JobId, TenantId};
use crate::job::{Cursor, Job, JobFilter, JobState, Page, Submission};
use crate::store::JobStore;
use crate::store::row::{EventRow, JobRow};
use crate::store::schema::{self, Dialect, Migrations};
use crate::store::sql::{self, NewEvent, render};
use crate::validate::{micros, prepare_many};

pub(super) const D: Dialect = Dialect::Sqlite;
/// Rows per multi-row insert, within SQLite's 32,766 bind parameters.
pub(super) const CHUNK: usize = 1000;

/// A [`JobStore`] on SQLite: the embedded default for a single process.
///
/// # Example
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_queue::{JobStore, SqliteStore, SubmitOptions, TenantId};
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let store = SqliteStore::open(pool).await?;
/// let tenant = TenantId::new("acme")?;
/// let params = serde_json::json!({
///     "model": "claude-sonnet-4-5", "max_tokens": 256,
///     "messages": [{"role": "user", "content": "Hello"}]
/// });
/// let id = store.submit(&tenant, "chat", "user-1", params, SubmitOptions::new()).await?;
/// assert_eq!(store.job(&tenant, &id).await?.state, tenantry_queue::JobState::Queued);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) pool: SqlitePool,
    wake: broadcast::Sender<Wake>,
    poll: Duration,
}

impl SqliteStore {
    /// Opens the store on a pool, applying any pending migrations first.
    ///
    /// # Errors
    ///
    /// A database error, or [`Error::SchemaTooNew`] when the file was migrated by a newer
    /// version of this crate.
    pub async fn open(pool: SqlitePool) -> Result<Self> {
        migrate(&pool).await?;
        let (wake, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                wake,
                poll: event::DEFAULT_POLL_INTERVAL,
            }),
        })
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// The same store with another subscription poll interval (default 2 s).
    #[must_use]
    pub fn with_poll_interval(self, poll: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                wake: self.inner.wake.clone(),
                poll,
            }),
        }
    }

    pub(super) fn notify(&self, tenants: impl IntoIterator<Item = String>) {
        for t in tenants {
            // No receiver is fine: nobody is subscribed.
            let _ = self.inner.wake.send(Wake::Tenant(t));
        }
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(sqlx::AssertSqlSafe(schema::migrations_table(D)))
        .execute(&mut *tx)
        .await?;
    let (q, v) = render(
        &sea_query::Query::select()
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
            sea_query::Query::insert()
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

#[async_trait]
impl JobStore for SqliteStore {
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
        let mut tx = self.inner.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        for chunk in events.chunks(CHUNK) {
            let (q, v) = render(&sql::insert_events(chunk), D);
            sqlx::query_with(q, v).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if !events.is_empty() {
            self.notify([tenant.as_str().to_owned()]);
        }
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
        let mut tx = self.inner.pool.begin_with("BEGIN IMMEDIATE").await?;
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
            let (q, v) = render(&sql::insert_events(&[event]), D);
            sqlx::query_with(q, v).execute(&mut *tx).await?;
        }
        let (q, v) = render(&sql::select_job(tenant, id), D);
        let row: Option<JobRow> = sqlx::query_as_with(q, v).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let job: Job = row
            .ok_or_else(|| Error::NotFound { id: id.to_string() })?
            .try_into()?;
        if changed.is_some() {
            self.notify([tenant.as_str().to_owned()]);
        }
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
        // Take the wake-up receiver first, so nothing committed after the position read is missed.
        let wake = self.inner.wake.subscribe();
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
        let wake = self.inner.wake.subscribe();
        Ok(event::spawn_subscription(
            Arc::new(self.clone()),
            tenant.clone(),
            after,
            wake,
            self.inner.poll,
        ))
    }
}
