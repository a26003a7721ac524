//! The crate's schema as a `tenantry-core` migration component: the default tables (tenants
//! with parent and level, users, memberships, grants; roles with parent, role assignments,
//! grants to roles), for PostgreSQL and SQLite.
//!
//! The usage ledger (`tenantry_usage`) belongs to `tenantry-cost` and is not created here.
//! Applied versions are recorded by core's runner in `tenantry_migrations` under the component
//! `metrics`; a database migrated before that (versions in `tenantry_metrics_migrations`) is
//! adopted as it stands. Every statement is also `IF NOT EXISTS`, so a half-applied schema
//! converges.

use tenantry_core::db::{Backend, Pool};
use tenantry_core::migrate::{self, AppliedMigration, Component, MigrateError, Migration};

/// The metrics' tables as a migration component, for [`tenantry_core::migrate::migrate`] next to
/// the other components a host runs, or through [`migrate`](crate::migrate) alone.
pub const MIGRATIONS: Component =
    Component::new("metrics", migrations).legacy_table("tenantry_metrics_migrations");

/// Version 1: the tenant tree, users, memberships and grants.
const TENANTS: &str = r"
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
";

/// Version 2: the role tree, role assignments and grants to roles. The parent reference is
/// checked at commit, so a role tree can be written in any order (roles referring to later ones,
/// cycles the metrics' depth guard ends).
const ROLES: &str = r"
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
";

/// Every migration, oldest first. The DDL is the same text on both backends.
fn migrations(_backend: Backend) -> Vec<Migration> {
    vec![
        Migration::new(1, "tenant tree, users, memberships, grants", [TENANTS]),
        Migration::new(2, "role tree, role assignments, grants to roles", [ROLES]),
    ]
}

/// Applies the metrics' missing migrations with core's runner: in one transaction, under its
/// advisory lock (PostgreSQL), so concurrent service instances can all call it at start-up.
/// Returns what it applied.
///
/// # Errors
/// [`MigrateError::TooNew`] when the database was migrated by a newer version,
/// [`MigrateError::Edited`] when an applied migration differs from the shipped one,
/// [`MigrateError::Database`] when a statement fails; nothing is applied then.
///
/// # Example
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantry_core::db::Pool;
///
/// let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// assert_eq!(tenantry_metrics::migrate(&pool).await?.len(), 2);
/// assert!(tenantry_metrics::migrate(&pool).await?.is_empty());
/// # Ok::<(), tenantry_core::migrate::MigrateError>(())
/// # }).unwrap();
/// ```
pub async fn migrate(pool: &Pool) -> Result<Vec<AppliedMigration>, MigrateError> {
    migrate::migrate(pool, &[&MIGRATIONS]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A released migration never changes: core refuses a database whose applied migration
    /// differs from the shipped one, so an edit here would stop every deployed service.
    #[test]
    fn checksums_are_pinned_per_backend() {
        const GOLDEN: [(Backend, i64, &str); 4] = [
            (
                Backend::Postgres,
                1,
                "531219b8d080b15685b1166bcff50917738b683b4fcd647c7bb65db5120eddd0",
            ),
            (
                Backend::Postgres,
                2,
                "6fe580cbb6481c21b68cde5646647022eef52e48180bf28fb3636e89928a4c99",
            ),
            (
                Backend::Sqlite,
                1,
                "531219b8d080b15685b1166bcff50917738b683b4fcd647c7bb65db5120eddd0",
            ),
            (
                Backend::Sqlite,
                2,
                "6fe580cbb6481c21b68cde5646647022eef52e48180bf28fb3636e89928a4c99",
            ),
        ];
        for backend in [Backend::Postgres, Backend::Sqlite] {
            let shipped: Vec<_> = MIGRATIONS
                .migrations(backend)
                .iter()
                .map(|m| (m.version(), m.checksum()))
                .collect();
            let golden: Vec<_> = GOLDEN
                .iter()
                .filter(|(b, _, _)| *b == backend)
                .map(|(_, v, c)| (*v, (*c).to_owned()))
                .collect();
            assert_eq!(shipped, golden, "{}", backend.as_str());
        }
    }
}
