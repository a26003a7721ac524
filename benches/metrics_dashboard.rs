//! Dashboard metrics for 10,000 tenants on PostgreSQL: one rolled-up query against N+1.
//!
//! Run with: `cargo bench --bench metrics_dashboard -- [usage_rows]` (default 1,000,000;
//! with `CI` set, a small smoke run).
//!
//! Seeds a 4-level tree of 10,000 tenants (10 organizations × 9 workspaces × 10 teams × 10
//! units), 20,000 users and `usage_rows` ledger rows server-side, then fetches every built-in
//! metric for every tenant four ways and prints times and round trips side by side:
//!
//! 1. one `MetricsQuery` over all tenants (one query statement), on the server's default settings
//!    (`jit = on`) and on sessions with `jit = off`, plus the same SQL sent without the
//!    `SET LOCAL jit = off` that `fetch_postgres` adds;
//! 2. N+1 sequential: list the tenants, then one query per tenant, awaited one by one;
//! 3. N+1 concurrent: the same per-tenant queries, 8 in flight over a pool of 8 connections;
//! 4. one batch query with the 10,000 ids bound as a list (`IN ($1, …)`, loader style).
//!
//! Every variant after the first runs on the server's default settings, through
//! `fetch_postgres`.
//!
//! PostgreSQL comes from `tenantry_testkit` (`DATABASE_URL`, local `127.0.0.1:5432`, or a
//! throw-away cluster).

use std::time::{Duration, Instant};

use std::str::FromStr;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tenantry_metrics::builtin::{self, Period, Slice};
use tenantry_metrics::{Dimension, MetricRow, MetricsQuery, Scope, fixture};

