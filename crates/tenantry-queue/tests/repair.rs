//! Repairs on SQLite and PostgreSQL: retrying finished jobs (a new attempt of the same job,
//! counted before it is sent, refused while its last attempt is unsettled, never across
//! tenants), re-pricing one job's usage, and purging finished jobs and old events in bounded
//! transactions while unfinished work and recent history stay.

#[macro_use]
mod support;

use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{params, tenant};
use tenantry_batch::types::Message;
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    BatchId, ClaimStore, Error, HoldId, ItemOutcome, JobError, JobFilter, JobId, JobState,
    JobStore, MissingResult, Position, Purge, RepairStore, ResultItem, SubmitOptions, TenantId,
    WorkerId,
};
use time::OffsetDateTime;

const LEASE: Duration = Duration::from_secs(60);

fn message() -> Message {
    serde_json::from_value(serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 34}
    }))
    .unwrap()
}

fn succeeded(job: &JobId) -> ResultItem {
    ResultItem {
        job: job.clone(),
        outcome: ItemOutcome::Succeeded {
            message: Box::new(message()),
        },
    }
}

fn refused(job: &JobId) -> ResultItem {
    ResultItem {
        job: job.clone(),
        outcome: ItemOutcome::Failed {
            error: JobError {
                kind: "invalid_request_error".to_owned(),
                message: "prompt is too long".to_owned(),
            },
            retryable: false,
        },
    }
}

/// Options of a job due at once.
fn due() -> SubmitOptions {
    SubmitOptions::new().max_wait(Duration::from_millis(1))
}

/// Submits a job of `tenant` with `options`.
async fn submit<S: ClaimStore>(
    store: &S,
    tenant: &TenantId,
    text: &str,
    options: SubmitOptions,
) -> JobId {
    let id = store
        .submit(tenant, "f", "u", params(text), options)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    id
}

/// Claims every due job into a batch and sends it (`submitted`); returns the batch and the
/// worker holding it.
async fn send<S: ClaimStore>(store: &S) -> (BatchId, WorkerId) {
    let w = WorkerId::generate();
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("a batch is due");
    store
        .begin_create(&claim.batch, &w, LEASE, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert!(
        store
            .finish_create(&claim.batch, &w, &format!("msgbatch_{}", claim.batch))
            .await
            .unwrap()
    );
    (claim.batch, w)
}

/// Ends a submitted batch as the poller does once its results are stored.
async fn end<S: ClaimStore>(store: &S, batch: &BatchId) {
    let w = WorkerId::generate();
    let poll = store
        .claim_poll(&w, LEASE)
        .await
        .unwrap()
        .expect("due for a poll");
    assert_eq!(&poll.batch, batch);
    store
        .end_batch(batch, &w, MissingResult::Fail, 3)
        .await
        .unwrap()
        .expect("held");
}

fn states(events: &[tenantry_queue::JobEvent], job: &JobId) -> Vec<JobState> {
    events
        .iter()
        .filter(|e| &e.job_id == job)
        .map(|e| e.state)
        .collect()
}

fn not_retryable(e: &Error) -> bool {
    matches!(e, Error::NotRetryable { .. }) && e.code() == "not_retryable"
}

async fn a_failed_job_is_retried_as_a_new_attempt_of_the_same_job<S: ClaimStore + RepairStore>(
    store: S,
) {
    let acme = tenant("acme");
    let options = due().idempotency_key("ticket-42").hold(HoldId::new(1));
    let id = submit(&store, &acme, "x", options.clone()).await;
    let (first, _) = send(&store).await;
    store.ingest(&first, &[refused(&id)], 3).await.unwrap();
    let failed = store.job(&acme, &id).await.unwrap();
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 1));

    let before = store.latest_position(&acme).await.unwrap();
    let job = store.retry(&acme, &id, Some(HoldId::new(2))).await.unwrap();
    // The same job, queued again, carrying the new attempt's hold; the attempt is not counted
    // until its request may be sent.
    assert_eq!(job.id, id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 1);
    assert_eq!((job.batch_id, job.finished_at), (None, None));
    assert_eq!(job.hold, Some(HoldId::new(2)));
    assert_eq!(job.idempotency_key.as_deref(), Some("ticket-42"));
    assert_eq!(
        job.error, failed.error,
        "the last error stays until replaced"
    );
    // Recorded on the job's stream, in order, as the state it entered.
    let events = store.events_after(&acme, before, 10).await.unwrap();
    assert_eq!(states(&events, &id), [JobState::Queued]);
    // The idempotency key still names it.
    assert_eq!(
        submit(&store, &acme, "other", options).await,
        id,
        "same key, same job"
    );

    // Sent again: the attempt is counted when the create begins, before anything is sent.
    let w = WorkerId::generate();
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("the retried job is due at once");
    assert_eq!(claim.jobs, std::slice::from_ref(&id));
    assert_ne!(claim.batch, first);
    store
        .begin_create(&claim.batch, &w, LEASE, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert_eq!(store.job(&acme, &id).await.unwrap().attempts, 2);
    assert!(
        store
            .finish_create(&claim.batch, &w, "msgbatch_2")
            .await
            .unwrap()
    );
    store
        .ingest(&claim.batch, &[succeeded(&id)], 3)
        .await
        .unwrap();
    let done = store.job(&acme, &id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    // Its usage is handed over once, under the new batch, with the new hold.
    let records = store.claim_usage(&w, 10, LEASE).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].batch.as_deref(), Some(claim.batch.as_str()));
    assert_eq!(records[0].hold, Some(HoldId::new(2)));
    store.mark_recorded(&records).await.unwrap();
    assert!(store.claim_usage(&w, 10, LEASE).await.unwrap().is_empty());

    // A succeeded job is not retried.
    let e = store.retry(&acme, &id, None).await.unwrap_err();
    assert!(not_retryable(&e), "{e:?}");
    assert_eq!(e.kind(), tenantry_core::ErrorKind::Conflict);
}

