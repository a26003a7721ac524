//! Queue throughput on local PostgreSQL and SQLite: submits, result ingest, and event latency.
//!
//! Prints, for each store (PostgreSQL first, then SQLite), on a fresh database each:
//!
//! 1. `submit_many`: 100 calls of 1,000 jobs (one tenant), jobs per second, against the same
//!    rows written by one bare multi-row `INSERT` per 1,000 into a plain table (the floor the
//!    database sets; on PostgreSQL also by one bare `COPY` per 1,000, its own bulk load);
//!    Then `submit_many` calls of varied sizes (1 to 1,000 jobs, 100,000 in all), as a host
//!    submitting whatever each request brings sends them;
//! 2. single `submit` from 8 concurrent tasks, 500 each, submits per second;
//! 3. ingest of a 100,000-request batch's results (jobs updated, events appended, usage
//!    stored for the ledger) in chunks of 500, results per second;
//! 4. event latency from each ingest commit to a subscriber of the tenant, p50 and p99.
//!
//! `cargo bench --bench queue_throughput [-- postgres|sqlite]` (both stores without an
//! argument). With `CI` set every figure is a short smoke run of a few thousand jobs.
//!
//! `cargo bench --bench queue_throughput -- --telemetry [ROUNDS]` measures instead what
//! telemetry costs the `submit_many` and ingest figures on PostgreSQL: each round measures
//! both with telemetry on (a Prometheus recorder recording every metric, and a `tracing`
//! subscriber keeping every span at `info` and formatting every event into a sink) and off (no
//! recorder records, no subscriber), in ABBA order so drift in the machine's load falls on
//! both. With `CI` set it is one small round.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tracing::instrument::WithSubscriber;

use futures_util::StreamExt;
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    ClaimStore, ItemOutcome, JobId, PgStore, ResultItem, SqliteStore, Submission, SubmitOptions,
    TenantId, WorkerId,
};

/// A fresh database of one kind, kept alive as long as its store is measured.
enum Db {
    Pg(tenantry_testkit::PgDatabase),
    Lite(tenantry_testkit::SqliteDatabase),
}

/// One of the two stores, opened on a fresh database.
trait Bench: ClaimStore + Clone {
    const NAME: &'static str;
    async fn fresh() -> (Self, Db);
}

impl Bench for PgStore {
    const NAME: &'static str = "postgres";
    async fn fresh() -> (Self, Db) {
        let db = tenantry_testkit::PgDatabase::create().await;
        let store = PgStore::open(db.pool().clone()).await.expect("open store");
        (store, Db::Pg(db))
    }
}

impl Bench for SqliteStore {
    const NAME: &'static str = "sqlite";
    async fn fresh() -> (Self, Db) {
        let db = tenantry_testkit::SqliteDatabase::create().await;
        let store = SqliteStore::open(db.pool().clone())
            .await
            .expect("open store");
        (store, Db::Lite(db))
    }
}

/// How much each figure measures: the full run, or the short smoke run of CI.
#[derive(Clone, Copy)]
struct Sizes {
    /// `submit_many` calls of 1,000 jobs.
    calls: usize,
    /// Single submits per task (8 tasks).
    singles: usize,
    /// Results ingested (a multiple of 5,000).
    results: usize,
}

impl Sizes {
    fn get() -> Self {
        if std::env::var_os("CI").is_some() {
            Self {
                calls: 3,
                singles: 25,
                results: 5_000,
            }
        } else {
            Self {
                calls: CALLS,
                singles: 500,
                results: 100_000,
            }
        }
    }
}

fn submission(i: usize, wait: Duration) -> Submission {
    Submission::new(
        "bench",
        format!("user-{}", i % 100),
        serde_json::json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": format!("Summarise ticket #{i} in one line.")}]
        }),
    )
    .with_options(SubmitOptions::new().max_wait(wait))
}

