//! Running a [`MetricsQuery`] with sqlx and decoding its rows.

use sqlx::{AssertSqlSafe, Connection as _, SqlSafeStr};

use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cache::MetricsCache;
use crate::error::Result;
use crate::query::{MetricRow, MetricsQuery};
use crate::render::Dialect;

/// Turns JIT off until the end of the current transaction (or savepoint, when rolled back).
const NO_JIT: &str = "SET LOCAL jit = off";
/// A read-only transaction with JIT off, sent as one simple-protocol message.
const BEGIN_NO_JIT: &str = "BEGIN READ ONLY; SET LOCAL jit = off";

impl MetricsQuery {
    fn build_sqlx(&self, dialect: Dialect) -> Result<(String, SqlxValues)> {
        let stmt = self.statement(dialect)?;
        Ok(match dialect {
            Dialect::Postgres => stmt.build_sqlx(PostgresQueryBuilder),
            Dialect::Sqlite => stmt.build_sqlx(SqliteQueryBuilder),
        })
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

    /// Runs the query on PostgreSQL: one query statement whatever the number of tenants, with
    /// the server's JIT off for that statement only.
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
    /// [`Error::NoMetrics`](crate::Error::NoMetrics) when nothing is selected,
    /// [`Error::Database`](crate::Error::Database) when the database fails (including a `SUM`
    /// outside `i64`).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn fetch_postgres<'c, A>(&self, conn: A) -> Result<Vec<MetricRow>>
    where
        A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
    {
        let (sql, values) = self.build_sqlx(Dialect::Postgres)?;
        self.run_postgres(AssertSqlSafe(sql), values, conn).await
    }

    /// [`fetch_postgres`](Self::fetch_postgres) with the SQL from `cache`: a query of a shape
    /// seen before binds its values to the cached SQL instead of being rendered again.
    ///
    /// # Errors
    /// As [`fetch_postgres`](Self::fetch_postgres).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn fetch_postgres_cached<'c, A>(
        &self,
        cache: &MetricsCache,
        conn: A,
    ) -> Result<Vec<MetricRow>>
    where
        A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
    {
        let (sql, values) = cache.build(self, Dialect::Postgres)?;
        self.run_postgres(AssertSqlSafe(sql), SqlxValues(values), conn)
            .await
    }

    #[cfg(feature = "postgres")]
    async fn run_postgres<'c, A>(
        &self,
        sql: impl SqlSafeStr,
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

    /// Runs the query on SQLite: one statement.
    ///
    /// # Errors
    /// [`Error::NoMetrics`](crate::Error::NoMetrics) when nothing is selected,
    /// [`Error::Database`](crate::Error::Database) when the database fails (including
    /// `integer overflow` in a `SUM`).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn fetch_sqlite<'c, E>(&self, executor: E) -> Result<Vec<MetricRow>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let (sql, values) = self.build_sqlx(Dialect::Sqlite)?;
        self.run_sqlite(AssertSqlSafe(sql), values, executor).await
    }

    /// [`fetch_sqlite`](Self::fetch_sqlite) with the SQL from `cache`: a query of a shape seen
    /// before binds its values to the cached SQL instead of being rendered again.
    ///
    /// # Errors
    /// As [`fetch_sqlite`](Self::fetch_sqlite).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn fetch_sqlite_cached<'c, E>(
        &self,
        cache: &MetricsCache,
        executor: E,
    ) -> Result<Vec<MetricRow>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let (sql, values) = cache.build(self, Dialect::Sqlite)?;
        self.run_sqlite(AssertSqlSafe(sql), SqlxValues(values), executor)
            .await
    }

    #[cfg(feature = "sqlite")]
    async fn run_sqlite<'c, E>(
        &self,
        sql: impl SqlSafeStr,
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
