//! One migration runner for every component's schema: versioned, checksummed, locked.
//!
//! Each crate that owns tables (the queue, the ledger, the metrics registry, …) describes its
//! schema as a [`Component`]: a name and its [`Migration`]s, oldest first. [`migrate`] applies
//! the pending migrations of any number of components in one transaction, serialised across
//! processes (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), and records each in
//! `tenantry_migrations` with a checksum of its statements. It refuses, before changing
//! anything:
//! - a database that a newer version of a component migrated ([`MigrateError::TooNew`]), and
//! - a migration whose statements changed after it was applied ([`MigrateError::Edited`]).
//!
//! A database migrated before this runner existed, by a component's own runner and its own
//! table ([`Component::legacy_table`]), is adopted: its versions are recorded here with the
//! checksums of the migrations this version ships, and the old table is left in place.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantry_core::db::{Backend, Pool};
//! use tenantry_core::migrate::{self, Component, Migration};
//!
//! fn notes(_backend: Backend) -> Vec<Migration> {
//!     vec![Migration::new(1, "notes", ["CREATE TABLE notes (id BIGINT PRIMARY KEY)"])]
//! }
//! const NOTES: Component = Component::new("notes", notes);
//!
//! let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let applied = migrate::migrate(&pool, &[&NOTES]).await?;
//! assert_eq!(applied.len(), 1);
//! assert!(migrate::migrate(&pool, &[&NOTES]).await?.is_empty());
//! # Ok::<(), migrate::MigrateError>(())
//! # }).unwrap();
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sea_query::{Alias, ColumnDef, Expr, ExprTrait, Func, Iden, Index, Query, Table};
use sha2::{Digest, Sha256};

use crate::db::{Backend, Pool, Tx};
use crate::time::UnixMicros;

/// Advisory lock key serialising every component's migrations across processes on PostgreSQL
/// (`pg_advisory_xact_lock(int8)`): the bytes of `tnntmigr`.
pub const LOCK_KEY: i64 = 0x746e_6e74_6d69_6772;

/// The table that records applied migrations, for every component.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_migrations")]
enum MigrationsTable {
    Table,
    Component,
    Version,
    Name,
    Checksum,
    AppliedAt,
}

/// One schema version of a component: its number, a name, and its statements in order, as
/// text for one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: &'static str,
    statements: Vec<String>,
}

impl Migration {
    /// A migration from its statements (each one statement, or several separated by `;`).
    #[must_use]
    pub fn new(
        version: i64,
        name: &'static str,
        statements: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            version,
            name,
            statements: statements.into_iter().map(Into::into).collect(),
        }
    }

    /// The version number; versions increase from 1.
    #[must_use]
    pub fn version(&self) -> i64 {
        self.version
    }

    /// What it does.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its statements, in order.
    #[must_use]
    pub fn statements(&self) -> &[String] {
        &self.statements
    }

    /// SHA-256 of the statements (each followed by a NUL byte), in hex: what an applied
    /// migration is compared against.
    #[must_use]
    pub fn checksum(&self) -> String {
        let mut hash = Sha256::new();
        for statement in &self.statements {
            hash.update(statement.as_bytes());
            hash.update([0]);
        }
        hash.finalize()
            .iter()
            .fold(String::with_capacity(64), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            })
    }
}

/// A part of tenantry that owns tables: its name in `tenantry_migrations` and its migrations.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    name: &'static str,
    migrations: fn(Backend) -> Vec<Migration>,
    legacy_table: Option<&'static str>,
}

impl Component {
    /// A component named `name` whose migrations, for a backend, `migrations` returns oldest
    /// first.
    #[must_use]
    pub const fn new(name: &'static str, migrations: fn(Backend) -> Vec<Migration>) -> Self {
        Self {
            name,
            migrations,
            legacy_table: None,
        }
    }

    /// The table an earlier version of the component recorded its versions in (a `version`
    /// column), adopted the first time this runner meets the database.
    #[must_use]
    pub const fn legacy_table(mut self, table: &'static str) -> Self {
        self.legacy_table = Some(table);
        self
    }

    /// The component's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its migrations for `backend`, oldest first.
    #[must_use]
    pub fn migrations(&self, backend: Backend) -> Vec<Migration> {
        (self.migrations)(backend)
    }
}

