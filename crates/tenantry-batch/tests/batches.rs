//! Every batch and message operation against the emulator.

mod support;

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use support::*;
use tenantry_batch::types::{ErrorType, ProcessingStatus, ResultOutcome};
use tenantry_batch::{BatchLimits, BatchRequests, Direction, Error, ListParams, ValidationRule};
use tenantry_emulator::{Endpoint, FaultPlan};

#[tokio::test]
async fn create_wait_results_delete() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let batch = client.batches().create(requests(25)).await.unwrap();
    assert_eq!(batch.processing_status, ProcessingStatus::InProgress);
    assert_eq!(batch.request_counts.processing, 25);
    assert!(batch.results_url.is_none());

    // Results before the end are refused client-side, without a download.
    let early = client.batches().results(&batch.id).await.unwrap_err();
    assert!(matches!(early, Error::ResultsUnavailable { .. }), "{early}");

    let mut progress = Vec::new();
    let ended = client
        .batches()
        .wait(&batch.id, poll(), |b| progress.push(b.request_counts))
        .await
        .unwrap();
    assert!(ended.is_ended());
    assert_eq!(ended.request_counts.succeeded, 25);
    assert!(progress.len() >= 2, "polled {} times", progress.len());
    assert_eq!(progress.last().unwrap().succeeded, 25);

    let retrieved = client.batches().retrieve(&batch.id).await.unwrap();
    assert_eq!(retrieved, ended);

    let results: Vec<_> = client
        .batches()
        .results(&batch.id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(results.len(), 25);
    let ids: HashSet<_> = results.iter().map(|r| r.custom_id.clone()).collect();
    assert_eq!(ids.len(), 25);
    for result in &results {
        let ResultOutcome::Succeeded { message } = &result.result else {
            panic!("{result:?}")
        };
        assert!(message.usage.input_tokens > 0);
        assert!(!message.text().is_empty());
    }

    let deleted = client.batches().delete(&batch.id).await.unwrap();
    assert_eq!(deleted.id, batch.id);
    let gone = client.batches().retrieve(&batch.id).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    assert_eq!(gone.api_error().unwrap().error.kind, ErrorType::NotFound);
    assert!(gone.request_id().is_some_and(|id| id.starts_with("req_")));
    assert!(!gone.is_retryable());
}

#[tokio::test]
async fn watch_streams_progress_until_the_end() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let batch = client.batches().create(requests(3)).await.unwrap();
    let seen: Vec<_> = client
        .batches()
        .watch(&batch.id, poll())
        .try_collect()
        .await
        .unwrap();
    assert!(seen.last().unwrap().is_ended());
    assert!(seen[..seen.len() - 1].iter().all(|b| !b.is_ended()));
}

#[tokio::test]
async fn cancel_then_delete() {
    let emu = tenantry_emulator::Emulator::builder()
        .api_key(KEY)
        .batch_latency(std::time::Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let client = client(&emu);
    let batch = client.batches().create(requests(4)).await.unwrap();
    let in_progress = client.batches().delete(&batch.id).await.unwrap_err();
    assert_eq!(in_progress.status(), Some(400));
    let canceling = client.batches().cancel(&batch.id).await.unwrap();
    assert!(canceling.cancel_initiated_at.is_some());
    assert!(matches!(
        canceling.processing_status,
        ProcessingStatus::Canceling | ProcessingStatus::Ended
    ));
    // Requests already started finish on the emulator's clock: let that hour pass at once.
    emu.clock().advance(std::time::Duration::from_secs(3600));
    let ended = client
        .batches()
        .wait(&batch.id, poll(), |_| {})
        .await
        .unwrap();
    assert_eq!(ended.request_counts.total(), 4);
    assert!(ended.request_counts.canceled > 0);
    let results: Vec<_> = client
        .batches()
        .results(&batch.id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(results.iter().any(|r| r.result == ResultOutcome::Canceled));
    client.batches().delete(&batch.id).await.unwrap();
}

#[tokio::test]
async fn paging_both_ways_across_pages() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(client.batches().create(requests(1)).await.unwrap().id);
    }
    let newest_first: Vec<_> = created.iter().rev().cloned().collect();

    let first = client
        .batches()
        .list(&ListParams::default().limit(3))
        .await
        .unwrap();
    assert_eq!(
        first.data.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        newest_first[..3]
    );
    assert!(first.has_more);
    assert_eq!(first.first_id.as_deref(), Some(newest_first[0].as_str()));
    assert_eq!(first.last_id.as_deref(), Some(newest_first[2].as_str()));

    // Older: 3 + 3 + 1 over three pages.
    let older: Vec<_> = client
        .batches()
        .list_all(ListParams::default().limit(3), Direction::Older)
        .map_ok(|b| b.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(older, newest_first);
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 1 + 3);

    // Newer, from the oldest: pages of 2 before it, newest first within each page.
    let oldest = created[0].clone();
    let newer: Vec<_> = client
        .batches()
        .list_all(
            ListParams::default().limit(2).before_id(&oldest),
            Direction::Newer,
        )
        .map_ok(|b| b.id)
        .try_collect()
        .await
        .unwrap();
    let mut newer_sorted = newer.clone();
    newer_sorted.sort_by_key(|id| created.iter().position(|c| c == id));
    assert_eq!(newer_sorted, created[1..]);
    assert_eq!(newer.len(), 6);
    assert_eq!(emu.fault_counts().requests(Endpoint::ListBatches), 4 + 3);
}

