//! The embedded store: SQLite, one file on one host.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions (SQLite has one writer at a time, so the
//! event log's order is the commit order). Several engine processes may share one file (in
//! WAL mode): the write lock serialises their claims across processes exactly as `SKIP
//! LOCKED` separates them on PostgreSQL, and the multi-process test runs three at once under
//! the same invariants. Subscriptions are woken through an in-process channel after each
//! commit; another process's events reach them through the poll timer.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::broadcast;

use crate::error::Result;
use crate::event::{self, Wake};
use tenantry_core::db::Pool;

use crate::store::schema;

/// Rows per multi-row insert, within SQLite's 32,766 bind parameters.
pub(super) const CHUNK: usize = 1000;

/// A [`JobStore`](crate::JobStore) on SQLite: the embedded default for one host.
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
    /// The same pool, for the statements written once for both stores.
    pub(super) db: Pool,
    pub(super) wake: broadcast::Sender<Wake>,
    pub(super) poll: Duration,
    /// Submits waiting to be written together.
    pub(super) groups: super::group::Groups,
}

impl SqliteStore {
    /// Opens the store on a pool, applying any pending migrations first.
    ///
    /// # Errors
    ///
    /// A database error, or [`Error::Migrate`](crate::Error::Migrate) when the file was
    /// migrated by a newer version of this crate or a shipped migration was edited.
    pub async fn open(pool: SqlitePool) -> Result<Self> {
        let db = Pool::from(pool.clone());
        schema::migrate(&db).await?;
        let (wake, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                db,
                wake,
                poll: event::DEFAULT_POLL_INTERVAL,
                groups: super::group::Groups::default(),
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
                db: self.inner.db.clone(),
                wake: self.inner.wake.clone(),
                poll,
                groups: super::group::Groups::default(),
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
