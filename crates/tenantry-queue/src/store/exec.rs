//! How a statement reaches either database: one transaction type and one pool type over
//! both backends, so the store's logic is written once.
//!
//! Each method renders the sea-query statement for its backend's dialect and runs it with
//! bound values; rows decode through `sqlx::FromRow`, which every row type of the store
//! implements for both backends.

use sea_query_sqlx::SqlxBinder;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgRow;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Transaction};
#[cfg(feature = "postgres")]
use sqlx::{PgPool, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqlitePool};

use crate::error::Result;
use crate::store::schema::Dialect;
use crate::store::sql::render;

/// A row type the store reads from either backend.
pub(crate) trait Row: FromPgRow + FromSqliteRow + Send + Unpin {}

impl<T> Row for T where T: FromPgRow + FromSqliteRow + Send + Unpin {}

/// Decodes from a PostgreSQL row; every type when that driver is not compiled in.
#[cfg(feature = "postgres")]
pub(crate) trait FromPgRow: for<'r> FromRow<'r, PgRow> {}
#[cfg(feature = "postgres")]
impl<T> FromPgRow for T where T: for<'r> FromRow<'r, PgRow> {}
#[cfg(not(feature = "postgres"))]
pub(crate) trait FromPgRow {}
#[cfg(not(feature = "postgres"))]
impl<T> FromPgRow for T {}

/// Decodes from a SQLite row; every type when that driver is not compiled in.
#[cfg(feature = "sqlite")]
pub(crate) trait FromSqliteRow: for<'r> FromRow<'r, SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T> FromSqliteRow for T where T: for<'r> FromRow<'r, SqliteRow> {}
#[cfg(not(feature = "sqlite"))]
pub(crate) trait FromSqliteRow {}
#[cfg(not(feature = "sqlite"))]
impl<T> FromSqliteRow for T {}

/// An open write transaction on either backend.
#[derive(Debug)]
pub(crate) enum Tx {
    #[cfg(feature = "postgres")]
    Postgres(Transaction<'static, Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    /// The SQL dialect of this transaction's database.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a statement; returns the rows it affected.
    pub(crate) async fn execute(&mut self, stmt: &impl SqlxBinder) -> Result<u64> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_with(q, v)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_with(q, v)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// Runs a statement; returns every row.
    pub(crate) async fn fetch_all<T: Row>(&mut self, stmt: &impl SqlxBinder) -> Result<Vec<T>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_as_with(q, v).fetch_all(&mut **tx).await?
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_as_with(q, v).fetch_all(&mut **tx).await?
            }
        })
    }

    /// Runs a statement; returns the first row, if any.
    pub(crate) async fn fetch_optional<T: Row>(
        &mut self,
        stmt: &impl SqlxBinder,
    ) -> Result<Option<T>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_as_with(q, v).fetch_optional(&mut **tx).await?
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_as_with(q, v).fetch_optional(&mut **tx).await?
            }
        })
    }

    /// Runs schema text rendered by [`schema`](crate::store::schema) (no values to bind).
    pub(crate) async fn execute_schema(&mut self, ddl: &str) -> Result<()> {
        let ddl = sqlx::AssertSqlSafe(ddl.to_owned());
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => {
                sqlx::query(ddl).execute(&mut **tx).await?;
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => {
                sqlx::query(ddl).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => tx.commit().await?,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => tx.rollback().await?,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// A pool of either backend, for single statements outside a transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pool<'a> {
    #[cfg(feature = "postgres")]
    Postgres(&'a PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(&'a SqlitePool),
}

impl Pool<'_> {
    /// Runs a statement; returns the rows it affected.
    pub(crate) async fn execute(self, stmt: &impl SqlxBinder) -> Result<u64> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_with(q, v).execute(pool).await?.rows_affected()
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_with(q, v).execute(pool).await?.rows_affected()
            }
        })
    }

    /// Runs a statement; returns every row.
    pub(crate) async fn fetch_all<T: Row>(self, stmt: &impl SqlxBinder) -> Result<Vec<T>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_as_with(q, v).fetch_all(pool).await?
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_as_with(q, v).fetch_all(pool).await?
            }
        })
    }

    /// Runs a statement; returns the first row, if any.
    pub(crate) async fn fetch_optional<T: Row>(self, stmt: &impl SqlxBinder) -> Result<Option<T>> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                let (q, v) = render(stmt, Dialect::Postgres);
                sqlx::query_as_with(q, v).fetch_optional(pool).await?
            }
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => {
                let (q, v) = render(stmt, Dialect::Sqlite);
                sqlx::query_as_with(q, v).fetch_optional(pool).await?
            }
        })
    }
}
