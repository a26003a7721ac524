//! Claiming jobs into batches and the batch record's life, on SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{params, tenant};
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    BatchState, ClaimStore, ItemOutcome, JobError, JobFilter, JobState, JobStore, Lane, Position,
    ResultItem, Submission, SubmitOptions, WorkerId,
};

const LEASE: Duration = Duration::from_secs(60);

fn waiting(n: usize, wait: Duration) -> Vec<Submission> {
    (0..n)
        .map(|i| {
            Submission::new("f", format!("u{i}"), params(&format!("{i}")))
                .with_options(SubmitOptions::new().max_wait(wait))
        })
        .collect()
}

async fn partial_batch_waits_for_the_oldest_max_wait<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    store
        .submit_many(&t, &waiting(3, Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_due(&w, FlushPolicy::new(), LEASE)
            .await
            .unwrap(),
        None
    );
    let urgent = store
        .submit_many(&t, &waiting(1, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("due");
    assert_eq!(
        claim.jobs.len(),
        4,
        "a flush takes the whole backlog that fits"
    );
    assert!(claim.jobs.contains(&urgent[0]));
    let job = store.job(&t, &urgent[0]).await.unwrap();
    assert_eq!(
        (job.state, job.batch_id.as_deref()),
        (JobState::Batched, Some(claim.batch.as_str()))
    );
    let batched = store
        .events_after(&t, Position::START, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state == JobState::Batched)
        .count();
    assert_eq!(batched, 4);
    assert_eq!(
        store
            .claim_due(&w, FlushPolicy::new(), LEASE)
            .await
            .unwrap(),
        None,
        "nothing left"
    );
}

async fn full_batches_close_at_max_requests<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    store
        .submit_many(&t, &waiting(12, Duration::from_secs(3600)))
        .await
        .unwrap();
    let policy = FlushPolicy::new().max_requests(5);
    let a = store.claim_due(&w, policy, LEASE).await.unwrap().unwrap();
    let b = store.claim_due(&w, policy, LEASE).await.unwrap().unwrap();
    assert_eq!((a.jobs.len(), b.jobs.len()), (5, 5));
    assert!(
        a.jobs.iter().all(|j| !b.jobs.contains(j)),
        "no job in two batches"
    );
    assert_eq!(
        store.claim_due(&w, policy, LEASE).await.unwrap(),
        None,
        "2 left, not due yet"
    );
    let queued = store
        .list(&t, &JobFilter::new().states([JobState::Queued]), None)
        .await
        .unwrap();
    assert_eq!(queued.items().len(), 2);
}

async fn a_backlog_does_not_crowd_out_a_single_job<S: ClaimStore>(store: S) {
    let (big, small) = (tenant("big"), tenant("small"));
    let w = WorkerId::generate();
    store
        .submit_many(&big, &waiting(300, Duration::from_millis(1)))
        .await
        .unwrap();
    let single = store
        .submit_many(&small, &waiting(1, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claim = store
        .claim_due(&w, FlushPolicy::new().max_requests(50), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.jobs.len(), 50);
    assert!(
        claim.jobs.contains(&single[0]),
        "the small tenant's job is in the first batch"
    );
}

async fn the_byte_limit_holds_and_the_rest_stays_queued<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    let ids = store
        .submit_many(&t, &waiting(20, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let one = store
        .job(&t, &ids[0])
        .await
        .unwrap()
        .params
        .to_string()
        .len() as u64
        + 64;
    let policy = FlushPolicy::new().max_bytes(one * 7 + 10);
    let claim = store.claim_due(&w, policy, LEASE).await.unwrap().unwrap();
    assert!(
        claim.bytes <= policy.bytes(),
        "{} > {}",
        claim.bytes,
        policy.bytes()
    );
    assert!(
        (6..=7).contains(&claim.jobs.len()),
        "{} jobs",
        claim.jobs.len()
    );
    let queued = store
        .list(&t, &JobFilter::new().states([JobState::Queued]), None)
        .await
        .unwrap();
    assert_eq!(queued.items().len(), 20 - claim.jobs.len());
    assert!(
        queued.items().iter().all(|j| j.batch_id.is_none()),
        "given-back jobs carry no batch"
    );
    let batched_events = store
        .events_after(&t, Position::START, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state == JobState::Batched)
        .count();
    assert_eq!(
        batched_events,
        claim.jobs.len(),
        "no event for jobs given back"
    );
}

async fn create_is_recorded_before_and_after<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    store
        .submit_many(&t, &waiting(3, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .unwrap();
    store.cancel(&t, &claim.jobs[0]).await.unwrap();
    let requests = store.batch_requests(&claim.batch).await.unwrap();
    let sent: Vec<_> = requests.iter().map(|r| r.job.clone()).collect();
    let mut expected = claim.jobs[1..].to_vec();
    expected.sort();
    assert_eq!(sent, expected, "a job canceled before creation is not sent");
    assert_eq!(requests[0].params["model"], "claude-sonnet-4-5");
    assert!(
        !store
            .finish_create(&claim.batch, &w, "msgbatch_1")
            .await
            .unwrap(),
        "not creating yet"
    );
    assert!(support::begin_create_all(&store, &claim.batch, &w, LEASE).await);
    assert!(
        !support::begin_create_all(&store, &claim.batch, &w, LEASE).await,
        "only once"
    );
    assert!(
        !store
            .finish_create(&claim.batch, &WorkerId::generate(), "msgbatch_1")
            .await
            .unwrap(),
        "fenced by owner"
    );
    assert!(
        store
            .finish_create(&claim.batch, &w, "msgbatch_1")
            .await
            .unwrap()
    );
    for id in &expected {
        let job = store.job(&t, id).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Submitted, 1));
    }
    assert_eq!(
        store.job(&t, &claim.jobs[0]).await.unwrap().state,
        JobState::Canceled
    );
    assert!(
        !store
            .finish_create(&claim.batch, &w, "msgbatch_1")
            .await
            .unwrap(),
        "only once"
    );
}

async fn an_expired_lease_is_taken_over_and_fences_the_old_owner<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let (a, b, c) = (
        WorkerId::generate(),
        WorkerId::generate(),
        WorkerId::generate(),
    );
    store
        .submit_many(&t, &waiting(2, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claim = store
        .claim_due(&a, FlushPolicy::new(), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = store.take_over_expired(&b, Duration::ZERO).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (&taken[0].batch, taken[0].state, taken[0].create_started_at),
        (&claim.batch, BatchState::Planned, None)
    );
    assert!(
        !support::begin_create_all(&store, &claim.batch, &a, LEASE).await,
        "the old owner is fenced out"
    );
    assert!(support::begin_create_all(&store, &claim.batch, &b, Duration::ZERO).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = store.take_over_expired(&c, LEASE).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].state,
        BatchState::Creating,
        "a create in flight must be reconciled"
    );
    assert!(taken[0].create_started_at.is_some());
    assert!(
        store.take_over_expired(&a, LEASE).await.unwrap().is_empty(),
        "c holds a live lease"
    );
    assert!(
        !store
            .finish_create(&claim.batch, &b, "msgbatch_x")
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_create(&claim.batch, &c, "msgbatch_x")
            .await
            .unwrap()
    );
}

async fn release_hands_planned_work_back<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let (a, b) = (WorkerId::generate(), WorkerId::generate());
    let ids = store
        .submit_many(&t, &waiting(4, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let policy = FlushPolicy::new().max_requests(2);
    let first = store.claim_due(&a, policy, LEASE).await.unwrap().unwrap();
    let second = store.claim_due(&a, policy, LEASE).await.unwrap().unwrap();
    assert!(support::begin_create_all(&store, &second.batch, &a, LEASE).await);
    assert_eq!(store.release(&a).await.unwrap(), 2);
    for id in &first.jobs {
        let job = store.job(&t, id).await.unwrap();
        assert_eq!((job.state, job.batch_id), (JobState::Queued, None));
    }
    // The creating batch is left for reconciliation, at once.
    let taken = store.take_over_expired(&b, LEASE).await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|r| (&r.batch, r.state))
            .collect::<Vec<_>>(),
        [(&second.batch, BatchState::Creating)]
    );
    let again = store.claim_due(&b, policy, LEASE).await.unwrap().unwrap();
    assert_eq!(
        again.jobs.iter().collect::<HashSet<_>>(),
        first.jobs.iter().collect::<HashSet<_>>()
    );
    assert_eq!(ids.len(), 4);
}

async fn lost_urgent_calls_are_capped_and_fail_with_the_last_error<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    let urgent = || SubmitOptions::new().lane(Lane::Urgent);
    let succeeded = |job: &tenantry_queue::JobId| ResultItem {
        job: job.clone(),
        outcome: ItemOutcome::Succeeded {
            message: Box::new(
                serde_json::from_value(serde_json::json!({"id": "msg_late", "type": "message",
                    "role": "assistant", "model": "claude-haiku-4-5", "content": [],
                    "usage": {"input_tokens": 3, "output_tokens": 1}}))
                .unwrap(),
            ),
        },
    };
    let id = store
        .submit(&t, "f", "u", params("x"), urgent())
        .await
        .unwrap();
    // Attempt 1 fails with a retryable error: back to queued, the error kept.
    let first = store.claim_urgent(&w, 10, LEASE).await.unwrap();
    assert_eq!(first.requests.len(), 1);
    let busy = ResultItem {
        job: id.clone(),
        outcome: ItemOutcome::Failed {
            error: JobError {
                kind: "overloaded_error".to_owned(),
                message: "busy".to_owned(),
            },
            retryable: true,
        },
    };
    assert_eq!(
        store
            .ingest(&first.token, &[busy], 2)
            .await
            .unwrap()
            .retried,
        1
    );
    // Attempt 2's worker dies mid-call; with no attempt left the sweep fails the job.
    let second = store.claim_urgent(&w, 10, Duration::ZERO).await.unwrap();
    assert_eq!(second.requests.len(), 1);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(store.sweep_capped(2).await.unwrap(), 1);
    let job = store.job(&t, &id).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 2));
    assert_eq!(
        job.error.unwrap().kind,
        "overloaded_error",
        "the last error"
    );
    assert!(
        store
            .claim_urgent(&w, 10, LEASE)
            .await
            .unwrap()
            .requests
            .is_empty(),
        "never sent again"
    );
    // The lost call's answer arrives after all: billed once, the job stays failed.
    let counts = store
        .ingest(&second.token, &[succeeded(&id)], 2)
        .await
        .unwrap();
    assert_eq!(counts.billed_after_cancel, 1);
    let counts = store
        .ingest(&second.token, &[succeeded(&id)], 2)
        .await
        .unwrap();
    assert_eq!(counts.unchanged, 1);
    let job = store.job(&t, &id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.usage.is_some() && job.result.is_none());

    // Another job: a lost call with attempts left is requeued; its late answer is then a
    // second billed request, kept as extra usage; the next lost call fails it.
    let other = store
        .submit(&t, "f", "u", params("y"), urgent())
        .await
        .unwrap();
    let lost = store.claim_urgent(&w, 10, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(store.sweep_capped(2).await.unwrap(), 1);
    assert_eq!(store.job(&t, &other).await.unwrap().state, JobState::Queued);
    let counts = store
        .ingest(&lost.token, &[succeeded(&other)], 2)
        .await
        .unwrap();
    assert_eq!((counts.billed_elsewhere, counts.unchanged), (1, 0));
    let again = store
        .ingest(&lost.token, &[succeeded(&other)], 2)
        .await
        .unwrap();
    assert_eq!((again.billed_elsewhere, again.unchanged), (0, 1));
    store.claim_urgent(&w, 10, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(store.sweep_capped(2).await.unwrap(), 1);
    let job = store.job(&t, &other).await.unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 2));
    assert_eq!(job.error.unwrap().kind, "urgent_call_lost");
    // Both billed requests reach the sink once each: the job row's and the extra one.
    let usage = store.claim_usage(&w, 100, LEASE).await.unwrap();
    let mut keys: Vec<String> = usage.iter().map(tenantry_queue::UsageRecord::key).collect();
    keys.sort();
    let mut expected = vec![
        format!("{id}:{}", second.token),
        format!("{other}:{}", lost.token),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(usage.iter().all(|r| r.lane == Lane::Urgent));
    store.mark_recorded(&usage).await.unwrap();
    assert!(store.claim_usage(&w, 100, LEASE).await.unwrap().is_empty());
}

