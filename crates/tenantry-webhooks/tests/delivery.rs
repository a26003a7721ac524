//! Delivery to a local receiver that verifies every signature: order, tenant isolation, event
//! types, retries with backoff, disabling, replay, and a sender killed mid-round.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{Receiver, local, positions, submit, tenant};
use tenantry_queue::{Feed, JobStore, NewFeedEvent, Position};
use tenantry_webhooks::{NewEndpoint, Sender, SenderConfig, Webhooks};

async fn delivers(name: &str, store: &dyn JobStore, feed: Feed) {
    let hooks = local(feed.clone());
    hooks.migrate().await.unwrap();
    hooks.migrate().await.unwrap(); // idempotent
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let all = Receiver::start().await;
    let alerts = Receiver::start().await;
    hooks
        .register(
            &acme,
            NewEndpoint::new(&all.url, all.secret.clone()).starting_after(Position::START),
        )
        .await
        .unwrap();
    let only = hooks
        .register(
            &acme,
            NewEndpoint::new(&alerts.url, alerts.secret.clone())
                .event_types(["budget.threshold"])
                .starting_after(Position::START),
        )
        .await
        .unwrap();
    submit(store, &acme, 5).await;
    submit(store, &globex, 3).await;
    let mut tx = feed.begin().await.unwrap();
    let alert = NewFeedEvent::new(
        acme.clone(),
        "budget.threshold",
        serde_json::json!({"threshold_permille": 900}),
        1_767_225_600_000_000,
    );
    feed.append(&mut tx, &[alert]).await.unwrap();
    feed.commit(tx, std::slice::from_ref(&acme)).await.unwrap();
    submit(store, &acme, 2).await;

    let sender = Sender::new(hooks.clone(), SenderConfig::new()).unwrap();
    let round = sender.round().await.unwrap();
    assert_eq!((round.delivered, round.skipped), (8 + 1, 7), "{name}");
    let got = all.received.lock().unwrap().clone();
    let types: Vec<&str> = got
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 8, "{name}: acme's events only");
    assert_eq!(types[5], "budget.threshold", "{name}");
    assert!(
        types
            .iter()
            .enumerate()
            .all(|(i, t)| i == 5 || *t == "job.queued")
    );
    assert!(got.iter().all(|r| r.body["data"]["tenant"] == "acme"));
    assert_eq!(got[5].body["data"]["detail"]["threshold_permille"], 900);
    let pos = positions(&all.ids());
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "{name}: in order {pos:?}"
    );
    assert_eq!(alerts.ids(), [all.ids()[5].clone()], "{name}");
    assert_eq!(all.bad_signatures.load(Ordering::SeqCst), 0);
    assert_eq!(alerts.bad_signatures.load(Ordering::SeqCst), 0);
    // Cursors stand at the end: nothing is sent twice.
    assert_eq!(sender.round().await.unwrap().delivered, 0);
    let only = hooks.endpoint(&acme, &only.id).await.unwrap();
    assert_eq!(only.position, feed.latest_position(&acme).await.unwrap());
    // Another tenant cannot read acme's endpoint.
    assert!(hooks.endpoint(&globex, &only.id).await.is_err());
}

#[tokio::test]
async fn delivers_signed_events_in_order_per_tenant_on_both_stores() {
    let (store, _db) = sqlite().await;
    delivers("sqlite", &store, Feed::from(store.clone())).await;
    let db = tenantry_testkit::PgDatabase::create().await;
    let store = tenantry_queue::PgStore::open(db.pool().clone())
        .await
        .unwrap();
    delivers("postgres", &store, Feed::from(store.clone())).await;
}

async fn sqlite() -> (
    tenantry_queue::SqliteStore,
    tenantry_testkit::SqliteDatabase,
) {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let store = tenantry_queue::SqliteStore::open(db.pool().clone())
        .await
        .unwrap();
    (store, db)
}

