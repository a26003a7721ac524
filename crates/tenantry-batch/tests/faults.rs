//! Every fault the emulator injects, with its counters proving retry counts and delays.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use support::*;
use tenantry_batch::types::ErrorType;
use tenantry_batch::{Client, Error, ListParams, RetryPolicy};
use tenantry_emulator::{Endpoint, Fault, FaultKind, FaultPlan};

async fn ended_batch(client: &Client, n: usize) -> String {
    let batch = client.batches().create(requests(n)).await.unwrap();
    client
        .batches()
        .wait(&batch.id, poll(), |_| {})
        .await
        .unwrap();
    batch.id
}

#[tokio::test]
async fn rate_limit_waits_as_retry_after_says() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let id = client.batches().create(requests(1)).await.unwrap().id;
    emu.set_faults(FaultPlan::new().script(
        Endpoint::RetrieveBatch,
        Fault::rate_limited(Duration::from_millis(300)),
        2,
    ));
    let started = Instant::now();
    client.batches().retrieve(&id).await.unwrap();
    let elapsed = started.elapsed();
    let counts = emu.fault_counts();
    assert_eq!(counts.requests(Endpoint::RetrieveBatch), 3);
    assert_eq!(
        counts.injected(Endpoint::RetrieveBatch, FaultKind::RateLimited),
        2
    );
    // The backoff alone would be 20 + 40 ms: the server's 300 ms won twice.
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn overload_backs_off_exponentially() {
    let emu =
        emulator(FaultPlan::new().script(Endpoint::ListBatches, Fault::overloaded(), 2)).await;
    let policy = RetryPolicy::default()
        .initial_delay(Duration::from_millis(150))
        .jitter(false);
    let client = Client::new(config(&emu).retry(policy)).unwrap();
    let started = Instant::now();
    client.batches().list(&ListParams::default()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 3);
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::ListBatches, FaultKind::Overloaded),
        2
    );
    assert!(
        elapsed >= Duration::from_millis(450),
        "150 + 300 ms expected, got {elapsed:?}"
    );
}

#[tokio::test]
async fn retries_are_bounded_by_the_policy() {
    let emu =
        emulator(FaultPlan::new().script(Endpoint::ListBatches, Fault::api_error(), 10)).await;
    let client = client(&emu);
    let err = client
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_retryable());
    assert_eq!(err.api_error().unwrap().error.kind, ErrorType::Api);
    assert_eq!(
        emu.fault_counts().requests(Endpoint::ListBatches),
        3,
        "1 attempt + 2 retries"
    );

    let patient = Client::new(config(&emu).retry(fast_retries().max_retries(9))).unwrap();
    patient
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 3 + 8);
}

#[tokio::test]
async fn x_should_retry_overrides_the_status() {
    let emu = emulator(
        FaultPlan::new()
            .script(
                Endpoint::ListBatches,
                Fault::overloaded().with_should_retry(false),
                1,
            )
            .script(
                Endpoint::CountTokens,
                Fault::not_found().with_should_retry(true),
                1,
            ),
    )
    .await;
    let client = client(&emu);
    let err = client
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(529));
    assert!(!err.is_retryable());
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 1);

    client.messages().count_tokens(&params("hi")).await.unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::CountTokens), 2);
}

#[tokio::test]
async fn a_plain_404_is_not_retried() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let id = client.batches().create(requests(1)).await.unwrap().id;
    emu.set_faults(FaultPlan::new().script(Endpoint::RetrieveBatch, Fault::not_found(), 1));
    let err = client.batches().retrieve(&id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(emu.fault_counts().requests(Endpoint::RetrieveBatch), 1);
    client.batches().retrieve(&id).await.unwrap();
}

#[tokio::test]
async fn connection_reset_on_a_read_is_retried() {
    let emu =
        emulator(FaultPlan::new().script(Endpoint::ListBatches, Fault::ConnectionReset, 1)).await;
    let client = client(&emu);
    client.batches().list(&ListParams::default()).await.unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 2);
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::ListBatches, FaultKind::ConnectionReset),
        1
    );
}

#[tokio::test]
async fn probabilistic_faults_are_absorbed_and_counted() {
    let emu = emulator(FaultPlan::new()).await;
    let client = Client::new(
        config(&emu).retry(
            fast_retries()
                .max_retries(10)
                .max_delay(Duration::from_millis(40)),
        ),
    )
    .unwrap();
    let id = client.batches().create(requests(1)).await.unwrap().id;
    emu.set_faults(FaultPlan::new().probability(Endpoint::RetrieveBatch, Fault::overloaded(), 0.3));
    for _ in 0..20 {
        client.batches().retrieve(&id).await.unwrap();
    }
    let counts = emu.fault_counts();
    let injected = counts.injected(Endpoint::RetrieveBatch, FaultKind::Overloaded);
    assert!(injected > 0);
    assert_eq!(counts.requests(Endpoint::RetrieveBatch), 20 + injected);
}