fn dashboard(scope: Scope) -> Result<MetricsQuery, tenantry_metrics::Error> {
    let all = Period::all_time();
    let jan = Period::new(1_767_225_600_000_000, 1_769_904_000_000_000)?;
    let slice = Slice::all().feature("feature1").model("model2");
    let mut q = MetricsQuery::new();
    q.scope(scope);
    q.select("users", builtin::users())?;
    q.select("active_users", builtin::active_users(jan))?;
    q.select("adoption_ppm", builtin::adoption_rate("feature1", jan))?;
    q.select("requests", builtin::requests(jan))?;
    q.select("tokens", builtin::tokens(jan))?;
    q.select("cost", builtin::cost(jan))?;
    q.select("cost_per_active_user", builtin::cost_per_active_user(jan))?;
    q.select("slice_requests", builtin::requests_in(&slice, all))?;
    q.select("slice_tokens", builtin::tokens_in(&slice, all))?;
    q.select("slice_cost", builtin::cost_in(&slice, all))?;
    q.select("batch_share_ppm", builtin::batch_share(jan))?;
    q.select("batch_savings", builtin::batch_savings(jan))?;
    q.select("admin_max_depth", builtin::max_inheritance_depth("admin"))?;
    q.select(
        "admin_depth_0",
        builtin::inheritance_depth_count("admin", 0),
    )?;
    q.select(
        "admin_depth_1",
        builtin::inheritance_depth_count("admin", 1),
    )?;
    q.select("read_holders", builtin::permission_holders("read"))?;
    Ok(q)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // CI runs every example as a debug-build smoke test: 1,000 tenants and 10,000 ledger rows
    // there (figures are not benchmarks); the benchmark is the release run with defaults.
    let smoke = std::env::var_os("CI").is_some();
    let (orgs, default_rows) = if smoke { (1, 10_000) } else { (10, 1_000_000) };
    let usage_rows: i64 = std::env::args()
        .filter(|a| a != "--bench")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default_rows);
    if smoke {
        println!("CI is set: smoke run with 1,000 tenants (figures are not benchmarks)");
    }
    let db = tenantry_testkit::PgDatabase::create().await;
    // The server's default settings (PostgreSQL 15: `jit = on`); `fetch_postgres` turns JIT off
    // for its own statement. A second pool whose sessions have `jit = off` shows the other
    // server setting.
    let pool = db.pool();
    let options = PgConnectOptions::from_str(db.url())?.options([("jit", "off")]);
    let no_jit = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    fixture::setup_postgres(pool).await?;
    let t = Instant::now();
    fixture::seed_postgres(pool, orgs, usage_rows).await?;
    println!(
        "seeded {} tenants and {usage_rows} usage rows in {:?}",
        orgs * 1000,
        t.elapsed()
    );
    let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(pool).await?;
    println!("server setting: jit = {jit}");

    // 1. One query, on both server settings, and the same statement without the library's
    //    `SET LOCAL jit = off` (what a host got before `fetch_postgres` set it).
    let one = dashboard(Scope::All)?;
    let mut reference: Vec<MetricRow> = Vec::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        reference = one.fetch_postgres(pool).await?;
        times.push(t.elapsed());
    }
    let one_time = median(times);
    println!(
        "one query, server jit = {jit}:  {one_time:>10.3?}  round trips: 2 (BEGIN+SET LOCAL, query)  rows: {}",
        reference.len()
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let rows = one.fetch_postgres(&no_jit).await?;
        times.push(t.elapsed());
        assert_eq!(rows, reference);
    }
    println!(
        "one query, sessions jit = off: {:>10.3?}  round trips: 2",
        median(times)
    );
    let (sql, values) = one.build(tenantry_metrics::Backend::Postgres)?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let mut raw = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        for v in values.0.iter().cloned() {
            raw = match v {
                sea_query::Value::BigInt(x) => raw.bind(x),
                sea_query::Value::String(x) => raw.bind(x),
                other => return Err(format!("unexpected bound value {other:?}").into()),
            };
        }
        let t = Instant::now();
        let rows = raw.fetch_all(pool).await?;
        times.push(t.elapsed());
        assert_eq!(rows.len(), reference.len());
    }
    println!(
        "same SQL without SET LOCAL, jit = {jit}: {:>10.3?}  round trips: 1",
        median(times)
    );
    // Requests, tokens and cost per workspace × feature × model, recomputed from each
    // workspace's subtree: one query.
    let jan = Period::new(1_767_225_600_000_000, 1_769_904_000_000_000)?;
    let mut by_model = MetricsQuery::new();
    by_model
        .level(1)
        .group_by(Dimension::Feature)
        .group_by(Dimension::Model);
    by_model.select("requests", builtin::requests(jan))?;
    by_model.select("tokens", builtin::tokens(jan))?;
    by_model.select("cost", builtin::cost(jan))?;
    let t = Instant::now();
    let rows = by_model.fetch_postgres(pool).await?;
    println!(
        "per workspace x feature x model: {:>10.3?}  round trips: 2  rows: {}",
        t.elapsed(),
        rows.len()
    );
    if std::env::var_os("METRICS_EXPLAIN").is_some() {
        let sql = one
            .statement(tenantry_metrics::Backend::Postgres)?
            .to_string(sea_query::PostgresQueryBuilder);
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS OFF) {sql}"
        )))
        .fetch_all(&no_jit)
        .await?;
        for (line,) in plan {
            println!("{line}");
        }
    }

    // 2. N+1 sequential.
    let t = Instant::now();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tenantry_tenants ORDER BY id COLLATE \"C\"")
            .fetch_all(pool)
            .await?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in &ids {
        rows.extend(
            dashboard(Scope::Ids(vec![id.clone()]))?
                .fetch_postgres(pool)
                .await?,
        );
    }
    let seq_time = t.elapsed();
    assert_eq!(rows, reference, "N+1 sequential returns the same numbers");
    println!(
        "N+1 sequential:   {seq_time:>10.3?}  round trips: {} (ids, then 2 per tenant)",
        2 * ids.len() + 1
    );

    // 3. N+1 concurrent (8 in flight).
    let t = Instant::now();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tenantry_tenants ORDER BY id COLLATE \"C\"")
            .fetch_all(pool)
            .await?;
    let per_tenant: Vec<Vec<MetricRow>> = stream::iter(ids.iter().cloned())
        .map(|id| async move { dashboard(Scope::Ids(vec![id]))?.fetch_postgres(pool).await })
        .buffered(8)
        .try_collect()
        .await?;
    let conc_time = t.elapsed();
    let rows: Vec<MetricRow> = per_tenant.into_iter().flatten().collect();
    assert_eq!(rows, reference, "N+1 concurrent returns the same numbers");
    println!(
        "N+1 concurrent 8: {conc_time:>10.3?}  round trips: {}",
        2 * ids.len() + 1
    );

    // 4. One batch query over the id list.
    let t = Instant::now();
    let batch = dashboard(Scope::Ids(ids.clone()))?
        .fetch_postgres(pool)
        .await?;
    let batch_time = t.elapsed();
    assert_eq!(batch, reference, "batch query returns the same numbers");
    println!("batch id list:    {batch_time:>10.3?}  round trips: 3 (ids, then one query)");

    println!(
        "one query vs N+1 sequential: {:.1}x faster",
        seq_time.as_secs_f64() / one_time.as_secs_f64()
    );
    Ok(())
}
