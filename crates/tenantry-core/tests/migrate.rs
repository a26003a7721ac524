//! The migration runner on both backends: applies once, refuses an edited migration and a
//! newer database, adopts a component's legacy table, and serialises concurrent runs.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

use tenantry_core::db::{Backend, Pool};
use tenantry_core::migrate::{self, Component, MigrateError, Migration};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

fn v1() -> Migration {
    Migration::new(1, "notes", ["CREATE TABLE notes (id BIGINT PRIMARY KEY)"])
}

fn v2() -> Migration {
    Migration::new(
        2,
        "note text",
        ["ALTER TABLE notes ADD COLUMN body TEXT NULL"],
    )
}

fn one(_: Backend) -> Vec<Migration> {
    vec![v1()]
}

fn two(_: Backend) -> Vec<Migration> {
    vec![v1(), v2()]
}

fn one_edited(_: Backend) -> Vec<Migration> {
    vec![Migration::new(
        1,
        "notes",
        ["CREATE TABLE notes (id BIGINT PRIMARY KEY, extra TEXT)"],
    )]
}

const NOTES_1: Component = Component::new("notes", one);
const NOTES_2: Component = Component::new("notes", two);
const NOTES_EDITED: Component = Component::new("notes", one_edited);

async fn backends() -> Vec<(Pool, PgDatabase, SqliteDatabase)> {
    let pg = PgDatabase::create().await;
    let lite = SqliteDatabase::create().await;
    vec![(Pool::from(pg.pool().clone()), pg, lite), {
        let pg = PgDatabase::create().await;
        let lite = SqliteDatabase::create().await;
        (Pool::from(lite.pool().clone()), pg, lite)
    }]
}

#[tokio::test]
async fn pending_migrations_apply_once_in_order() {
    for (pool, _pg, _lite) in backends().await {
        let first = migrate::migrate(&pool, &[&NOTES_1]).await.unwrap();
        assert_eq!(first.len(), 1, "{:?}", pool.backend());
        assert!(
            migrate::migrate(&pool, &[&NOTES_1])
                .await
                .unwrap()
                .is_empty()
        );
        let second = migrate::migrate(&pool, &[&NOTES_2]).await.unwrap();
        assert_eq!(
            second.iter().map(|m| m.version).collect::<Vec<_>>(),
            [2],
            "{:?}",
            pool.backend()
        );
        let status = migrate::status(&pool, &[&NOTES_2]).await.unwrap();
        assert!(status[0].is_current(), "{status:?}");
    }
}

#[tokio::test]
async fn an_edited_migration_is_refused_and_nothing_runs() {
    for (pool, _pg, _lite) in backends().await {
        migrate::migrate(&pool, &[&NOTES_1]).await.unwrap();
        let err = migrate::migrate(&pool, &[&NOTES_EDITED]).await.unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::Edited {
                    component: "notes",
                    version: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("must never change"), "{err}");
        let status = migrate::status(&pool, &[&NOTES_EDITED]).await.unwrap();
        assert_eq!(status[0].edited, [1]);
    }
}

#[tokio::test]
async fn a_database_newer_than_the_code_is_refused() {
    for (pool, _pg, _lite) in backends().await {
        migrate::migrate(&pool, &[&NOTES_2]).await.unwrap();
        let err = migrate::migrate(&pool, &[&NOTES_1]).await.unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::TooNew {
                    component: "notes",
                    found: 2,
                    supported: 1
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn a_failing_migration_applies_nothing_of_any_component() {
    fn broken(_: Backend) -> Vec<Migration> {
        vec![Migration::new(1, "broken", ["CREATE TABLE"])]
    }
    const BROKEN: Component = Component::new("broken", broken);
    for (pool, _pg, _lite) in backends().await {
        let err = migrate::migrate(&pool, &[&NOTES_1, &BROKEN])
            .await
            .unwrap_err();
        assert!(matches!(err, MigrateError::Database(_)), "{err:?}");
        let status = migrate::status(&pool, &[&NOTES_1]).await.unwrap();
        assert_eq!(status[0].applied, 0, "{:?}", pool.backend());
    }
}

#[tokio::test]
async fn a_legacy_runners_table_is_adopted() {
    const ADOPTING: Component = Component::new("notes", two).legacy_table("notes_migrations");
    for (pool, _pg, _lite) in backends().await {
        let mut tx = pool.begin().await.unwrap();
        tx.execute_schema(
            "CREATE TABLE notes_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO notes_migrations (version, name) VALUES (1, 'notes');
             CREATE TABLE notes (id BIGINT PRIMARY KEY)",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let applied = migrate::migrate(&pool, &[&ADOPTING]).await.unwrap();
        assert_eq!(
            applied.iter().map(|m| m.version).collect::<Vec<_>>(),
            [2],
            "version 1 is adopted, not run again ({:?})",
            pool.backend()
        );
    }
}

#[tokio::test]
async fn a_legacy_table_newer_than_the_code_is_refused() {
    const ADOPTING: Component = Component::new("notes", one).legacy_table("notes_migrations");
    for (pool, _pg, _lite) in backends().await {
        let mut tx = pool.begin().await.unwrap();
        tx.execute_schema(
            "CREATE TABLE notes_migrations (version BIGINT PRIMARY KEY);
             INSERT INTO notes_migrations (version) VALUES (1);
             INSERT INTO notes_migrations (version) VALUES (2)",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let err = migrate::migrate(&pool, &[&ADOPTING]).await.unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::TooNew {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_apply_each_migration_once() {
    let pg = PgDatabase::create().await;
    let pool = Pool::from(pg.pool().clone());
    let runs = (0..6).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { migrate::migrate(&pool, &[&NOTES_2]).await })
    });
    let mut applied = 0;
    for run in runs {
        applied += run.await.unwrap().unwrap().len();
    }
    assert_eq!(applied, 2, "each migration applied by exactly one instance");
}
