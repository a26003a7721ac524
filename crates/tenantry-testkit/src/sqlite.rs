//! A fresh SQLite database per test, in a temporary directory.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

/// An SQLite database file (bundled SQLite, WAL journal) removed when this value is dropped.
#[derive(Debug)]
pub struct SqliteDatabase {
    pool: SqlitePool,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SqliteDatabase {
    /// Creates a new empty database file and a pool of up to 4 connections to it.
    ///
    /// # Panics
    ///
    /// When the temporary directory or the database cannot be created.
    pub async fn create() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tenantry-sqlite-")
            .tempdir()
            .expect("cannot create a temporary directory for the SQLite test database");
        let path = dir.path().join("test.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .expect("a file path is a valid SQLite URL")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("cannot open the SQLite test database");
        Self {
            pool,
            path,
            _dir: dir,
        }
    }

    /// The pool connected to this test's database.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file, for a second pool or a child process.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