async fn one_tenant_cannot_retry_another_tenants_job<S: ClaimStore + RepairStore>(store: S) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let id = submit(&store, &acme, "x", due()).await;
    store.cancel(&acme, &id).await.unwrap();
    let before = store.latest_position(&globex).await.unwrap();

    let e = store.retry(&globex, &id, None).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let e = store.reprice_job(&globex, &id).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    // Nothing changed and nothing was announced on either stream.
    assert_eq!(
        store.job(&acme, &id).await.unwrap().state,
        JobState::Canceled
    );
    assert_eq!(store.latest_position(&globex).await.unwrap(), before);
    let missing: JobId = "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap();
    assert!(
        store
            .retry(&acme, &missing, None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Its own tenant may.
    assert_eq!(
        store.retry(&acme, &id, None).await.unwrap().state,
        JobState::Queued
    );
}

async fn an_open_job_or_one_whose_last_attempt_is_unsettled_is_not_retried<
    S: ClaimStore + RepairStore,
>(
    store: S,
) {
    let acme = tenant("acme");
    let queued = submit(&store, &acme, "queued", due()).await;
    let e = store.retry(&acme, &queued, None).await.unwrap_err();
    assert!(not_retryable(&e), "{e:?}");

    // Canceled while its request is out: its batch may still bill it.
    let (batch, _) = send(&store).await;
    let canceled = store.cancel(&acme, &queued).await.unwrap();
    assert_eq!(canceled.batch_id.as_deref(), Some(batch.as_str()));
    let e = store.retry(&acme, &queued, None).await.unwrap_err();
    assert!(not_retryable(&e), "{e:?}");
    assert!(e.to_string().contains("batch"), "{e}");

    // It was billed: the usage waits for the sink, and a retry would overwrite it.
    store
        .ingest(&batch, &[succeeded(&queued)], 3)
        .await
        .unwrap();
    end(&store, &batch).await;
    let e = store.retry(&acme, &queued, None).await.unwrap_err();
    assert!(e.to_string().contains("usage"), "{e}");
    // Dead-lettered: still refused until re-priced.
    let w = WorkerId::generate();
    let records = store.claim_usage(&w, 10, LEASE).await.unwrap();
    assert_eq!(records.len(), 1);
    store
        .dead_letter_usage(&[(records[0].clone(), "no price".to_owned())])
        .await
        .unwrap();
    assert!(not_retryable(
        &store.retry(&acme, &queued, None).await.unwrap_err()
    ));
    let before = store.latest_position(&acme).await.unwrap();
    assert_eq!(store.reprice_job(&acme, &queued).await.unwrap(), 1);
    assert_eq!(store.reprice_job(&acme, &queued).await.unwrap(), 0);
    let events = store.events_after(&acme, before, 10).await.unwrap();
    assert_eq!(states(&events, &queued), [JobState::UsageRepriced]);
    assert!(!events[0].is_state_change());
    // Recorded at last: nothing more can come of that request, so it may run again.
    let records = store.claim_usage(&w, 10, LEASE).await.unwrap();
    store.mark_recorded(&records).await.unwrap();
    let job = store.retry(&acme, &queued, None).await.unwrap();
    assert_eq!((job.state, job.usage), (JobState::Queued, None));
    assert_eq!(job.attempts, 1);

    // Canceled while out, its batch ended without billing it: retried.
    let (batch, _) = send(&store).await;
    store.cancel(&acme, &queued).await.unwrap();
    assert!(store.retry(&acme, &queued, None).await.is_err());
    end(&store, &batch).await;
    assert_eq!(
        store.retry(&acme, &queued, None).await.unwrap().state,
        JobState::Queued
    );
}

async fn a_passed_deadline_is_cleared_by_a_retry<S: ClaimStore + RepairStore>(store: S) {
    let acme = tenant("acme");
    let soon = OffsetDateTime::now_utc() + Duration::from_millis(20);
    let id = submit(
        &store,
        &acme,
        "x",
        due().deadline(soon, tenantry_queue::DeadlinePolicy::Expire),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    store.sweep().await.unwrap();
    assert_eq!(
        store.job(&acme, &id).await.unwrap().state,
        JobState::Expired
    );
    let job = store.retry(&acme, &id, None).await.unwrap();
    assert_eq!((job.state, job.deadline), (JobState::Queued, None));
    // The sweep leaves it queued now.
    store.sweep().await.unwrap();
    assert_eq!(store.job(&acme, &id).await.unwrap().state, JobState::Queued);
}

/// The store's clock as a time.
fn clock<S: ClaimStore>(store: &S) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(store.now()) * 1000).unwrap()
}

