//! One statement API over PostgreSQL and SQLite: every crate's SQL is written once, built with
//! sea-query, and run here with bound values.
//!
//! This is the single hand-off of SQL text to sqlx: a statement renders for its backend's
//! dialect into text that holds only identifiers and placeholders, and its values are bound,
//! never spliced. Schema text (DDL, which has nothing to bind) goes through
//! [`Tx::execute_schema`]. Rows decode through `sqlx::FromRow`, which a [`Row`] type implements
//! for every compiled backend.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use sea_query::{Expr, ExprTrait, Query};
//! use tenantry_core::db::Pool;
//!
//! let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let (answer,): (i64,) = pool
//!     .fetch_one(&Query::select().expr(Expr::val(41).add(1)).to_owned())
//!     .await?;
//! assert_eq!(answer, 42);
//! # Ok::<(), sqlx::Error>(())
//! # }).unwrap();
//! ```

// With no driver compiled in, every method body is unreachable and leaves its arguments unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(unused_variables)
)]

use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sea_query_sqlx::SqlxValues;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::FromRow;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgRow;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteRow;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::{AssertSqlSafe, Transaction};
#[cfg(feature = "postgres")]
use sqlx::{PgPool, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqlitePool};

/// A sea-query statement that renders with bound values (sea-query-sqlx's `SqlxBinder`).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sea_query_sqlx::SqlxBinder as Statement;

/// A sea-query statement; with no driver compiled in, nothing can run one.
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
pub trait Statement {}
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
impl<T> Statement for T {}

/// Which database, and so which SQL dialect.
///
/// Exhaustive on purpose: every statement is written for exactly these two, and a third
/// database would be a change to every crate, not an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// Renders a statement for this dialect: SQL text with placeholders, and the values to bind.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[must_use]
    pub fn render(self, stmt: &impl Statement) -> (AssertSqlSafe<String>, SqlxValues) {
        let (sql, values) = match self {
            Self::Postgres => stmt.build_sqlx(PostgresQueryBuilder),
            Self::Sqlite => stmt.build_sqlx(SqliteQueryBuilder),
        };
        (AssertSqlSafe(sql), values)
    }

    /// Renders a schema statement (a `CREATE TABLE`, `CREATE INDEX`, …) for this dialect.
    #[must_use]
    pub fn render_schema(self, stmt: &impl SchemaStatement) -> String {
        match self {
            Self::Postgres => stmt.render_for(PostgresQueryBuilder),
            Self::Sqlite => stmt.render_for(SqliteQueryBuilder),
        }
    }

    /// The backend's name, as configuration and error messages spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// A sea-query schema statement, rendered by [`Backend::render_schema`].
pub trait SchemaStatement {
    /// The statement's text for `builder`'s dialect.
    fn render_for<B: sea_query::SchemaBuilder>(&self, builder: B) -> String;
}

macro_rules! schema_statements {
    ($($t:ty),*) => {$(
        impl SchemaStatement for $t {
            fn render_for<B: sea_query::SchemaBuilder>(&self, builder: B) -> String {
                self.to_string(builder)
            }
        }
    )*};
}

schema_statements!(
    sea_query::TableCreateStatement,
    sea_query::TableAlterStatement,
    sea_query::TableDropStatement,
    sea_query::IndexCreateStatement,
    sea_query::IndexDropStatement
);

/// A row type read from either backend: `sqlx::FromRow` for each compiled driver.
pub trait Row: FromPgRow + FromSqliteRow + Send + Unpin {}

impl<T> Row for T where T: FromPgRow + FromSqliteRow + Send + Unpin {}

/// Decodes from a PostgreSQL row; every type when that driver is not compiled in.
#[cfg(feature = "postgres")]
pub trait FromPgRow: for<'r> FromRow<'r, PgRow> {}
#[cfg(feature = "postgres")]
impl<T> FromPgRow for T where T: for<'r> FromRow<'r, PgRow> {}
/// Decodes from a PostgreSQL row; every type when that driver is not compiled in.
#[cfg(not(feature = "postgres"))]
pub trait FromPgRow {}
#[cfg(not(feature = "postgres"))]
impl<T> FromPgRow for T {}

/// Decodes from a SQLite row; every type when that driver is not compiled in.
#[cfg(feature = "sqlite")]
pub trait FromSqliteRow: for<'r> FromRow<'r, SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T> FromSqliteRow for T where T: for<'r> FromRow<'r, SqliteRow> {}
/// Decodes from a SQLite row; every type when that driver is not compiled in.
#[cfg(not(feature = "sqlite"))]
pub trait FromSqliteRow {}
#[cfg(not(feature = "sqlite"))]
impl<T> FromSqliteRow for T {}

/// A connection pool on either backend; a variant exists only when its driver is compiled in.
///
/// Cloning is cheap (the sqlx pools inside are shared handles).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Pool {
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// With no driver compiled in no pool can be made; the uninhabited variant keeps code that
    /// matches on pools compiling.
    #[doc(hidden)]
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    NoDriver(std::convert::Infallible),
}

#[cfg(feature = "postgres")]
impl From<PgPool> for Pool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

#[cfg(feature = "sqlite")]
impl From<SqlitePool> for Pool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

