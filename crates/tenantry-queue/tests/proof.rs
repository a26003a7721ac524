//! The proof run in one process: 10,000 jobs from 50 tenants with the emulator injecting
//! faults on every endpoint the engine uses (429, 529, 500, dropped and cut streams,
//! errored and expired results), on SQLite and on PostgreSQL.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tenantry_emulator::{Emulator, FaultPlan};
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    ClaimStore, Engine, EngineConfig, JobFilter, JobState, Lane, Position, Submission,
    SubmitOptions, TenantId, UsageRecord, UsageSink,
};

const TENANTS: usize = 50;
const PER_TENANT: usize = 200;

#[derive(Debug, Default)]
struct Ledger(Mutex<HashMap<String, (Lane, usize)>>);

#[async_trait::async_trait]
impl UsageSink for Ledger {
    async fn record(&self, usage: &UsageRecord) -> Result<(), tenantry_queue::SinkError> {
        self.0
            .lock()
            .unwrap()
            .entry(usage.key())
            .or_insert((usage.lane, 0))
            .1 += 1;
        Ok(())
    }
}

fn faults() -> FaultPlan {
    [
        "create:529@0.1",
        "retrieve:429=20@0.1",
        "retrieve:500@0.05",
        "list:500@0.1",
        "results:500@0.1",
        "results:reset@0.05",
        "results:truncate=3000@0.05",
        "messages:529@0.2",
        "errored=0.1/overloaded_error",
    ]
    .into_iter()
    .fold(FaultPlan::new(), |plan, spec| plan.with_spec(spec).unwrap())
}

async fn ten_thousand_jobs_under_faults<S: ClaimStore + Clone>(store: S) {
    let emu = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(300))
        .seed(5)
        .faults(faults())
        .start()
        .await
        .unwrap();
    let retry = tenantry_batch::RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .max_retry_after(Duration::from_millis(20));
    let client = tenantry_batch::Client::new(
        tenantry_batch::Config::new("sk-test")
            .base_url(emu.base_url())
            .retry(retry),
    )
    .unwrap();
    let ledger = Arc::new(Ledger::default());
    let config = EngineConfig::new()
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(20), Duration::from_millis(100))
        .flush(FlushPolicy::new().max_requests(1000))
        .max_attempts(10)
        .chunk(500)
        .urgent_concurrency(16);
    let engine = Engine::new(store.clone(), client.clone(), ledger.clone(), config);

    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|t| TenantId::new(format!("t{t}")).unwrap())
        .collect();
    for t in &tenants {
        let batch: Vec<_> = (0..PER_TENANT)
            .map(|i| {
                // One job in twenty takes the urgent lane.
                let lane = if i % 20 == 0 {
                    Lane::Urgent
                } else {
                    Lane::Batch
                };
                Submission::new(
                    "f",
                    "u",
                    serde_json::json!({
                        "model": "claude-haiku-4-5", "max_tokens": 16,
                        "messages": [{"role": "user", "content": format!("{t}/{i}")}]
                    }),
                )
                .with_options(
                    SubmitOptions::new()
                        .lane(lane)
                        .max_wait(Duration::from_millis(1)),
                )
            })
            .collect();
        store.submit_many(t, &batch).await.unwrap();
    }
    let total = TENANTS * PER_TENANT;
    let mut expired_once = false;
    let mut finished = false;
    for round in 0..3000 {
        engine.step().await.unwrap();
        if round == 3 && !expired_once {
            // A day passes: whatever is still running in a batch expires and must be retried.
            emu.clock().advance(Duration::from_secs(25 * 3600));
            expired_once = true;
        }
        if round % 10 == 9 {
            let mut open = 0;
            for t in &tenants {
                let filter = JobFilter::new()
                    .states([JobState::Queued, JobState::Batched, JobState::Submitted])
                    .limit(1);
                open += store.list(t, &filter, None).await.unwrap().items().len();
            }
            if open == 0 {
                engine.step().await.unwrap();
                finished = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(finished, "the engine did not finish");

    let mut billed = HashMap::new();
    let (mut succeeded, mut attempts_batch, mut expired_retries) = (0, 0_u64, 0);
    for t in &tenants {
        let jobs = store
            .list(t, &JobFilter::new().limit(1000), None)
            .await
            .unwrap()
            .into_items();
        assert_eq!(jobs.len(), PER_TENANT);
        let events = store
            .events_after(t, Position::START, 100_000)
            .await
            .unwrap();
        for job in &jobs {
            assert!(job.state.is_terminal(), "{} is {}", job.id, job.state);
            let terminal = events
                .iter()
                .filter(|e| e.job_id == job.id && e.state.is_terminal())
                .count();
            assert_eq!(terminal, 1, "{} has {terminal} terminal events", job.id);
            if job.state == JobState::Succeeded {
                succeeded += 1;
            }
            if job.usage.is_some() {
                billed.insert(job.id.clone(), job.lane);
            }
            if job.lane == Lane::Batch {
                attempts_batch += u64::from(job.attempts);
            }
            if job.error.as_ref().is_some_and(|e| e.kind == "expired") {
                expired_retries += 1;
            }
        }
        // Nobody sees another tenant's events.
        assert!(events.iter().all(|e| &e.tenant == t));
    }
    let ledger = ledger.0.lock().unwrap().clone();
    assert_eq!(
        ledger.len(),
        billed.len(),
        "one ledger line per billed request"
    );
    let mut sent = 0;
    let mut billed_by_api = 0;
    let mut pages = Box::pin(client.batches().list_all(
        tenantry_batch::ListParams::default().limit(100),
        tenantry_batch::Direction::Older,
    ));
    while let Some(b) = pages.next().await {
        let b = b.unwrap();
        sent += b.request_counts.total();
        billed_by_api += b.request_counts.succeeded;
    }
    assert_eq!(
        sent, attempts_batch,
        "no batch request sent more often than recorded"
    );
    let billed_batch = billed.values().filter(|l| **l == Lane::Batch).count() as u64;
    assert_eq!(
        billed_by_api, billed_batch,
        "everything the batch API billed is recorded"
    );
    let injected = emu.fault_counts().total_injected();
    println!(
        "{total} jobs: {succeeded} succeeded, {} billed, {sent} batch requests sent, {} faults injected, {expired_retries} jobs last retried after an expired result",
        billed.len(),
        injected
    );
    assert!(
        succeeded >= total * 99 / 100,
        "{succeeded} of {total} succeeded"
    );
    assert!(injected > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ten_thousand_jobs_under_faults() {
    let (store, _db) = support::sqlite().await;
    ten_thousand_jobs_under_faults(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ten_thousand_jobs_under_faults() {
    let (store, _db) = support::postgres().await;
    ten_thousand_jobs_under_faults(store).await;
}
