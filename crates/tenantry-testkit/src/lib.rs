//! Test support shared by every tenantry crate: a fresh database per test.
//!
//! [`PgDatabase::create`] gives a test its own empty PostgreSQL database and a pool to it;
//! [`SqliteDatabase::create`] does the same for the embedded SQLite backend. Tests never share
//! a database, so they can run concurrently and never see each other's tables.
//!
//! # Where PostgreSQL comes from
//!
//! The first test in a process resolves one server, in this order:
//!
//! 1. `DATABASE_URL`, when it is set (any database on that server; tests create their own);
//! 2. the server on `127.0.0.1:5432`, user `postgres`, trust authentication;
//! 3. a throw-away cluster started with `initdb` and `pg_ctl` (found on `PATH` or under
//!    `/usr/lib/postgresql/*/bin`) in a temporary directory on a free port. It is shared by
//!    every test of the process and stopped when the process exits.
//!
//! Set `TENANTRY_TEST_PG=throwaway` to skip the first two and force the throw-away cluster.
//! When no server can be had, the test fails with a message naming the three options; it
//! never skips silently.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() {
//! let db = tenantry_testkit::PgDatabase::create().await;
//! sqlx::query("CREATE TABLE t (x int)").execute(db.pool()).await.unwrap();
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "postgres")]
mod cluster;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use cluster::ThrowawayCluster;
#[cfg(feature = "postgres")]
pub use postgres::PgDatabase;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteDatabase;
