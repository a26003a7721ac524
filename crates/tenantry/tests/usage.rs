//! Usage from the API result to the ledger line: typed all the way, priced at the lane that
//! sent the request (never at a lane guessed from the usage or from an id), recorded under the
//! source of that lane, and settling the hold stored on the job.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

use std::time::Duration;

use futures::StreamExt;
use tenantry::cost::{Lane as CostLane, LedgerLine, Nanos, PriceBook, UnixMicros, Window};
use tenantry::queue::{
    ClaimStore, ItemOutcome, JobState, JobStore, PgStore, ResultItem, SqliteStore, TenantId,
    WorkerId,
};
use tenantry::{Database, Request, SOURCE_BATCH, SOURCE_MESSAGES, Tenantry};

mod support;
use support::{builder, emulator, pending_id, request};

/// The tenant's ledger lines once there are `n` of them, failing the test after 30 s.
async fn lines(tenantry: &Tenantry, n: usize) -> Vec<LedgerLine> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines = tenantry
            .ledger()
            .lines(&"acme".parse().unwrap())
            .await
            .unwrap();
        assert!(lines.len() <= n, "{} lines, expected {n}", lines.len());
        if lines.len() == n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} lines within 30 s",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn case_08_urgent_lines_are_recorded_with_the_messages_source(database: Database) {
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database, &emulator).build().await.unwrap();
    let urgent = pending_id(
        &tenantry
            .submit("acme", request("now").urgent())
            .await
            .unwrap(),
    );
    let batched = pending_id(&tenantry.submit("acme", request("later")).await.unwrap());
    let engine = tenantry.spawn();
    let lines = lines(&tenantry, 2).await;
    engine.shutdown().await.unwrap();

    let line_of = |job: &str| {
        lines
            .iter()
            .find(|l| l.record.job_id.as_deref() == Some(job))
            .unwrap_or_else(|| panic!("no line for {job}: {lines:?}"))
    };
    // An urgent call runs under a claim token, which is a batch id of the queue: the source
    // and the price come from its lane, not from whether that id is set.
    let urgent = line_of(&urgent);
    assert_eq!(
        (urgent.record.source.as_str(), urgent.record.lane),
        (SOURCE_MESSAGES, CostLane::Urgent)
    );
    let batched = line_of(&batched);
    assert_eq!(
        (batched.record.source.as_str(), batched.record.lane),
        (SOURCE_BATCH, CostLane::Batch)
    );
}

/// A batch-lane result whose usage lacks `service_tier` (the field is optional in the API):
/// stored by hand, as the engine stores a result line, then handed to the ledger by the engine.
async fn case_07_batch_lane_without_service_tier_is_priced_at_the_batch_rate(database: Database) {
    // Nothing reaches the emulator's batches: the batch below is never created there, and its
    // polls fail harmlessly while the usage is flushed.
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database.clone(), &emulator).build().await.unwrap();
    let id = pending_id(&tenantry.submit("acme", request("no tier")).await.unwrap());
    let message = serde_json::json!({
        "id": "msg_no_tier", "type": "message", "role": "assistant",
        "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1000, "output_tokens": 100}
    });
    let item = ResultItem {
        job: id.parse().unwrap(),
        outcome: ItemOutcome::Succeeded {
            message: Box::new(serde_json::from_value(message).unwrap()),
        },
    };
    match database {
        Database::Sqlite(pool) => {
            store_billed_result(
                &tenantry::queue::SqliteStore::open(pool).await.unwrap(),
                item,
            )
            .await;
        }
        Database::Postgres(pool) => {
            store_billed_result(&tenantry::queue::PgStore::open(pool).await.unwrap(), item).await;
        }
        _ => unreachable!("both backends are on"),
    }
    let engine = tenantry.spawn();
    let lines = lines(&tenantry, 1).await;
    engine.shutdown().await.unwrap();

    let line = &lines[0];
    assert_eq!(
        (line.record.source.as_str(), line.record.lane),
        (SOURCE_BATCH, CostLane::Batch)
    );
    // Half the synchronous price: the batch discount applied.
    assert_eq!(
        line.stored.cost + line.stored.cost,
        line.stored.standard_cost,
        "{line:?}"
    );
}

