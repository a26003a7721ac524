//! Test and benchmark fixtures: the usage ledger table of the contract with `tenantry-cost`
//! (with plain, non-generated cost columns), and loading a [`Dataset`] into a database.
//!
//! The real ledger is the one `tenantry-cost`'s migration creates, with generated cost columns;
//! the property and `EXPLAIN` tests also run on it. [`USAGE_TABLE_POSTGRES`] /
//! [`USAGE_TABLE_SQLITE`] keep the contract's names, types and `(tenant_id, occurred_at)` index
//! but write `cost_nanos` / `standard_cost_nanos` directly, so tests can store costs the formula
//! never produces (extremes, negative values, totals that overflow) and the benchmark can be
//! seeded quickly.
//!
//! Test support behind the `fixture` feature: not part of the API the crate promises, and it
//! creates a ledger table that `tenantry-cost` owns in a real deployment.

use sea_query::{InsertStatement, PostgresQueryBuilder, Query, SqliteQueryBuilder, Value};
use sea_query_sqlx::SqlxBinder;
use sqlx::AssertSqlSafe;

use tenantry_core::db::Pool;

use crate::data::Dataset;
use crate::error::Result;
use crate::render::ident;
use crate::schema::USAGE_COLUMNS;

/// The ledger table of the contract on PostgreSQL (cost columns plain instead of generated).
pub const USAGE_TABLE_POSTGRES: &str = r"
CREATE TABLE IF NOT EXISTS tenantry_usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NULL,
    feature TEXT NOT NULL,
    model TEXT NOT NULL,
    lane TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    standard_cost_nanos BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tenantry_usage_tenant_time ON tenantry_usage (tenant_id, occurred_at);
";

/// The ledger table of the contract on SQLite (cost columns plain instead of generated).
pub const USAGE_TABLE_SQLITE: &str = r"
CREATE TABLE IF NOT EXISTS tenantry_usage (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NULL,
    feature TEXT NOT NULL,
    model TEXT NOT NULL,
    lane TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    standard_cost_nanos BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tenantry_usage_tenant_time ON tenantry_usage (tenant_id, occurred_at);
";

/// Deletes every row of the default tables (ledger included), children first.
pub const CLEAR: &str = "DELETE FROM tenantry_usage; DELETE FROM tenantry_grants; \
DELETE FROM tenantry_role_assignments; DELETE FROM tenantry_role_grants; \
UPDATE tenantry_roles SET parent_id = NULL; DELETE FROM tenantry_roles; \
DELETE FROM tenantry_memberships; DELETE FROM tenantry_users; \
UPDATE tenantry_tenants SET parent_id = NULL; DELETE FROM tenantry_tenants;";

const CHUNK: usize = 500;

const ANALYZE: &str = "ANALYZE tenantry_tenants; ANALYZE tenantry_users; \
ANALYZE tenantry_memberships; ANALYZE tenantry_grants; ANALYZE tenantry_roles; \
ANALYZE tenantry_role_assignments; ANALYZE tenantry_role_grants; ANALYZE tenantry_usage;";

fn inserts(data: &Dataset) -> Result<Vec<InsertStatement>, sea_query::error::Error> {
    let mut out = Vec::new();
    for chunk in data.tenants.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_tenants")).columns([
            ident("id"),
            ident("parent_id"),
            ident("level"),
        ]);
        for t in chunk {
            q.values([
                t.id.clone().into(),
                t.parent_id.clone().into(),
                t.level.into(),
            ])?;
        }
        out.push(q);
    }
    let mut users: Vec<&str> = (data.memberships.iter().map(|m| m.user_id.as_str()))
        .chain(data.role_assignments.iter().map(|a| a.user_id.as_str()))
        .collect();
    users.sort_unstable();
    users.dedup();
    for chunk in users.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_users")).columns([ident("id")]);
        for u in chunk {
            q.values([(*u).into()])?;
        }
        out.push(q);
    }
    for chunk in data.memberships.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_memberships"))
            .columns([ident("user_id"), ident("tenant_id")]);
        for m in chunk {
            q.values([m.user_id.clone().into(), m.tenant_id.clone().into()])?;
        }
        out.push(q);
    }
    for chunk in data.grants.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_grants"))
            .columns([ident("tenant_id"), ident("permission")]);
        for g in chunk {
            q.values([g.tenant_id.clone().into(), g.permission.clone().into()])?;
        }
        out.push(q);
    }
    // Roles in any order: the parent reference is checked at commit.
    for chunk in data.roles.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_roles"))
            .columns([ident("id"), ident("parent_id")]);
        for r in chunk {
            q.values([r.id.clone().into(), r.parent_id.clone().into()])?;
        }
        out.push(q);
    }
    for chunk in data.role_assignments.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_role_assignments")).columns([
            ident("user_id"),
            ident("tenant_id"),
            ident("role_id"),
        ]);
        for a in chunk {
            q.values([
                a.user_id.clone().into(),
                a.tenant_id.clone().into(),
                a.role_id.clone().into(),
            ])?;
        }
        out.push(q);
    }
    for chunk in data.role_grants.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_role_grants"))
            .columns([ident("role_id"), ident("permission")]);
        for g in chunk {
            q.values([g.role_id.clone().into(), g.permission.clone().into()])?;
        }
        out.push(q);
    }
    for chunk in data.usage.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(ident("tenantry_usage"))
            .columns(USAGE_COLUMNS.iter().map(|c| ident(c)));
        for u in chunk {
            let row: [Value; 13] = [
                u.tenant_id.clone().into(),
                u.user_id.clone().into(),
                u.feature.clone().into(),
                u.model.clone().into(),
                u.lane.clone().into(),
                u.occurred_at.into(),
                u.input_tokens.into(),
                u.cache_write_5m_tokens.into(),
                u.cache_write_1h_tokens.into(),
                u.cache_read_tokens.into(),
                u.output_tokens.into(),
                u.cost_nanos.into(),
                u.standard_cost_nanos.into(),
            ];
            q.values(row.map(Into::into))?;
        }
        out.push(q);
    }
    Ok(out)
}

