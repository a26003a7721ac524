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

use crate::store::group::{Call, Groups};
use crate::store::sql::{self, events::NewEvent};
#[cfg(feature = "postgres")]
use crate::store::{PgStore, postgres};
#[cfg(feature = "sqlite")]
use crate::store::{SqliteStore, sqlite};
use crate::validate::NewJob;

/// Calls of fewer jobs are written in groups with the concurrent ones
/// ([`group`](super::group)); a larger call is a write of its own, where grouping would save
/// little (on PostgreSQL a `COPY` when it has no idempotency key: five round trips, which only a
/// large call repays).
pub(crate) const GROUP_MAX_JOBS: usize = 64;

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

    /// The submits waiting to be written together (see [`group`](super::group)).
    fn groups(&self) -> &Groups;

    /// Stores a `submit_many` call's new jobs with their `queued` events, all or nothing;
    /// returns the ids inserted (a job whose idempotency key is taken is skipped). A small call
    /// is written in a group with the concurrent ones; a large one in a transaction of its own
    /// (on PostgreSQL a `COPY` when it has no idempotency key).
    async fn insert_new_jobs(
        &self,
        tenant: &TenantId,
        jobs: &[NewJob],
        at: i64,
    ) -> Result<HashSet<String>> {
        if jobs.len() < GROUP_MAX_JOBS {
            return super::group::submit(self, tenant, jobs, at).await;
        }
        crate::failpoint!("store.submit.bulk");
        let call = [Call::alone(tenant.clone(), jobs.to_vec(), at)];
        self.insert_group(&call).await
    }

    /// Stores the jobs of these calls with their `queued` events in one transaction, all or
    /// nothing; returns the ids inserted. Multi-row statements; PostgreSQL does it in one
    /// statement instead.
    async fn insert_group(&self, calls: &[Call]) -> Result<HashSet<String>> {
        let mut tx = self.begin().await?;
        let jobs: Vec<&NewJob> = calls.iter().flat_map(|c| &c.jobs).collect();
        let mut inserted = HashSet::with_capacity(jobs.len());
        for chunk in jobs.chunks(Self::CHUNK) {
            let chunk: Vec<NewJob> = chunk.iter().map(|j| (*j).clone()).collect();
            let insert = sql::submit::insert_jobs(&chunk, tx.backend());
            let ids: Vec<(String,)> = tx.fetch_all(&insert).await?;
            inserted.extend(ids.into_iter().map(|(id,)| id));
        }
        let events: Vec<NewEvent> = calls
            .iter()
            .flat_map(|c| c.jobs.iter().map(move |j| (c, j)))
            .filter(|(_, j)| inserted.contains(j.id.as_str()))
            .map(|(c, j)| NewEvent {
                tenant: c.tenant.as_str().to_owned(),
                job_id: j.id.as_str().to_owned(),
                state: JobState::Queued,
                at: c.at,
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

    fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// A large call without idempotency keys is a `COPY` (see [`copy_new_jobs`]); every other
    /// call goes as the trait's default does.
    async fn insert_new_jobs(
        &self,
        tenant: &TenantId,
        jobs: &[NewJob],
        at: i64,
    ) -> Result<HashSet<String>> {
        if jobs.len() < GROUP_MAX_JOBS {
            return super::group::submit(self, tenant, jobs, at).await;
        }
        crate::failpoint!("store.submit.bulk");
        if jobs.iter().all(|j| j.idempotency_key.is_none()) {
            return copy_new_jobs(self, tenant, jobs, at).await;
        }
        let call = [Call::alone(tenant.clone(), jobs.to_vec(), at)];
        self.insert_group(&call).await
    }

    /// One statement, committed on its own: a group of submits costs one round trip.
    async fn insert_group(&self, calls: &[Call]) -> Result<HashSet<String>> {
        let mut tenants: Vec<&str> = calls.iter().map(|c| c.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let jobs: Vec<NewJob> = calls.iter().flat_map(|c| c.jobs.iter().cloned()).collect();
        let submit = sql::submit::submit_jobs_postgres(&tenants, &jobs, EVENT_LOCK_CLASS);
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

/// PostgreSQL, a large `submit_many` call without idempotency keys: one transaction that
/// loads the rows with `COPY` (the database's own bulk load: no statement to parse per row, no
/// JSON to expand), then appends their `queued` events as every other write does (the tenant's
/// event lock and `NOTIFY` first). Without keys nothing can conflict, so every job is inserted.
/// Atomic like the one-statement submit: until the commit nothing is visible, and a failure or
/// a crash anywhere before it leaves nothing behind.
#[cfg(feature = "postgres")]
async fn copy_new_jobs(
    store: &PgStore,
    tenant: &TenantId,
    jobs: &[NewJob],
    at: i64,
) -> Result<HashSet<String>> {
    let mut tx = store.begin().await?;
    {
        let Tx::Postgres(pg) = &mut tx else {
            return Err(crate::Error::Corrupt {
                what: "transaction",
                detail: "a PostgreSQL store opened another kind of transaction".to_owned(),
            });
        };
        let mut copy = pg.copy_in_raw(&sql::copy::copy_jobs_statement()).await?;
        copy.send(sql::copy::job_rows(jobs).as_bytes()).await?;
        copy.finish().await?;
    }
    let events: Vec<NewEvent> = jobs
        .iter()
        .map(|j| NewEvent {
            tenant: tenant.as_str().to_owned(),
            job_id: j.id.as_str().to_owned(),
            state: JobState::Queued,
            at,
        })
        .collect();
    store.commit(tx, &events).await?;
    Ok(jobs.iter().map(|j| j.id.as_str().to_owned()).collect())
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

    fn groups(&self) -> &Groups {
        &self.inner.groups
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
