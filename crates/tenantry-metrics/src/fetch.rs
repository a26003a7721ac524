//! Running a [`MetricsQuery`] on a database and decoding its rows: one path for every caller,
//! on a [`Pool`] or on a connection or transaction of the caller's.

use std::sync::Arc;

use sea_query_sqlx::SqlxValues;
use sqlx::{AssertSqlSafe, Connection as _};
use tenantry_core::db::Pool;

use crate::cache::MetricsCache;
use crate::error::{Error, Result};
use crate::query::{MetricRow, MetricsQuery};
use crate::render::Backend;

/// Turns JIT off until the end of the current transaction (or savepoint, when rolled back).
const NO_JIT: &str = "SET LOCAL jit = off";
/// A read-only transaction with JIT off, sent as one simple-protocol message.
const BEGIN_NO_JIT: &str = "BEGIN READ ONLY; SET LOCAL jit = off";

impl MetricsQuery {
    /// Runs the query on `pool`: one query statement whatever the number of tenants.
    ///
    /// On PostgreSQL the statement runs with the server's JIT off, in a read-only transaction of
    /// its own that is rolled back afterwards; see [`fetch_postgres`](Self::fetch_postgres) for
    /// why and what it costs.
    ///
    /// # Errors
    /// [`Error::NoMetrics`](crate::Error::NoMetrics) when nothing is selected,
    /// [`Error::DimensionSource`](crate::Error::DimensionSource) when a grouped query aggregates
    /// another source than the ledger, [`Error::Database`](crate::Error::Database) when the
    /// database fails (including a `SUM` outside `i64`: PostgreSQL's `bigint out of range`,
    /// SQLite's `integer overflow`).
    ///
    /// # Example
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tenantry_core::db::Pool;
    /// use tenantry_metrics::{builtin, MetricsQuery, Scope};
    ///
    /// let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
    /// tenantry_metrics::migrate(&pool).await?;
    /// let mut q = MetricsQuery::new();
    /// q.scope(Scope::All);
    /// q.select("users", builtin::users())?;
    /// assert!(q.fetch(&pool).await?.is_empty()); // no tenant yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn fetch(&self, pool: &Pool) -> Result<Vec<MetricRow>> {
        self.fetch_on(pool, None).await
    }

    /// [`fetch`](Self::fetch) with the SQL from `cache`: a query of a shape seen before binds
    /// its values to the cached SQL instead of being rendered again.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub async fn fetch_cached(&self, cache: &MetricsCache, pool: &Pool) -> Result<Vec<MetricRow>> {
        self.fetch_on(pool, Some(cache)).await
    }

    /// Runs the query on PostgreSQL, on a connection or inside a transaction the caller holds
    /// (or a pool): what [`fetch`](Self::fetch) does on a PostgreSQL [`Pool`].
    ///
    /// `conn` is a pool, a connection or a transaction.
    ///
    /// # Why JIT is turned off, and what it costs
    /// A whole-table dashboard's estimated cost is far above PostgreSQL's `jit_above_cost`,
    /// `jit_inline_above_cost` and `jit_optimize_above_cost` (the recursive walks are estimated
    /// well above their real size), and with the server default `jit = on` PostgreSQL spent
    /// longer compiling the statement than running it: 7.5–9.3 s against 2.5–3.1 s for 10,000
    /// tenants and 1,000,000 ledger rows (`docs/benchmarks.md`). The statement cannot be made
    /// cheap enough to stay under the thresholds (a scan of a million-row ledger alone crosses
    /// `jit_above_cost`), and `jit` is read when the statement is planned, so nothing inside the
    /// statement can switch it off.
    ///
    /// So the query runs in a transaction of its own: `BEGIN READ ONLY; SET LOCAL jit = off` is
    /// sent as one simple-protocol message (one round trip), then the query (one round trip), and
    /// the transaction is rolled back, which also undoes the `SET LOCAL`. The `ROLLBACK` is
    /// queued, not awaited (sqlx's handling of a dropped transaction): it leaves with the
    /// connection's next message, for a pooled connection the liveness check sqlx sends anyway
    /// when the connection returns to the pool. Inside the caller's transaction the same runs in
    /// a savepoint (`SAVEPOINT`, `SET LOCAL jit = off`, the query, `ROLLBACK TO SAVEPOINT`: three
    /// round trips), and the caller's own settings are as they were afterwards. The host changes
    /// no server, pool or session setting.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn fetch_postgres<'c, A>(&self, conn: A) -> Result<Vec<MetricRow>>
    where
        A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
    {
        let (sql, values) = self.render(Backend::Postgres, None)?;
        self.run_postgres(sql, values, conn).await
    }

    /// Runs the query on SQLite, on a connection or inside a transaction the caller holds (or a
    /// pool): what [`fetch`](Self::fetch) does on a SQLite [`Pool`]. One statement.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn fetch_sqlite<'c, E>(&self, executor: E) -> Result<Vec<MetricRow>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let (sql, values) = self.render(Backend::Sqlite, None)?;
        self.run_sqlite(sql, values, executor).await
    }

    /// The one path: renders for the pool's backend (through `cache` when given) and runs.
    async fn fetch_on(&self, pool: &Pool, cache: Option<&MetricsCache>) -> Result<Vec<MetricRow>> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = pool.as_postgres() {
            let (sql, values) = self.render(Backend::Postgres, cache)?;
            return self.run_postgres(sql, values, pool).await;
        }
        #[cfg(feature = "sqlite")]
        if let Some(pool) = pool.as_sqlite() {
            let (sql, values) = self.render(Backend::Sqlite, cache)?;
            return self.run_sqlite(sql, values, pool).await;
        }
        Err(Error::Database(sqlx::Error::Configuration(
            format!(
                "tenantry-metrics does not run on {}",
                pool.backend().as_str()
            )
            .into(),
        )))
    }

    /// The SQL text and values for `dialect`, from `cache` when given.
    fn render(
        &self,
        dialect: Backend,
        cache: Option<&MetricsCache>,
    ) -> Result<(AssertSqlSafe<Arc<str>>, SqlxValues)> {
        let (sql, values) = match cache {
            Some(cache) => cache.build(self, dialect)?,
            None => {
                let (sql, values) = self.build(dialect)?;
                (sql.into(), values)
            }
        };
        Ok((AssertSqlSafe(sql), SqlxValues(values)))
    }

    fn decode<R: sqlx::Row>(&self, rows: &[R]) -> Result<Vec<MetricRow>>
    where
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let names = self.names();
        rows.iter()
            .map(|row| {
                let tenant_id: String = row.try_get(0)?;
                let dimensions = (self.dimensions.iter().enumerate())
                    .map(|(j, d)| Ok((*d, row.try_get::<String, _>(j + 1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                let first = 1 + dimensions.len();
                let values = (0..self.metrics.len())
                    .map(|i| row.try_get::<Option<i64>, _>(first + i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(MetricRow {
                    tenant_id,
                    dimensions,
                    values,
                    names: names.clone(),
                })
            })
            .collect()
    }

    #[cfg(feature = "postgres")]
    async fn run_postgres<'c, A>(
        &self,
        sql: AssertSqlSafe<Arc<str>>,
        values: SqlxValues,
        conn: A,
    ) -> Result<Vec<MetricRow>>
    where
        A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
    {
        let mut conn = conn.acquire().await?;
        let mut tx = if conn.is_in_transaction() {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(NO_JIT).execute(&mut *tx).await?;
            tx
        } else {
            conn.begin_with(BEGIN_NO_JIT).await?
        };
        let rows = sqlx::query_with(sql, values).fetch_all(&mut *tx).await?;
        // Dropping rolls back: sqlx queues the ROLLBACK instead of waiting for it.
        drop(tx);
        self.decode(&rows)
    }

    #[cfg(feature = "sqlite")]
    async fn run_sqlite<'c, E>(
        &self,
        sql: AssertSqlSafe<Arc<str>>,
        values: SqlxValues,
        executor: E,
    ) -> Result<Vec<MetricRow>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let rows = sqlx::query_with(sql, values).fetch_all(executor).await?;
        self.decode(&rows)
    }
}
