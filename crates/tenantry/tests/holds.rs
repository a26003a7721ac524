//! Budget holds: those of jobs that end without usage are given back promptly, not at their TTL,
//! and never charged; those of jobs closed while their request is out keep counting until
//! billed; counted holds match the API's token count.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

use std::time::Duration;

use futures::StreamExt;
use tenantry::batch::RetryPolicy;
use tenantry::cost::{GroupBy, HoldRequest, Lane, Nanos, SpendQuery, UnixMicros, Window};
use tenantry::emulator::{Emulator, ErrorType, FaultPlan};
use tenantry::queue::{DeadlinePolicy, JobState};
use tenantry::{Database, Envelope, InputTokens, Request, Tenantry, batch::Config};

mod support;
use support::{builder, emulator, fast_engine, request};

async fn held_amount(tenantry: &Tenantry) -> Nanos {
    let status = tenantry
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap();
    status[0].held
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
    let tenantry = builder(database, &emulator)
        .engine(fast_engine().max_attempts(1))
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
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
    assert!(held_amount(&tenantry).await > Nanos::ZERO);

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
    while held_amount(&tenantry).await != Nanos::ZERO {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds still counted: {:?}",
            held_amount(&tenantry).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing was charged for them.
    let rows = tenantry
        .spend(
            &SpendQuery::new(UnixMicros(0), UnixMicros(i64::MAX), GroupBy::Tenant)
                .for_tenant("acme".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.lines).sum::<i64>(), 0, "{rows:?}");
    engine.shutdown().await.unwrap();
}

/// How a job is closed while its request is out at the API.
#[derive(Clone, Copy, PartialEq)]
enum Close {
    Cancel,
    Deadline,
}

async fn a_job_closed_after_sending_keeps_its_hold_until_billed(database: Database, close: Close) {
    // The batch takes long enough to cancel the job while it is out at the API.
    let emulator = emulator(Duration::from_secs(3)).await;
    let tenantry = builder(database, &emulator)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let mut events = tenantry.subscribe("acme").await.unwrap();
    let mut late = request("late");
    if close == Close::Deadline {
        let deadline = time::OffsetDateTime::now_utc() + Duration::from_millis(1500);
        late = late.deadline(deadline, DeadlinePolicy::Expire);
    }
    let Envelope::Pending { operation } = tenantry.submit("acme", late).await.unwrap() else {
        panic!("a submit answers pending");
    };
    let id = operation.id().to_string();
    let engine = tenantry.spawn();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if event.unwrap().state == JobState::Submitted {
                return;
            }
        }
    })
    .await
    .expect("the job is sent within 30 s");
    let closed = match close {
        Close::Cancel => tenantry.cancel("acme", &id).await.unwrap(),
        Close::Deadline => tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = events.next().await {
                let event = event.unwrap();
                if event.state.is_terminal() {
                    return event.state;
                }
            }
            panic!("the event stream ended");
        })
        .await
        .expect("the deadline passes within 30 s"),
    };
    assert_eq!(
        closed,
        match close {
            Close::Cancel => JobState::Canceled,
            Close::Deadline => JobState::Expired,
        }
    );

    // The API may still bill it: the hold keeps counting (the engine would have given it back
    // within a second)...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        held_amount(&tenantry).await > Nanos::ZERO,
        "the hold was given back before the result"
    );

    // ...until its usage lands, charged once, and the hold closes.
    let all_time = SpendQuery::new(UnixMicros(0), UnixMicros(i64::MAX), GroupBy::Tenant)
        .for_tenant("acme".parse().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines: i64 = tenantry
            .spend(&all_time)
            .await
            .unwrap()
            .iter()
            .map(|r| r.lines)
            .sum();
        if lines == 1 && held_amount(&tenantry).await == Nanos::ZERO {
            break;
        }
        assert!(lines <= 1, "charged {lines} times");
        assert!(
            tokio::time::Instant::now() < deadline,
            "not billed within 30 s: {lines} lines"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tenantry.job("acme", &id).await.unwrap().status(),
        "error",
        "a closed job stays closed"
    );
    engine.shutdown().await.unwrap();
}

async fn a_job_canceled_after_sending_keeps_its_hold_until_billed(database: Database) {
    a_job_closed_after_sending_keeps_its_hold_until_billed(database, Close::Cancel).await;
}

async fn a_job_expired_after_sending_keeps_its_hold_until_billed(database: Database) {
    a_job_closed_after_sending_keeps_its_hold_until_billed(database, Close::Deadline).await;
}

