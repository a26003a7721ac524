//! The edges of `submit` and `submit_many` (issue 13, case 9): a step that fails after the
//! budget holds were taken gives them back, any number of requests fits one call, and a
//! `max_tokens` past what the API allows is a validation error naming the field and its limit.
//! Each runs on SQLite and on PostgreSQL.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "metrics"))]

use std::time::Duration;

use tenantry::cost::{Nanos, UnixMicros, Window};
use tenantry::envelope::Code;
use tenantry::queue::{InvalidRequest, MAX_OUTPUT_TOKENS, Position, TenantId};
use tenantry::{Database, Envelope, Request, Tenantry, batch::Config};

mod support;
use support::params;

/// A handle with a $1,000 monthly budget for `acme` and an API nobody answers: these tests
/// never run the engine, so only what `submit` itself does is in the database.
async fn tenantry(database: Database) -> Tenantry {
    Tenantry::builder()
        .database_pool(database)
        .api(Config::new("sk-test").base_url("http://127.0.0.1:9"))
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000_000))
        .build()
        .await
        .unwrap()
}

fn request(text: &str) -> Request {
    Request::new("summaries", "user-1", params(text)).max_wait(Duration::from_secs(60))
}

/// What `acme`'s live holds add up to.
async fn held_amount(tenantry: &Tenantry) -> Nanos {
    let status = tenantry
        .ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap();
    status[0].held
}

/// How many events `acme`'s log holds: one `queued` event per stored job.
async fn stored_jobs(tenantry: &Tenantry) -> usize {
    let acme = TenantId::new("acme").unwrap();
    tenantry
        .jobs()
        .events_after(&acme, Position::START, 100_000)
        .await
        .unwrap()
        .len()
}

/// Runs one statement of test setup on the raw database.
async fn execute(database: &Database, sql: &'static str) {
    match database {
        Database::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        _ => unreachable!("both backends are enabled"),
    }
    .unwrap();
}

/// Recording the user for the metrics comes after the holds are taken; when it failed, the
/// holds used to stay held until their TTL (25 h by default), blocking the tenant's budget.
async fn case_09_member_registration_failure_releases_holds(database: Database) {
    let tenantry = tenantry(database.clone()).await;
    // Registration writes the tenant, the user and the membership: make the last one fail.
    execute(&database, "DROP TABLE tenantry_memberships").await;

    let err = tenantry
        .submit_many("acme", vec![request("first"), request("second")])
        .await
        .unwrap_err();
    assert!(matches!(err, tenantry::Error::Database(_)), "{err:?}");
    assert_eq!(
        held_amount(&tenantry).await,
        Nanos::ZERO,
        "the holds are given back"
    );
    assert_eq!(stored_jobs(&tenantry).await, 0);

    let err = tenantry.submit("acme", request("third")).await.unwrap_err();
    assert!(matches!(err, tenantry::Error::Database(_)), "{err:?}");
    assert_eq!(held_amount(&tenantry).await, Nanos::ZERO);
}

/// 12,000 requests take 12,000 holds (6 bound values each: past SQLite's 32,766 and
/// PostgreSQL's 65,535 in one statement) and store 12,000 jobs; refused, they leave nothing.
async fn case_09_submit_many_above_bind_limits(database: Database) {
    const N: usize = 12_000;
    let tenantry = tenantry(database).await;

    // All or nothing: the last request is refused by the queue after every hold was taken.
    let mut refused: Vec<Request> = (0..N).map(|i| request(&format!("doc {i}"))).collect();
    refused[N - 1] = Request::new(
        "summaries",
        "user-1",
        serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": []}),
    );
    let err = tenantry.submit_many("acme", refused).await.unwrap_err();
    assert_eq!(err.code(), Code::ValidationFailed, "{err:?}");
    assert_eq!(held_amount(&tenantry).await, Nanos::ZERO);
    assert_eq!(stored_jobs(&tenantry).await, 0);

    let requests: Vec<Request> = (0..N).map(|i| request(&format!("doc {i}"))).collect();
    let envelopes = tenantry.submit_many("acme", requests).await.unwrap();
    assert_eq!(envelopes.len(), N);
    let ids: std::collections::HashSet<String> = envelopes
        .iter()
        .map(|e| match e {
            Envelope::Pending { operation } => operation.id().to_string(),
            other => panic!("expected pending, got {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), N, "one job per request");
    assert_eq!(stored_jobs(&tenantry).await, N);
    assert!(held_amount(&tenantry).await > Nanos::ZERO);
}

/// `max_tokens: 2000000000` used to reach the worst-case cost as a token count the ledger
/// cannot price and answer `500`; it is a `422` naming `params.max_tokens` and the API's
/// ceiling, and holds and stores nothing.
async fn case_09_max_tokens_overflow_is_validation_error(database: Database) {
    let tenantry = tenantry(database).await;
    let with_max = |max_tokens: serde_json::Value| {
        let mut p = params("hello");
        p["max_tokens"] = max_tokens;
        Request::new("summaries", "user-1", p)
    };

    for too_many in [
        serde_json::json!(2_000_000_000_u64),
        serde_json::json!(u64::MAX),
        serde_json::json!(MAX_OUTPUT_TOKENS + 1),
    ] {
        let err = tenantry
            .submit("acme", with_max(too_many.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ValidationFailed, "{too_many}: {err:?}");
        assert!(
            matches!(&err, tenantry::Error::Queue(tenantry::queue::Error::Invalid(
                InvalidRequest::Item { index: 0, reason }))
                if **reason == InvalidRequest::MaxTokensAbove { max: MAX_OUTPUT_TOKENS }),
            "{too_many}: {err:?}"
        );
        let problem = err.to_problem();
        assert_eq!(problem.http_status(), 422);
        assert!(
            problem.message().contains("max_tokens") && problem.message().contains("300000"),
            "{}",
            problem.message()
        );
        let limit = &problem.details().expect("details").limits[0];
        assert_eq!(
            (limit.name.as_str(), limit.max),
            ("params.max_tokens", MAX_OUTPUT_TOKENS)
        );
    }
    // In a batch, the refused item is named and nothing of the call is held.
    let err = tenantry
        .submit_many(
            "acme",
            vec![
                request("fine"),
                with_max(serde_json::json!(2_000_000_000_u64)),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            tenantry::Error::Queue(tenantry::queue::Error::Invalid(InvalidRequest::Item {
                index: 1,
                ..
            }))
        ),
        "{err:?}"
    );
    assert_eq!(held_amount(&tenantry).await, Nanos::ZERO);
    assert_eq!(stored_jobs(&tenantry).await, 0);

    // The ceiling itself is accepted.
    let accepted = tenantry
        .submit("acme", with_max(serde_json::json!(MAX_OUTPUT_TOKENS)))
        .await
        .unwrap();
    assert!(matches!(accepted, Envelope::Pending { .. }));
    assert_eq!(stored_jobs(&tenantry).await, 1);
}

support::on_both_databases!(
    case_09_member_registration_failure_releases_holds,
    case_09_submit_many_above_bind_limits,
    case_09_max_tokens_overflow_is_validation_error,
);
