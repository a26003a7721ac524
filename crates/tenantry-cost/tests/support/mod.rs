//! Shared fixtures of the integration tests: ledgers on real databases and usage records.
#![allow(dead_code, unreachable_pub)]

use tenantry_cost::{Lane, Ledger, LedgerEntry, PriceBook, TenantId, TokenBuckets, UnixMicros};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

/// A migrated ledger plus the database that keeps it alive.
pub enum Db {
    Pg(PgDatabase),
    Sqlite(SqliteDatabase),
}

pub async fn pg_ledger() -> (Ledger, Db) {
    let db = PgDatabase::create().await;
    let ledger = Ledger::postgres(db.pool().clone(), PriceBook::anthropic_default());
    ledger.migrate().await.unwrap();
    (ledger, Db::Pg(db))
}

pub async fn sqlite_ledger() -> (Ledger, Db) {
    let db = SqliteDatabase::create().await;
    let ledger = Ledger::sqlite(db.pool().clone(), PriceBook::anthropic_default());
    ledger.migrate().await.unwrap();
    (ledger, Db::Sqlite(db))
}

/// Both backends, for tests that must hold on each.
pub async fn both() -> Vec<(&'static str, Ledger, Db)> {
    let (pg, pg_db) = pg_ledger().await;
    let (lite, lite_db) = sqlite_ledger().await;
    vec![("postgres", pg, pg_db), ("sqlite", lite, lite_db)]
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub fn at(y: i32, m: u8, d: u8) -> UnixMicros {
    UnixMicros::from_ymd(y, m, d).unwrap()
}

pub fn usage(request_id: &str, model: &str, lane: Lane, tokens: TokenBuckets) -> LedgerEntry {
    LedgerEntry::new(
        "anthropic",
        request_id,
        tenant("acme"),
        "summaries",
        model,
        lane,
        at(2026, 3, 10),
    )
    .with_user("u1")
    .with_tokens(tokens)
}

pub fn tokens(input: i64, w5: i64, w1: i64, read: i64, output: i64) -> TokenBuckets {
    TokenBuckets {
        input,
        cache_write_5m: w5,
        cache_write_1h: w1,
        cache_read: read,
        output,
    }
}
