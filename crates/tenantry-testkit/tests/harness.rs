//! The harness keeps tests apart and can always find or start a PostgreSQL server.

use tenantry_testkit::{PgDatabase, SqliteDatabase, ThrowawayCluster};

async fn write_and_count(db: &PgDatabase, rows: i64) -> i64 {
    sqlx::query("CREATE TABLE seen (n bigint)")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO seen SELECT generate_series(1, $1)")
        .bind(rows)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM seen")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_databases_never_see_each_others_tables() {
    let (a, b) = tokio::join!(PgDatabase::create(), PgDatabase::create());
    assert_ne!(a.name(), b.name());
    // Both create a table of the same name at the same time; each sees only its own rows.
    let (in_a, in_b) = tokio::join!(write_and_count(&a, 3), write_and_count(&b, 5));
    assert_eq!((in_a, in_b), (3, 5));
}

#[tokio::test]
async fn a_dropped_database_is_gone() {
    let db = PgDatabase::create().await;
    let name = db.name().to_owned();
    let other = PgDatabase::create().await;
    drop(db);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(other.pool())
            .await
            .unwrap();
    assert!(!exists, "{name} should have been dropped");
}

#[tokio::test]
async fn throwaway_cluster_starts_and_serves_queries() {
    // Exercised on every run, whatever server the other tests use, so this path cannot rot.
    let cluster = tokio::task::spawn_blocking(ThrowawayCluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("throw-away cluster did not start: {e}"));
    let pool = sqlx::PgPool::connect(&cluster.url()).await.unwrap();
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!version.is_empty());
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn sqlite_databases_are_separate_files() {
    let (a, b) = tokio::join!(SqliteDatabase::create(), SqliteDatabase::create());
    assert_ne!(a.path(), b.path());
    sqlx::query("CREATE TABLE t (x integer)")
        .execute(a.pool())
        .await
        .unwrap();
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(in_b, 0);
}
