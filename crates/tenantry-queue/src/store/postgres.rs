//! The production store: PostgreSQL, shared by many processes.
//!
//! # Events
//!
//! Each transaction that changes a job appends its events last: it takes a
//! transaction-scoped advisory lock per tenant involved (in sorted order) and, in the same
//! statement, queues `NOTIFY tenantry_queue_events, '<tenant>'` (PostgreSQL delivers it only
//! at commit), then inserts the events. Holding the tenant's lock from before the sequence
//! number is drawn until commit makes a tenant's positions commit in order, so "everything
//! after my last position" never skips an event that commits late. A `submit` or
//! `submit_many` does all of it in one statement that commits on its own (one round trip).
//! The notification is only a wake-up: one listener connection per store (application name
//! `tenantry-queue-listener`) forwards it to subscriptions, which then read the events table.
//! When the listener loses its connection it reconnects, re-`LISTEN`s and wakes every
//! subscription to catch up; a poll timer backs all of this up.
//!
//! A connection can also die silently (a host or network gone without a reset): nothing
//! arrives and nothing fails. So after a heartbeat interval without a notification the
//! listener sends `SELECT 1` on its connection; no answer within another interval counts
//! as a lost connection. A dead listener is therefore replaced within two heartbeat
//! intervals (default [`DEFAULT_LISTENER_HEARTBEAT`], so 30 s); meanwhile the poll timer
//! still delivers every event, only later.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{OnceCell, broadcast};

use crate::error::Result;
use crate::event::{self, Wake};
use crate::store::clock::DbClock;
use tenantry_core::db::Pool;

use crate::store::schema;

/// Rows per multi-row insert, within PostgreSQL's 65,535 bind parameters.
pub(super) const CHUNK: usize = 2000;
/// The notification channel.
pub(crate) const CHANNEL: &str = "tenantry_queue_events";
/// The application name of the listener connection (to find it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "tenantry-queue-listener";
/// How long the listener waits without a notification before it checks its connection.
pub const DEFAULT_LISTENER_HEARTBEAT: Duration = Duration::from_secs(15);
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A [`JobStore`](crate::JobStore) on PostgreSQL: many service instances may share one database.
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
    /// The same pool, for the statements written once for both stores.
    pub(super) db: Pool,
    hub: OnceCell<Hub>,
    pub(super) poll: Duration,
    heartbeat: Duration,
    pub(super) clock: Arc<DbClock>,
    /// Submits waiting to be written together.
    pub(super) groups: super::group::Groups,
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
    /// A database error, or [`Error::Migrate`](crate::Error::Migrate) when the database was
    /// migrated by a newer version of this crate or a shipped migration was edited.
    pub async fn open(pool: PgPool) -> Result<Self> {
        let db = Pool::from(pool.clone());
        schema::migrate(&db).await?;
        let clock = Arc::new(DbClock::default());
        clock.sync(&pool).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                db,
                hub: OnceCell::new(),
                poll: event::DEFAULT_POLL_INTERVAL,
                heartbeat: DEFAULT_LISTENER_HEARTBEAT,
                clock,
                groups: super::group::Groups::default(),
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
        self.with_timers(poll, self.inner.heartbeat)
    }

    /// The same store with another listener heartbeat (default
    /// [`DEFAULT_LISTENER_HEARTBEAT`]): after this long without a notification the
    /// listener checks its connection, and replaces it when the check gets no answer
    /// within as long again.
    #[must_use]
    pub fn with_listener_heartbeat(self, heartbeat: Duration) -> Self {
        self.with_timers(self.inner.poll, heartbeat)
    }

    /// A store on the same pool with its own listener and these timers.
    fn with_timers(&self, poll: Duration, heartbeat: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                db: self.inner.db.clone(),
                hub: OnceCell::new(),
                poll,
                heartbeat,
                clock: self.inner.clock.clone(),
                groups: super::group::Groups::default(),
            }),
        }
    }

    /// A wake-up receiver; the first call starts the listener (its `LISTEN` is committed
    /// before this returns).
    pub(super) async fn wake_receiver(&self) -> Result<broadcast::Receiver<Wake>> {
        let hub = self
            .inner
            .hub
            .get_or_try_init(|| start_hub(&self.inner.pool, self.inner.heartbeat))
            .await?;
        Ok(hub.wake.subscribe())
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
async fn start_hub(pool: &PgPool, heartbeat: Duration) -> Result<Hub> {
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
            match tokio::time::timeout(heartbeat, l.try_recv()).await {
                Ok(Ok(Some(n))) => {
                    let _ = sender.send(Wake::Tenant(n.payload().to_owned()));
                }
                // Reconnected and listening again; anything in between was lost.
                Ok(Ok(None)) => {
                    let _ = sender.send(Wake::All);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "queue event listener lost its connection");
                    // Rebuilt above on the next turn, which then wakes everyone.
                    current = None;
                }
                Err(_quiet) => {
                    let ping = sqlx::query("SELECT 1").execute(&mut *l);
                    if !matches!(tokio::time::timeout(heartbeat, ping).await, Ok(Ok(_))) {
                        tracing::warn!("queue event listener's connection stopped answering");
                        current = None;
                    } else {
                        // A wait cut short may have dropped a wake-up: catching up is cheap.
                        let _ = sender.send(Wake::All);
                    }
                }
            }
        }
    });
    Ok(Hub { wake, task })
}