#[tokio::test]
async fn create_is_retried_when_the_server_refused_it() {
    let emu = emulator(
        FaultPlan::new()
            .script(Endpoint::CreateBatch, Fault::overloaded(), 1)
            .script_after(
                Endpoint::CreateBatch,
                Fault::rate_limited(Duration::from_millis(10)),
                1,
                1,
            ),
    )
    .await;
    let client = client(&emu);
    let batch = client.batches().create(requests(2)).await.unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::CreateBatch), 3);
    let all = client.batches().list(&ListParams::default()).await.unwrap();
    assert_eq!(all.data.len(), 1, "exactly one batch was created");
    assert_eq!(all.data[0].id, batch.id);
}

#[tokio::test]
async fn lost_create_response_is_reconciled_not_resent() {
    let emu = emulator(FaultPlan::new().script(
        Endpoint::CreateBatch,
        Fault::Truncate { after_bytes: 25 },
        1,
    ))
    .await;
    let client = client(&emu);
    let batch = client.batches().create(requests(3)).await.unwrap();
    assert_eq!(
        emu.fault_counts().requests(Endpoint::CreateBatch),
        1,
        "never re-sent"
    );
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::CreateBatch, FaultKind::Truncated),
        1
    );
    let all = client.batches().list(&ListParams::default()).await.unwrap();
    assert_eq!(all.data.len(), 1);
    assert_eq!(all.data[0].id, batch.id);
    assert_eq!(batch.request_counts.total(), 3);
}

#[tokio::test]
async fn create_timing_out_is_reconciled() {
    let slow = Fault::Slow {
        chunk_bytes: 16,
        delay: Duration::from_millis(200),
    };
    let emu = emulator(FaultPlan::new().script(Endpoint::CreateBatch, slow, 1)).await;
    let client = Client::new(config(&emu).request_timeout(Duration::from_millis(300))).unwrap();
    let batch = client.batches().create(requests(2)).await.unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::CreateBatch), 1);
    assert_eq!(
        client
            .batches()
            .list(&ListParams::default())
            .await
            .unwrap()
            .data[0]
            .id,
        batch.id
    );
}

#[tokio::test]
async fn reset_create_reports_unknown_outcome_with_no_candidates() {
    let emu =
        emulator(FaultPlan::new().script(Endpoint::CreateBatch, Fault::ConnectionReset, 1)).await;
    let client = client(&emu);
    let err = client.batches().create(requests(2)).await.unwrap_err();
    let Error::CreateOutcomeUnknown { candidates, source } = &err else {
        panic!("{err}")
    };
    assert!(candidates.is_empty());
    assert!(matches!(**source, Error::Transport(_)), "{source}");
    assert_eq!(
        emu.fault_counts().requests(Endpoint::CreateBatch),
        1,
        "never re-sent"
    );
    assert_eq!(
        emu.fault_counts().requests(Endpoint::ListBatches),
        1,
        "reconciled by listing"
    );
}

/// Case 1 of the recovery issue: a create reset before it reached the API is never matched to
/// a batch of the same size created before the send.
#[tokio::test]
async fn case_01_a_lost_create_is_not_matched_to_an_earlier_batch() {
    let plan = FaultPlan::new().script_after(Endpoint::CreateBatch, Fault::ConnectionReset, 1, 1);
    let emu = emulator(plan).await;
    let client = client(&emu);
    let first = client.batches().create(requests(2)).await.unwrap();
    let err = client.batches().create(requests(2)).await.unwrap_err();
    let Error::CreateOutcomeUnknown { candidates, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        candidates.is_empty(),
        "{} was created before the send",
        first.id
    );
}

/// The API's clock runs an hour ahead of ours: the batch a lost create made is still found, and
/// a batch created just before the send is still left out.
#[tokio::test]
async fn a_lost_create_is_reconciled_in_the_api_clock() {
    let plan = FaultPlan::new().script_after(Endpoint::CreateBatch, Fault::LostResponse, 1, 1);
    let emu = emulator(plan).await;
    emu.clock().set_offset(time::Duration::hours(1));
    let client = client(&emu);
    let first = client.batches().create(requests(2)).await.unwrap();
    let offset = client.api_clock_offset().unwrap();
    assert!(
        (offset - time::Duration::hours(1)).abs() < time::Duration::seconds(2),
        "{offset}"
    );
    let second = client.batches().create(requests(2)).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(emu.fault_counts().requests(Endpoint::CreateBatch), 2);
}