#[tokio::test]
async fn messages_create_and_count_tokens() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let p = params("Hello there, how are you today?").system("Be brief.");
    let message = client.messages().create(&p).await.unwrap();
    assert!(message.id.starts_with("msg_"));
    assert!(message.usage.input_tokens > 0 && message.usage.output_tokens > 0);
    assert!(message.stop_reason.is_some());
    let count = client.messages().count_tokens(&p).await.unwrap();
    assert_eq!(count.input_tokens, message.usage.input_tokens);
}

#[tokio::test]
async fn errored_results_expose_the_inner_error_type() {
    let plan = FaultPlan::new().errored_results(1.0, tenantry_emulator::ErrorType::Overloaded);
    let emu = emulator(plan).await;
    let client = client(&emu);
    let mut batch = requests(3);
    let mut bad = params("x");
    bad.model = "claude-no-such-model".into();
    batch.push("unknown-model", &bad).unwrap();
    let created = client.batches().create(batch).await.unwrap();
    client
        .batches()
        .wait(&created.id, poll(), |_| {})
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut results = client.batches().results(&created.id).await.unwrap();
    while let Some(result) = results.next().await {
        let result = result.unwrap();
        let ResultOutcome::Errored { error } = &result.result else {
            panic!("{result:?}")
        };
        kinds.push((result.custom_id.clone(), error.error.kind.clone()));
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(kinds.len(), 4);
    assert!(
        kinds
            .iter()
            .any(|(id, k)| id == "unknown-model" && *k != ErrorType::Overloaded)
    );
    assert!(
        kinds
            .iter()
            .filter(|(_, k)| *k == ErrorType::Overloaded)
            .count()
            >= 3
    );
}

#[tokio::test]
async fn invalid_batches_are_refused_before_sending() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    let err = client
        .batches()
        .create(BatchRequests::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Validation {
            rule: ValidationRule::Empty,
            ..
        }
    ));
    assert!(matches!(
        client.batches().retrieve("../etc").await.unwrap_err(),
        Error::InvalidId(_)
    ));
    assert_eq!(emu.fault_counts().requests(Endpoint::CreateBatch), 0);
}

#[tokio::test]
async fn oversized_body_gets_413_and_is_not_retried() {
    let emu = tenantry_emulator::Emulator::builder()
        .api_key(KEY)
        .max_batch_bytes(2_000)
        .start()
        .await
        .unwrap();
    let client = client(&emu);
    let mut batch = BatchRequests::with_limits(BatchLimits::default().max_body_bytes(1_000_000));
    for i in 0..30 {
        batch
            .push(
                format!("r{i}"),
                &params("some words to make the body larger"),
            )
            .unwrap();
    }
    let err = client.batches().create(batch).await.unwrap_err();
    assert_eq!(err.status(), Some(413));
    assert_eq!(
        err.api_error().unwrap().error.kind,
        ErrorType::RequestTooLarge
    );
    assert_eq!(emu.fault_counts().requests(Endpoint::CreateBatch), 1);
}