fn per_sec(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// `submit_many` calls of 1,000 jobs each.
const CALLS: usize = 100;

/// `calls` calls of `submit_many` with 1,000 jobs each into a fresh store: how long they took.
async fn time_submit_many<S: Bench>(
    calls: usize,
) -> Result<(Duration, Vec<Vec<Submission>>, Db), Box<dyn std::error::Error>> {
    let (store, db) = S::fresh().await;
    let tenant = TenantId::new("bench")?;
    let batches: Vec<Vec<Submission>> = (0..calls)
        .map(|b| {
            (0..1000)
                .map(|i| submission(b * 1000 + i, Duration::from_secs(3600)))
                .collect()
        })
        .collect();
    let start = Instant::now();
    for batch in &batches {
        store.submit_many(&tenant, batch).await?;
    }
    Ok((start.elapsed(), batches, db))
}

const PLAIN_TABLE: &str = "CREATE TABLE plain_jobs (id text PRIMARY KEY, tenant text, feature text, \
     user_id text, params text, metadata text, created_at bigint)";
const PLAIN_INSERT: &str =
    "INSERT INTO plain_jobs (id, tenant, feature, user_id, params, metadata, created_at) ";

/// The comparison: the same rows' text in a plain table, one bare multi-row `INSERT` per
/// 1,000 (each its own transaction, as each `submit_many` call is).
async fn bare_insert(
    db: &Db,
    batches: &[Vec<Submission>],
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start;
    match db {
        Db::Pg(db) => {
            sqlx::query(PLAIN_TABLE).execute(db.pool()).await?;
            start = Instant::now();
            for (b, batch) in batches.iter().enumerate() {
                let mut q = sqlx::QueryBuilder::new(PLAIN_INSERT);
                q.push_values(batch.iter().enumerate(), |mut row, (i, s)| {
                    row.push_bind(format!("job_{b}_{i}"))
                        .push_bind("bench")
                        .push_bind(&s.feature)
                        .push_bind(&s.user)
                        .push_bind(s.params.to_string())
                        .push_bind("{}")
                        .push_bind(0_i64);
                });
                q.build().execute(db.pool()).await?;
            }
        }
        Db::Lite(db) => {
            sqlx::query(PLAIN_TABLE).execute(db.pool()).await?;
            start = Instant::now();
            for (b, batch) in batches.iter().enumerate() {
                let mut q = sqlx::QueryBuilder::new(PLAIN_INSERT);
                q.push_values(batch.iter().enumerate(), |mut row, (i, s)| {
                    row.push_bind(format!("job_{b}_{i}"))
                        .push_bind("bench")
                        .push_bind(&s.feature)
                        .push_bind(&s.user)
                        .push_bind(s.params.to_string())
                        .push_bind("{}")
                        .push_bind(0_i64);
                });
                q.build().execute(db.pool()).await?;
            }
        }
    }
    Ok(start.elapsed())
}

/// PostgreSQL's own bulk load of the same rows: one bare `COPY` per 1,000 into a second
/// plain table (the rows' text has no tab, newline or backslash, so it needs no escaping).
async fn bare_copy(
    db: &tenantry_testkit::PgDatabase,
    batches: &[Vec<Submission>],
) -> Result<Duration, Box<dyn std::error::Error>> {
    sqlx::query(
        "CREATE TABLE copied_jobs (id text PRIMARY KEY, tenant text, feature text, \
         user_id text, params text, metadata text, created_at bigint)",
    )
    .execute(db.pool())
    .await?;
    let start = Instant::now();
    for (b, batch) in batches.iter().enumerate() {
        let mut data = String::with_capacity(batch.len() * 200);
        for (i, s) in batch.iter().enumerate() {
            let params = s.params.to_string();
            assert!(!params.contains(['\\', '\t', '\n', '\r']));
            data.push_str(&format!(
                "job_{b}_{i}\tbench\t{}\t{}\t{params}\t{{}}\t0\n",
                s.feature, s.user
            ));
        }
        let mut conn = db.pool().acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY copied_jobs (id, tenant, feature, user_id, params, metadata, created_at) \
                 FROM STDIN",
            )
            .await?;
        copy.send(data.as_bytes()).await?;
        copy.finish().await?;
    }
    Ok(start.elapsed())
}

async fn submit_many<S: Bench>(sizes: Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let (queue, batches, db) = time_submit_many::<S>(sizes.calls).await?;
    let jobs = sizes.calls * 1000;
    let plain = bare_insert(&db, &batches).await?;
    let copy = match &db {
        Db::Pg(pg) => {
            let copy = bare_copy(pg, &batches).await?;
            format!("; bare COPY: {:.0} rows/s", per_sec(jobs, copy))
        }
        Db::Lite(_) => String::new(),
    };
    println!(
        "{}: submit_many: {jobs} jobs in {:.2} s = {:.0} jobs/s (bare multi-row INSERT of the same rows: {:.0} rows/s, ratio {:.2}{copy})",
        S::NAME,
        queue.as_secs_f64(),
        per_sec(jobs, queue),
        per_sec(jobs, plain),
        plain.as_secs_f64() / queue.as_secs_f64(),
    );
    Ok(())
}

