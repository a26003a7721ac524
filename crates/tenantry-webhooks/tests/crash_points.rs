//! The sender's crash points (`webhook.sent`, `webhook.saved`), each crashed at and failed at
//! on SQLite and PostgreSQL, mid-round, then delivered to the end by a new sender, as a new
//! process would: every event arrives, each sender sends in order, and what is sent again is at
//! most the stretch after the last saved cursor.

mod support;

use std::sync::atomic::Ordering;

use support::{Receiver, local, positions, submit, tenant};
use tenantry_queue::failpoints::{Action, Scenario};
use tenantry_queue::{Feed, JobStore};
use tenantry_webhooks::{NewEndpoint, Sender, SenderConfig};

const EVENTS: usize = 40;
const SAVE_EVERY: usize = 8;

/// The points, each armed at a hit that falls mid-round (after some events were delivered and
/// at least one cursor was saved).
const POINTS: [(&str, u64); 2] = [("webhook.sent", 13), ("webhook.saved", 2)];

async fn explore(store: &dyn JobStore, feed: Feed, point: &'static str, at: u64, crash: bool) {
    let hooks = local(feed);
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
    submit(store, &acme, EVENTS).await;
    let config = SenderConfig::new().save_every(SAVE_EVERY);
    let scenario = Scenario::new();
    scenario.on(
        point,
        at,
        1,
        if crash { Action::Crash } else { Action::Fail },
    );
    let first = Sender::new(hooks.clone(), config.clone()).unwrap();
    match scenario.run(first.round()).await {
        Err(crashed) => assert!(crash && crashed.point == point, "{point}: {crashed:?}"),
        Ok(round) => assert!(
            !crash && round.is_err(),
            "{point}: the round went on: {round:?}"
        ),
    }
    assert!(
        scenario.fired().contains(&point),
        "{point} was never reached"
    );
    drop(first);
    let before = receiver.count();
    assert!(
        before > 0 && before < EVENTS,
        "{point}: stopped mid-round ({before})"
    );

    let second = Sender::new(hooks.clone(), config).unwrap();
    while second.round().await.unwrap().delivered > 0 {}
    let ids = positions(&receiver.ids());
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), EVENTS, "{point}: every event arrived");
    let increasing = |s: &[i64]| s.windows(2).all(|w| w[0] < w[1]);
    assert!(increasing(&ids[..before]), "{point}: first sender in order");
    assert!(
        increasing(&ids[before..]),
        "{point}: second sender in order"
    );
    assert!(
        ids.len() - EVENTS <= SAVE_EVERY,
        "{point}: {} sent again",
        ids.len() - EVENTS
    );
    // The second sender began at a saved cursor: never past an event the first did not send.
    assert!(
        ids[before] <= ids[before - 1] + 1,
        "{point}: nothing skipped"
    );
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_crashed_and_failed_on_sqlite() {
    for (point, at) in POINTS {
        for crash in [true, false] {
            let db = tenantry_testkit::SqliteDatabase::create().await;
            let store = tenantry_queue::SqliteStore::open(db.pool().clone())
                .await
                .unwrap();
            explore(&store, Feed::from(store.clone()), point, at, crash).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_crashed_and_failed_on_postgres() {
    for (point, at) in POINTS {
        for crash in [true, false] {
            let db = tenantry_testkit::PgDatabase::create().await;
            let store = tenantry_queue::PgStore::open(db.pool().clone())
                .await
                .unwrap();
            explore(&store, Feed::from(store.clone()), point, at, crash).await;
        }
    }
}

#[test]
fn every_point_in_the_code_is_explored() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for piece in text.split("failpoint!(\"").skip(1) {
            found.push(piece.split_once('"').unwrap().0.to_owned());
        }
    }
    let explored: Vec<&str> = POINTS.iter().map(|(p, _)| *p).collect();
    assert!(!found.is_empty(), "the scan found the points");
    let missing: Vec<&String> = found
        .iter()
        .filter(|p| !explored.contains(&p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "points no scenario explores: {missing:?}"
    );
}
