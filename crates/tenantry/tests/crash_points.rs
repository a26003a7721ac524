//! The facade's crash-point explorer: every named point of `Tenantry::submit`, `cancel`,
//! `Repair::retry`, the hold releaser and the ledger sink (`failpoint!` in `src/`), on SQLite and (with the
//! `postgres` feature) PostgreSQL, crashed at or failed at, then run to quiescence from the
//! database alone (a new `Tenantry`, a new engine) and checked:
//!
//! - **(a)** every stored job is terminal;
//! - **(c)** the ledger holds one line per request the API billed for this tenant, each job's
//!   lines as many as its billed requests, at the lane the API served it on; the one exception,
//!   counted in the table, is a Messages answer that died with the process that asked (the API
//!   offers no way to read it again), and the call that succeeded is always recorded;
//! - **(d)** the tenant's held budget returns to zero when idle, long before the holds'
//!   TTL: given back by the engine's event-driven releaser, or, where no event marks the
//!   moment, by its reconciliation of holds with jobs;
//! - **(e)** no other system's batch is recorded or canceled.
//!
//! The queue's own points are explored in `tenantry-queue`'s `crash_points` test; here one of
//! them (a cancel while the create's outcome is unknown) is raced through the facade, since
//! the hold is the facade's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tenantry::cost::{BudgetPolicy, Nanos, UnixMicros, Window};
use tenantry::emulator::Emulator;
use tenantry::queue::failpoints::{Action, Scenario};
use tenantry::queue::{EngineConfig, JobFilter, TenantId};
use tenantry::{Database, Envelope, Request, Tenantry, batch::Config};

const LEASE: Duration = Duration::from_millis(250);
/// Holds lapse this long after submit: far longer than a scenario takes under load, so a hold
/// given back before it is given back by the engine, not by its TTL.
const TTL: Duration = Duration::from_secs(25);
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
const PARALLEL: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Do {
    Crash,
    Fail,
    /// Cancel the first job through the facade, then die.
    CancelThenCrash,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    point: &'static str,
    what: Do,
    /// Holds that only the engine's reconciliation of holds with jobs can give back (no event
    /// marks the moment): the engine reconciles every second in this case, and once a minute
    /// (the default) in the others, so each path is seen doing its own work.
    by_reconciliation: bool,
    /// The point is armed only once the submitted jobs are settled, for an operator's retry of
    /// the failed one.
    retry: bool,
}

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    for point in [
        "submit.stored",
        "cancel.canceled",
        "holds.released",
        "holds.read",
        "sink.line_built",
        // The submit's holds cross the budget's alert threshold: the alert is written in the
        // holds' transaction, so a crash or a failed write there keeps neither.
        "alerts.appended",
    ] {
        for what in [Do::Crash, Do::Fail] {
            all.push(Case {
                point,
                what,
                by_reconciliation: false,
                retry: false,
            });
        }
    }
    // An operator's retry: a failure between the new hold and the job carrying it gives the
    // hold back in the call; a crash there leaves it to the reconciliation of holds with jobs.
    // Past the store, the retried job carries its hold and the engine gives it back.
    for (point, what, by_reconciliation) in [
        ("retry.held", Do::Crash, true),
        ("retry.held", Do::Fail, false),
        ("retry.stored", Do::Crash, false),
        ("retry.stored", Do::Fail, false),
    ] {
        all.push(Case {
            point,
            what,
            by_reconciliation,
            retry: true,
        });
    }
    // Holds taken, jobs not stored yet: no job carries the holds, and the engine's
    // reconciliation of holds with jobs gives them back.
    all.push(Case {
        point: "submit.held",
        what: Do::Crash,
        by_reconciliation: true,
        retry: false,
    });
    // A job canceled while its create's outcome is unknown keeps its batch; when the create
    // is found never to have happened the job leaves the batch, and the reconciliation of
    // holds with jobs gives its hold back (no event marks that moment).
    all.push(Case {
        point: "create.begun",
        what: Do::CancelThenCrash,
        by_reconciliation: true,
        retry: false,
    });
    all
}

fn params(text: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}]
    })
}

fn marker(i: usize) -> String {
    format!("facade request number {i}")
}

