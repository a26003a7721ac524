//! What the facade's submit costs: `Tenantry::submit_many` (budget hold per request + queue
//! insert) against the queue's own `submit_many` (insert only), on SQLite and PostgreSQL; and
//! with holds sized by the API's token count (`InputTokens::Counted`, against the in-process
//! emulator on loopback) instead of the estimate.
//!
//! Run with: `cargo bench --bench facade_submit -- [requests]` (default 2,000; 200 under
//! `CI=true`). Requests go in calls of 100 for one tenant with a monthly budget. PostgreSQL comes
//! from `tenantry_testkit` (`DATABASE_URL`, local `127.0.0.1:5432`, or a throw-away cluster).

use std::time::{Duration, Instant};

use tenantry::cost::{Nanos, Window};
use tenantry::queue::{JobStore, Submission, TenantId};
use tenantry::{Database, InputTokens, Request, Tenantry, batch::Config, emulator::Emulator};

const CALL: usize = 100;

fn params(i: usize) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5", "max_tokens": 200,
        "messages": [{"role": "user", "content": format!("Summarise ticket {i}: the parcel arrived late and the box was torn.")}]
    })
}

async fn facade(
    database: Database,
    n: usize,
    api: Config,
    input: InputTokens,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let t = Tenantry::builder()
        .database_pool(database)
        .api(api)
        .input_tokens(input)
        .budget("acme", Window::Month, Nanos::from_usd_micros(1_000_000_000))
        .build()
        .await?;
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(CALL) {
        let requests = chunk
            .iter()
            .map(|&i| Request::new("summaries", "user-1", params(i)))
            .collect();
        t.submit_many("acme", requests).await?;
    }
    Ok(started.elapsed())
}

async fn queue_only(
    store: &dyn JobStore,
    n: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let tenant = TenantId::new("acme")?;
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(CALL) {
        let submissions: Vec<Submission> = chunk
            .iter()
            .map(|&i| Submission::new("summaries", "user-1", params(i)))
            .collect();
        store.submit_many(&tenant, &submissions).await?;
    }
    Ok(started.elapsed())
}

fn per_request(d: Duration, n: usize) -> String {
    let micros = d.as_micros() / u128::try_from(n.max(1)).unwrap_or(1);
    format!("{:>8.3} s  {micros:>6} µs/request", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let n: usize = std::env::args()
        .filter(|a| a != "--bench")
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if ci { 200 } else { 2_000 });
    println!("{n} requests in calls of {CALL}, one tenant with a budget\n");

    let lite_a = tenantry_testkit::SqliteDatabase::create().await;
    let lite_b = tenantry_testkit::SqliteDatabase::create().await;
    let store = tenantry::queue::SqliteStore::open(lite_b.pool().clone()).await?;
    let q = queue_only(&store, n).await?;
    let unused = || Config::new("unused");
    let f = facade(
        Database::Sqlite(lite_a.pool().clone()),
        n,
        unused(),
        InputTokens::Estimate,
    )
    .await?;
    let emulator = Emulator::builder().api_key("sk-test").start().await?;
    let lite_c = tenantry_testkit::SqliteDatabase::create().await;
    let api = Config::new("sk-test").base_url(emulator.base_url());
    let c = facade(
        Database::Sqlite(lite_c.pool().clone()),
        n,
        api,
        InputTokens::Counted,
    )
    .await?;
    println!("SQLite      queue submit_many     {}", per_request(q, n));
    println!("SQLite      Tenantry submit_many  {}", per_request(f, n));
    println!("SQLite      ... counted tokens    {}", per_request(c, n));

    let pg_a = tenantry_testkit::PgDatabase::create().await;
    let pg_b = tenantry_testkit::PgDatabase::create().await;
    let store = tenantry::queue::PgStore::open(pg_b.pool().clone()).await?;
    let q = queue_only(&store, n).await?;
    let f = facade(
        Database::Postgres(pg_a.pool().clone()),
        n,
        unused(),
        InputTokens::Estimate,
    )
    .await?;
    println!("PostgreSQL  queue submit_many     {}", per_request(q, n));
    println!("PostgreSQL  Tenantry submit_many  {}", per_request(f, n));
    Ok(())
}
