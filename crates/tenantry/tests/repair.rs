//! Repairs through the facade, on SQLite and PostgreSQL against the emulator: a failed job
//! retried runs again and succeeds, held against the budget again and charged once; a budget
//! that refuses the new hold leaves the job as it was; one tenant cannot retry another's job.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

use std::time::Duration;

use futures::StreamExt;
use tenantry::cost::{BudgetPolicy, Nanos, UnixMicros, Window};
use tenantry::emulator::{Emulator, ErrorType, FaultPlan};
use tenantry::queue::{JobState, Purge};
use tenantry::{Database, Tenantry};

mod support;
use support::{builder, fast_engine, pending_id, request};

async fn reserved(tenantry: &Tenantry) -> Nanos {
    tenantry
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap()[0]
        .held
}

async fn until_held_is(tenantry: &Tenantry, zero: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while (reserved(tenantry).await == Nanos::ZERO) != zero {
        assert!(
            tokio::time::Instant::now() < deadline,
            "held is still {:?}",
            reserved(tenantry).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_budget(tenantry: &Tenantry, limit: Nanos) {
    tenantry
        .ledger()
        .budgets()
        .set(&BudgetPolicy::new(
            "acme".parse().unwrap(),
            Window::Month,
            limit,
            UnixMicros::now(),
        ))
        .await
        .unwrap();
}

async fn a_failed_job_retried_succeeds_and_is_charged_once(database: Database) {
    // Every batch request comes back errored at first; with one attempt the job fails.
    let emulator = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(100))
        .faults(FaultPlan::new().errored_results(1.0, ErrorType::Overloaded))
        .start()
        .await
        .unwrap();
    let tenantry = builder(database, &emulator)
        .engine(fast_engine().max_attempts(1))
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let mut events = tenantry.subscribe("acme").await.unwrap();
    let id = pending_id(&tenantry.submit("acme", request("retry me")).await.unwrap());
    let engine = tenantry.spawn();
    let failed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            if event.state.is_terminal() {
                return event.state;
            }
        }
    })
    .await
    .expect("the job ends within 60 s");
    assert_eq!(failed, JobState::Failed);
    // Its hold is given back by the engine, nothing is charged, and it is listed as a dead
    // letter.
    until_held_is(&tenantry, true).await;
    engine.shutdown().await.unwrap();
    let listed = tenantry.repair().failed("acme", 10, None).await.unwrap();
    assert_eq!(listed.items().len(), 1);
    assert_eq!(listed.items()[0].id.as_str(), id);
    assert!(listed.items()[0].error.is_some());
    assert!(
        tenantry
            .repair()
            .failed("globex", 10, None)
            .await
            .unwrap()
            .items()
            .is_empty()
    );

    // Another tenant cannot retry it: not found, nothing held, nothing changed.
    let e = tenantry.repair().retry("globex", &id).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let acme = "acme".parse().unwrap();
    let job_id = id.parse().unwrap();
    assert_eq!(
        tenantry.jobs().job(&acme, &job_id).await.unwrap().state,
        JobState::Failed
    );

    // A budget too small for the new attempt refuses it, and the job stays failed.
    set_budget(&tenantry, Nanos(1)).await;
    let e = tenantry.repair().retry("acme", &id).await.unwrap_err();
    assert!(e.is_budget_exceeded(), "{e:?}");
    assert_eq!(
        tenantry.jobs().job(&acme, &job_id).await.unwrap().state,
        JobState::Failed
    );
    assert_eq!(reserved(&tenantry).await, Nanos::ZERO);
    set_budget(&tenantry, Nanos::from_usd_micros(1_000_000)).await;

    // The provider recovers; the retry holds the budget again and runs once more.
    emulator.set_faults(FaultPlan::new());
    let retried = tenantry.repair().retry("acme", &id).await.unwrap();
    assert_eq!(retried.state, JobState::Queued);
    assert_eq!(retried.attempts, 1);
    let hold = retried.hold.expect("the new attempt carries a hold");
    assert!(reserved(&tenantry).await > Nanos::ZERO);
    let engine = tenantry.spawn();
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            if event.state.is_terminal() {
                return event.state;
            }
        }
    })
    .await
    .expect("the retried job ends within 60 s");
    assert_eq!(ended, JobState::Succeeded);
    let job = tenantry.jobs().job(&acme, &job_id).await.unwrap();
    assert_eq!((job.attempts, job.hold), (2, Some(hold)));
    assert_eq!(tenantry.job("acme", &id).await.unwrap().status(), "success");
    // Charged exactly once, to its tenant, and the hold settled by it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let lines = loop {
        let lines = tenantry.ledger().lines(&acme).await.unwrap();
        if !lines.is_empty() || tokio::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    until_held_is(&tenantry, true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines_after = tenantry.ledger().lines(&acme).await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines_after.len(), 1, "{lines_after:?}");
    assert_eq!(lines[0].record.job_id.as_deref(), Some(id.as_str()));
    engine.shutdown().await.unwrap();

    // A succeeded job is not run again, and says so even when the budget is spent.
    set_budget(&tenantry, Nanos(1)).await;
    let e = tenantry.repair().retry("acme", &id).await.unwrap_err();
    assert_eq!(e.code(), tenantry::envelope::Code::Conflict, "{e:?}");
    assert_eq!(
        reserved(&tenantry).await,
        Nanos::ZERO,
        "no hold left behind"
    );

    // Purged after its retention: the job goes, its ledger line stays.
    let purged = tenantry
        .repair()
        .purge("acme", &Purge::before(time::OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert_eq!(purged.jobs, 1);
    assert!(tenantry.job("acme", &id).await.unwrap_err().is_not_found());
    assert_eq!(tenantry.ledger().lines(&acme).await.unwrap().len(), 1);
}

support::on_both_databases!(a_failed_job_retried_succeeds_and_is_charged_once);
