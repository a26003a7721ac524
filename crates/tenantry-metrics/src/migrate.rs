//! Versioned, idempotent migrations for the crate's default tables (tenants with parent and
//! level, users, memberships, grants; roles with parent, role assignments, grants to roles), for
//! PostgreSQL and SQLite.
//!
//! The usage ledger (`tenantry_usage`) belongs to `tenantry-cost` and is not created here.
//! Applied versions are recorded in `tenantry_metrics_migrations`; running again is a no-op, and
//! every statement is `IF NOT EXISTS`, so a half-applied schema also converges.

use sqlx::AssertSqlSafe;

use crate::error::Result;

/// One schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Version number, increasing.
    pub version: i64,
    /// What it does.
    pub name: &'static str,
    /// The DDL, identical on PostgreSQL and SQLite.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenant tree, users, memberships, grants",
        sql: r"
CREATE TABLE IF NOT EXISTS tenantry_tenants (
    id        TEXT PRIMARY KEY,
    parent_id TEXT NULL REFERENCES tenantry_tenants (id),
    level     INTEGER NOT NULL DEFAULT 0,
    name      TEXT NULL
);
CREATE INDEX IF NOT EXISTS tenantry_tenants_parent ON tenantry_tenants (parent_id, id);
CREATE INDEX IF NOT EXISTS tenantry_tenants_level ON tenantry_tenants (level, id);
CREATE TABLE IF NOT EXISTS tenantry_users (
    id   TEXT PRIMARY KEY,
    name TEXT NULL
);
CREATE TABLE IF NOT EXISTS tenantry_memberships (
    user_id   TEXT NOT NULL REFERENCES tenantry_users (id),
    tenant_id TEXT NOT NULL REFERENCES tenantry_tenants (id),
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX IF NOT EXISTS tenantry_memberships_tenant ON tenantry_memberships (tenant_id, user_id);
CREATE TABLE IF NOT EXISTS tenantry_grants (
    tenant_id  TEXT NOT NULL REFERENCES tenantry_tenants (id),
    permission TEXT NOT NULL,
    PRIMARY KEY (tenant_id, permission)
);
",
    },
    Migration {
        version: 2,
        name: "role tree, role assignments, grants to roles",
        // The parent reference is checked at commit, so a role tree can be written in any
        // order (roles referring to later ones, cycles the metrics' depth guard ends).
        sql: r"
CREATE TABLE IF NOT EXISTS tenantry_roles (
    id        TEXT PRIMARY KEY,
    parent_id TEXT NULL REFERENCES tenantry_roles (id) DEFERRABLE INITIALLY DEFERRED,
    name      TEXT NULL
);
CREATE INDEX IF NOT EXISTS tenantry_roles_parent ON tenantry_roles (parent_id);
CREATE TABLE IF NOT EXISTS tenantry_role_assignments (
    user_id   TEXT NOT NULL REFERENCES tenantry_users (id),
    tenant_id TEXT NOT NULL REFERENCES tenantry_tenants (id),
    role_id   TEXT NOT NULL REFERENCES tenantry_roles (id),
    PRIMARY KEY (user_id, tenant_id, role_id)
);
CREATE INDEX IF NOT EXISTS tenantry_role_assignments_tenant
    ON tenantry_role_assignments (tenant_id, user_id);
CREATE INDEX IF NOT EXISTS tenantry_role_assignments_role ON tenantry_role_assignments (role_id);
CREATE TABLE IF NOT EXISTS tenantry_role_grants (
    role_id    TEXT NOT NULL REFERENCES tenantry_roles (id),
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);
",
    },
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS tenantry_metrics_migrations (
    version BIGINT PRIMARY KEY,
    name    TEXT NOT NULL
)";

/// Applies the missing migrations on PostgreSQL, in one transaction, serialised by an
/// advisory lock so concurrent service instances can all call it at start-up.
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails; nothing is applied then.
///
/// # Example
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), tenantry_metrics::Error> {
/// tenantry_metrics::migrate::run_postgres(&pool).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn run_postgres(pool: &sqlx::PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7302615114)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(LEDGER).execute(&mut *tx).await?;
    for m in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM tenantry_metrics_migrations WHERE version = $1",
        )
        .bind(m.version)
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            sqlx::raw_sql(AssertSqlSafe(m.sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO tenantry_metrics_migrations (version, name) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Applies the missing migrations on SQLite, in one transaction.
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails; nothing is applied then.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn run_sqlite(pool: &sqlx::SqlitePool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(LEDGER).execute(&mut *tx).await?;
    for m in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM tenantry_metrics_migrations WHERE version = ?")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::raw_sql(AssertSqlSafe(m.sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO tenantry_metrics_migrations (version, name) VALUES (?, ?)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
