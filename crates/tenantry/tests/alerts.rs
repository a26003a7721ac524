//! Budget alerts on the tenant's event stream, and the soft limit's batch lane, through the
//! facade on both databases.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::{params, pending_id};
use tenantry::cost::{BudgetPolicy, Nanos, UnixMicros, Window};
use tenantry::queue::{FeedEvent, Lane, TenantId};
use tenantry::{BUDGET_THRESHOLD, Database, Envelope, Request, SOFT_LIMIT_NOTICE, Tenantry};

async fn handle(db: Database, policy: BudgetPolicy) -> Tenantry {
    Tenantry::builder()
        .database_pool(db)
        .api(tenantry::batch::Config::new("sk-test").base_url("http://127.0.0.1:9"))
        .budget_policy(policy)
        .build()
        .await
        .unwrap()
}

fn policy(limit: i64) -> BudgetPolicy {
    BudgetPolicy::new(
        TenantId::new("acme").unwrap(),
        Window::Month,
        Nanos(limit),
        UnixMicros(0),
    )
}

/// Every event that arrives until the stream is quiet for 300 ms.
async fn drain(stream: &mut tenantry::queue::FeedSubscription) -> Vec<FeedEvent> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        out.push(e.unwrap());
    }
    out
}

async fn thresholds_fire_once(name: &str, db: Database) {
    let t = handle(db, policy(4_000_000).with_alerts([500, 1000])).await;
    let acme = TenantId::new("acme").unwrap();
    let feed = t.feed();
    let start = feed.latest_position(&acme).await.unwrap();
    let mut stream = feed.subscribe_after(&acme, start).await.unwrap();
    let mut accepted = 0;
    loop {
        let r = Request::new("summaries", "user-1", params(&format!("doc {accepted}")));
        match t.submit("acme", r).await {
            Ok(_) => accepted += 1,
            Err(e) if e.is_budget_exceeded() => break,
            Err(e) => panic!("{name}: {e}"),
        }
        assert!(accepted < 100, "{name}: the budget never ran out");
    }
    let events = drain(&mut stream).await;
    let alerts: Vec<&FeedEvent> = events
        .iter()
        .filter(|e| e.kind == BUDGET_THRESHOLD)
        .collect();
    assert_eq!(
        events.len() - alerts.len(),
        accepted,
        "{name}: one job event per job"
    );
    let levels: Vec<i64> = alerts
        .iter()
        .map(|e| {
            e.detail.as_ref().unwrap()["threshold_permille"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // 50 % fired once; 100 % only if a hold reached the limit exactly.
    assert_eq!(levels.first(), Some(&500), "{name}: {levels:?}");
    assert!(levels.len() <= 2 && levels.iter().filter(|l| **l == 500).count() == 1);
    let detail = alerts[0].detail.as_ref().unwrap();
    let used = detail["spent"].as_i64().unwrap() + detail["held"].as_i64().unwrap();
    assert!(used * 2 >= 4_000_000, "{name}: fired at {used}");
    // The alert sits in the stream right where its crossing committed: after the jobs held
    // before it, before the job whose hold crossed (the hold commits before the job is stored).
    let at = events
        .iter()
        .position(|e| e.kind == BUDGET_THRESHOLD)
        .unwrap();
    assert!(at > 0 && at < events.len() - 1, "{name}");
    assert_eq!(
        t.ledger().budgets().alerts(&acme).await.unwrap().len(),
        levels.len()
    );
    // Job subscribers never see it.
    let jobs = t.jobs().events_after(&acme, start, 1_000).await.unwrap();
    assert_eq!(jobs.len(), accepted, "{name}");
}

#[tokio::test]
async fn thresholds_reach_the_event_stream_once_on_sqlite() {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    thresholds_fire_once("sqlite", Database::Sqlite(db.pool().clone())).await;
}

#[tokio::test]
async fn thresholds_reach_the_event_stream_once_on_postgres() {
    let db = tenantry_testkit::PgDatabase::create().await;
    thresholds_fire_once("postgres", Database::Postgres(db.pool().clone())).await;
}

#[tokio::test]
async fn past_the_soft_limit_urgent_requests_go_down_the_batch_lane() {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let t = handle(
        Database::Sqlite(db.pool().clone()),
        policy(4_000_000).with_soft_limit(500),
    )
    .await;
    let acme = TenantId::new("acme").unwrap();
    let mut lanes = Vec::new();
    loop {
        let r = Request::new("summaries", "user-1", params("urgent")).urgent();
        let envelope = match t.submit("acme", r).await {
            Ok(e) => e,
            Err(e) if e.is_budget_exceeded() => break,
            Err(e) => panic!("{e}"),
        };
        let Envelope::Pending { operation } = &envelope else {
            panic!("pending expected");
        };
        let job = t
            .jobs()
            .job(&acme, &pending_id(&envelope).parse().unwrap())
            .await
            .unwrap();
        lanes.push((job.lane, operation.notice().map(str::to_owned)));
        assert!(lanes.len() < 100, "the budget never ran out");
    }
    let urgent = lanes.iter().take_while(|(l, _)| *l == Lane::Urgent).count();
    assert!(urgent >= 1, "{lanes:?}");
    assert!(lanes[..urgent].iter().all(|(_, n)| n.is_none()));
    // Past the soft limit every urgent request went down the batch lane, and said so.
    assert!(lanes.len() > urgent, "{lanes:?}");
    assert!(
        lanes[urgent..]
            .iter()
            .all(|(l, n)| *l == Lane::Batch && n.as_deref() == Some(SOFT_LIMIT_NOTICE)),
        "{lanes:?}"
    );
}