/// Three batch requests (the second one refused by the API: more output tokens than the
/// model allows, so its job fails and the releaser gives its hold back) and one urgent one.
fn requests() -> Vec<Request> {
    (0..4)
        .map(|i| {
            let max_tokens = if i == 1 { 100_000 } else { 16 };
            let r = Request::new("summaries", "user-1", params(&marker(i), max_tokens))
                .max_wait(Duration::from_millis(5));
            if i == 3 { r.urgent() } else { r }
        })
        .collect()
}

fn engine() -> EngineConfig {
    EngineConfig::new()
        .poll_interval(Duration::from_millis(20), Duration::from_millis(60))
        .lease(LEASE)
        .idle(Duration::from_millis(10))
}

async fn tenantry(database: &Database, emu: &Emulator, case: Case) -> Tenantry {
    let reconcile = if case.by_reconciliation {
        Duration::from_secs(1)
    } else {
        tenantry::DEFAULT_HOLD_RECONCILE
    };
    Tenantry::builder()
        .database_pool(database.clone())
        .api(Config::new("sk-test").base_url(emu.base_url()))
        .engine(engine())
        .hold_ttl(TTL)
        .hold_reconcile_interval(reconcile)
        // $100 a month, far above what the scenario spends, with an alert at 0.1 % ($0.10) that
        // the submit's holds (the refused request's alone holds $0.25) cross.
        .budget_policy(
            BudgetPolicy::new(
                TenantId::new("acme").unwrap(),
                Window::Month,
                Nanos::from_usd_micros(100_000_000),
                UnixMicros(0),
            )
            .with_alerts([1]),
        )
        .event_poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap()
}

async fn held_amount(t: &Tenantry) -> Nanos {
    t.ledger()
        .budgets()
        .status(&"acme".parse().unwrap(), "summaries", UnixMicros::now())
        .await
        .unwrap()[0]
        .held
}

/// Usage rows not handed to the ledger yet, and batch records not ended.
async fn open_work(database: &Database) -> i64 {
    let sql = "SELECT (SELECT COUNT(*) FROM tenantry_queue_jobs WHERE usage_state IN ('pending', 'sending')) \
               + (SELECT COUNT(*) FROM tenantry_queue_extra_usage WHERE usage_state IN ('pending', 'sending')) \
               + (SELECT COUNT(*) FROM tenantry_queue_batches WHERE state <> 'ended')";
    match database {
        #[cfg(feature = "postgres")]
        Database::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Database::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        _ => unreachable!("no other database in these tests"),
    }
}

/// Every job terminal, its usage recorded, and no hold left.
async fn idle(t: &Tenantry, database: &Database) -> bool {
    let acme = TenantId::new("acme").unwrap();
    let jobs = t
        .jobs()
        .list(&acme, &JobFilter::new().limit(100), None)
        .await
        .unwrap()
        .into_items();
    let done = jobs.iter().all(|j| j.state.is_terminal()) && open_work(database).await == 0;
    let held = held_amount(t).await != Nanos::ZERO;
    done && !held
}

async fn foreign_batch(emu: &Emulator, n: usize) {
    let mut body = tenantry::batch::BatchRequests::new();
    for i in 0..3 {
        let id = format!("foreign-{n}-{i}");
        body.push(&id, &serde_json::from_value(params(&id, 16)).unwrap())
            .unwrap();
    }
    let client = tenantry::batch::Client::new(Config::new("sk-test").base_url(emu.base_url()));
    client.unwrap().batches().create(body).await.unwrap();
}