/// Why migrating stopped. Nothing was applied then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database was migrated by a newer version of the component: this code would not
    /// know its tables. Upgrade this service before (or with) the others.
    #[error(
        "the database's {component} schema is at version {found}, newer than the {supported} \
         this version knows: upgrade tenantry here too"
    )]
    TooNew {
        /// The component.
        component: &'static str,
        /// The newest version applied to the database.
        found: i64,
        /// The newest version this code ships.
        supported: i64,
    },
    /// A migration applied to the database differs from the one this code ships under the
    /// same version: one of the two was edited after release.
    #[error(
        "{component} migration {version} ({name}) differs from the one applied to the database \
         (checksum {applied}, shipped {shipped}): a released migration must never change"
    )]
    Edited {
        /// The component.
        component: &'static str,
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the statements this code ships.
        shipped: String,
    },
    /// A statement failed.
    #[error("migrating failed")]
    Database(#[from] sqlx::Error),
}

impl MigrateError {
    /// What kind of failure it is: a connection problem is worth retrying, a schema that is
    /// newer or edited is not.
    #[must_use]
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Database(e) => crate::ErrorKind::of_database(e),
            Self::TooNew { .. } | Self::Edited { .. } => crate::ErrorKind::Internal,
        }
    }

    /// Whether trying again may succeed (a connection or lock problem, not the schema).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// What [`migrate`] did: one migration applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedMigration {
    /// The component.
    pub component: &'static str,
    /// The version applied.
    pub version: i64,
    /// Its name.
    pub name: &'static str,
}

/// Where a component's schema stands, as [`status`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentStatus {
    /// The component.
    pub component: &'static str,
    /// The newest version applied to the database (0 for none).
    pub applied: i64,
    /// The newest version this code ships.
    pub shipped: i64,
    /// Shipped migrations not applied yet, oldest first.
    pub pending: Vec<(i64, &'static str)>,
    /// Applied migrations whose statements differ from the shipped ones.
    pub edited: Vec<i64>,
}

impl ComponentStatus {
    /// Whether the database is exactly what this code expects.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.edited.is_empty() && self.applied == self.shipped
    }
}

