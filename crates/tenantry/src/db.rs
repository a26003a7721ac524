//! The database a handle runs on: one pool shared by the queue, the ledger and the metrics.

use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "metrics")]
use sea_query::InsertStatement;
#[cfg(feature = "metrics")]
use sea_query_sqlx::SqlxBinder;
#[cfg(feature = "metrics")]
use sqlx::AssertSqlSafe;
use tenantry_cost::{Ledger, PriceBook};
use tenantry_queue::JobStore;

use crate::error::{Error, Result};
#[cfg(feature = "metrics")]
use crate::sql;

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
}

/// Runs `$body` with the store's pool as `$pool` and a maker of its sea-query builder as `$qb`, so one
/// statement serves both backends.
#[cfg(feature = "metrics")]
macro_rules! on_store {
    ($store:expr, |$pool:ident, $qb:ident| $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(s) => {
                let $pool = s.pool();
                let $qb = || sea_query::SqliteQueryBuilder;
                $body
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => {
                let $pool = s.pool();
                let $qb = || sea_query::PostgresQueryBuilder;
                $body
            }
        }
    };
}

/// The queue store, opened (and migrated) on the database.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    #[cfg(feature = "sqlite")]
    Sqlite(tenantry_queue::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(tenantry_queue::PgStore),
}

impl Store {
    /// Opens the queue and the ledger (with the metrics tables) on one database, migrating all.
    pub(crate) async fn open(
        db: Database,
        book: PriceBook,
        poll: Option<Duration>,
    ) -> Result<(Self, Ledger)> {
        match db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                let mut store = tenantry_queue::SqliteStore::open(pool.clone()).await?;
                if let Some(p) = poll {
                    store = store.with_poll_interval(p);
                }
                let ledger = Ledger::sqlite(pool.clone(), book);
                ledger.migrate().await?;
                #[cfg(feature = "metrics")]
                tenantry_metrics::migrate::run_sqlite(&pool).await?;
                Ok((Self::Sqlite(store), ledger))
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                let mut store = tenantry_queue::PgStore::open(pool.clone()).await?;
                if let Some(p) = poll {
                    store = store.with_poll_interval(p);
                }
                let ledger = Ledger::postgres(pool.clone(), book);
                ledger.migrate().await?;
                #[cfg(feature = "metrics")]
                tenantry_metrics::migrate::run_postgres(&pool).await?;
                Ok((Self::Postgres(store), ledger))
            }
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

    /// Adds a tenant to the metrics' tenant tree under `parent` (its level is the parent's + 1).
    /// A tenant already there is left as it is.
    #[cfg(feature = "metrics")]
    pub(crate) async fn add_tenant(&self, tenant: &str, parent: Option<&str>) -> Result<()> {
        self.execute_all(&[sql::add_tenant(tenant, parent)]).await
    }

    /// Records a tenant, a user and the membership for the metrics (idempotent).
    #[cfg(feature = "metrics")]
    pub(crate) async fn register(&self, tenant: &str, user: &str) -> Result<()> {
        self.execute_all(&sql::register(tenant, user)).await
    }

    /// Runs `statements` in one transaction.
    #[cfg(feature = "metrics")]
    async fn execute_all(&self, statements: &[InsertStatement]) -> Result<()> {
        on_store!(self, |pool, qb| {
            let mut tx = pool.begin().await?;
            for stmt in statements {
                let (text, values) = stmt.build_sqlx(qb());
                sqlx::query_with(AssertSqlSafe(text), values)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
