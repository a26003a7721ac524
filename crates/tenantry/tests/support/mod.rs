//! Shared fixtures of the facade's integration tests: requests, a fast engine, a handle on the
//! emulator, and the macro that runs a behaviour on both databases.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use tenantry::emulator::Emulator;
use tenantry::queue::{EngineConfig, Subscription};
use tenantry::{Database, Envelope, JobOutput, Request, Tenantry, TenantryBuilder, batch::Config};

pub fn params(text: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]
    })
}

/// A `summaries` request of `user-1` that flushes its batch after 10 ms.
pub fn request(text: &str) -> Request {
    Request::new("summaries", "user-1", params(text)).max_wait(Duration::from_millis(10))
}

/// Engine pacing for tests: polls every 30–200 ms, idles 20 ms.
pub fn fast_engine() -> EngineConfig {
    EngineConfig::new()
        .poll_interval(Duration::from_millis(30), Duration::from_millis(200))
        .idle(Duration::from_millis(20))
}

/// An emulator (key `sk-test`) that takes `latency` to process a batch.
pub async fn emulator(latency: Duration) -> Emulator {
    Emulator::builder()
        .api_key("sk-test")
        .batch_latency(latency)
        .start()
        .await
        .expect("start the emulator")
}

/// A builder on `database` and `emulator`, with the fast engine and a 100 ms event poll.
pub fn builder(database: Database, emulator: &Emulator) -> TenantryBuilder {
    Tenantry::builder()
        .database_pool(database)
        .api(Config::new("sk-test").base_url(emulator.base_url()))
        .engine(fast_engine())
        .event_poll_interval(Duration::from_millis(100))
}

/// The job id of a pending envelope.
pub fn pending_id(envelope: &Envelope<JobOutput>) -> String {
    match envelope {
        Envelope::Pending { operation } => operation.id().to_string(),
        other => panic!("expected a pending envelope, got {other:?}"),
    }
}

/// Waits until `jobs` jobs reached a terminal state, failing the test after 60 s.
pub async fn until_terminal(events: &mut Subscription, jobs: usize) {
    let mut done = 0;
    let wait = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if event.expect("event").state.is_terminal() {
                done += 1;
                if done == jobs {
                    return;
                }
            }
        }
    });
    wait.await.expect("jobs finish within 60 s");
}

/// Runs each named behaviour (an `async fn(Database)`) once on SQLite and once on PostgreSQL.
// Not every test file that shares this module runs behaviours on both databases.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = tenantry_testkit::SqliteDatabase::create().await;
                    super::$name(tenantry::Database::Sqlite(db.pool().clone())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = tenantry_testkit::PgDatabase::create().await;
                    super::$name(tenantry::Database::Postgres(db.pool().clone())).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_databases;