/// Case 6 of the recovery issue: a job canceled while its batch is only planned is never sent
/// and gives its hold back at once; one canceled while the batch's create is in flight (its
/// request may be out) keeps its hold until its usage settles it, charged once.
async fn case_06_cancel_during_a_create_keeps_the_hold_until_billed(database: Database) {
    match database.clone() {
        Database::Sqlite(pool) => {
            let store = tenantry::queue::SqliteStore::open(pool).await.unwrap();
            cancel_around_a_create(database, store).await;
        }
        Database::Postgres(pool) => {
            let store = tenantry::queue::PgStore::open(pool).await.unwrap();
            cancel_around_a_create(database, store).await;
        }
        _ => unreachable!("both stores are enabled"),
    }
}

async fn cancel_around_a_create<S: tenantry::queue::ClaimStore>(database: Database, store: S) {
    use tenantry::queue::{WorkerId, planner::FlushPolicy};
    let emulator = emulator(Duration::from_millis(200)).await;
    let tenantry = builder(database, &emulator)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let ids: Vec<String> = tenantry
        .submit_many("acme", vec![request("planned"), request("creating")])
        .await
        .unwrap()
        .iter()
        .map(support::pending_id)
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let both = held_amount(&tenantry).await;

    // A worker claims both jobs into a batch (planned), then dies during its create.
    let dead = WorkerId::generate();
    let claim = store
        .claim_due(&dead, FlushPolicy::new(), Duration::ZERO)
        .await
        .unwrap()
        .expect("both jobs are due");
    assert_eq!(claim.jobs.len(), 2);
    assert_eq!(
        tenantry.cancel("acme", &ids[0]).await.unwrap(),
        JobState::Canceled
    );
    let one = held_amount(&tenantry).await;
    assert!(
        one < both && one > Nanos::ZERO,
        "not sent yet: its hold is given back at once"
    );
    let frozen = store
        .begin_create(&claim.batch, &dead, Duration::ZERO, &claim.jobs, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frozen.len(), 1, "the canceled job is not sent");
    assert_eq!(
        tenantry.cancel("acme", &ids[1]).await.unwrap(),
        JobState::Canceled
    );
    assert_eq!(
        held_amount(&tenantry).await,
        one,
        "its request may be out: the hold stays"
    );
    // The dead worker's create did reach the API.
    let mut body = tenantry::batch::BatchRequests::new();
    for job in &frozen {
        let request = store.job(&claim_tenant(), job).await.unwrap();
        body.push(
            job.as_str(),
            &serde_json::from_value(request.params).unwrap(),
        )
        .unwrap();
    }
    tenantry.client().batches().create(body).await.unwrap();

    // Reconciled, billed once, the hold settled.
    let engine = tenantry.spawn();
    let all_time = SpendQuery::new(UnixMicros(0), UnixMicros(i64::MAX), GroupBy::Tenant)
        .for_tenant("acme".parse().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines: i64 = tenantry
            .spend(&all_time)
            .await
            .unwrap()
            .iter()
            .map(|r| r.lines)
            .sum();
        assert!(lines <= 1, "charged {lines} times");
        if lines == 1 && held_amount(&tenantry).await == Nanos::ZERO {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled within 30 s: {lines} lines, {:?} held",
            held_amount(&tenantry).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        emulator
            .fault_counts()
            .requests(tenantry::emulator::Endpoint::CreateBatch),
        1,
        "sent once"
    );
    engine.shutdown().await.unwrap();
}

/// A hold whose submit died after taking it and before storing its job, and the hold of a job
/// canceled during a create that turned out never to have happened: nothing else can close
/// them, and the engine's reconciliation gives them back long before their TTL. The hold of a
/// job still waiting is kept.
async fn holds_no_job_can_bill_are_given_back(database: Database) {
    match database.clone() {
        Database::Sqlite(pool) => {
            let store = tenantry::queue::SqliteStore::open(pool).await.unwrap();
            orphaned_holds(database, store).await;
        }
        Database::Postgres(pool) => {
            let store = tenantry::queue::PgStore::open(pool).await.unwrap();
            orphaned_holds(database, store).await;
        }
        _ => unreachable!("both stores are enabled"),
    }
}

async fn orphaned_holds<S: tenantry::queue::ClaimStore>(database: Database, store: S) {
    use tenantry::queue::{WorkerId, planner::FlushPolicy};
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database, &emulator)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .hold_reconcile_interval(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    // A submit that died after taking its hold.
    tenantry
        .ledger()
        .hold(
            &HoldRequest::new(
                "acme".parse().unwrap(),
                "summaries",
                "claude-haiku-4-5",
                Lane::Batch,
                64,
                UnixMicros::now(),
            )
            .with_input_tokens(100)
            .with_ttl_micros(25 * 3_600_000_000),
        )
        .await
        .unwrap();
    // A job canceled while its create was in flight, a create that never reached the API.
    let canceled =
        support::pending_id(&tenantry.submit("acme", request("canceled")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let dead = WorkerId::generate();
    let claim = store
        .claim_due(&dead, FlushPolicy::new(), Duration::ZERO)
        .await
        .unwrap()
        .expect("the job is due");
    store
        .begin_create(&claim.batch, &dead, Duration::ZERO, &claim.jobs, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tenantry.cancel("acme", &canceled).await.unwrap(),
        JobState::Canceled
    );
    // A job that waits an hour for its batch: its hold must stay.
    let before = held_amount(&tenantry).await;
    let waiting = tenantry
        .submit(
            "acme",
            request("waiting").max_wait(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let waiting_hold = Nanos(held_amount(&tenantry).await.0 - before.0);
    assert!(waiting_hold > Nanos::ZERO);

    let engine = tenantry.spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while held_amount(&tenantry).await != waiting_hold {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds no job can bill still counted: {:?} of {waiting_hold:?}",
            held_amount(&tenantry).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        emulator
            .fault_counts()
            .requests(tenantry::emulator::Endpoint::CreateBatch),
        0,
        "nothing was sent"
    );
    assert_eq!(
        tenantry
            .job("acme", &support::pending_id(&waiting))
            .await
            .unwrap()
            .status(),
        "pending"
    );
    engine.shutdown().await.unwrap();
}

fn claim_tenant() -> tenantry::queue::TenantId {
    tenantry::queue::TenantId::new("acme").unwrap()
}

/// A request whose body is mostly a long prompt, so the estimate and the count differ.
fn long_request() -> Request {
    request(&"The parcel arrived two days late and the box was damaged. ".repeat(40))
}

/// What a hold of `input_tokens` plus the request's `max_tokens` comes to.
async fn hold_for(tenantry: &Tenantry, input_tokens: i64) -> Nanos {
    let r = long_request();
    tenantry
        .ledger()
        .estimate(
            &HoldRequest::new(
                "acme".parse().unwrap(),
                r.feature(),
                "claude-haiku-4-5",
                Lane::Batch,
                64,
                UnixMicros::now(),
            )
            .with_input_tokens(input_tokens)
            .with_ttl_micros(1),
        )
        .await
        .unwrap()
}

async fn counted_holds_are_exact(database: Database) {
    let emulator = emulator(Duration::ZERO).await;
    let tenantry = builder(database, &emulator)
        .input_tokens(InputTokens::Counted)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let params = serde_json::from_value(long_request().params().clone()).unwrap();
    let counted = tenantry
        .client()
        .messages()
        .count_tokens(&params)
        .await
        .unwrap();
    let counted = i64::try_from(counted.input_tokens).unwrap();
    let bytes = serde_json::to_vec(long_request().params()).unwrap().len();
    let estimated = i64::try_from(bytes.div_ceil(3)).unwrap();
    assert_ne!(
        counted, estimated,
        "the test needs a prompt where they differ"
    );

    tenantry.submit("acme", long_request()).await.unwrap();
    assert_eq!(
        held_amount(&tenantry).await,
        hold_for(&tenantry, counted).await
    );
    // The API's count is what the emulator bills, so the hold is the bill's upper bound with
    // exactly `max_tokens` of slack, where the estimate would hold more.
    assert!(hold_for(&tenantry, counted).await < hold_for(&tenantry, estimated).await);
}

async fn counting_falls_back_to_the_estimate(database: Database) {
    // Nothing listens there: the count fails at once and the submit still goes through.
    let tenantry = Tenantry::builder()
        .database_pool(database)
        .api(
            Config::new("sk-test")
                .base_url("http://127.0.0.1:9")
                .retry(RetryPolicy::none()),
        )
        .input_tokens(InputTokens::Counted)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000))
        .build()
        .await
        .unwrap();
    let envelope = tenantry.submit("acme", long_request()).await.unwrap();
    assert!(matches!(envelope, Envelope::Pending { .. }));
    let bytes = serde_json::to_vec(long_request().params()).unwrap().len();
    let estimated = i64::try_from(bytes.div_ceil(3)).unwrap();
    assert_eq!(
        held_amount(&tenantry).await,
        hold_for(&tenantry, estimated).await
    );
}

support::on_both_databases!(
    failed_jobs_release_their_holds,
    a_job_canceled_after_sending_keeps_its_hold_until_billed,
    a_job_expired_after_sending_keeps_its_hold_until_billed,
    counted_holds_are_exact,
    counting_falls_back_to_the_estimate,
    case_06_cancel_during_a_create_keeps_the_hold_until_billed,
    holds_no_job_can_bill_are_given_back,
);
