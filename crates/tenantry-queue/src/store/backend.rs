//! What differs between the two stores, and nothing else: how a write transaction starts,
//! how a committed change wakes subscribers, and where subscriptions get their wake-ups.
//! Everything the stores do is written once over this trait (see `jobs.rs`, `claims.rs`).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sea_query::{Expr, Func, Query};
use tokio::sync::broadcast;

use crate::TenantId;
use crate::error::Result;
use crate::event::Wake;
use crate::job::JobState;
use tenantry_core::db::{Backend, Pool, Tx};

use crate::store::sql::{self, events::NewEvent};
#[cfg(feature = "postgres")]
use crate::store::{PgStore, postgres};
#[cfg(feature = "sqlite")]
use crate::store::{SqliteStore, sqlite};
use crate::validate::NewJob;

/// Advisory lock class of the per-tenant event lock (`pg_advisory_xact_lock(int4, int4)`).
const EVENT_LOCK_CLASS: i32 = 0x7471_6576;

/// One of the two stores.
#[async_trait]
pub(crate) trait Store: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Rows per multi-row statement, within the backend's bind-parameter limit.
    const CHUNK: usize;

    /// The pool, for single statements.
    fn pool(&self) -> &Pool;

    /// Starts a write transaction.
    async fn begin(&self) -> Result<Tx>;

    /// Called after a commit that appended events for these tenants.
    fn committed(&self, tenants: &[&str]);

    /// A receiver of wake-ups, taken before a subscription reads its start position.
    async fn wake(&self) -> Result<broadcast::Receiver<Wake>>;

    /// How often a subscription looks at the events table without a wake-up.
    fn poll_interval(&self) -> Duration;

    /// The database's clock, in microseconds since the epoch (see [`clock`](super::clock)).
    fn clock_now(&self) -> i64;

    /// Measures the database clock's offset again if the last measure is old.
    async fn sync_clock(&self) -> Result<()>;

    /// Open event listener connections on the database; `None` where events need none.
    async fn listener_count(&self) -> Result<Option<u64>>;

    /// Stores a `submit_many` call's new jobs with their `queued` events, all or nothing;
    /// returns the ids inserted (a job whose idempotency key is taken is skipped). One
    /// transaction of multi-row statements; PostgreSQL does it in one statement instead.
    async fn insert_new_jobs(
        &self,
        tenant: &TenantId,
        jobs: &[NewJob],
        at: i64,
    ) -> Result<HashSet<String>> {
        let mut tx = self.begin().await?;
        let mut inserted = HashSet::with_capacity(jobs.len());
        for chunk in jobs.chunks(Self::CHUNK) {
            let insert = sql::submit::insert_jobs(chunk, tx.backend());
            let ids: Vec<(String,)> = tx.fetch_all(&insert).await?;
            inserted.extend(ids.into_iter().map(|(id,)| id));
        }
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
        self.commit(tx, &events).await?;
        Ok(inserted)
    }

    /// Appends the events (last step of the transaction), commits, and wakes subscribers.
    async fn commit(&self, mut tx: Tx, events: &[NewEvent]) -> Result<()> {
        let tenants = tenants(events);
        append_events(&mut tx, &tenants, events, Self::CHUNK).await?;
        tx.commit().await?;
        if !tenants.is_empty() {
            self.committed(&tenants);
        }
        Ok(())
    }
}

fn tenants(events: &[NewEvent]) -> Vec<&str> {
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// Inserts the events in order. On PostgreSQL it first takes each tenant's advisory lock
/// (in sorted order) so a tenant's positions commit in order, and queues one `NOTIFY` per
/// tenant in the same statement: PostgreSQL holds notifications until the commit whenever
/// they are issued, so asking early costs no correctness and saves a round trip per tenant
/// (see [`PgStore`]'s docs).
async fn append_events(
    tx: &mut Tx,
    tenants: &[&str],
    events: &[NewEvent],
    chunk: usize,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    lock_and_notify(tx, tenants).await?;
    for rows in events.chunks(chunk) {
        let insert = sql::events::insert_events(rows, tx.backend());
        tx.execute(&insert).await?;
    }
    Ok(())
}

/// On PostgreSQL, takes each tenant's event lock (`tenants` sorted) and queues its `NOTIFY`:
/// what a transaction does before it appends events. Nothing on SQLite, whose writer lock
/// already orders the log.
pub(super) async fn lock_and_notify(tx: &mut Tx, tenants: &[&str]) -> Result<()> {
    #[cfg(feature = "postgres")]
    if tx.backend() == Backend::Postgres {
        for t in tenants {
            let lock_and_notify = Query::select()
                .expr(
                    Func::cust("pg_advisory_xact_lock")
                        .arg(EVENT_LOCK_CLASS)
                        .arg(Func::cust("hashtext").arg(Expr::val(*t))),
                )
                .expr(Func::cust("pg_notify").arg(postgres::CHANNEL).arg(*t))
                .to_owned();
            tx.execute(&lock_and_notify).await?;
        }
    }
    Ok(())
}

#[cfg(feature = "postgres")]
#[async_trait]
impl Store for PgStore {
    const CHUNK: usize = postgres::CHUNK;

    fn pool(&self) -> &Pool {
        &self.inner.db
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.inner.db.begin().await?)
    }

    /// One statement, committed on its own: a single `submit` costs one round trip.
    async fn insert_new_jobs(
        &self,
        tenant: &TenantId,
        jobs: &[NewJob],
        at: i64,
    ) -> Result<HashSet<String>> {
        let submit = sql::submit::submit_jobs_postgres(tenant, jobs, EVENT_LOCK_CLASS, at);
        let ids: Vec<(String,)> = Store::pool(self).fetch_all(&submit).await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    fn committed(&self, _tenants: &[&str]) {
        // The NOTIFYs went out with the commit.
    }

    async fn wake(&self) -> Result<broadcast::Receiver<Wake>> {
        self.wake_receiver().await
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll
    }

    fn clock_now(&self) -> i64 {
        self.inner.clock.now()
    }

    async fn sync_clock(&self) -> Result<()> {
        self.inner.clock.sync_if_stale(&self.inner.pool).await
    }

    async fn listener_count(&self) -> Result<Option<u64>> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
        )
        .bind(postgres::LISTENER_APPLICATION_NAME)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(Some(u64::try_from(count).unwrap_or(0)))
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl Store for SqliteStore {
    const CHUNK: usize = sqlite::CHUNK;

    fn pool(&self) -> &Pool {
        &self.inner.db
    }

    async fn begin(&self) -> Result<Tx> {
        // `BEGIN IMMEDIATE`: one writer at a time from the start, so the event log's order is
        // commit order.
        Ok(self.inner.db.begin().await?)
    }

    fn committed(&self, tenants: &[&str]) {
        self.notify(tenants.iter().map(|t| (*t).to_owned()));
    }

    async fn wake(&self) -> Result<broadcast::Receiver<Wake>> {
        Ok(self.inner.wake.subscribe())
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll
    }

    /// SQLite runs in this process: its clock is the host's.
    fn clock_now(&self) -> i64 {
        super::clock::host_now()
    }

    async fn sync_clock(&self) -> Result<()> {
        Ok(())
    }

    /// Events travel through an in-process channel: no connection listens.
    async fn listener_count(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}