async fn explore(case: Case, database: Database) -> Result<String, String> {
    let started = Instant::now();
    let emu = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    foreign_batch(&emu, 0).await;
    let scenario = Scenario::new();
    let mut t = tenantry(&database, &emu, case).await;
    let first_job = Arc::new(std::sync::Mutex::new(None::<String>));
    let action = match case.what {
        Do::Crash => Action::Crash,
        Do::Fail => Action::Fail,
        Do::CancelThenCrash => {
            let (t, first) = (t.clone(), first_job.clone());
            Action::RunThenCrash(Arc::new(move || {
                let (t, first) = (t.clone(), first.clone());
                Box::pin(async move {
                    let id = first.lock().unwrap().clone().unwrap();
                    t.cancel("acme", &id).await.unwrap();
                })
            }))
        }
    };
    if !case.retry {
        scenario.on(case.point, 1, 1, action.clone());
    }
    // Submit, then cancel the first job before anything is sent: all through the facade.
    let mut crashes = 0;
    // Holds count from here.
    let since = Instant::now();
    let submitted = scenario
        .run(async {
            let out = t.submit_many("acme", requests()).await?;
            let ids: Vec<String> = out
                .iter()
                .map(|e| match e {
                    Envelope::Pending { operation } => operation.id().to_string(),
                    other => panic!("pending expected, got {other:?}"),
                })
                .collect();
            *first_job.lock().unwrap() = Some(ids[1].clone());
            if case.point == "cancel.canceled" {
                t.cancel("acme", &ids[0]).await?;
            }
            Ok::<_, tenantry::Error>(ids)
        })
        .await;
    // A failed submit (the I/O at a point) stored nothing or everything; either is fine.
    if submitted.is_err() {
        crashes += 1;
    }
    if crashes > 0 {
        drop(t);
        foreign_batch(&emu, crashes).await;
        tokio::time::sleep(LEASE).await;
        t = tenantry(&database, &emu, case).await;
    }
    t = settle(t, &database, &emu, case, &scenario, &mut crashes, since).await?;
    if case.retry {
        // The second request was refused by the API: its job failed. Retry it with the point
        // armed; the retried request is refused again, so the job fails once more.
        let failed = first_job.lock().unwrap().clone().unwrap();
        scenario.on(case.point, 1, 1, action);
        let retried = scenario.run(t.repair().retry("acme", &failed)).await;
        if retried.is_err() {
            crashes += 1;
            drop(t);
            tokio::time::sleep(LEASE).await;
            t = tenantry(&database, &emu, case).await;
        }
        t = settle(t, &database, &emu, case, &scenario, &mut crashes, since).await?;
    }
    if !scenario.fired().contains(&case.point) {
        return Err(format!("{} was never reached", case.point));
    }
    // (d): idle means no hold left; given back by the engine, long before the TTL.
    if since.elapsed() >= TTL {
        return Err("(d) holds outlived their TTL".to_owned());
    }
    let unrecordable = check(&t, &emu).await?;
    Ok(format!(
        "ok: {crashes} crash(es), holds given back by the {}, {unrecordable} billed but unrecordable, {} ms",
        if case.by_reconciliation {
            "reconciliation"
        } else {
            "engine"
        },
        started.elapsed().as_millis()
    ))
}

/// Runs a fresh engine until every job is terminal, its usage recorded and no hold left,
/// restarting after each crash as a new process would.
async fn settle(
    mut t: Tenantry,
    database: &Database,
    emu: &Emulator,
    case: Case,
    scenario: &Scenario,
    crashes: &mut usize,
    since: Instant,
) -> Result<Tenantry, String> {
    loop {
        if since.elapsed() > SCENARIO_TIMEOUT / 2 {
            return Err("not idle in time".to_owned());
        }
        let watched = t.clone();
        let run = scenario
            .run(async {
                tokio::select! {
                    r = watched.run(std::future::pending()) => r.map(|()| false),
                    () = async {
                        while !idle(&watched, database).await {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                        }
                    } => Ok(true),
                }
            })
            .await;
        match run {
            Ok(Ok(true)) => break,
            Ok(_) => return Err("the engine stopped".to_owned()),
            Err(_) => {
                *crashes += 1;
                drop(t);
                foreign_batch(emu, *crashes).await;
                tokio::time::sleep(LEASE).await;
                t = tenantry(database, emu, case).await;
            }
        }
    }
    Ok(t)
}

