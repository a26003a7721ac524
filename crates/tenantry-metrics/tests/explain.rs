//! On PostgreSQL with 100,000 ledger rows, a tenant-scoped dashboard reads the ledger and the
//! tree through their indexes, not by scanning them: on the fixture ledger and on the ledger
//! `tenantry-cost`'s own migration creates.

use sqlx::{AssertSqlSafe, Row};
use tenantry_cost::{Ledger, PriceBook};
use tenantry_metrics::builtin::{self, Period};
use tenantry_metrics::{Dialect, MetricsQuery, Scope, fixture, migrate};
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
    migrate::run_postgres(db.pool()).await.expect("schema");
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
    let (sql, values) = q.build(Dialect::Postgres).expect("build");
    let explain = format!("EXPLAIN {sql}");
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
