//! Property tests: every built-in metric evaluated in Rust and on real PostgreSQL and SQLite
//! gives exactly the same rows, for random tenant forests, members, grants and usage.

mod support;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tenantry_metrics::fixture;
use tenantry_testkit::{PgDatabase, SqliteDatabase};

const CASES: u32 = 300;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn rust_and_postgres_agree() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(PgDatabase::create());
    rt.block_on(fixture::setup_postgres(db.pool()))
        .expect("schema");
    let compared = std::cell::Cell::new(0u32);
    runner()
        .run(&(support::dataset(), support::shape()), |(data, shape)| {
            let q = support::query(&data, &shape);
            let expected = q
                .evaluate(&data)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = rt
                .block_on(async {
                    fixture::load_postgres(db.pool(), &data).await?;
                    q.fetch_postgres(db.pool()).await
                })
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            proptest::prop_assert_eq!(expected, actual);
            compared.set(compared.get() + 1);
            Ok(())
        })
        .expect("Rust and PostgreSQL agree");
    assert!(compared.get() >= CASES);
}

#[test]
fn rust_and_sqlite_agree() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(SqliteDatabase::create());
    rt.block_on(fixture::setup_sqlite(db.pool()))
        .expect("schema");
    let compared = std::cell::Cell::new(0u32);
    runner()
        .run(&(support::dataset(), support::shape()), |(data, shape)| {
            let q = support::query(&data, &shape);
            let expected = q
                .evaluate(&data)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = rt
                .block_on(async {
                    fixture::load_sqlite(db.pool(), &data).await?;
                    q.fetch_sqlite(db.pool()).await
                })
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            proptest::prop_assert_eq!(expected, actual);
            compared.set(compared.get() + 1);
            Ok(())
        })
        .expect("Rust and SQLite agree");
    assert!(compared.get() >= CASES);
}