/// `submit_many` with call sizes spread over 1..=1,000 (a fixed pseudo-random sequence).
async fn submit_many_varied<S: Bench>(sizes: Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let (store, _db) = S::fresh().await;
    let tenant = TenantId::new("bench")?;
    let mut calls: Vec<Vec<Submission>> = Vec::new();
    let (mut total, mut state) = (0_usize, 0x9e37_79b9_u64);
    while total < sizes.calls * 1000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let size = (1 + (state >> 33) as usize % 1000).min(sizes.calls * 1000 - total);
        calls.push(
            (total..total + size)
                .map(|i| submission(i, Duration::from_secs(3600)))
                .collect(),
        );
        total += size;
    }
    let start = Instant::now();
    for call in &calls {
        store.submit_many(&tenant, call).await?;
    }
    let elapsed = start.elapsed();
    println!(
        "{}: submit_many, varied sizes: {total} jobs in {} calls, {:.2} s = {:.0} jobs/s",
        S::NAME,
        calls.len(),
        elapsed.as_secs_f64(),
        per_sec(total, elapsed)
    );
    Ok(())
}

async fn submit_single<S: Bench>(sizes: Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let (store, _db) = S::fresh().await;
    let each = sizes.singles;
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let tenant = TenantId::new(format!("bench-{t}")).expect("tenant");
                for i in 0..each {
                    let s = submission(i, Duration::from_secs(3600));
                    store
                        .submit(&tenant, &s.feature, &s.user, s.params, s.options)
                        .await
                        .expect("submit");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    println!(
        "{}: submit from 8 tasks: {} jobs in {:.2} s = {:.0} submits/s",
        S::NAME,
        8 * each,
        elapsed.as_secs_f64(),
        per_sec(8 * each, elapsed)
    );
    Ok(())
}

/// Results per ingest transaction.
const CHUNK: usize = 500;

async fn ingest<S: Bench>(sizes: Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let n = sizes.results;
    let Ingested {
        elapsed,
        committed,
        chunk_of,
        receiver,
        _store,
    } = time_ingest::<S>(n).await?;
    println!(
        "{}: ingest: {n} results in {:.2} s = {:.0} results/s (chunks of {CHUNK}: jobs + events + usage outbox)",
        S::NAME,
        elapsed.as_secs_f64(),
        per_sec(n, elapsed)
    );
    let received = receiver.await?;
    let mut latencies: Vec<Duration> = received
        .iter()
        .map(|(id, at)| at.saturating_duration_since(committed[chunk_of[id]]))
        .collect();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "{}: event latency, ingest commit to subscriber ({} events): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        S::NAME,
        latencies.len(),
        pct(50).as_secs_f64() * 1000.0,
        pct(99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    Ok(())
}

/// What [`time_ingest`] measured, and the subscriber still receiving its events.
struct Ingested<S> {
    elapsed: Duration,
    committed: Vec<Instant>,
    chunk_of: Arc<HashMap<JobId, usize>>,
    receiver: tokio::task::JoinHandle<Vec<(JobId, Instant)>>,
    /// The store and its database outlive the subscriber's reads.
    _store: (S, Db),
}

/// Ingests the results of an `n`-request batch in chunks of [`CHUNK`] into a fresh store.
async fn time_ingest<S: Bench>(n: usize) -> Result<Ingested<S>, Box<dyn std::error::Error>> {
    let (store, _db) = S::fresh().await;
    let tenant = TenantId::new("bench")?;
    let mut ids: Vec<JobId> = Vec::with_capacity(n);
    for b in 0..(n / 5000) {
        let batch: Vec<_> = (0..5000)
            .map(|i| submission(b * 5000 + i, Duration::from_millis(1)))
            .collect();
        ids.extend(store.submit_many(&tenant, &batch).await?);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let worker = WorkerId::generate();
    let claim = store
        .claim_due(&worker, FlushPolicy::new(), Duration::from_secs(600))
        .await?
        .ok_or("nothing due")?;
    assert_eq!(claim.jobs.len(), n);
    assert!(
        store
            .begin_create(
                &claim.batch,
                &worker,
                Duration::from_secs(600),
                &claim.jobs,
                None
            )
            .await?
            .is_some()
    );
    assert!(
        store
            .finish_create(&claim.batch, &worker, "msgbatch_bench")
            .await?
    );

    let mut events = store.subscribe(&tenant).await?;
    let chunk_of: Arc<HashMap<JobId, usize>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i / CHUNK))
            .collect(),
    );
    let receiver = tokio::spawn(async move {
        let mut received = Vec::with_capacity(n);
        while received.len() < n {
            let event = events.next().await.expect("live").expect("event");
            received.push((event.job_id, Instant::now()));
        }
        received
    });
    let message = serde_json::json!({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Customer cannot log in after the password reset; escalated."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 31, "output_tokens": 17, "service_tier": "batch"}
    });
    let message: Box<tenantry_batch::types::Message> = Box::new(serde_json::from_value(message)?);
    let mut committed = Vec::with_capacity(n / CHUNK);
    let start = Instant::now();
    for chunk in ids.chunks(CHUNK) {
        let items: Vec<ResultItem> = chunk
            .iter()
            .map(|id| ResultItem {
                job: id.clone(),
                outcome: ItemOutcome::Succeeded {
                    message: message.clone(),
                },
            })
            .collect();
        let counts = store.ingest(&claim.batch, &items, 3).await?;
        assert_eq!(counts.succeeded, chunk.len() as u64);
        committed.push(Instant::now());
    }
    let elapsed = start.elapsed();
    Ok(Ingested {
        elapsed,
        committed,
        chunk_of,
        receiver,
        _store: (store, _db),
    })
}

