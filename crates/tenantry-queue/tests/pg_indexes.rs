//! The partial indexes of the PostgreSQL store serve the lookups they exist for, even in a
//! generic plan (a bound value PostgreSQL cannot see), and a new job enters none of them
//! but the ones it needs.

mod support;

use support::{params, tenant};
use tenantry_queue::{JobStore, PgStore, Submission};

/// The plan of `sql` as a generic prepared statement (the plan a cached statement gets once
/// PostgreSQL stops re-planning per value), with sequential scans priced out so the plan
/// shows which indexes are usable at all.
async fn generic_plan(conn: &mut sqlx::PgConnection, sql: &str, args: &str) -> String {
    for setup in [
        "SET plan_cache_mode = force_generic_plan",
        "SET enable_seqscan = off",
        "DEALLOCATE ALL",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE q AS {sql}")))
        .execute(&mut *conn)
        .await
        .unwrap();
    let lines: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE q({args})")))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    lines.join("\n")
}

/// The names of the indexes holding an entry for each of the table's rows, by entry count.
async fn index_entries(pool: &sqlx::PgPool) -> Vec<(String, f32)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.reltuples FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'tenantry_queue_jobs'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn batch_and_usage_lookups_use_their_partial_indexes() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let store = PgStore::open(db.pool().clone()).await.unwrap();
    let t = tenant("acme");
    let submissions: Vec<Submission> = (0..2000)
        .map(|i| Submission::new("summaries", format!("u{i}"), params("hello")))
        .collect();
    store.submit_many(&t, &submissions).await.unwrap();
    sqlx::query(
        "UPDATE tenantry_queue_jobs SET batch_id = 'qb_1', usage_state = 'pending' \
         WHERE id IN (SELECT id FROM tenantry_queue_jobs ORDER BY id LIMIT 10)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE tenantry_queue_jobs")
        .execute(db.pool())
        .await
        .unwrap();

    let entries = index_entries(db.pool()).await;
    let count = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no index {name} in {entries:?}"))
            .1
    };
    assert_eq!(count("tenantry_queue_jobs_batched"), 10.0, "{entries:?}");
    assert_eq!(count("tenantry_queue_jobs_with_usage"), 10.0, "{entries:?}");
    assert_eq!(count("tenantry_queue_jobs_pkey"), 2000.0, "{entries:?}");
    assert!(
        !entries.iter().any(
            |(n, _)| n == "tenantry_queue_jobs_batch" || n == "tenantry_queue_jobs_usage_state"
        ),
        "the full indexes are gone: {entries:?}"
    );

    let mut conn = db.pool().acquire().await.unwrap();
    let by_batch = generic_plan(
        &mut conn,
        "SELECT id FROM tenantry_queue_jobs WHERE batch_id = $1",
        "'qb_1'",
    )
    .await;
    assert!(
        by_batch.contains("tenantry_queue_jobs_batched"),
        "{by_batch}"
    );
    let outbox = generic_plan(
        &mut conn,
        "SELECT id FROM tenantry_queue_jobs \
         WHERE usage_state = $1 OR (usage_state = $2 AND lease_expires_at < $3)",
        "'pending', 'sending', 5",
    )
    .await;
    assert!(
        outbox.contains("tenantry_queue_jobs_with_usage"),
        "{outbox}"
    );
}
