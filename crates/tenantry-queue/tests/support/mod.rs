//! Shared fixtures of the queue's integration tests: stores on fresh databases, requests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;

use tenantry_queue::{
    BatchId, ClaimStore, JobEvent, JobId, PgStore, SinkError, SqliteStore, Subscription, TenantId,
    UsageRecord, UsageSink, WorkerId,
};

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

/// Records `creating` for every request the batch holds now, as the engine does right before
/// its create call; whether `worker` owned the batch in `planned` (then every request was
/// frozen in).
pub async fn begin_create_all<S: ClaimStore>(
    store: &S,
    batch: &BatchId,
    worker: &WorkerId,
    lease: Duration,
) -> bool {
    let send: Vec<JobId> = store
        .batch_requests(batch)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job)
        .collect();
    match store
        .begin_create(batch, worker, lease, &send, None)
        .await
        .unwrap()
    {
        Some(frozen) => {
            assert_eq!(
                frozen.len(),
                send.len(),
                "every request still batched is frozen"
            );
            true
        }
        None => false,
    }
}

/// A ledger stand-in that keeps every record it is handed.
#[derive(Debug, Default)]
pub struct Ledger(pub Mutex<Vec<UsageRecord>>);

#[async_trait::async_trait]
impl UsageSink for Ledger {
    async fn record(&self, usage: &UsageRecord) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(usage.clone());
        Ok(())
    }
}

impl Ledger {
    /// Times each record key was handed over.
    pub fn by_key(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for r in self.0.lock().unwrap().iter() {
            *m.entry(r.key()).or_insert(0) += 1;
        }
        m
    }

    /// Times each job was billed.
    pub fn by_job(&self) -> HashMap<JobId, usize> {
        let mut m = HashMap::new();
        for r in self.0.lock().unwrap().iter() {
            *m.entry(r.job.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// A client of the emulator whose retries wait milliseconds, not seconds.
pub fn client(emu: &tenantry_emulator::Emulator) -> tenantry_batch::Client {
    let retry = tenantry_batch::RetryPolicy::default()
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .max_retry_after(Duration::from_millis(50));
    tenantry_batch::Client::new(
        tenantry_batch::Config::new("sk-test")
            .base_url(emu.base_url())
            .retry(retry),
    )
    .unwrap()
}