/// (a), (c) and (e); returns how many billed Messages calls no ledger line can exist for (an
/// answer lost with the process that asked: the API offers no way to read it again).
async fn check(t: &Tenantry, emu: &Emulator) -> Result<usize, String> {
    let acme = TenantId::new("acme").unwrap();
    let jobs = t
        .jobs()
        .list(&acme, &JobFilter::new().limit(100), None)
        .await
        .unwrap()
        .into_items();
    if let Some(j) = jobs.iter().find(|j| !j.state.is_terminal()) {
        return Err(format!("(a) {} is {}", j.id, j.state));
    }
    let ours: HashSet<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    let marker_of: HashMap<String, String> = jobs
        .iter()
        .filter_map(|j| {
            let text = j.params["messages"][0]["content"].as_str()?.to_owned();
            Some((text, j.id.to_string()))
        })
        .collect();
    let served = emu.served();
    let mut billed: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for b in &served.batches {
        let foreign = b.custom_ids.iter().any(|c| !ours.contains(c));
        if foreign {
            if b.canceled {
                return Err(format!("(e) foreign batch {} canceled", b.id));
            }
            continue;
        }
        for (custom_id, _) in &b.billed {
            *billed.entry((custom_id.clone(), "batch")).or_default() += 1;
        }
    }
    for m in &served.messages {
        if let Some(job) = marker_of.get(&m.prompt) {
            *billed.entry((job.clone(), "sync")).or_default() += 1;
        }
    }
    let mut lines: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for line in t.ledger().lines(&"acme".parse().unwrap()).await.unwrap() {
        let lane = match line.record.lane {
            tenantry::cost::Lane::Batch => "batch",
            _ => "sync",
        };
        let job = line.record.job_id.clone().unwrap_or_default();
        *lines.entry((job, lane)).or_default() += 1;
    }
    let mut unrecordable = 0;
    let keys: std::collections::BTreeSet<_> = billed.keys().chain(lines.keys()).collect();
    for key in keys {
        let (l, b) = (
            lines.get(key).copied().unwrap_or(0),
            billed.get(key).copied().unwrap_or(0),
        );
        let succeeded = jobs
            .iter()
            .any(|j| j.id.to_string() == key.0 && j.state == tenantry::queue::JobState::Succeeded);
        let fine = match key.1 {
            "batch" => l == b,
            // The call that succeeded is always recorded; an earlier one whose answer died
            // with its process is not.
            _ => l <= b && (l >= 1 || !succeeded),
        };
        if !fine {
            return Err(format!(
                "(c) ledger lines {lines:?} but the API billed {billed:?}"
            ));
        }
        if key.1 == "sync" {
            unrecordable += b - l;
        }
    }
    Ok(unrecordable)
}

async fn explore_all(name: &'static str) {
    let started = Instant::now();
    let only = std::env::var("CRASH_POINTS").unwrap_or_default();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| format!("{} [{:?}]", c.point, c.what).contains(&only))
        .collect();
    let outcomes: Vec<(Case, Result<String, String>)> = futures::stream::iter(cases)
        .map(|case| async move {
            let run = async {
                match name {
                    #[cfg(feature = "postgres")]
                    "postgres" => {
                        let db = tenantry_testkit::PgDatabase::create().await;
                        explore(case, Database::Postgres(db.pool().clone())).await
                    }
                    _ => {
                        let db = tenantry_testkit::SqliteDatabase::create().await;
                        explore(case, Database::Sqlite(db.pool().clone())).await
                    }
                }
            };
            let outcome = tokio::time::timeout(SCENARIO_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| Err("hung".to_owned()));
            (case, outcome)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut table = String::new();
    let mut broken = Vec::new();
    for (case, outcome) in &outcomes {
        let text = match outcome {
            Ok(ok) => ok.clone(),
            Err(e) => {
                broken.push(format!("{} [{:?}]: {e}", case.point, case.what));
                format!("BROKEN: {e}")
            }
        };
        table.push_str(&format!(
            "| {:<16} | {name:<8} | {:<16} | {text} |\n",
            case.point,
            format!("{:?}", case.what).to_lowercase()
        ));
    }
    println!(
        "facade crash-point explorer on {name}: {} scenarios in {:.1} s\n| point | store | mode | outcome |\n{table}",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        broken.is_empty(),
        "broken scenarios:\n{}",
        broken.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_sqlite() {
    explore_all("sqlite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_postgres() {
    explore_all("postgres").await;
}

#[test]
fn every_point_in_the_code_is_explored() {
    let explored: HashSet<&str> = cases().iter().map(|c| c.point).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut found = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("failpoint!(\"").skip(1) {
            let (name, _) = piece.split_once('"').unwrap();
            found += 1;
            if !explored.contains(name) {
                missing.push(name.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "points no scenario explores: {missing:?}"
    );
    assert!(found >= 6, "the scan found the points");
}
