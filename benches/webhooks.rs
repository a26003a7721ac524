//! Issue 20's figures: signed webhook deliveries per second to a local receiver that verifies
//! every signature, and how fast a budget threshold event reaches a feed subscriber next to a
//! job event, while the engine ingests batches.
//!
//! Run with: `cargo bench --bench webhooks -- [events] [samples]` (defaults 20,000 events and
//! 200 latency samples; 400 and 10 under `CI=true`). PostgreSQL comes from `tenantry_testkit`
//! (`DATABASE_URL`, local `127.0.0.1:5432`, or a throw-away cluster).
//!
//! Deliveries: `events` `job.queued` events spread over 4 tenants, one endpoint each, sent by
//! one `Sender` (signing, POST over loopback, receiver verifying the HMAC, cursor saves every
//! 100 events); once with the 4 endpoints delivered concurrently and once with one endpoint
//! at a time (`concurrency(1)`), on SQLite and PostgreSQL.
//!
//! Latency (PostgreSQL): each sample is a new tenant with a budget whose 50 % threshold one
//! urgent request's hold crosses; the time from the `submit` call to the `budget.threshold`
//! event and to the job's `job.queued` event on a feed subscription, while another tenant's
//! batch jobs are submitted the whole time to an engine that batches them to the emulator
//! (50 ms per batch) and ingests the results.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use tenantry::cost::{BudgetPolicy, Nanos, UnixMicros, Window};
use tenantry::queue::{Feed, JobStore, Position, Submission, TenantId};
use tenantry::{BUDGET_THRESHOLD, Database, Request, Tenantry, batch::Config, emulator::Emulator};
use tenantry_webhooks::{AddressPolicy, NewEndpoint, Secret, Sender, SenderConfig, Webhooks};

const TENANTS: usize = 4;

struct Receiver {
    secret: Secret,
    accepted: AtomicU64,
    bad: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    if r.secret
        .verify(h("webhook-id"), ts, &body, h("webhook-signature"))
    {
        r.accepted.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    } else {
        r.bad.fetch_add(1, Ordering::Relaxed);
        StatusCode::UNAUTHORIZED
    }
}

async fn receiver() -> (Arc<Receiver>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let r = Arc::new(Receiver {
        secret: Secret::generate(),
        accepted: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

fn params(i: usize) -> serde_json::Value {
    serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": format!("ticket {i}")}]})
}

/// Deliveries per second of `events` events over [`TENANTS`] endpoints.
async fn deliveries(
    store: &dyn JobStore,
    feed: Feed,
    events: usize,
    concurrency: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let hooks =
        Webhooks::new(feed).with_address_policy(AddressPolicy::public_only().allow_private(true));
    hooks.migrate().await?;
    let (r, url) = receiver().await;
    for t in 0..TENANTS {
        let tenant = TenantId::new(format!("t{t}"))?;
        let subs: Vec<Submission> = (0..events / TENANTS)
            .map(|i| Submission::new("chat", "u1", params(i)))
            .collect();
        for chunk in subs.chunks(1_000) {
            store.submit_many(&tenant, chunk).await?;
        }
        hooks
            .register(
                &tenant,
                NewEndpoint::new(&url, r.secret.clone()).starting_after(Position::START),
            )
            .await?;
    }
    let sender = Sender::new(hooks, SenderConfig::new().concurrency(concurrency))?;
    let total = u64::try_from(events / TENANTS * TENANTS)?;
    let started = Instant::now();
    while r.accepted.load(Ordering::Relaxed) < total {
        sender.round().await?;
    }
    let elapsed = started.elapsed();
    assert_eq!(r.bad.load(Ordering::Relaxed), 0, "every signature verifies");
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// The sample at `permille` of the sorted samples (nearest rank, rounded), in milliseconds.
fn percentile(sorted: &[Duration], permille: usize) -> f64 {
    let i = ((sorted.len() - 1) * permille + 500) / 1_000;
    sorted[i].as_secs_f64() * 1_000.0
}

async fn latency(samples: usize) -> Result<(), Box<dyn std::error::Error>> {
    let pg = tenantry_testkit::PgDatabase::create().await;
    let emulator = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(50))
        .start()
        .await?;
    let t = Tenantry::builder()
        .database_pool(Database::Postgres(pg.pool().clone()))
        .api(Config::new("sk-test").base_url(emulator.base_url()))
        .engine(
            tenantry::queue::EngineConfig::new()
                .poll_interval(Duration::from_millis(30), Duration::from_millis(200))
                .idle(Duration::from_millis(10)),
        )
        .build()
        .await?;
    let engine = t.spawn();
    // Ingest load: another tenant's batch jobs, submitted and ingested all along.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (t, stop) = (t.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let reqs = (0..50)
                    .map(|k| {
                        Request::new("load", "u1", params(i + k))
                            .max_wait(Duration::from_millis(20))
                    })
                    .collect();
                t.submit_many("load", reqs).await.expect("load submit");
                i += 50;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let feed = t.feed();
    let (mut alert, mut job) = (Vec::new(), Vec::new());
    for s in 0..samples {
        let tenant = TenantId::new(format!("alert{s}"))?;
        t.ledger()
            .budgets()
            .set(
                &BudgetPolicy::new(tenant.clone(), Window::Month, Nanos(400_000), UnixMicros(0))
                    .with_alerts([500]),
            )
            .await?;
        let mut sub = feed.subscribe_after(&tenant, Position::START).await?;
        let started = Instant::now();
        t.submit(
            tenant.as_str(),
            Request::new("chat", "u1", params(s)).urgent(),
        )
        .await?;
        let (mut a, mut j) = (None, None);
        while a.is_none() || j.is_none() {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await?
                .expect("stream")?;
            if e.kind == BUDGET_THRESHOLD {
                a = Some(started.elapsed());
            } else if e.kind == "job.queued" {
                j = Some(started.elapsed());
            }
        }
        alert.push(a.unwrap_or_default());
        job.push(j.unwrap_or_default());
    }
    stop.store(true, Ordering::Relaxed);
    let submitted = load.await?;
    engine.shutdown().await?;
    alert.sort();
    job.sort();
    println!(
        "threshold event   p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({samples} samples)",
        percentile(&alert, 500),
        percentile(&alert, 990),
        percentile(&alert, 1_000)
    );
    println!(
        "job.queued event  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  (same submits)",
        percentile(&job, 500),
        percentile(&job, 990),
        percentile(&job, 1_000)
    );
    println!(
        "(meanwhile {submitted} batch jobs of another tenant submitted to the running engine)"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let events: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if ci { 400 } else { 20_000 });
    let samples: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if ci { 10 } else { 200 });
    println!("{events} events over {TENANTS} tenants, one endpoint each\n");
    for (name, concurrency) in [
        ("4 endpoints at once", TENANTS),
        ("1 endpoint at a time", 1),
    ] {
        let lite = tenantry_testkit::SqliteDatabase::create().await;
        let store = tenantry::queue::SqliteStore::open(lite.pool().clone()).await?;
        let rate = deliveries(&store, Feed::from(store.clone()), events, concurrency).await?;
        println!("SQLite      {name:<22} {rate:>8.0} deliveries/s");
        let pg = tenantry_testkit::PgDatabase::create().await;
        let store = tenantry::queue::PgStore::open(pg.pool().clone()).await?;
        let rate = deliveries(&store, Feed::from(store.clone()), events, concurrency).await?;
        println!("PostgreSQL  {name:<22} {rate:>8.0} deliveries/s");
    }
    println!();
    latency(samples).await
}
