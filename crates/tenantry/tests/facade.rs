//! The facade end to end against the emulator, on SQLite and PostgreSQL: submit, events, results,
//! cost, budgets, cancel, tenant isolation and metrics.
#![cfg(all(
    feature = "sqlite",
    feature = "postgres",
    feature = "metrics",
    feature = "emulator"
))]

use std::time::Duration;

use tenantry::cost::{GroupBy, Nanos, SpendQuery, UnixMicros, Window};
use tenantry::envelope::Code;
use tenantry::queue::JobState;
use tenantry::{Database, Envelope, Request, Tenantry, batch::Config};

mod support;
use support::{
    builder, emulator, fast_engine as fast, params, pending_id, request, until_terminal,
};

async fn round_trip(database: Database) {
    let emulator = emulator(Duration::from_millis(100)).await;
    let tenantry = builder(database, &emulator)
        .budget("tight", Window::Month, Nanos(1_000))
        .build()
        .await
        .unwrap();
    let engine = tenantry.spawn();
    let mut a_events = tenantry.subscribe("tenant-a").await.unwrap();
    let mut b_events = tenantry.subscribe("tenant-b").await.unwrap();

    let a = tenantry
        .submit_many(
            "tenant-a",
            vec![
                request("the parcel arrived late"),
                request("the invoice is wrong"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    let a_first = pending_id(&a[0]);
    let b = tenantry
        .submit("tenant-b", request("the printer is on fire"))
        .await
        .unwrap();
    let b_id = pending_id(&b);
    assert_eq!(
        serde_json::to_value(&b).unwrap()["operation"]["status_url"],
        format!("/v1/jobs/{b_id}")
    );

    until_terminal(&mut a_events, 2).await;
    until_terminal(&mut b_events, 1).await;

    // Results: success envelopes with the emulator's echo of the prompt.
    let out = tenantry
        .job("tenant-a", &a_first)
        .await
        .unwrap()
        .into_result()
        .expect("succeeded");
    assert!(out.text.contains("parcel"), "{}", out.text);
    assert!(out.usage.is_some());

    // Isolation: tenant A cannot see tenant B's job.
    let err = tenantry.job("tenant-a", &b_id).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.code(), Code::NotFound);

    // Cost: every result became one ledger line at the batch price, half the standard one.
    let spend_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = tenantry
            .spend(&SpendQuery::new(
                UnixMicros(0),
                UnixMicros(i64::MAX),
                GroupBy::Tenant,
            ))
            .await
            .unwrap();
        if rows.iter().map(|r| r.lines).sum::<i64>() == 3 {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < spend_deadline,
            "usage recorded: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let a_row = rows
        .iter()
        .find(|r| r.key.as_deref() == Some("tenant-a"))
        .unwrap();
    assert_eq!(a_row.lines, 2);
    assert!(a_row.cost.0 > 0);
    assert_eq!(a_row.standard_cost.0, a_row.cost.0 * 2);

    // Budget: a tenant with a tiny budget is refused with BUDGET_EXCEEDED and nothing stored.
    let err = tenantry
        .submit("tight", request("too expensive"))
        .await
        .unwrap_err();
    assert!(err.is_budget_exceeded());
    let problem = err.to_problem();
    assert_eq!(problem.code(), &Code::BudgetExceeded);
    assert_eq!(problem.http_status().as_u16(), 402);
    let page = tenantry
        .jobs()
        .list(
            &tenantry::queue::TenantId::new("tight").unwrap(),
            &tenantry::queue::JobFilter::new(),
            None,
        )
        .await
        .unwrap();
    assert!(page.items().is_empty());

    // Invalid requests name the problem.
    let err = tenantry
        .submit(
            "tenant-a",
            Request::new("f", "u", serde_json::json!({"max_tokens": 5})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ValidationFailed);

    // Cancel: a job waiting for its batch is canceled and reads as JOB_CANCELED.
    let slow =
        Request::new("summaries", "user-2", params("later")).max_wait(Duration::from_secs(3600));
    let id = pending_id(&tenantry.submit("tenant-a", slow).await.unwrap());
    assert_eq!(
        tenantry.cancel("tenant-a", &id).await.unwrap(),
        JobState::Canceled
    );
    match tenantry.job("tenant-a", &id).await.unwrap() {
        Envelope::Error { error } => assert_eq!(error.code().as_str(), "JOB_CANCELED"),
        other => panic!("expected an error envelope, got {other:?}"),
    }

    // Metrics on the same database: tenant A's requests in the ledger.
    let mut q = tenantry::metrics::MetricsQuery::new();
    q.scope(tenantry::metrics::Scope::Ids(vec!["tenant-a".into()]));
    q.select(
        "requests",
        tenantry::metrics::builtin::requests(tenantry::metrics::Period::all_time()),
    )
    .unwrap();
    let rows = tenantry.metrics(&q).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value("requests"), Some(2));

    engine.shutdown().await.unwrap();
    emulator.shutdown().await;
}

support::on_both_databases!(round_trip);

#[tokio::test]
async fn builder_refuses_bad_settings() {
    let err = Tenantry::builder()
        .database("mysql://nope")
        .api(Config::new("k"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, tenantry::Error::Config(_)), "{err:?}");
    let err = Tenantry::builder()
        .database("sqlite::memory:")
        .api(Config::new("k"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, tenantry::Error::Config(_)), "{err:?}");
    let err = Tenantry::builder()
        .status_path("/jobs with spaces/")
        .api(Config::new("k"))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, tenantry::Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn budgets_are_stored_once_across_restarts() {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    for _ in 0..2 {
        Tenantry::builder()
            .database_pool(Database::Sqlite(db.pool().clone()))
            .api(Config::new("k"))
            .budget("acme", Window::Month, Nanos(5_000))
            .feature_tier("gold", 15_000)
            .tenant_tier("acme", "gold")
            .build()
            .await
            .unwrap();
    }
    let t = Tenantry::builder()
        .database_pool(Database::Sqlite(db.pool().clone()))
        .api(Config::new("k"))
        .build()
        .await
        .unwrap();
    let status = t
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "any", UnixMicros::now())
        .await
        .unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].policy.limit, Nanos(5_000));
}

#[tokio::test]
async fn metrics_roll_up_over_added_tenants() {
    use tenantry::cost::{Lane, LedgerEntry, TokenBuckets};
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let t = Tenantry::builder()
        .database_pool(Database::Sqlite(db.pool().clone()))
        .api(Config::new("k"))
        .build()
        .await
        .unwrap();
    t.add_tenant("org", None).await.unwrap();
    t.add_tenant("org-eu", Some("org")).await.unwrap();
    t.add_tenant("org-us", Some("org")).await.unwrap();
    let at = UnixMicros::from_ymd(2026, 10, 1).unwrap();
    for (i, tenant) in ["org-eu", "org-us", "org-us"].iter().enumerate() {
        t.ledger()
            .record(
                &LedgerEntry::new(
                    "test",
                    format!("r{i}"),
                    tenant.parse().unwrap(),
                    "f",
                    "claude-haiku-4-5",
                    Lane::Batch,
                    at,
                )
                .with_user("u")
                .with_tokens(TokenBuckets {
                    input: 100,
                    output: 10,
                    ..TokenBuckets::default()
                }),
            )
            .await
            .unwrap();
    }
    t.add_member("org-eu", "u").await.unwrap();
    let mut q = tenantry::metrics::MetricsQuery::new();
    q.scope(tenantry::metrics::Scope::All);
    q.select("users", tenantry::metrics::builtin::users())
        .unwrap();
    q.select(
        "requests",
        tenantry::metrics::builtin::requests(tenantry::metrics::Period::all_time()),
    )
    .unwrap();
    let rows = t.metrics(&q).await.unwrap();
    let get = |id: &str| {
        rows.iter()
            .find(|r| r.tenant_id() == id)
            .and_then(|r| r.value("requests"))
    };
    assert_eq!(
        (get("org"), get("org-eu"), get("org-us")),
        (Some(3), Some(1), Some(2))
    );
    assert!(t.add_tenant("bad id!", None).await.is_err());
}

/// Two instances on one PostgreSQL database: the job is submitted on A, run by B's engine, and
/// A's subscriber sees it finish (LISTEN/NOTIFY across instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_share_jobs_and_events() {
    let db = tenantry_testkit::PgDatabase::create().await;
    let emulator = emulator(Duration::from_millis(100)).await;
    let build = || async {
        Tenantry::builder()
            .database(db.url())
            .api(Config::new("sk-test").base_url(emulator.base_url()))
            .engine(fast())
            .event_poll_interval(Duration::from_secs(120)) // only NOTIFY can deliver in time
            .build()
            .await
            .unwrap()
    };
    let a = build().await;
    let b = build().await;
    let engine_b = b.spawn();
    let mut events = a.subscribe("acme").await.unwrap();
    let id = pending_id(&a.submit("acme", request("shared instances")).await.unwrap());
    until_terminal(&mut events, 1).await;
    let out = b
        .job("acme", &id)
        .await
        .unwrap()
        .into_result()
        .expect("succeeded on B");
    assert!(out.text.contains("shared instances"));
    engine_b.shutdown().await.unwrap();
    emulator.shutdown().await;
}
