//! Budget holds of jobs that end without usage are given back promptly, not at their TTL, and
//! never charged.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

use std::time::Duration;

use futures::StreamExt;
use tenantry::cost::{GroupBy, Nanos, Period, SpendQuery, UnixMicros};
use tenantry::emulator::{Emulator, ErrorType, FaultPlan};
use tenantry::queue::{EngineConfig, JobState};
use tenantry::{Database, Envelope, Request, Tenantry, batch::Config};

fn request(text: &str) -> Request {
    let params = serde_json::json!({
        "model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]
    });
    Request::new("summaries", "user-1", params).max_wait(Duration::from_millis(10))
}

async fn reserved(tenantry: &Tenantry) -> Nanos {
    let status = tenantry
        .ledger()
        .budget_status("acme", "summaries", UnixMicros::now())
        .await
        .unwrap();
    status[0].reserved
}

async fn failed_jobs_release_their_holds(database: Database) {
    // Every batch request comes back errored; with one attempt the job fails.
    let emulator = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(100))
        .faults(FaultPlan::new().errored_results(1.0, ErrorType::Overloaded))
        .start()
        .await
        .unwrap();
    let tenantry = Tenantry::builder()
        .database_pool(database)
        .api(Config::new("sk-test").base_url(emulator.base_url()))
        .engine(
            EngineConfig::new()
                .poll_interval(Duration::from_millis(30), Duration::from_millis(200))
                .idle(Duration::from_millis(20))
                .max_attempts(1),
        )
        .event_poll_interval(Duration::from_millis(100))
        .budget("acme", Period::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let mut events = tenantry.subscribe("acme").await.unwrap();
    let submitted = tenantry
        .submit_many("acme", vec![request("first"), request("second")])
        .await
        .unwrap();
    assert!(
        submitted
            .iter()
            .all(|e| matches!(e, Envelope::Pending { .. }))
    );
    // The holds are taken at submit (default TTL: 25 h).
    assert!(reserved(&tenantry).await > Nanos::ZERO);

    let engine = tenantry.spawn();
    let mut failed = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if event.state.is_terminal() {
                assert_eq!(event.state, JobState::Failed);
                failed += 1;
                if failed == 2 {
                    return;
                }
            }
        }
    })
    .await
    .expect("both jobs fail within 60 s");

    // Released within seconds, long before the TTL.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while reserved(&tenantry).await != Nanos::ZERO {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds still counted: {:?}",
            reserved(&tenantry).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing was charged for them.
    let rows = tenantry
        .spend(&SpendQuery {
            tenant_id: Some("acme".into()),
            from: UnixMicros(0),
            to: UnixMicros(i64::MAX),
            group_by: GroupBy::Tenant,
        })
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.lines).sum::<i64>(), 0, "{rows:?}");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_jobs_release_their_holds_on_sqlite() {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    failed_jobs_release_their_holds(Database::Sqlite(db.pool().clone())).await;
}

#[tokio::test]
async fn failed_jobs_release_their_holds_on_postgres() {
    let db = tenantry_testkit::PgDatabase::create().await;
    failed_jobs_release_their_holds(Database::Postgres(db.pool().clone())).await;
}
