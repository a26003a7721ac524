//! The feed: events other components append in their own transactions join the tenant's
//! stream in order, wake feed subscriptions, and stay out of job subscriptions.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::{params, tenant};
use tenantry_queue::{Feed, JobStore, NewFeedEvent, Position, SubmitOptions};

async fn check<S: JobStore + Clone>(name: &str, store: S, feed: Feed) {
    let acme = tenant("acme");
    let mut jobs = store.subscribe(&acme).await.unwrap();
    let mut all = feed.subscribe_after(&acme, Position::START).await.unwrap();
    let first = store
        .submit(&acme, "chat", "u1", params("a"), SubmitOptions::new())
        .await
        .unwrap();
    let alert = NewFeedEvent::new(
        acme.clone(),
        "budget.threshold",
        serde_json::json!({"threshold_permille": 800}),
        1,
    );
    let mut tx = feed.begin().await.unwrap();
    feed.append(&mut tx, std::slice::from_ref(&alert))
        .await
        .unwrap();
    feed.commit(tx, std::slice::from_ref(&acme)).await.unwrap();
    // A rolled-back append leaves nothing.
    let mut tx = feed.begin().await.unwrap();
    feed.append(&mut tx, std::slice::from_ref(&alert))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let second = store
        .submit(&acme, "chat", "u1", params("b"), SubmitOptions::new())
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(5), all.next())
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["job.queued", "budget.threshold", "job.queued"],
        "{name}"
    );
    assert_eq!(seen[0].job_id.as_ref(), Some(&first));
    assert_eq!(
        seen[1].detail,
        Some(serde_json::json!({"threshold_permille": 800}))
    );
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    // Job subscribers see the jobs only.
    let job_events = support::take(&mut jobs, 2).await;
    assert_eq!(job_events[1].job_id, second, "{name}");
    support::assert_quiet(&mut jobs, Duration::from_millis(200)).await;
    // Another tenant's stream is untouched, and a job type is refused.
    assert!(
        feed.events_after(&tenant("globex"), Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = feed.begin().await.unwrap();
    let bad = NewFeedEvent::new(acme.clone(), "job.succeeded", serde_json::json!({}), 1);
    assert!(feed.append(&mut tx, &[bad]).await.is_err());
}

#[tokio::test]
async fn appended_events_join_the_stream_in_order_on_both_stores() {
    let (store, _db) = support::sqlite().await;
    check("sqlite", store.clone(), Feed::from(store)).await;
    let (store, _db) = support::postgres().await;
    check("postgres", store.clone(), Feed::from(store)).await;
}
