//! The one hand-off from sea-query to sqlx, for both backends.
//!
//! Every statement is built by sea-query, which returns SQL text with placeholders plus the
//! values to bind; the text is wrapped in [`sqlx::AssertSqlSafe`] here and nowhere else, and
//! the values are bound, never spliced.

use sqlx::{PgPool, SqlitePool};

use crate::schema::Backend;

/// A pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    pub(crate) const fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Runs `$body` with `$tx` bound to a transaction on the ledger's backend and `$qb` to the
/// matching sea-query builder, committing when the body returns `Ok`.
///
/// SQLite transactions start with `BEGIN IMMEDIATE`, so the write lock is taken before the
/// first read (a deferred transaction that reads then writes can fail with `SQLITE_BUSY`).
macro_rules! transaction {
    ($pool:expr, |$tx:ident, $qb:ident, $is_pg:ident| $body:block) => {
        match $pool {
            $crate::db::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let $qb = || sea_query::PostgresQueryBuilder;
                let $is_pg = true;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
            $crate::db::Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let $qb = || sea_query::SqliteQueryBuilder;
                let $is_pg = false;
                let out = $body;
                if out.is_ok() {
                    $tx.commit().await?;
                }
                out
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to the pool itself (no transaction).
macro_rules! on_pool {
    ($pool:expr, |$conn:ident, $qb:ident| $body:block) => {
        match $pool {
            $crate::db::Pool::Postgres($conn) => {
                let $qb = || sea_query::PostgresQueryBuilder;
                $body
            }
            $crate::db::Pool::Sqlite($conn) => {
                let $qb = || sea_query::SqliteQueryBuilder;
                $body
            }
        }
    };
}

/// Builds a sea-query statement and turns it into a sqlx query with bound values.
macro_rules! query {
    ($stmt:expr, $qb:expr) => {{
        let (sql, values) = sea_query_sqlx::SqlxBinder::build_sqlx(&$stmt, $qb());
        sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
    }};
}

/// Runs DDL text produced by sea-query (no values to bind).
macro_rules! ddl {
    ($sql:expr) => {
        sqlx::query(sqlx::AssertSqlSafe($sql))
    };
}

pub(crate) use {ddl, on_pool, query, transaction};
