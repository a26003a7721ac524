//! Shared fixtures of the queue's integration tests: stores on fresh databases, requests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use tenantry_queue::{JobEvent, PgStore, SqliteStore, Subscription, TenantId};

/// A store on a fresh SQLite database; the database lives as long as the guard.
pub async fn sqlite() -> (SqliteStore, tenantry_testkit::SqliteDatabase) {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let store = SqliteStore::open(db.pool().clone())
        .await
        .expect("open sqlite store");
    (store, db)
}

/// A store on a fresh PostgreSQL database; the database lives as long as the guard.
pub async fn postgres() -> (PgStore, tenantry_testkit::PgDatabase) {
    let db = tenantry_testkit::PgDatabase::create().await;
    let store = PgStore::open(db.pool().clone())
        .await
        .expect("open postgres store");
    (store, db)
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("valid tenant id")
}

pub fn params(text: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]
    })
}

/// The next `n` events, failing the test after 10 s without one.
pub async fn take(sub: &mut Subscription, n: usize) -> Vec<JobEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", out.len()))
            .expect("subscription ended")
            .expect("subscription error");
        out.push(next);
    }
    out
}

/// Asserts no further event arrives within `wait`.
pub async fn assert_quiet(sub: &mut Subscription, wait: Duration) {
    if let Ok(Some(extra)) = tokio::time::timeout(wait, sub.next()).await {
        panic!("unexpected event {extra:?}");
    }
}

/// Runs each named behaviour (an `async fn(store)`) once on SQLite and once on PostgreSQL.
// Not every test file that shares this module runs behaviours on both stores.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _db) = crate::support::sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _db) = crate::support::postgres().await;
                    super::$name(store).await;
                }
            )*
        }
    };
}
