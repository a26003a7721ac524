//! On PostgreSQL with 100,000 ledger rows, a tenant-scoped dashboard reads the ledger and the
//! tree through their indexes, not by scanning them: on the fixture ledger and on the ledger
//! `tenantry-cost`'s own migration creates.

use sqlx::{AssertSqlSafe, Row};
use tenantry_core::db::Pool;
use tenantry_cost::{Ledger, PriceBook};
use tenantry_metrics::builtin::{self, Period};
use tenantry_metrics::{Backend, MetricsQuery, Scope, fixture};
use tenantry_testkit::PgDatabase;

#[tokio::test]
async fn tenant_scoped_query_uses_the_indexes_of_the_fixture_ledger() {
    let db = PgDatabase::create().await;
    fixture::setup_postgres(db.pool()).await.expect("schema");
    check_plans(&db, "tenantry_usage_tenant_time").await;
}

#[tokio::test]
async fn tenant_scoped_query_uses_the_indexes_of_the_cost_ledger() {
    let db = PgDatabase::create().await;
    tenantry_metrics::migrate(&Pool::from(db.pool().clone()))
        .await
        .expect("schema");
    Ledger::postgres(db.pool().clone(), PriceBook::anthropic_default())
        .migrate()
        .await
        .expect("tenantry-cost migration");
    check_plans(&db, "tenantry_usage_tenant_time_idx").await;
}

async fn check_plans(db: &PgDatabase, ledger_index: &str) {
    fixture::seed_postgres(db.pool(), 10, 100_000)
        .await
        .expect("seed");
    let (n, cost): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(cost_nanos) AS BIGINT) FROM tenantry_usage")
            .fetch_one(db.pool())
            .await
            .expect("count");
    assert!(n >= 100_000);
    assert!(cost.is_some_and(|c| c > 0), "the ledger has costs");
    for scope in [
        Scope::Ids(vec!["m7".into(), "n42".into()]),
        Scope::Subtree("m7".into()),
    ] {
        let plan = plan(db, scope).await;
        assert!(plan.contains(ledger_index), "{plan}");
        assert!(!plan.contains("Seq Scan on tenantry_usage"), "{plan}");
        assert!(plan.contains("tenantry_tenants_parent"), "{plan}");
        assert!(plan.contains("tenantry_memberships_tenant"), "{plan}");
    }
}

async fn plan(db: &PgDatabase, scope: Scope) -> String {
    let all = Period::all_time();
    let mut q = MetricsQuery::new();
    q.scope(scope);
    q.select("cost", builtin::cost(all)).expect("select");
    q.select("adoption", builtin::adoption_rate("feature1", all))
        .expect("select");
    q.select("batch_share", builtin::batch_share(all))
        .expect("select");
    q.select("depth", builtin::max_inheritance_depth("admin"))
        .expect("select");
    explain(db, &q, false).await
}

/// The plan of `q` on PostgreSQL, with actual row counts when `analyze`.
async fn explain(db: &PgDatabase, q: &MetricsQuery, analyze: bool) -> String {
    let (sql, values) = q.build(Backend::Postgres).expect("build");
    let explain = if analyze {
        format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")
    } else {
        format!("EXPLAIN {sql}")
    };
    let mut query = sqlx::query(AssertSqlSafe(explain));
    for v in values {
        query = match v {
            sea_query::Value::BigInt(x) => query.bind(x),
            sea_query::Value::String(x) => query.bind(x),
            other => panic!("unexpected value {other:?}"),
        };
    }
    let plan: Vec<String> = query
        .fetch_all(db.pool())
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    plan.join("\n")
}

/// Roles are shared by every tenant, so the role walk of a query over some tenants must group
/// the assignments of the walked tenants only, never every assignment of its roles (before the
/// walk restricted them, the 100-leaf query below grouped all 40,000 rows).
#[tokio::test]
async fn tenant_scoped_role_walk_reads_only_the_walked_tenants_assignments() {
    let db = PgDatabase::create().await;
    fixture::setup_postgres(db.pool()).await.expect("schema");
    fixture::seed_postgres(db.pool(), 10, 100_000)
        .await
        .expect("seed");
    for sql in [
        "INSERT INTO tenantry_roles (id, parent_id) VALUES ('admin', NULL), ('editor', 'admin'), ('member', 'editor')",
        "INSERT INTO tenantry_role_grants (role_id, permission) VALUES ('admin', 'admin'), ('editor', 'write')",
        "INSERT INTO tenantry_role_assignments (user_id, tenant_id, role_id) \
         SELECT user_id, tenant_id, 'member' FROM tenantry_memberships",
        "ANALYZE tenantry_roles",
        "ANALYZE tenantry_role_grants",
        "ANALYZE tenantry_role_assignments",
    ] {
        sqlx::query(sql).execute(db.pool()).await.expect("roles");
    }
    let assignments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenantry_role_assignments")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert!(assignments >= 20_000, "{assignments}");
    // One subtree (a LATERAL walk per group), and 100 leaf tenants (one walk for all groups):
    // 10 and 100 leaves, each with about 2 members holding 2 permissions.
    let leaves: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    for (scope, most) in [
        (Scope::Ids(vec!["m7".into()]), 100),
        (Scope::Ids(leaves), 1_000),
    ] {
        let rows = role_access_rows(&db, scope.clone()).await;
        assert!(
            (1..=most).contains(&rows),
            "{rows} access rows grouped for {scope:?}, of 20,000 assignments"
        );
    }
}

/// How many rows the aggregation of `mq_role_access` (per tenant, user and permission) outputs
/// when a dashboard of role inheritance depth runs for `scope`.
async fn role_access_rows(db: &PgDatabase, scope: Scope) -> u64 {
    let mut q = MetricsQuery::new();
    q.scope(scope);
    q.select("depth", builtin::max_role_inheritance_depth("admin"))
        .expect("select");
    let plan = explain(db, &q, true).await;
    let lines: Vec<&str> = plan.lines().collect();
    let key = lines
        .iter()
        .position(|l| l.contains("Group Key: ra.tenant_id, ra.user_id, rg.permission"))
        .unwrap_or_else(|| panic!("no role access aggregate in {plan}"));
    let rows: u64 = lines[key - 1]
        .split("rows=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {}", lines[key - 1]));
    rows
}
