//! The usage outbox: typed usage and the hold handed to the sink, and usage the sink cannot
//! price dead-lettered, counted, announced and re-priced, on SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{params, tenant};
use tenantry_batch::types::Message;
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    BatchId, ClaimStore, HoldId, ItemOutcome, JobId, JobState, Lane, Position, ResultItem,
    SubmitOptions, WorkerId,
};

const LEASE: Duration = Duration::from_secs(60);

fn message(id: &str) -> Message {
    serde_json::from_value(serde_json::json!({
        "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 12, "output_tokens": 34,
            "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "server_tool_use": {"web_search_requests": 2},
            "inference_geo": "us", "service_tier": "batch"
        }
    }))
    .unwrap()
}

/// Submits one job of `tenant` with `hold`, sends it in a batch and stores `message` as its
/// result; returns the job and its batch.
async fn billed<S: ClaimStore>(
    store: &S,
    tenant: &str,
    hold: HoldId,
    message: &Message,
) -> (JobId, BatchId) {
    let t = support::tenant(tenant);
    let w = WorkerId::generate();
    let options = SubmitOptions::new()
        .max_wait(Duration::from_millis(1))
        .hold(hold);
    let id = store
        .submit(&t, "f", "u", params("x"), options)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("due");
    store
        .begin_create(&claim.batch, &w, LEASE, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert!(
        store
            .finish_create(&claim.batch, &w, &format!("msgbatch_{id}"))
            .await
            .unwrap()
    );
    let item = ResultItem {
        job: id.clone(),
        outcome: ItemOutcome::Succeeded {
            message: Box::new(message.clone()),
        },
    };
    assert_eq!(
        store
            .ingest(&claim.batch, &[item], 3)
            .await
            .unwrap()
            .succeeded,
        1
    );
    (id, claim.batch)
}

async fn case_08_usage_travels_typed<S: ClaimStore>(store: S) {
    let t = tenant("acme");
    let sent = message("msg_typed");
    let (id, batch) = billed(&store, "acme", HoldId::new(7), &sent).await;

    // The job and the record carry the API's usage itself, every field of it.
    let job = store.job(&t, &id).await.unwrap();
    assert_eq!(job.usage.as_ref(), Some(&sent.usage));
    assert_eq!(job.hold, Some(HoldId::new(7)));
    let records = store
        .claim_usage(&WorkerId::generate(), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.usage, sent.usage);
    assert_eq!(
        (record.lane, record.hold, record.batch.as_deref()),
        (Lane::Batch, Some(HoldId::new(7)), Some(batch.as_str()))
    );
}

async fn case_07_dead_letters_are_listed_counted_announced_and_repriced<S: ClaimStore>(store: S) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let (unpriced, _) = billed(&store, "acme", HoldId::new(1), &message("msg_a")).await;
    billed(&store, "globex", HoldId::new(2), &message("msg_g")).await;
    let w = WorkerId::generate();
    let claimed = store.claim_usage(&w, 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, g): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|r| r.job == unpriced);
    let reason = "model `claude-sonnet-4-5` is not in the price book";
    let before = store.latest_position(&acme).await.unwrap();
    assert_eq!(
        store
            .dead_letter_usage(&[(a[0].clone(), reason.to_owned())])
            .await
            .unwrap(),
        1
    );
    store.mark_recorded(&g).await.unwrap();
    // Recorded usage is never dead-lettered.
    assert_eq!(
        store
            .dead_letter_usage(&[(g[0].clone(), reason.to_owned())])
            .await
            .unwrap(),
        0
    );

    // Visible: listed for its tenant with the reason, counted, announced on its stream.
    let dead = store.dead_usage(&acme, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record, a[0]);
    assert_eq!(dead[0].reason, reason);
    assert!(store.dead_usage(&globex, 10).await.unwrap().is_empty());
    assert_eq!(store.dead_usage_count().await.unwrap(), 1);
    let events = store.events_after(&acme, before, 10).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.job_id.clone(), e.state))
            .collect::<Vec<_>>(),
        vec![(unpriced.clone(), JobState::UsageUnpriced)]
    );
    assert!(!events[0].state.is_terminal());
    let globex_events = store
        .events_after(&globex, Position::START, 100)
        .await
        .unwrap();
    assert!(
        globex_events
            .iter()
            .all(|e| e.state != JobState::UsageUnpriced)
    );
    // The job keeps its state and its usage.
    let job = store.job(&acme, &unpriced).await.unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert!(job.usage.is_some());

    // Not handed over again by itself...
    assert!(store.claim_usage(&w, 10, LEASE).await.unwrap().is_empty());
    // ...until its tenant's usage is re-priced: the same record, the same key.
    assert_eq!(store.reprice_usage(&globex).await.unwrap(), 0);
    assert_eq!(store.reprice_usage(&acme).await.unwrap(), 1);
    assert_eq!(store.dead_usage_count().await.unwrap(), 0);
    assert!(store.dead_usage(&acme, 10).await.unwrap().is_empty());
    let again = store.claim_usage(&w, 10, LEASE).await.unwrap();
    assert_eq!(again, a);
    assert_eq!(again[0].key(), a[0].key());
}

on_both_stores!(
    case_08_usage_travels_typed,
    case_07_dead_letters_are_listed_counted_announced_and_repriced,
);