/// Creates the default tables and the ledger on PostgreSQL (idempotent).
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn setup_postgres(pool: &sqlx::PgPool) -> Result<()> {
    crate::migrate(&Pool::from(pool.clone())).await?;
    sqlx::raw_sql(USAGE_TABLE_POSTGRES).execute(pool).await?;
    Ok(())
}

/// Creates the default tables and the ledger on SQLite (idempotent).
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn setup_sqlite(pool: &sqlx::SqlitePool) -> Result<()> {
    crate::migrate(&Pool::from(pool.clone())).await?;
    sqlx::raw_sql(USAGE_TABLE_SQLITE).execute(pool).await?;
    Ok(())
}

/// Replaces the contents of the default tables with `data`, in one transaction. Tenants must
/// come parents first; roles may come in any order.
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn load_postgres(pool: &sqlx::PgPool, data: &Dataset) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Fixture data need not survive a crash: skip the commit's WAL flush.
    sqlx::raw_sql("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(CLEAR).execute(&mut *tx).await?;
    for stmt in inserts(data).map_err(crate::Error::Fixture)? {
        let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // Fresh statistics, so the planner sees the real (small) sizes.
    sqlx::raw_sql(ANALYZE).execute(pool).await?;
    Ok(())
}

/// Replaces the contents of the default tables with `data`, in one transaction. Tenants must
/// come parents first; roles may come in any order.
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn load_sqlite(pool: &sqlx::SqlitePool, data: &Dataset) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(CLEAR).execute(&mut *tx).await?;
    for stmt in inserts(data).map_err(crate::Error::Fixture)? {
        let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The contract's columns of a seeded ledger row `i` (`$2` organizations)…
const SEED_USAGE_COLUMNS: &str = "tenant_id, user_id, feature, model, lane, occurred_at, \
    input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens";
const SEED_USAGE_VALUES: &str = "'n' || ((i * 7919) % (900 * $2)), \
    CASE WHEN i % 50 = 0 THEN NULL ELSE 'u' || (((i * 7919) % (900 * $2)) + 900 * $2 * (i % 2)) END, \
    'feature' || (i % 5), 'model' || (i % 3), CASE WHEN i % 3 = 0 THEN 'batch' ELSE 'sync' END, \
    1767225600000000 + i * 1000, i % 1000, i % 7, 0, i % 13, i % 500";
/// …its costs, on the contract's table…
const SEED_COST_COLUMNS: &str = "cost_nanos, standard_cost_nanos";
const SEED_COST_VALUES: &str = "(i % 1000) * 1000, \
    CASE WHEN i % 3 = 0 THEN (i % 1000) * 2000 ELSE (i % 1000) * 1000 END";
/// …or its key and rate snapshot on `tenantry-cost`'s ledger ($1 / $5 per million input /
/// output tokens, half price in batches), from which the ledger computes the costs.
const SEED_COST_LEDGER_COLUMNS: &str = "source, request_id, price_id, context_tier, input_rate, \
    cache_write_5m_rate, cache_write_1h_rate, cache_read_rate, output_rate, batch_permille, \
    geo_permille, tier_bp, region_bp, recorded_at";
const SEED_COST_LEDGER_VALUES: &str = "'seed', 'req-' || i, 'model' || (i % 3) || '@seed', \
    'standard', 1000000, 1250000, 2000000, 100000, 5000000, \
    CASE WHEN i % 3 = 0 THEN 500 ELSE 1000 END, 1000, 10000, 10000, 1767225600000000";

/// Fills the default tables on PostgreSQL with a synthetic 4-level hierarchy of
/// `1,000 × orgs` tenants (per organization 9 workspaces × 10 teams × 10 units), `2,000 × orgs`
/// users (one membership each, in a unit), grants on organizations (`read`), every third team and
/// every seventh unit (`admin`), and `usage_rows` ledger rows spread over the units, all
/// generated server-side with `generate_series`. `orgs = 10` gives the 10,000-tenant benchmark.
///
/// The ledger is either the contract's table of [`setup_postgres`] (costs written as values) or
/// the one `tenantry-cost`'s migration creates (generated cost columns: the rows carry a rate
/// snapshot and an idempotency key instead).
///
/// Tenant ids: organizations `o0`…, workspaces `w0`…, teams `m0`…, units `n0`…. Replaces
/// existing rows.
///
/// # Errors
/// [`Error::Database`](crate::Error::Database) when a statement fails.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn seed_postgres(pool: &sqlx::PgPool, orgs: i64, usage_rows: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(CLEAR).execute(&mut *tx).await?;
    for stmt in [
        "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'o' || i, NULL, 0 FROM generate_series(0, $1 - 1) i",
        "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'w' || i, 'o' || (i / 9), 1 FROM generate_series(0, 9 * $1 - 1) i",
        "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'm' || i, 'w' || (i / 10), 2 FROM generate_series(0, 90 * $1 - 1) i",
        "INSERT INTO tenantry_tenants (id, parent_id, level) SELECT 'n' || i, 'm' || (i / 10), 3 FROM generate_series(0, 900 * $1 - 1) i",
        "INSERT INTO tenantry_users (id) SELECT 'u' || i FROM generate_series(0, 2000 * $1 - 1) i",
        "INSERT INTO tenantry_memberships (user_id, tenant_id) SELECT 'u' || i, 'n' || (i % (900 * $1)) FROM generate_series(0, 2000 * $1 - 1) i",
        "INSERT INTO tenantry_grants (tenant_id, permission) SELECT 'o' || i, 'read' FROM generate_series(0, $1 - 1) i",
        "INSERT INTO tenantry_grants (tenant_id, permission) SELECT 'm' || i, 'admin' FROM generate_series(0, 90 * $1 - 1, 3) i",
        "INSERT INTO tenantry_grants (tenant_id, permission) SELECT 'n' || i, 'admin' FROM generate_series(0, 900 * $1 - 1, 7) i",
    ] {
        sqlx::query(stmt).bind(orgs).execute(&mut *tx).await?;
    }
    // The contract's table takes the costs as values; tenantry-cost's own ledger computes
    // them from the tokens and a rate snapshot, and needs its idempotency key and snapshot.
    let generated: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'tenantry_usage' \
         AND column_name = 'cost_nanos' AND is_generated = 'ALWAYS')",
    )
    .fetch_one(&mut *tx)
    .await?;
    let (columns, values) = if generated {
        (SEED_COST_LEDGER_COLUMNS, SEED_COST_LEDGER_VALUES)
    } else {
        (SEED_COST_COLUMNS, SEED_COST_VALUES)
    };
    let insert = format!(
        "INSERT INTO tenantry_usage ({SEED_USAGE_COLUMNS}, {columns}) \
         SELECT {SEED_USAGE_VALUES}, {values} FROM generate_series(0, $1 - 1) i"
    );
    sqlx::query(AssertSqlSafe(insert))
        .bind(usage_rows)
        .bind(orgs)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sqlx::raw_sql(ANALYZE).execute(pool).await?;
    Ok(())
}