#[tokio::test]
async fn failures_back_off_then_disable_and_a_replay_sends_again() {
    let (store, _db) = sqlite().await;
    let hooks = local(Feed::from(store.clone()));
    hooks.migrate().await.unwrap();
    let acme = tenant("acme");
    let receiver = Receiver::start().await;
    let endpoint = hooks
        .register(
            &acme,
            NewEndpoint::new(&receiver.url, receiver.secret.clone()),
        )
        .await
        .unwrap();
    submit(&store, &acme, 3).await;
    receiver.fail.store(true, Ordering::SeqCst);
    let config = SenderConfig::new()
        .backoff(Duration::from_millis(150), Duration::from_secs(1))
        .disable_after(3);
    let sender = Sender::new(hooks.clone(), config).unwrap();
    assert_eq!(sender.round().await.unwrap().failed, 1);
    // Within the backoff the endpoint is left alone.
    assert_eq!(sender.round().await.unwrap().failed, 0);
    assert_eq!(receiver.attempts.load(Ordering::SeqCst), 1);
    let mut disabled = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        disabled += sender.round().await.unwrap().disabled;
        if disabled > 0 {
            break;
        }
    }
    assert_eq!(disabled, 1);
    let stored = hooks.endpoint(&acme, &endpoint.id).await.unwrap();
    assert!(!stored.enabled);
    assert_eq!(stored.failures, 3);
    assert_eq!(stored.last_error.as_deref(), Some("status 500"));
    assert_eq!(stored.position, endpoint.position, "nothing was skipped");
    assert_eq!(receiver.attempts.load(Ordering::SeqCst), 3);
    // Disabled: no more attempts.
    receiver.fail.store(false, Ordering::SeqCst);
    assert_eq!(sender.round().await.unwrap(), Default::default());
    hooks.enable(&acme, &endpoint.id).await.unwrap();
    assert_eq!(sender.round().await.unwrap().delivered, 3);
    // A replay from the start sends everything again, with the same ids.
    let first = receiver.ids();
    hooks
        .replay(&acme, &endpoint.id, Position::START)
        .await
        .unwrap();
    assert_eq!(sender.round().await.unwrap().delivered, 3);
    assert_eq!(receiver.ids()[3..], first[..]);
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_sender_killed_mid_round_loses_nothing() {
    let (store, _db) = sqlite().await;
    let hooks: Webhooks = local(Feed::from(store.clone()));
    hooks.migrate().await.unwrap();
    let acme = tenant("acme");
    let receiver = Receiver::start().await;
    hooks
        .register(
            &acme,
            NewEndpoint::new(&receiver.url, receiver.secret.clone()),
        )
        .await
        .unwrap();
    let total = 600;
    submit(&store, &acme, total).await;
    let config = SenderConfig::new().save_every(50);
    let first = Sender::new(hooks.clone(), config.clone()).unwrap();
    let task = tokio::spawn(async move { first.run(std::future::pending()).await });
    while receiver.count() < 230 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task.abort(); // killed wherever it stood: mid-send, mid-save, or between
    let _ = task.await;
    // A request already on the wire may still land: let it, before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = receiver.count();
    assert!(before < total, "killed before the end ({before})");
    let second = Sender::new(hooks.clone(), config).unwrap();
    while second.round().await.unwrap().delivered > 0 {}
    let ids = positions(&receiver.ids());
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), total, "every event arrived");
    // Resent at most one unsaved stretch, and each sender sent in order.
    assert!(ids.len() - total <= 50, "{} resent", ids.len() - total);
    let increasing = |s: &[i64]| s.windows(2).all(|w| w[0] < w[1]);
    assert!(increasing(&ids[..before]), "first sender in order");
    assert!(increasing(&ids[before..]), "second sender in order");
    // The second sender started at the first one's last saved cursor, never past an unsent event.
    assert!(ids[before] <= ids[before - 1] + 1);
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
}