/// A recorder that records into Prometheus while switched on and hands out no-op handles
/// while off (what the `metrics` macros get when no recorder is installed).
#[derive(Debug)]
struct Switch {
    on: AtomicBool,
    prometheus: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.prometheus.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.prometheus.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.prometheus.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

/// One measurement of both figures, with telemetry on or off.
async fn telemetry_round(
    switch: &Switch,
    on: bool,
    calls: usize,
    results: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    switch.on.store(on, Ordering::Relaxed);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let dispatch = if on {
        tracing::Dispatch::new(subscriber)
    } else {
        tracing::Dispatch::none()
    };
    let measure = async {
        let (submitted, _, _db) = time_submit_many::<PgStore>(calls).await?;
        let ingested = time_ingest::<PgStore>(results).await?;
        ingested.receiver.await?;
        Ok::<_, Box<dyn std::error::Error>>((
            per_sec(calls * 1000, submitted),
            per_sec(results, ingested.elapsed),
        ))
    };
    let figures = measure.with_subscriber(dispatch).await?;
    println!(
        "  telemetry {:>3}: submit_many {:>6.0} jobs/s, ingest {:>6.0} results/s",
        if on { "on" } else { "off" },
        figures.0,
        figures.1
    );
    Ok(figures)
}

/// `--telemetry [ROUNDS]`: `submit_many` and ingest with telemetry on and off, alternately.
async fn telemetry_overhead(rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("CI").is_some();
    let (rounds, calls, results) = if smoke {
        (1, 2, 5_000)
    } else {
        (rounds, CALLS, 100_000)
    };
    let prometheus = PrometheusBuilder::new().build_recorder();
    let handle = prometheus.handle();
    let switch: &'static Switch = Box::leak(Box::new(Switch {
        on: AtomicBool::new(false),
        prometheus,
    }));
    metrics::set_global_recorder(switch).map_err(|e| e.to_string())?;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        println!("round {}", round + 1);
        // ABBA: on first in even rounds, off first in odd ones.
        for first_on in [round % 2 == 0, round % 2 != 0] {
            let figures = telemetry_round(switch, first_on, calls, results).await?;
            if first_on {
                on.push(figures)
            } else {
                off.push(figures)
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let (mut on_submit, mut on_ingest): (Vec<f64>, Vec<f64>) = on.iter().copied().unzip();
    let (mut off_submit, mut off_ingest): (Vec<f64>, Vec<f64>) = off.iter().copied().unzip();
    let (sub_on, sub_off) = (median(&mut on_submit), median(&mut off_submit));
    let (ing_on, ing_off) = (median(&mut on_ingest), median(&mut off_ingest));
    println!(
        "telemetry cost, median of {rounds} rounds: submit_many {sub_off:.0} → {sub_on:.0} jobs/s ({:+.1} %), ingest {ing_off:.0} → {ing_on:.0} results/s ({:+.1} %)",
        (sub_on / sub_off - 1.0) * 100.0,
        (ing_on / ing_off - 1.0) * 100.0
    );
    // What "on" recorded, so the comparison is known to have measured something.
    let rendered = handle.render();
    for name in [
        "tenantry_queue_jobs_submitted_total",
        "tenantry_queue_results_ingested_total{outcome=\"succeeded\"}",
    ] {
        let line = rendered
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("{name} was not recorded"))?;
        println!("  recorded while on: {line}");
    }
    Ok(())
}

/// Every figure on one store.
async fn all<S: Bench>(sizes: Sizes) -> Result<(), Box<dyn std::error::Error>> {
    submit_many::<S>(sizes).await?;
    submit_many_varied::<S>(sizes).await?;
    submit_single::<S>(sizes).await?;
    ingest::<S>(sizes).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--telemetry") {
        let rounds = args.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(4);
        return telemetry_overhead(rounds).await;
    }
    let sizes = Sizes::get();
    // `cargo bench` passes `--bench` first; a store's name picks that store alone.
    let which = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .find(|a| ["postgres", "sqlite"].contains(a));
    if which != Some("sqlite") {
        all::<PgStore>(sizes).await?;
    }
    if which != Some("postgres") {
        all::<SqliteStore>(sizes).await?;
    }
    Ok(())
}
