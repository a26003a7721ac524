//! The recovery paths of the engine, one named case each, on SQLite and PostgreSQL: a lost
//! create, a batch that shrinks before it is reconciled, damaged and missing result lines, and
//! a cancel racing a create.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{Ledger, client, tenant};
use tenantry_emulator::{Emulator, Endpoint, Fault, FaultPlan};
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    ClaimStore, Engine, EngineConfig, ItemOutcome, JobFilter, JobId, JobState, MissingResult,
    ResultItem, Submission, SubmitOptions, TenantId, WorkerId,
};

fn params(text: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}]
    })
}

async fn emulator(faults: FaultPlan) -> Emulator {
    // Each emulator its own seed: one store may see several emulators, and equal seeds would
    // hand out equal batch ids.
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(13);
    Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(100))
        .seed(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        .faults(faults)
        .start()
        .await
        .unwrap()
}

fn config() -> EngineConfig {
    EngineConfig::new()
        .poll_interval(Duration::from_millis(30), Duration::from_millis(100))
        .lease(Duration::from_millis(300))
        .max_attempts(3)
}

/// `n` jobs of `t` due at once; their ids in submission order.
async fn jobs<S: ClaimStore>(store: &S, t: &TenantId, n: usize) -> Vec<JobId> {
    let batch: Vec<_> = (0..n)
        .map(|i| {
            Submission::new("f", "u", params(&format!("{i}")))
                .with_options(SubmitOptions::new().max_wait(Duration::from_millis(1)))
        })
        .collect();
    let ids = store.submit_many(t, &batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    ids
}

/// Steps until every job of `t` is terminal (then once more for the last usage), within a
/// bounded number of steps: a job that waits forever fails the test.
async fn run_to_quiescence<S: ClaimStore>(engine: &Engine<S>, t: &TenantId) {
    for _ in 0..300 {
        engine.step().await.unwrap();
        let page = engine
            .store()
            .list(t, &JobFilter::new().limit(1000), None)
            .await
            .unwrap();
        if page.items().iter().all(|j| j.state.is_terminal()) {
            engine.step().await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("jobs did not reach a terminal state");
}

async fn state<S: ClaimStore>(store: &S, t: &TenantId, id: &JobId) -> (JobState, u32, String) {
    let job = store.job(t, id).await.unwrap();
    let kind = job.error.map(|e| e.kind).unwrap_or_default();
    (job.state, job.attempts, kind)
}

/// Sends the batch's frozen members as one API batch, as the dead worker's call did.
async fn send_members<S: ClaimStore>(
    store: &S,
    emu: &Emulator,
    batch: &tenantry_queue::BatchId,
) -> String {
    let mut body = tenantry_batch::BatchRequests::new();
    for job in store.batch_members(batch).await.unwrap() {
        let p: tenantry_batch::types::MessageParams =
            serde_json::from_value(params(job.as_str())).unwrap();
        body.push(job.as_str(), &p).unwrap();
    }
    client(emu).batches().create(body).await.unwrap().id
}

/// Case 1: the create is reset before it reaches the API, and another system created a batch
/// of the same size just before. The engine never adopts, cancels or bills that batch: it
/// finds the create did not happen, sends its own, and bills only its own jobs.
async fn case_01_a_lost_create_is_never_matched_to_a_foreign_batch<S: ClaimStore + Clone>(
    store: S,
) {
    let emu = emulator(FaultPlan::new().script_after(
        Endpoint::CreateBatch,
        Fault::ConnectionReset,
        1,
        1,
    ))
    .await;
    let t = tenant("acme");
    // Another system's batch, of the same size as ours, with its own custom ids.
    let mut foreign = tenantry_batch::BatchRequests::new();
    for id in ["theirs-1", "theirs-2"] {
        foreign
            .push(id, &serde_json::from_value(params(id)).unwrap())
            .unwrap();
    }
    let foreign = client(&emu).batches().create(foreign).await.unwrap();
    let ids = jobs(&store, &t, 2).await;
    let ledger = Arc::new(Ledger::default());
    let engine = Engine::new(store.clone(), client(&emu), ledger.clone(), config());
    run_to_quiescence(&engine, &t).await;

    for id in &ids {
        assert_eq!(state(&store, &t, id).await.0, JobState::Succeeded);
    }
    let foreign_now = client(&emu).batches().retrieve(&foreign.id).await.unwrap();
    assert!(
        foreign_now.cancel_initiated_at.is_none(),
        "another system's batch is never canceled"
    );
    assert_eq!(
        store
            .known_api_batches(std::slice::from_ref(&foreign.id))
            .await
            .unwrap(),
        Vec::<String>::new(),
        "nor recorded"
    );
    let billed = ledger.by_job();
    assert_eq!(billed.len(), 2, "only our jobs are billed: {billed:?}");
    assert!(ids.iter().all(|id| billed.get(id) == Some(&1)));
    assert_eq!(
        emu.fault_counts().requests(Endpoint::CreateBatch),
        3,
        "theirs, our reset one, our second"
    );
}

/// Case 1, the store's side: a result naming a job the batch did not send charges nothing,
/// and one API batch is recorded on one batch record only.
async fn case_01_results_of_jobs_a_batch_did_not_send_charge_nothing<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    jobs(&store, &t, 2).await;
    let first = store
        .claim_due(&w, FlushPolicy::new().max_requests(1), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let second = store
        .claim_due(&w, FlushPolicy::new().max_requests(1), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(support::begin_create_all(&store, &first.batch, &w, Duration::ZERO).await);
    assert!(
        store
            .finish_create(&first.batch, &w, "msgbatch_one")
            .await
            .unwrap()
    );
    // A result for the second batch's job arriving in the first batch's file.
    let stray = ResultItem {
        job: second.jobs[0].clone(),
        outcome: ItemOutcome::Succeeded {
            message: Box::new(
                serde_json::from_value(serde_json::json!({"id": "msg_x", "type": "message",
                    "role": "assistant", "model": "claude-haiku-4-5", "content": [],
                    "usage": {"input_tokens": 5, "output_tokens": 5}}))
                .unwrap(),
            ),
        },
    };
    let counts = store.ingest(&first.batch, &[stray], 3).await.unwrap();
    assert_eq!((counts.billed_elsewhere, counts.unchanged), (0, 1));
    assert!(
        store
            .claim_usage(&w, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing to bill"
    );
    // The same API batch id cannot be recorded on a second record.
    assert!(support::begin_create_all(&store, &second.batch, &w, Duration::ZERO).await);
    assert!(
        store
            .finish_create(&second.batch, &w, "msgbatch_one")
            .await
            .is_err(),
        "one record per API batch"
    );
}

/// Case 2: the worker sent the create and died; before anyone reconciled, one of its jobs
/// was canceled. Reconciliation matches on what was sent, adopts the batch, sends nothing
/// again, and bills the canceled job's request too.
async fn case_02_a_batch_that_shrinks_before_reconciliation_is_not_sent_again<
    S: ClaimStore + Clone,
>(
    store: S,
) {
    let emu = emulator(FaultPlan::new()).await;
    let t = tenant("acme");
    let ids = jobs(&store, &t, 4).await;
    let dead = WorkerId::generate();
    let claim = store
        .claim_due(&dead, FlushPolicy::new(), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(support::begin_create_all(&store, &claim.batch, &dead, Duration::ZERO).await);
    send_members(&store, &emu, &claim.batch).await;
    let canceled = store.cancel(&t, &ids[0]).await.unwrap();
    assert!(
        canceled.batch_id.is_some(),
        "its request is out: it keeps its batch"
    );

    let ledger = Arc::new(Ledger::default());
    let engine = Engine::new(store.clone(), client(&emu), ledger.clone(), config());
    run_to_quiescence(&engine, &t).await;
    assert_eq!(
        emu.fault_counts().requests(Endpoint::CreateBatch),
        1,
        "never sent again"
    );
    assert_eq!(state(&store, &t, &ids[0]).await.0, JobState::Canceled);
    for id in &ids[1..] {
        assert_eq!(state(&store, &t, id).await.0, JobState::Succeeded);
    }
    let billed = ledger.by_job();
    assert!(
        ids.iter().all(|id| billed.get(id) == Some(&1)),
        "every sent request billed once: {billed:?}"
    );
}

/// Case 3: one result line does not decode, on every download. When its `custom_id` is
/// readable it fails its own job with `malformed_result`; when it is not, its job got no line
/// and is sent again. Every other job succeeds and the file is not downloaded over and over.
async fn case_03_a_malformed_result_line_fails_only_its_job<S: ClaimStore + Clone>(store: S) {
    for (fault, expected) in [
        (
            Fault::MalformedLine { line: 3 },
            (JobState::Failed, 1, "malformed_result"),
        ),
        // The first attempt's error stays on the job as its history.
        (
            Fault::GarbageLine { line: 6 },
            (JobState::Succeeded, 2, "missing_result"),
        ),
    ] {
        let emu =
            emulator(FaultPlan::new().script(Endpoint::BatchResults, fault.clone(), u64::MAX))
                .await;
        let t = tenant(if expected.0 == JobState::Failed {
            "named"
        } else {
            "anonymous"
        });
        let ids = jobs(&store, &t, 10).await;
        let ledger = Arc::new(Ledger::default());
        let engine = Engine::new(store.clone(), client(&emu), ledger.clone(), config());
        run_to_quiescence(&engine, &t).await;
        let mut states = Vec::new();
        for id in &ids {
            states.push(state(&store, &t, id).await);
        }
        let odd: Vec<_> = states
            .iter()
            .filter(|s| **s != (JobState::Succeeded, 1, String::new()))
            .collect();
        assert_eq!(
            odd,
            [&(expected.0, expected.1, expected.2.to_owned())],
            "{fault:?}: {states:?}"
        );
        let downloads = emu.fault_counts().requests(Endpoint::BatchResults);
        assert!(
            downloads <= 4,
            "{fault:?}: results downloaded {downloads} times"
        );
    }
}

/// Case 4: the API leaves a request out of an ended batch's results, on every download. By
/// policy its job is sent again (and succeeds in a batch where the line is not dropped) or
/// failed with `missing_result`; either way it ends, and the other jobs succeed.
async fn case_04_a_job_missing_from_an_ended_batch_ends_by_policy<S: ClaimStore + Clone>(store: S) {
    for (missing, expected) in [
        (MissingResult::Fail, (JobState::Failed, 1, "missing_result")),
        (
            MissingResult::Retry,
            (JobState::Succeeded, 2, "missing_result"),
        ),
    ] {
        let emu = emulator(FaultPlan::new().script(
            Endpoint::BatchResults,
            Fault::DropLine { line: 2 },
            u64::MAX,
        ))
        .await;
        let t = tenant(if missing == MissingResult::Fail {
            "fail"
        } else {
            "retry"
        });
        let ids = jobs(&store, &t, 5).await;
        let ledger = Arc::new(Ledger::default());
        let engine = Engine::new(
            store.clone(),
            client(&emu),
            ledger.clone(),
            config().missing_result(missing),
        );
        run_to_quiescence(&engine, &t).await;
        let mut states = Vec::new();
        for id in &ids {
            let (state, attempts, kind) = state(&store, &t, id).await;
            states.push((state, attempts, kind));
        }
        let odd: Vec<_> = states
            .iter()
            .filter(|s| **s != (JobState::Succeeded, 1, String::new()))
            .collect();
        assert_eq!(
            odd,
            [&(expected.0, expected.1, expected.2.to_owned())],
            "{missing:?}: {states:?}"
        );
    }
}

/// Case 5: an urgent call that takes five leases (a slow answer) while a second engine
/// sweeps for stale calls. The first engine renews its lease while the call is in flight, so
/// the second never sends the request again, and it is paid once.
async fn case_05_a_call_longer_than_its_lease_is_not_sent_again<S: ClaimStore + Clone>(store: S) {
    let slow = Fault::Slow {
        chunk_bytes: 64,
        delay: Duration::from_millis(150),
    };
    let emu = emulator(FaultPlan::new().script(Endpoint::CreateMessage, slow, 1)).await;
    let t = tenant("acme");
    let options = SubmitOptions::new().lane(tenantry_queue::Lane::Urgent);
    let id = store
        .submit(&t, "f", "u", params("slow"), options)
        .await
        .unwrap();
    let ledger = Arc::new(Ledger::default());
    let lease = Duration::from_millis(300);
    let first = Engine::new(
        store.clone(),
        client(&emu),
        ledger.clone(),
        config().lease(lease),
    );
    let second = Engine::new(
        store.clone(),
        client(&emu),
        ledger.clone(),
        config().lease(lease),
    );
    let call = tokio::spawn(async move { first.step().await.unwrap() });
    while state(&store, &t, &id).await.0 != JobState::Submitted {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first engine's call is out; the second steps all along it, as a second instance
    // would.
    while !call.is_finished() {
        second.step().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call.await.unwrap().urgent_calls, 1);
    run_to_quiescence(&second, &t).await;
    assert_eq!(state(&store, &t, &id).await.0, JobState::Succeeded);
    assert_eq!(
        emu.fault_counts().requests(Endpoint::CreateMessage),
        1,
        "sent once"
    );
    assert_eq!(ledger.by_job().get(&id), Some(&1), "paid once");
}

/// Case 6: cancel racing a create. A job canceled while its batch is only planned leaves the
/// batch and is never sent; one canceled once the create began keeps its batch (its request
/// may be out), so its hold is not given back before its usage is known.
async fn case_06_cancel_during_a_create_knows_whether_the_request_is_out<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let w = WorkerId::generate();
    let ids = jobs(&store, &t, 3).await;
    let claim = store
        .claim_due(&w, FlushPolicy::new(), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let before = store.cancel(&t, &ids[0]).await.unwrap();
    assert_eq!(
        (before.state, before.batch_id),
        (JobState::Canceled, None),
        "not out: it leaves the batch"
    );
    // The worker read its requests before that cancel and asks to send all three.
    let frozen = store
        .begin_create(&claim.batch, &w, Duration::from_secs(60), &ids, None)
        .await
        .unwrap()
        .unwrap();
    let mut expected = ids[1..].to_vec();
    expected.sort();
    assert_eq!(frozen, expected, "the canceled job is not frozen in");
    let during = store.cancel(&t, &ids[1]).await.unwrap();
    assert_eq!(during.state, JobState::Canceled);
    assert_eq!(
        during.batch_id.as_deref(),
        Some(claim.batch.as_str()),
        "out: it keeps its batch, so its billed result is recorded"
    );
    assert_eq!(store.batch_members(&claim.batch).await.unwrap(), expected);
}

on_both_stores!(
    case_01_a_lost_create_is_never_matched_to_a_foreign_batch,
    case_01_results_of_jobs_a_batch_did_not_send_charge_nothing,
    case_02_a_batch_that_shrinks_before_reconciliation_is_not_sent_again,
    case_03_a_malformed_result_line_fails_only_its_job,
    case_04_a_job_missing_from_an_ended_batch_ends_by_policy,
    case_05_a_call_longer_than_its_lease_is_not_sent_again,
    case_06_cancel_during_a_create_knows_whether_the_request_is_out,
);
