//! PostgreSQL subscriptions survive their listener connection being killed.

mod support;

use std::time::Duration;

use support::{params, take, tenant};
use tenantry_queue::{JobState, JobStore, LISTENER_APPLICATION_NAME, PgStore, SubmitOptions};

/// Lets new connections into the test database or not (run from the `postgres` database,
/// since a database cannot lock itself out).
async fn allow_connections(db: &tenantry_testkit::PgDatabase, allow: bool) {
    use sqlx::Connection;
    let options: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let mut admin = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {allow}",
        db.name()
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

async fn kill_listener(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LISTENER_APPLICATION_NAME)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn events_written_while_the_listener_is_down_are_delivered_after_it_reconnects() {
    let db = tenantry_testkit::PgDatabase::create().await;
    // A poll far beyond the test's timeouts: only the wake-up path can deliver in time.
    let store = PgStore::open(db.pool().clone())
        .await
        .unwrap()
        .with_poll_interval(Duration::from_secs(600));
    let (a, b) = (tenant("a"), tenant("b"));
    let mut sub_a = store.subscribe(&a).await.unwrap();
    let mut sub_b = store.subscribe(&b).await.unwrap();
    let first = store
        .submit(&a, "f", "u", params("0"), SubmitOptions::new())
        .await
        .unwrap();
    assert_eq!(take(&mut sub_a, 1).await[0].job_id, first);

    for round in 0..3 {
        // Keep the listener from coming back until the writes are done, so only the
        // catch-up after it reconnects can deliver them (the pool's open connections still work).
        allow_connections(&db, false).await;
        assert!(
            kill_listener(db.pool()).await >= 1,
            "round {round}: no listener connection to kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let batch: Vec<_> = (0..5)
            .map(|i| tenantry_queue::Submission::new("f", "u", params(&format!("{round}-{i}"))))
            .collect();
        let ids = store.submit_many(&a, &batch).await.unwrap();
        store.cancel(&a, &ids[0]).await.unwrap();
        allow_connections(&db, true).await;
        let got: Vec<_> = take(&mut sub_a, 6)
            .await
            .into_iter()
            .map(|e| (e.job_id, e.state))
            .collect();
        let mut expected: Vec<_> = ids
            .iter()
            .map(|id| (id.clone(), JobState::Queued))
            .collect();
        expected.push((ids[0].clone(), JobState::Canceled));
        assert_eq!(got, expected, "round {round}");
    }
    // Tenant b saw none of it.
    support::assert_quiet(&mut sub_b, Duration::from_millis(300)).await;
    let late = store
        .submit(&b, "f", "u", params("b"), SubmitOptions::new())
        .await
        .unwrap();
    let got = take(&mut sub_b, 1).await;
    assert_eq!((got[0].job_id.clone(), got[0].tenant.clone()), (late, b));
}

#[tokio::test]
async fn notification_payloads_are_tiny_and_name_only_the_tenant() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let store = PgStore::open(db.pool().clone()).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(db.url()).await.unwrap();
    listener.listen("tenantry_queue_events").await.unwrap();
    let t = tenant("acme");
    let many: Vec<_> = (0..50)
        .map(|i| tenantry_queue::Submission::new("f", "u", params(&"x".repeat(i * 100))))
        .collect();
    store.submit_many(&t, &many).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "acme");
    // One wake-up per transaction and tenant, not one per job.
    let extra = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(extra.is_err(), "unexpected second notification {extra:?}");
}

#[tokio::test]
async fn opening_again_and_concurrently_migrates_once() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move { PgStore::open(pool).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    PgStore::open(db.pool().clone()).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tenantry_queue_migrations ORDER BY version")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
}
