//! The ledger's migrations through the shared runner: pinned checksums, the databases it
//! refuses (newer, edited) and the databases its own earlier runner migrated, on both backends.

mod support;

use support::Db;
use tenantry_core::db::Backend;
use tenantry_core::migrate::MigrateError;
use tenantry_cost::{Error, Ledger, MIGRATIONS, PriceBook};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

/// Every shipped migration's checksum, per backend. A released migration must never change: if
/// this test fails, the edit (or a sea-query upgrade that renders the DDL differently) would be
/// refused by every database already migrated; ship the change as a new migration instead.
const GOLDEN: &[(Backend, i64, &str)] = &[
    (
        Backend::Postgres,
        1,
        "b602a58221b9a923a3b9c6ff12925156ccd33491f3efaa7c1cce6022900d8dc1",
    ),
    (
        Backend::Postgres,
        2,
        "6a946612d58cfe51db74b0159fd540408de4f56e8fd43a1dc048548639eabc61",
    ),
    (
        Backend::Postgres,
        3,
        "dcae7f23aa3e1899163de612ee83acae23bb6f22897608af1aa07eacfab3d23f",
    ),
    (
        Backend::Sqlite,
        1,
        "716ac6a5dd977331aa2a7591bb0beb3527e1d5648e58a0a20b39f5710b857bff",
    ),
    (
        Backend::Sqlite,
        2,
        "c71a61039f7f843ee37cf857eb76b9d5c58266da5df406dd5e194d10c6fb211a",
    ),
    (
        Backend::Sqlite,
        3,
        "d709b3ab31c0d56769992980539a5a6a72985f60659adcf79b0f724a7608cd90",
    ),
];

#[test]
fn shipped_migrations_keep_their_checksums() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let shipped: Vec<(i64, String)> = MIGRATIONS
            .migrations(backend)
            .iter()
            .map(|m| (m.version(), m.checksum()))
            .collect();
        let golden: Vec<(i64, String)> = GOLDEN
            .iter()
            .filter(|(b, ..)| *b == backend)
            .map(|(_, v, c)| (*v, (*c).to_owned()))
            .collect();
        assert_eq!(shipped, golden, "{backend:?}");
    }
    assert_eq!(MIGRATIONS.name(), "cost");
}

/// Runs fixed setup SQL (no values to bind) as the test's own statements.
async fn exec(db: &Db, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db {
        Db::Pg(db) => {
            sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
        }
        Db::Sqlite(db) => {
            sqlx::raw_sql(sql).execute(db.pool()).await.unwrap();
        }
    }
}

async fn recorded(db: &Db) -> Vec<(i64, String)> {
    const SQL: &str = "SELECT version, checksum FROM tenantry_migrations \
                       WHERE component = 'cost' ORDER BY version";
    match db {
        Db::Pg(db) => sqlx::query_as(SQL).fetch_all(db.pool()).await.unwrap(),
        Db::Sqlite(db) => sqlx::query_as(SQL).fetch_all(db.pool()).await.unwrap(),
    }
}

fn golden(backend: Backend) -> Vec<(i64, String)> {
    GOLDEN
        .iter()
        .filter(|(b, ..)| *b == backend)
        .map(|(_, v, c)| (*v, (*c).to_owned()))
        .collect()
}

fn backend(name: &str) -> Backend {
    if name == "postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

#[tokio::test]
async fn migrating_twice_records_each_version_once() {
    for (name, ledger, db) in support::both().await {
        ledger.migrate().await.unwrap();
        assert_eq!(recorded(&db).await, golden(backend(name)), "{name}");
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_version_is_refused() {
    for (name, ledger, db) in support::both().await {
        exec(
            &db,
            "INSERT INTO tenantry_migrations (component, version, name, checksum, applied_at) \
             VALUES ('cost', 4, 'from a newer version', 'abc', 0)",
        )
        .await;
        let err = ledger.migrate().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Migrate(MigrateError::TooNew {
                    component: "cost",
                    found: 4,
                    supported: 3,
                    ..
                })
            ),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    for (name, ledger, db) in support::both().await {
        exec(
            &db,
            "UPDATE tenantry_migrations SET checksum = 'edited' WHERE component = 'cost'",
        )
        .await;
        let err = ledger.migrate().await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Migrate(MigrateError::Edited {
                    component: "cost",
                    version: 1,
                    applied,
                    ..
                }) if applied == "edited"
            ),
            "{name}: {err:?}"
        );
    }
}

/// What the ledger's own runner left behind: the version-1 tables and
/// `tenantry_cost_migrations` saying so.
const LEGACY_TABLE: &str = "CREATE TABLE tenantry_cost_migrations \
    (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL); \
    INSERT INTO tenantry_cost_migrations VALUES \
    (1, 'usage ledger, multipliers, budgets, reservations', 0)";

#[tokio::test]
async fn a_database_the_earlier_runner_migrated_is_adopted() {
    let pg = PgDatabase::create().await;
    let lite = SqliteDatabase::create().await;
    let ledgers = [
        (
            "postgres",
            Ledger::postgres(pg.pool().clone(), PriceBook::anthropic_default()),
            Db::Pg(pg),
        ),
        (
            "sqlite",
            Ledger::sqlite(lite.pool().clone(), PriceBook::anthropic_default()),
            Db::Sqlite(lite),
        ),
    ];
    for (name, ledger, db) in ledgers {
        for statement in MIGRATIONS.migrations(backend(name))[0].statements() {
            exec(&db, statement).await;
        }
        exec(&db, LEGACY_TABLE).await;
        let line = support::usage(
            "req-before-upgrade",
            "claude-haiku-4-5",
            tenantry_cost::Lane::Batch,
            support::tokens(1_000, 0, 0, 0, 100),
        );
        // Written before the upgrade by the earlier version. (A bulk insert: it touches the
        // ledger's version-1 tables only, where `record` also reads the budgets' later columns.)
        assert_eq!(
            ledger
                .record_batch(std::slice::from_ref(&line))
                .await
                .unwrap(),
            1
        );
        ledger.migrate().await.unwrap();
        assert_eq!(recorded(&db).await, golden(backend(name)), "{name}");
        let first = ledger.lines(&line.tenant_id).await.unwrap()[0].id;
        let again = ledger.record(&line).await.unwrap();
        assert!(again.duplicate && again.line_id == first, "{name}");
    }
}
