//! Property tests: every built-in metric evaluated in Rust and on real PostgreSQL and SQLite
//! gives exactly the same rows, for random tenant forests, members, grants and usage, grouped by
//! tenant and grouped by tenant × feature / model / lane.
//!
//! Each backend runs twice: on the fixture ledger (plain cost columns, so extreme and negative
//! costs are stored as generated) and on the ledger `tenantry-cost`'s own migration creates
//! (generated cost columns, checks, its indexes), where Rust evaluates the rows read back.
//! Every query also runs through one shared `MetricsCache`, with the same rows. The role trees
//! are random too, cycles included; the run checks that some cases inherit permissions through
//! parent roles and some have a cyclic role tree.

mod support;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::db::{LedgerTable, TestDb};
use tenantry_metrics::MetricsCache;

const CASES: u32 = 300;

fn agree(db: impl Future<Output = TestDb>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(db);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let compared = std::cell::Cell::new((0u32, 0u32));
    // Cases whose result shows a permission inherited from a parent role, and cases whose role
    // tree has a cycle.
    let role_cases = std::cell::Cell::new((0u32, 0u32));
    // One cache for all cases: most cases repeat a shape with other values.
    let cache = MetricsCache::default();
    runner
        .run(&(support::dataset(), support::shape()), |(data, shape)| {
            let stored = rt
                .block_on(db.load(&data))
                .map_err(|e| TestCaseError::fail(format!("load: {e:?}")))?;
            let queries = [
                support::query(&stored, &shape),
                support::query_by_dimension(&stored, &shape),
            ];
            for (i, q) in queries.iter().enumerate() {
                let expected = q
                    .evaluate(&stored)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if i == 0 {
                    let inherited = expected.iter().any(|r| {
                        ["role_max_depth_read", "role_max_depth_admin"]
                            .iter()
                            .any(|m| r.value(m).is_some_and(|d| d >= 1))
                    });
                    let (inh, cyc) = role_cases.get();
                    role_cases.set((
                        inh + u32::from(inherited),
                        cyc + u32::from(support::has_role_cycle(&stored)),
                    ));
                }
                let actual = rt
                    .block_on(db.fetch(q))
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                proptest::prop_assert_eq!(&expected, &actual);
                let cached = rt
                    .block_on(db.fetch_cached(q, &cache))
                    .map_err(|e| TestCaseError::fail(format!("cached: {e:?}")))?;
                proptest::prop_assert_eq!(expected, cached);
            }
            let (cases, rows) = compared.get();
            compared.set((
                cases + 1,
                rows + u32::try_from(stored.usage.len()).unwrap_or(0),
            ));
            Ok(())
        })
        .expect("Rust and the database agree");
    let (cases, rows) = compared.get();
    assert!(cases >= CASES);
    assert!(rows > 0, "some cases had ledger rows");
    let (inherited, cyclic) = role_cases.get();
    assert!(inherited > 0, "some cases inherited through parent roles");
    assert!(cyclic > 0, "some cases had a cyclic role tree");
}

#[test]
fn rust_and_postgres_agree() {
    agree(TestDb::postgres(LedgerTable::Fixture));
}

#[test]
fn rust_and_sqlite_agree() {
    agree(TestDb::sqlite(LedgerTable::Fixture));
}

#[test]
fn rust_and_postgres_agree_on_the_cost_ledger() {
    agree(TestDb::postgres(LedgerTable::Cost));
}

#[test]
fn rust_and_sqlite_agree_on_the_cost_ledger() {
    agree(TestDb::sqlite(LedgerTable::Cost));
}