on_both_stores!(
    partial_batch_waits_for_the_oldest_max_wait,
    full_batches_close_at_max_requests,
    a_backlog_does_not_crowd_out_a_single_job,
    the_byte_limit_holds_and_the_rest_stays_queued,
    create_is_recorded_before_and_after,
    an_expired_lease_is_taken_over_and_fences_the_old_owner,
    release_hands_planned_work_back,
    lost_urgent_calls_are_capped_and_fail_with_the_last_error,
);

/// Several workers with their own pools claim concurrently: every job ends up in exactly
/// one batch.
#[tokio::test]
async fn postgres_concurrent_claimers_never_share_a_job() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let seed = tenantry_queue::PgStore::open(db.pool().clone())
        .await
        .unwrap();
    let mut all = HashSet::new();
    for t in 0..4 {
        let ids = seed
            .submit_many(
                &tenant(&format!("t{t}")),
                &waiting(400, Duration::from_millis(1)),
            )
            .await
            .unwrap();
        all.extend(ids);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(db.url())
            .await
            .unwrap();
        let store = tenantry_queue::PgStore::open(pool).await.unwrap();
        workers.push(tokio::spawn(async move {
            let w = WorkerId::generate();
            let mut claimed = Vec::new();
            while let Some(c) = store
                .claim_due(&w, FlushPolicy::new().max_requests(37), LEASE)
                .await
                .unwrap()
            {
                claimed.extend(c.jobs);
            }
            claimed
        }));
    }
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a job was claimed twice");
    assert_eq!(unique, all, "every job was claimed");
}