/// Runs `$body` with `$inner` bound to the inner sqlx value of `$on` (a [`Pool`] or a [`Tx`])
/// and `$backend` to its [`Backend`].
macro_rules! dispatch {
    ($on:expr, $ty:ident, |$inner:ident, $backend:ident| $body:expr) => {
        match $on {
            #[cfg(feature = "postgres")]
            $ty::Postgres($inner) => {
                let $backend = Backend::Postgres;
                $body
            }
            #[cfg(feature = "sqlite")]
            $ty::Sqlite($inner) => {
                let $backend = Backend::Sqlite;
                $body
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            $ty::NoDriver(never) => absurd(never),
        }
    };
}

/// The arm of a variant that cannot exist (no driver compiled in).
#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
fn absurd<T>(never: impl std::borrow::Borrow<std::convert::Infallible>) -> T {
    match *never.borrow() {}
}

impl Pool {
    /// The pool's database.
    #[must_use]
    pub fn backend(&self) -> Backend {
        dispatch!(self, Pool, |_pool, backend| backend)
    }

    /// Starts a write transaction.
    ///
    /// On SQLite it starts with `BEGIN IMMEDIATE`, so the write lock is taken before the first
    /// read: a deferred transaction that reads and then writes can fail with `SQLITE_BUSY`
    /// when another connection wrote in between.
    ///
    /// # Errors
    ///
    /// The driver's error when no connection can be had or `BEGIN` fails.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            Self::NoDriver(never) => absurd(never),
        })
    }

    /// Runs a statement on a pooled connection; returns the rows it affected.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn execute(&self, stmt: &impl Statement) -> Result<u64, sqlx::Error> {
        dispatch!(self, Pool, |pool, backend| {
            let (q, v) = backend.render(stmt);
            Ok(sqlx::query_with(q, v).execute(pool).await?.rows_affected())
        })
    }

    /// Runs a statement; returns every row.
    ///
    /// # Errors
    ///
    /// The driver's error, or a row that does not decode.
    pub async fn fetch_all<T: Row>(&self, stmt: &impl Statement) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, Pool, |pool, backend| {
            let (q, v) = backend.render(stmt);
            sqlx::query_as_with(q, v).fetch_all(pool).await
        })
    }

    /// Runs a statement; returns the first row, if any.
    ///
    /// # Errors
    ///
    /// The driver's error, or a row that does not decode.
    pub async fn fetch_optional<T: Row>(
        &self,
        stmt: &impl Statement,
    ) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, Pool, |pool, backend| {
            let (q, v) = backend.render(stmt);
            sqlx::query_as_with(q, v).fetch_optional(pool).await
        })
    }

    /// Runs a statement that returns exactly one row.
    ///
    /// # Errors
    ///
    /// [`sqlx::Error::RowNotFound`] when there is no row, the driver's error, or a row that
    /// does not decode.
    pub async fn fetch_one<T: Row>(&self, stmt: &impl Statement) -> Result<T, sqlx::Error> {
        self.fetch_optional(stmt)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The PostgreSQL pool, for what only PostgreSQL has (LISTEN/NOTIFY, `COPY`).
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite pool.
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// An open write transaction on either backend. Dropped without [`commit`](Self::commit), it
/// rolls back.
#[derive(Debug)]
#[non_exhaustive]
pub enum Tx {
    /// A PostgreSQL transaction.
    #[cfg(feature = "postgres")]
    Postgres(Transaction<'static, Postgres>),
    /// A SQLite transaction.
    #[cfg(feature = "sqlite")]
    Sqlite(Transaction<'static, Sqlite>),
    #[doc(hidden)]
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    NoDriver(std::convert::Infallible),
}

impl Tx {
    /// The transaction's database.
    #[must_use]
    pub fn backend(&self) -> Backend {
        dispatch!(self, Tx, |_tx, backend| backend)
    }

    /// Runs a statement; returns the rows it affected.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn execute(&mut self, stmt: &impl Statement) -> Result<u64, sqlx::Error> {
        dispatch!(self, Tx, |tx, backend| {
            let (q, v) = backend.render(stmt);
            Ok(sqlx::query_with(q, v)
                .execute(&mut **tx)
                .await?
                .rows_affected())
        })
    }

    /// Runs a statement; returns every row.
    ///
    /// # Errors
    ///
    /// The driver's error, or a row that does not decode.
    pub async fn fetch_all<T: Row>(
        &mut self,
        stmt: &impl Statement,
    ) -> Result<Vec<T>, sqlx::Error> {
        dispatch!(self, Tx, |tx, backend| {
            let (q, v) = backend.render(stmt);
            sqlx::query_as_with(q, v).fetch_all(&mut **tx).await
        })
    }

    /// Runs a statement; returns the first row, if any.
    ///
    /// # Errors
    ///
    /// The driver's error, or a row that does not decode.
    pub async fn fetch_optional<T: Row>(
        &mut self,
        stmt: &impl Statement,
    ) -> Result<Option<T>, sqlx::Error> {
        dispatch!(self, Tx, |tx, backend| {
            let (q, v) = backend.render(stmt);
            sqlx::query_as_with(q, v).fetch_optional(&mut **tx).await
        })
    }

    /// Runs a statement that returns exactly one row.
    ///
    /// # Errors
    ///
    /// [`sqlx::Error::RowNotFound`] when there is no row, the driver's error, or a row that
    /// does not decode.
    pub async fn fetch_one<T: Row>(&mut self, stmt: &impl Statement) -> Result<T, sqlx::Error> {
        self.fetch_optional(stmt)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs schema text: DDL rendered by [`Backend::render_schema`] or shipped with a
    /// migration, which has no values to bind. Several statements may be separated by `;`.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn execute_schema(&mut self, ddl: &str) -> Result<(), sqlx::Error> {
        dispatch!(self, Tx, |tx, _backend| {
            sqlx::raw_sql(AssertSqlSafe(ddl.to_owned()))
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }

    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// The driver's error; nothing is committed then.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        dispatch!(self, Tx, |tx, _backend| tx.commit().await)
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        dispatch!(self, Tx, |tx, _backend| tx.rollback().await)
    }
}