async fn a_purge_deletes_old_finished_jobs_and_events_only<S: ClaimStore + RepairStore>(store: S) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    // Old: five finished jobs of acme, one of globex, one acme job still open, one acme job
    // canceled while its batch runs, one whose usage waits for the sink.
    let mut old = Vec::new();
    for i in 0..5 {
        let id = submit(&store, &acme, &format!("old {i}"), due()).await;
        store.cancel(&acme, &id).await.unwrap();
        old.push(id);
    }
    let theirs = submit(&store, &globex, "theirs", due()).await;
    store.cancel(&globex, &theirs).await.unwrap();
    let out = submit(&store, &acme, "out", due()).await;
    let billed = submit(&store, &acme, "billed", due()).await;
    let (batch, _) = send(&store).await;
    store.cancel(&acme, &out).await.unwrap();
    store
        .ingest(&batch, &[succeeded(&billed)], 3)
        .await
        .unwrap();
    let open = submit(
        &store,
        &acme,
        "open",
        SubmitOptions::new().max_wait(Duration::from_secs(3600)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cutoff = clock(&store);
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Recent: a job finished after the cutoff.
    let recent = submit(&store, &acme, "recent", due()).await;
    store.cancel(&acme, &recent).await.unwrap();
    let before = store.latest_position(&acme).await.unwrap();
    let all_events = store
        .events_after(&acme, Position::START, 1000)
        .await
        .unwrap();

    let purged = store
        .purge(&acme, &Purge::before(cutoff).batch_size(2))
        .await
        .unwrap();
    assert_eq!(purged.jobs, 5, "{purged:?}");
    // Five jobs two at a time, then the eighteen old events of finished jobs (two of each old
    // job, four each of the two sent ones) two at a time: never more rows at once.
    assert_eq!(
        (purged.events, purged.transactions),
        (18, 3 + 9),
        "{purged:?}"
    );
    for id in &old {
        assert!(store.job(&acme, id).await.unwrap_err().is_not_found());
    }
    for kept in [&out, &billed, &open, &recent] {
        store.job(&acme, kept).await.unwrap();
    }
    assert_eq!(
        store.job(&globex, &theirs).await.unwrap().state,
        JobState::Canceled
    );
    // Each purged job is announced on the tenant's stream.
    let after = store.events_after(&acme, before, 100).await.unwrap();
    let mut tombstones: Vec<JobId> = after
        .iter()
        .filter(|e| e.state == JobState::Purged)
        .map(|e| e.job_id.clone())
        .collect();
    tombstones.sort();
    let mut expected = old.clone();
    expected.sort();
    assert_eq!(tombstones, expected);
    // Old events of finished jobs went; those of the open job, of kept jobs after the cutoff,
    // and everything after the cutoff stayed.
    let left = store
        .events_after(&acme, Position::START, 1000)
        .await
        .unwrap();
    for e in &all_events {
        let gone = !left.iter().any(|l| l.position == e.position);
        let expect_gone = e.at < cutoff && e.job_id != open;
        assert_eq!(gone, expect_gone, "{e:?}");
    }
    assert_eq!(
        store
            .events_after(&globex, Position::START, 100)
            .await
            .unwrap()
            .len(),
        2,
        "another tenant's log is untouched"
    );

    // Nothing more to do: a second purge deletes nothing.
    let again = store.purge(&acme, &Purge::before(cutoff)).await.unwrap();
    assert_eq!((again.jobs, again.events), (0, 0));
    // Once the batch ended and the usage was recorded, those go too.
    end(&store, &batch).await;
    let w = WorkerId::generate();
    let records = store.claim_usage(&w, 10, LEASE).await.unwrap();
    store.mark_recorded(&records).await.unwrap();
    let later = store.purge(&acme, &Purge::before(cutoff)).await.unwrap();
    assert_eq!(later.jobs, 2, "{later:?}");
    let list = store.list(&acme, &JobFilter::new(), None).await.unwrap();
    let mut ids: Vec<JobId> = list.items().iter().map(|j| j.id.clone()).collect();
    ids.sort();
    let mut expected = vec![open, recent];
    expected.sort();
    assert_eq!(ids, expected);
}

async fn stale_open_jobs_are_counted_by_state<S: ClaimStore + RepairStore>(store: S) {
    let acme = tenant("acme");
    submit(&store, &acme, "a", due()).await;
    submit(&store, &acme, "b", due()).await;
    send(&store).await;
    let waiting = submit(
        &store,
        &acme,
        "c",
        SubmitOptions::new().max_wait(Duration::from_secs(3600)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stale = store.stale_open_jobs(Duration::ZERO).await.unwrap();
    let by_state: Vec<(JobState, u64)> = stale.iter().map(|s| (s.state, s.jobs)).collect();
    assert_eq!(by_state, [(JobState::Queued, 1), (JobState::Submitted, 2)]);
    let job = store.job(&acme, &waiting).await.unwrap();
    assert_eq!(stale[0].oldest_change, job.updated_at);
    assert!(
        store
            .stale_open_jobs(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.clock_offset_micros().await.unwrap().abs() < 5_000_000);
}

async fn a_deferred_batch_is_made_due_now_and_no_other_is_touched<S: ClaimStore + RepairStore>(
    store: S,
) {
    let t = tenant("acme");
    submit(&store, &t, "a", due()).await;
    let (batch, _) = send(&store).await;
    let poller = WorkerId::generate();
    let poll = store
        .claim_poll(&poller, LEASE)
        .await
        .unwrap()
        .expect("due for its first poll");
    assert_eq!(poll.batch, batch);
    assert!(
        !store.poll_now(batch.as_str()).await.unwrap(),
        "a poll in progress is left alone"
    );
    let in_an_hour =
        i64::try_from(clock(&store).unix_timestamp_nanos() / 1_000).unwrap() + 3_600_000_000;
    assert!(store.defer_poll(&batch, &poller, in_an_hour).await.unwrap());
    let other = WorkerId::generate();
    assert!(
        store.claim_poll(&other, LEASE).await.unwrap().is_none(),
        "not due for an hour"
    );
    assert!(store.poll_now(batch.as_str()).await.unwrap());
    assert!(
        !store.poll_now(batch.as_str()).await.unwrap(),
        "already due: nothing to change"
    );
    let again = store
        .claim_poll(&other, LEASE)
        .await
        .unwrap()
        .expect("due now");
    assert_eq!(again.batch, batch);
    store
        .end_batch(&batch, &other, MissingResult::Fail, 3)
        .await
        .unwrap()
        .expect("held");
    assert!(
        !store.poll_now(batch.as_str()).await.unwrap(),
        "an ended batch has nothing left to ask"
    );
    assert!(!store.poll_now("qb_none").await.unwrap());
}

on_both_stores!(
    a_deferred_batch_is_made_due_now_and_no_other_is_touched,
    a_failed_job_is_retried_as_a_new_attempt_of_the_same_job,
    one_tenant_cannot_retry_another_tenants_job,
    an_open_job_or_one_whose_last_attempt_is_unsettled_is_not_retried,
    a_passed_deadline_is_cleared_by_a_retry,
    a_purge_deletes_old_finished_jobs_and_events_only,
    stale_open_jobs_are_counted_by_state,
);

#[tokio::test]
async fn sqlite_has_no_listeners_and_postgres_counts_them() {
    let (lite, _db) = support::sqlite().await;
    assert_eq!(lite.listeners().await.unwrap(), None);
    let (pg, _pg) = support::postgres().await;
    let _sub = pg.subscribe(&tenant("acme")).await.unwrap();
    assert!(pg.listeners().await.unwrap().unwrap_or(0) >= 1);
}