/// `try_create` never takes a listed batch for the created one, even the only candidate.
#[tokio::test]
async fn try_create_reports_even_a_single_candidate() {
    let plan = FaultPlan::new().script(Endpoint::CreateBatch, Fault::LostResponse, 1);
    let emu = emulator(plan).await;
    let client = client(&emu);
    let err = client.batches().try_create(requests(2)).await.unwrap_err();
    let Error::CreateOutcomeUnknown { candidates, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(candidates.len(), 1);
    assert!(err.to_string().contains("1 candidate"));
}

#[tokio::test]
async fn truncated_results_resume_without_duplicates() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let id = ended_batch(&client, 40).await;
    emu.set_faults(FaultPlan::new().script(
        Endpoint::BatchResults,
        Fault::Truncate { after_bytes: 3_000 },
        1,
    ));
    let results: Vec<_> = client
        .batches()
        .results(&id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ids: HashSet<_> = results.iter().map(|r| r.custom_id.as_str()).collect();
    assert_eq!(results.len(), 40);
    assert_eq!(ids.len(), 40);
    let counts = emu.fault_counts();
    assert_eq!(counts.requests(Endpoint::BatchResults), 2);
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::Truncated),
        1
    );
}

#[tokio::test]
async fn truncated_results_without_retries_end_with_an_error() {
    let emu = emulator(FaultPlan::new()).await;
    let client = Client::new(config(&emu).retry(RetryPolicy::none())).unwrap();
    let id = ended_batch(&client, 40).await;
    emu.set_faults(FaultPlan::new().script(
        Endpoint::BatchResults,
        Fault::Truncate { after_bytes: 3_000 },
        1,
    ));
    let mut stream = client.batches().results(&id).await.unwrap();
    let mut ok = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(_)) => ok += 1,
            Ok(None) => panic!("ended without an error"),
            Err(e) => break e,
        }
    };
    assert!(ok > 0 && ok < 40);
    assert!(
        matches!(
            err,
            Error::TruncatedResults {
                expected: Some(40),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn crlf_results_decode() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let id = ended_batch(&client, 10).await;
    emu.set_faults(FaultPlan::new().script(Endpoint::BatchResults, Fault::CrlfLines, 1));
    let results: Vec<_> = client
        .batches()
        .results(&id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(results.len(), 10);
    assert_eq!(
        emu.fault_counts()
            .injected(Endpoint::BatchResults, FaultKind::CrlfLines),
        1
    );
}

#[tokio::test]
async fn stalled_results_are_resumed_after_the_idle_timeout() {
    let emu = emulator(FaultPlan::new()).await;
    let client = Client::new(config(&emu).idle_timeout(Duration::from_millis(150))).unwrap();
    let id = ended_batch(&client, 10).await;
    let slow = Fault::Slow {
        chunk_bytes: 512,
        delay: Duration::from_millis(400),
    };
    emu.set_faults(FaultPlan::new().script(Endpoint::BatchResults, slow, 1));
    let results: Vec<_> = client
        .batches()
        .results(&id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ids: HashSet<_> = results.iter().map(|r| r.custom_id.as_str()).collect();
    assert_eq!((results.len(), ids.len()), (10, 10));
    assert_eq!(emu.fault_counts().requests(Endpoint::BatchResults), 2);
}

#[tokio::test]
async fn slow_read_times_out_per_attempt_and_is_retried() {
    let slow = Fault::Slow {
        chunk_bytes: 8,
        delay: Duration::from_millis(150),
    };
    let emu = emulator(FaultPlan::new().script(Endpoint::ListBatches, slow, 1)).await;
    let client = Client::new(config(&emu).request_timeout(Duration::from_millis(250))).unwrap();
    client.batches().list(&ListParams::default()).await.unwrap();
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 2);
}

#[tokio::test]
async fn overall_timeout_caps_retries() {
    let emu = emulator(FaultPlan::new().script(
        Endpoint::ListBatches,
        Fault::rate_limited(Duration::from_secs(2)),
        3,
    ))
    .await;
    let client = Client::new(config(&emu).overall_timeout(Duration::from_millis(300))).unwrap();
    let started = Instant::now();
    let err = client
        .batches()
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_millis(300)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 1);
}

#[tokio::test]
async fn paging_survives_a_fault_mid_way() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    for _ in 0..5 {
        client.batches().create(requests(1)).await.unwrap();
    }
    emu.set_faults(FaultPlan::new().script_after(Endpoint::ListBatches, Fault::api_error(), 1, 1));
    let all: Vec<_> = client
        .batches()
        .list_all(
            ListParams::default().limit(2),
            tenantry_batch::Direction::Older,
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 3 + 1);
}

#[tokio::test]
async fn wait_polls_through_a_transient_404_after_create() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let id = client.batches().create(requests(2)).await.unwrap().id;
    emu.set_faults(FaultPlan::new().script(Endpoint::RetrieveBatch, Fault::not_found(), 2));
    let ended = client.batches().wait(&id, poll(), |_| {}).await.unwrap();
    assert!(ended.is_ended());
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::RetrieveBatch, FaultKind::NotFound),
        2
    );
    assert!(counts.requests(Endpoint::RetrieveBatch) >= 3);

    // Outside the grace period a 404 is an answer.
    emu.set_faults(FaultPlan::new().script(Endpoint::RetrieveBatch, Fault::not_found(), 1));
    let strict = poll().not_found_grace(Duration::ZERO);
    let err = client
        .batches()
        .wait(&id, strict, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}
