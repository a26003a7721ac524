//! The one hand-off from sea-query to sqlx, for both backends.
//!
//! Every statement is built by sea-query, which returns SQL text with placeholders plus the
//! values to bind; the text is wrapped in [`sqlx::AssertSqlSafe`] here and nowhere else, and
//! the values are bound, never spliced.

use crate::schema::Backend;

/// A pool of either backend; a variant exists only when its driver's feature is on.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// With no driver compiled in, a ledger cannot be made; the uninhabited variant keeps the
    /// code that matches on pools compiling.
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    #[allow(dead_code)]
    NoDriver(std::convert::Infallible),
}

impl Pool {
    pub(crate) const fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Backend::Sqlite,
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            Self::NoDriver(never) => match *never {},
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
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "sqlite")]
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
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            $crate::db::Pool::NoDriver(never) => match *never {},
        }
    };
}

/// Runs `$body` with `$conn` bound to the pool itself (no transaction).
macro_rules! on_pool {
    ($pool:expr, |$conn:ident, $qb:ident| $body:block) => {
        match $pool {
            #[cfg(feature = "postgres")]
            $crate::db::Pool::Postgres($conn) => {
                let $qb = || sea_query::PostgresQueryBuilder;
                $body
            }
            #[cfg(feature = "sqlite")]
            $crate::db::Pool::Sqlite($conn) => {
                let $qb = || sea_query::SqliteQueryBuilder;
                $body
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            $crate::db::Pool::NoDriver(never) => match *never {},
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
