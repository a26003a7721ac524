//! The plan the database picks for a built query, as text: `EXPLAIN` on PostgreSQL (run the way
//! [`MetricsQuery::fetch_postgres`] runs the query), `EXPLAIN QUERY PLAN` on SQLite.

use sea_query_sqlx::SqlxValues;
use sqlx::{AssertSqlSafe, Connection as _, Row as _};

use crate::error::Result;
use crate::query::MetricsQuery;
use crate::render::Backend;

impl MetricsQuery {
    /// The plan PostgreSQL picks for this query, one line per plan line: `EXPLAIN`, or with
    /// `analyze` `EXPLAIN (ANALYZE, BUFFERS)`, which runs the query and adds the real row
    /// counts and times. It runs as [`fetch_postgres`](Self::fetch_postgres) runs the query: in
    /// a read-only transaction (or savepoint) with JIT off, rolled back.
    ///
    /// What to look for, and the indexes each query shape wants: the `sql_reference` module's
    /// "Plans and indexes" section.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(pool: sqlx::PgPool) -> Result<(), tenantry_metrics::Error> {
    /// use tenantry_metrics::{builtin, MetricsQuery, Period};
    /// let mut q = MetricsQuery::new();
    /// q.level(0).select("cost", builtin::cost(Period::all_time()))?;
    /// let plan = q.explain_postgres(&pool, true).await?;
    /// println!("{plan}"); // HashAggregate … Seq Scan on tenantry_usage f (actual rows=…)
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn explain_postgres<'c, A>(&self, conn: A, analyze: bool) -> Result<String>
    where
        A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
    {
        let (sql, values) = self.build(Backend::Postgres)?;
        let prefix = if analyze {
            "EXPLAIN (ANALYZE, BUFFERS) "
        } else {
            "EXPLAIN "
        };
        let mut conn = conn.acquire().await?;
        let mut tx = if conn.is_in_transaction() {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql("SET LOCAL jit = off")
                .execute(&mut *tx)
                .await?;
            tx
        } else {
            conn.begin_with("BEGIN READ ONLY; SET LOCAL jit = off")
                .await?
        };
        let rows = sqlx::query_with(AssertSqlSafe(format!("{prefix}{sql}")), SqlxValues(values))
            .fetch_all(&mut *tx)
            .await?;
        drop(tx);
        let lines = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }

    /// The plan SQLite picks for this query (`EXPLAIN QUERY PLAN`), one line per step,
    /// indented under its parent step as the `sqlite3` shell prints it.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    ///
    /// # Example
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tenantry_core::db::Pool;
    /// use tenantry_metrics::{builtin, MetricsQuery};
    ///
    /// let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// tenantry_metrics::migrate(&Pool::from(sqlite.clone())).await?;
    /// let mut q = MetricsQuery::new();
    /// q.level(0).select("users", builtin::users())?;
    /// let plan = q.explain_sqlite(&sqlite).await?;
    /// assert!(plan.contains("SCAN f"), "{plan}"); // `f`: memberships, read once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn explain_sqlite<'c, E>(&self, executor: E) -> Result<String>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let (sql, values) = self.build(Backend::Sqlite)?;
        let rows = sqlx::query_with(
            AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")),
            SqlxValues(values),
        )
        .fetch_all(executor)
        .await?;
        // (id, parent, _, detail): children follow their parent.
        let mut depth: Vec<(i64, usize)> = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let parent: i64 = row.try_get(1)?;
            let detail: String = row.try_get(3)?;
            let level = depth
                .iter()
                .find(|(i, _)| *i == parent)
                .map_or(0, |(_, d)| d + 1);
            depth.push((id, level));
            out.push(format!("{}{detail}", "  ".repeat(level)));
        }
        Ok(out.join("\n"))
    }
}