/// Claims the tenant's one queued job into a batch, records it created at the API under a
/// made-up id, and stores `item` as its result line.
async fn store_billed_result<S: ClaimStore>(store: &S, item: ResultItem) {
    let worker = WorkerId::generate();
    let lease = Duration::from_secs(60);
    tokio::time::sleep(Duration::from_millis(20)).await; // past the request's max wait
    let claim = store
        .claim_due(&worker, tenantry::queue::planner::FlushPolicy::new(), lease)
        .await
        .unwrap()
        .expect("the job is due");
    let members = store
        .begin_create(&claim.batch, &worker, lease, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert_eq!(members, claim.jobs);
    assert!(
        store
            .finish_create(&claim.batch, &worker, "msgbatch_not_at_the_emulator")
            .await
            .unwrap()
    );
    let counts = store.ingest(&claim.batch, &[item], 3).await.unwrap();
    assert_eq!(counts.succeeded, 1);
}

async fn case_08_hold_id_is_a_job_column(database: Database) {
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database, &emulator)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    let id = pending_id(
        &tenantry
            .submit(
                "acme",
                request("held").metadata("doc", serde_json::json!(42)),
            )
            .await
            .unwrap(),
    );
    let job = tenantry
        .jobs()
        .job(&acme, &id.parse().unwrap())
        .await
        .unwrap();
    let hold = job.hold.expect("the hold is stored on the job");
    // The caller's metadata is the caller's alone.
    assert_eq!(job.metadata, serde_json::json!({"doc": 42}));
    let status = tenantry
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap();
    assert!(status[0].held > Nanos::ZERO, "held at submit");

    // The usage settles that very hold: it stops counting and the spend is charged once.
    let engine = tenantry.spawn();
    let lines = lines(&tenantry, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = tenantry
            .ledger()
            .budgets()
            .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
            .await
            .unwrap();
        if status[0].held == Nanos::ZERO {
            assert_eq!(status[0].spent, lines[0].stored.cost);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hold {hold} still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await.unwrap();
}

/// Reserved on the tenant's `summaries` budget now.
async fn reserved(tenantry: &Tenantry) -> Nanos {
    tenantry
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap()[0]
        .held
}

async fn case_07_unpriceable_usage_is_dead_lettered_and_repriced(database: Database) {
    let emulator = emulator(Duration::from_millis(100)).await;
    let budget = Nanos::from_usd_micros(1_000_000);
    // Submitted while the price book has the model: the hold is taken.
    let submitter = builder(database.clone(), &emulator)
        .budget("acme", Window::Month, budget)
        .build()
        .await
        .unwrap();
    let mut events = submitter.subscribe("acme").await.unwrap();
    let id = pending_id(
        &submitter
            .submit("acme", request("priced later"))
            .await
            .unwrap(),
    );

    // The engine runs with a price book that lost the model.
    let broken = builder(database.clone(), &emulator)
        .price_book(PriceBook::empty())
        .budget("acme", Window::Month, budget)
        .build()
        .await
        .unwrap();
    let engine = broken.spawn();
    let (mut succeeded, mut unpriced) = (false, false);
    tokio::time::timeout(Duration::from_secs(30), async {
        while !(succeeded && unpriced) {
            let event = events.next().await.unwrap().unwrap();
            assert_eq!(event.job_id.to_string(), id);
            match event.state {
                JobState::Succeeded => succeeded = true,
                JobState::UsageUnpriced => unpriced = true,
                _ => {}
            }
        }
    })
    .await
    .expect("the job succeeds and its usage is announced unpriced within 30 s");
    // Retried no more: a few more engine steps leave it as it is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.shutdown().await.unwrap();

    let dead = broken.dead_usage("acme", 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].record.job.to_string(), id);
    assert!(
        dead[0].reason.contains("claude-haiku-4-5") && dead[0].reason.contains("price book"),
        "{}",
        dead[0].reason
    );
    assert_eq!(broken.dead_usage_count().await.unwrap(), 1);
    assert!(broken.dead_usage("globex", 10).await.unwrap().is_empty());
    assert!(
        broken
            .ledger()
            .lines(&"acme".parse().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        reserved(&broken).await > Nanos::ZERO,
        "the hold waits for the usage"
    );
    // The job itself succeeded, and only one event said so.
    let job = broken.job("acme", &id).await.unwrap();
    assert_eq!(job.status(), "success");

    // The price book is fixed (a new deployment): its usage is re-priced, charged exactly
    // once, and settles the hold.
    let fixed = builder(database, &emulator)
        .budget("acme", Window::Month, budget)
        .build()
        .await
        .unwrap();
    assert_eq!(fixed.reprice_usage("acme").await.unwrap(), 1);
    assert_eq!(fixed.dead_usage_count().await.unwrap(), 0);
    let engine = fixed.spawn();
    let line = lines(&fixed, 1).await.remove(0);
    assert_eq!(line.record.job_id.as_deref(), Some(id.as_str()));
    assert_eq!(line.record.lane, CostLane::Batch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while reserved(&fixed).await != Nanos::ZERO {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hold is still held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Re-pricing again hands nothing over, and the line stays alone.
    assert_eq!(fixed.reprice_usage("acme").await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fixed
            .ledger()
            .lines(&"acme".parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
    engine.shutdown().await.unwrap();
}

/// A request without a hold (submitted to the queue directly) keeps no hold column.
async fn a_job_submitted_without_a_hold_has_none(database: Database) {
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database.clone(), &emulator).build().await.unwrap();
    let acme = TenantId::new("acme").unwrap();
    let r: Request = request("direct");
    // The facade only reads the queue; a host that uses the queue on its own submits there.
    let queue: Box<dyn JobStore> = match database {
        Database::Sqlite(pool) => Box::new(SqliteStore::open(pool).await.unwrap()),
        Database::Postgres(pool) => Box::new(PgStore::open(pool).await.unwrap()),
        _ => unreachable!("both backends are compiled in"),
    };
    let id = queue
        .submit(
            &acme,
            r.feature(),
            r.user(),
            r.params().clone(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(tenantry.jobs().job(&acme, &id).await.unwrap().hold, None);
}

support::on_both_databases!(
    case_08_urgent_lines_are_recorded_with_the_messages_source,
    case_07_batch_lane_without_service_tier_is_priced_at_the_batch_rate,
    case_08_hold_id_is_a_job_column,
    a_job_submitted_without_a_hold_has_none,
    case_07_unpriceable_usage_is_dead_lettered_and_repriced,
);