/// Applies the pending migrations of `components`, in one transaction, after checking every
/// applied one. Safe to call from every instance at start-up: the first applies, the others
/// wait for it and then find nothing to do.
///
/// # Errors
///
/// [`MigrateError::TooNew`] or [`MigrateError::Edited`] (nothing applied), or a database error
/// (the transaction rolls back).
pub async fn migrate(
    pool: &Pool,
    components: &[&Component],
) -> Result<Vec<AppliedMigration>, MigrateError> {
    let mut tx = pool.begin().await?;
    let applied = apply(&mut tx, components).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Applies the pending migrations of `components` inside a transaction the caller owns and
/// commits (see [`migrate`]).
///
/// # Errors
///
/// As [`migrate`].
pub async fn apply(
    tx: &mut Tx,
    components: &[&Component],
) -> Result<Vec<AppliedMigration>, MigrateError> {
    let backend = tx.backend();
    lock(tx).await?;
    let mut done = Vec::new();
    for component in components {
        let shipped = component.migrations(backend);
        let recorded = recorded(tx, component, &shipped).await?;
        check(component, &shipped, &recorded)?;
        for m in shipped
            .iter()
            .filter(|m| !recorded.contains_key(&m.version))
        {
            for statement in &m.statements {
                tx.execute_schema(statement).await?;
            }
            record(tx, component.name, m).await?;
            done.push(AppliedMigration {
                component: component.name,
                version: m.version,
                name: m.name,
            });
        }
    }
    Ok(done)
}

/// Where each component's schema stands, without changing anything (for a health check).
///
/// # Errors
///
/// A database error.
pub async fn status(
    pool: &Pool,
    components: &[&Component],
) -> Result<Vec<ComponentStatus>, MigrateError> {
    let mut tx = pool.begin().await?;
    let backend = tx.backend();
    tx.execute_schema(&applied_table(backend)).await?;
    let mut out = Vec::new();
    for component in components {
        let shipped = component.migrations(backend);
        let recorded = read(&mut tx, component.name).await?;
        let edited = shipped
            .iter()
            .filter(|m| recorded.get(&m.version).is_some_and(|c| *c != m.checksum()))
            .map(|m| m.version)
            .collect();
        out.push(ComponentStatus {
            component: component.name,
            applied: recorded.keys().max().copied().unwrap_or(0),
            shipped: shipped.last().map_or(0, |m| m.version),
            pending: shipped
                .iter()
                .filter(|m| !recorded.contains_key(&m.version))
                .map(|m| (m.version, m.name))
                .collect(),
            edited,
        });
    }
    tx.rollback().await?;
    Ok(out)
}

async fn lock(tx: &mut Tx) -> Result<(), sqlx::Error> {
    if tx.backend() == Backend::Postgres {
        let lock = Query::select()
            .expr(Func::cust("pg_advisory_xact_lock").arg(LOCK_KEY))
            .to_owned();
        tx.execute(&lock).await?;
    }
    tx.execute_schema(&applied_table(tx.backend())).await
}

fn applied_table(backend: Backend) -> String {
    let table = Table::create()
        .table(MigrationsTable::Table)
        .if_not_exists()
        .col(ColumnDef::new(MigrationsTable::Component).text().not_null())
        .col(
            ColumnDef::new(MigrationsTable::Version)
                .big_integer()
                .not_null(),
        )
        .col(ColumnDef::new(MigrationsTable::Name).text().not_null())
        .col(ColumnDef::new(MigrationsTable::Checksum).text().not_null())
        .col(
            ColumnDef::new(MigrationsTable::AppliedAt)
                .big_integer()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(MigrationsTable::Component)
                .col(MigrationsTable::Version),
        )
        .to_owned();
    backend.render_schema(&table)
}

/// The versions recorded for `component`, with their checksums: from `tenantry_migrations`, or
/// adopted from the component's legacy table the first time.
async fn recorded(
    tx: &mut Tx,
    component: &Component,
    shipped: &[Migration],
) -> Result<BTreeMap<i64, String>, MigrateError> {
    let recorded = read(tx, component.name).await?;
    let Some(legacy) = component.legacy_table else {
        return Ok(recorded);
    };
    if !recorded.is_empty() || !table_exists(tx, legacy).await? {
        return Ok(recorded);
    }
    let versions: Vec<(i64,)> = tx
        .fetch_all(
            &Query::select()
                .column(Alias::new("version"))
                .from(Alias::new(legacy))
                .to_owned(),
        )
        .await?;
    let newest = shipped.last().map_or(0, |m| m.version);
    let mut adopted = BTreeMap::new();
    for (version,) in versions {
        let Some(m) = shipped.iter().find(|m| m.version == version) else {
            return Err(MigrateError::TooNew {
                component: component.name,
                found: version,
                supported: newest,
            });
        };
        record(tx, component.name, m).await?;
        adopted.insert(version, m.checksum());
    }
    Ok(adopted)
}

async fn read(tx: &mut Tx, component: &str) -> Result<BTreeMap<i64, String>, sqlx::Error> {
    let rows: Vec<(i64, String)> = tx
        .fetch_all(
            &Query::select()
                .columns([MigrationsTable::Version, MigrationsTable::Checksum])
                .from(MigrationsTable::Table)
                .and_where(Expr::col(MigrationsTable::Component).eq(component))
                .to_owned(),
        )
        .await?;
    Ok(rows.into_iter().collect())
}

async fn table_exists(tx: &mut Tx, table: &str) -> Result<bool, sqlx::Error> {
    let probe = match tx.backend() {
        Backend::Postgres => Query::select()
            .expr(Func::cust("to_regclass").arg(table).is_not_null())
            .to_owned(),
        Backend::Sqlite => Query::select()
            .expr(Expr::col(Alias::new("name")).count().gt(0))
            .from(Alias::new("sqlite_master"))
            .and_where(Expr::col(Alias::new("type")).eq("table"))
            .and_where(Expr::col(Alias::new("name")).eq(table))
            .to_owned(),
    };
    let (exists,): (bool,) = tx.fetch_one(&probe).await?;
    Ok(exists)
}

fn check(
    component: &Component,
    shipped: &[Migration],
    recorded: &BTreeMap<i64, String>,
) -> Result<(), MigrateError> {
    let supported = shipped.last().map_or(0, |m| m.version);
    if let Some(&found) = recorded.keys().next_back()
        && found > supported
    {
        return Err(MigrateError::TooNew {
            component: component.name,
            found,
            supported,
        });
    }
    for m in shipped {
        if let Some(applied) = recorded.get(&m.version) {
            let shipped = m.checksum();
            if *applied != shipped {
                return Err(MigrateError::Edited {
                    component: component.name,
                    version: m.version,
                    name: m.name,
                    applied: applied.clone(),
                    shipped,
                });
            }
        }
    }
    Ok(())
}

async fn record(tx: &mut Tx, component: &str, m: &Migration) -> Result<(), sqlx::Error> {
    tx.execute(
        Query::insert()
            .into_table(MigrationsTable::Table)
            .columns([
                MigrationsTable::Component,
                MigrationsTable::Version,
                MigrationsTable::Name,
                MigrationsTable::Checksum,
                MigrationsTable::AppliedAt,
            ])
            .values_panic([
                component.into(),
                m.version.into(),
                m.name.into(),
                m.checksum().into(),
                UnixMicros::now().get().into(),
            ]),
    )
    .await?;
    Ok(())
}
