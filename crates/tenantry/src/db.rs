//! The database a handle runs on: one pool shared by the queue, the ledger and the metrics.

use std::str::FromStr;
use std::time::Duration;

use tenantry_cost::{Ledger, PriceBook};
use tenantry_queue::JobStore;

use crate::error::{Error, Result};

/// Where a [`Tenantry`](crate::Tenantry) keeps its jobs, events, ledger and budgets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Database {
    /// An SQLite database: one process, events through an in-process channel.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(sqlx::SqlitePool),
    /// A PostgreSQL database: any number of instances, events through `LISTEN/NOTIFY`.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(sqlx::PgPool),
}

impl Database {
    /// Connects to a database URL: `sqlite://PATH` (created if missing; `sqlite::memory:` is
    /// refused because each connection would see its own database) or `postgres://…`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unsupported or malformed URL (or a backend whose feature is off),
    /// [`Error::Database`] when connecting fails.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                if url.contains(":memory:") || url.contains("mode=memory") {
                    return Err(Error::Config(
                        "in-memory SQLite is not supported: every connection would see its own database"
                            .into(),
                    ));
                }
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .map_err(|e| Error::Config(format!("bad SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30));
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await?;
                return Ok(Self::Sqlite(pool));
            }
            #[cfg(not(feature = "sqlite"))]
            return Err(Error::Config("the `sqlite` feature is off".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                let options = sqlx::postgres::PgConnectOptions::from_str(url)
                    .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                return Ok(Self::Postgres(pool));
            }
            #[cfg(not(feature = "postgres"))]
            return Err(Error::Config("the `postgres` feature is off".into()));
        }
        Err(Error::Config(
            "database URL must start with sqlite: or postgres://".into(),
        ))
    }

    /// Applies every component's pending migrations (queue, ledger, metrics) in one
    /// transaction, as [`TenantryBuilder::build`](crate::TenantryBuilder::build) does; returns
    /// what it applied (nothing when the schema is current). For a separate migration step
    /// before a rollout.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`]: a database newer than this code, an edited migration, or a failed
    /// statement (nothing applied then).
    pub async fn migrate(&self) -> Result<Vec<tenantry_core::migrate::AppliedMigration>> {
        Ok(tenantry_core::migrate::migrate(&self.pool(), &components()).await?)
    }

    /// Where each component's schema stands (applied, shipped, pending and edited
    /// migrations), changing nothing: for a health check.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the database cannot be read.
    pub async fn schema_status(&self) -> Result<Vec<tenantry_core::migrate::ComponentStatus>> {
        Ok(tenantry_core::migrate::status(&self.pool(), &components()).await?)
    }

    /// The database as the crates' shared SQL layer takes it.
    fn pool(&self) -> tenantry_core::db::Pool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => pool.clone().into(),
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.clone().into(),
        }
    }
}

/// A tenant id as the metrics take it. The handle has checked it with the queue's rules, which
/// are the same.
#[cfg(feature = "metrics")]
fn metrics_tenant(tenant: &str) -> Result<tenantry_core::TenantId> {
    tenantry_core::TenantId::new(tenant)
        .map_err(|e| Error::from(tenantry_queue::InvalidRequest::TenantId { max: e.max }))
}

/// The ledger's alert sink: the store's feed, written in the ledger's transactions.
fn alerts(store: impl Into<tenantry_queue::Feed>) -> std::sync::Arc<dyn tenantry_cost::AlertSink> {
    std::sync::Arc::new(crate::alerts::FeedAlerts { feed: store.into() })
}

/// Every component whose tables live in the host's database, migrated together.
fn components() -> Vec<&'static tenantry_core::migrate::Component> {
    vec![
        &tenantry_queue::MIGRATIONS,
        &tenantry_cost::MIGRATIONS,
        #[cfg(feature = "metrics")]
        &tenantry_metrics::MIGRATIONS,
    ]
}

/// The queue store, opened on the database after every component's migrations.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    #[cfg(feature = "sqlite")]
    Sqlite(tenantry_queue::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(tenantry_queue::PgStore),
}

impl Store {
    /// Migrates every component (queue, ledger, metrics) in one transaction, then opens the
    /// queue store and the ledger on the database.
    pub(crate) async fn open(
        db: Database,
        book: PriceBook,
        poll: Option<Duration>,
    ) -> Result<(Self, Ledger)> {
        let pool = db.pool();
        tenantry_core::migrate::migrate(&pool, &components()).await?;
        match db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let mut store = tenantry_queue::SqliteStore::open(pool.clone()).await?;
                if let Some(p) = poll {
                    store = store.with_poll_interval(p);
                }
                let ledger = Ledger::sqlite(pool, book).with_alert_sink(alerts(store.clone()));
                Ok((Self::Sqlite(store), ledger))
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let mut store = tenantry_queue::PgStore::open(pool.clone()).await?;
                if let Some(p) = poll {
                    store = store.with_poll_interval(p);
                }
                let ledger = Ledger::postgres(pool, book).with_alert_sink(alerts(store.clone()));
                Ok((Self::Postgres(store), ledger))
            }
        }
    }

    /// The tenants' whole event streams, budget alerts included.
    pub(crate) fn feed(&self) -> tenantry_queue::Feed {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.clone().into(),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.clone().into(),
        }
    }

    pub(crate) fn jobs(&self) -> &dyn JobStore {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s,
        }
    }

    /// The queue's repairs, on the same store.
    pub(crate) fn repair(&self) -> &dyn tenantry_queue::RepairStore {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s,
        }
    }

    /// Dead-lettered usage of every tenant (the queue's engine side answers it).
    pub(crate) async fn dead_usage_count(&self) -> Result<u64> {
        use tenantry_queue::ClaimStore;
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.dead_usage_count().await?,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.dead_usage_count().await?,
        })
    }

    /// The database as the metrics take it.
    #[cfg(feature = "metrics")]
    pub(crate) fn metrics_pool(&self) -> tenantry_core::db::Pool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(s) => s.pool().clone().into(),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.pool().clone().into(),
        }
    }

    /// Adds a tenant to the metrics' tenant tree under `parent` (its level is the parent's + 1).
    /// A tenant already there is left as it is.
    #[cfg(feature = "metrics")]
    pub(crate) async fn add_tenant(&self, tenant: &str, parent: Option<&str>) -> Result<()> {
        let parent = parent.map(metrics_tenant).transpose()?;
        tenantry_metrics::Registry::default()
            .add_tenant(
                &self.metrics_pool(),
                &metrics_tenant(tenant)?,
                parent.as_ref(),
            )
            .await?;
        Ok(())
    }

    /// Records a tenant, a user and the membership for the metrics (idempotent).
    #[cfg(feature = "metrics")]
    pub(crate) async fn register(&self, tenant: &str, user: &str) -> Result<()> {
        tenantry_metrics::Registry::default()
            .add_member(&self.metrics_pool(), &metrics_tenant(tenant)?, user)
            .await?;
        Ok(())
    }
}
