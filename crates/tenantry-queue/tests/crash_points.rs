//! The crash-point explorer: every named point of the engine's create, reconcile, poll,
//! ingest, urgent and usage paths (`failpoint!` in `src/`), on SQLite and on PostgreSQL, each
//! crashed at, failed at, or raced with a cancel, a deadline or an urgent promotion, then run
//! to quiescence from the database alone and checked against what the API received and billed.
//!
//! Each scenario submits five batch-lane jobs and two urgent ones, with another system's batch
//! of the same size under the same key before it starts and after every crash. When the
//! scenario's point fires the process dies there (the step's task unwinds; the engine, its
//! client and every in-memory state are dropped; a new engine with a new worker id starts on
//! the same database after one lease), or the I/O there fails (the step returns the error and
//! the engine goes on), or something happens elsewhere at that moment first. Then:
//!
//! - **(a)** every job ends in exactly one terminal state within the step bound, and its event
//!   log holds exactly one terminal event;
//! - **(b)** the API received each job's request (by `custom_id` in batches, by a marker in
//!   the prompt for Messages calls) at most once per attempt the store recorded;
//! - **(c)** the sink's lines (deduplicated on [`UsageRecord::key`], as the ledger does, every
//!   redelivery identical) are the requests the API billed, each once, with the usage the API
//!   served at that lane (`service_tier` batch or standard);
//! - **(e)** no batch the engine did not create is recorded, canceled or billed.
//!
//! The points of a submit are explored on their own (`explore_submit_*`): a submit that dies
//! or fails there stores nothing, and the same submit made again stores each job once.
//!
//! The table of points explored is printed; `every_point_in_the_code_is_explored` fails when
//! a point in the source has no scenario, and every scenario fails when its point did not fire.

#![allow(clippy::too_many_lines)]

#[macro_use]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::tenant;
use tenantry_batch::types::Usage;
use tenantry_emulator::{Emulator, FaultPlan};
use tenantry_queue::failpoints::{Action, Hook, Scenario};
use tenantry_queue::{
    ClaimStore, DeadlinePolicy, Engine, EngineConfig, JobFilter, JobId, JobState, Lane, Position,
    SinkError, Submission, SubmitOptions, TenantId, UsageRecord, UsageSink,
};

/// Batch-lane jobs per scenario (one batch) and urgent ones.
const BATCH_JOBS: usize = 5;
const URGENT_JOBS: usize = 2;
/// Steps a scenario may take to reach quiescence: a job that waits longer fails it.
const MAX_STEPS: usize = 400;
const LEASE: Duration = Duration::from_millis(250);
/// A scenario that takes longer is stuck (a deadlock), not slow.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// Scenarios run at once per store.
const PARALLEL: usize = 6;

/// Something that happens elsewhere at a point of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    /// The host cancels the first batch-lane job.
    Cancel,
    /// The host cancels every batch-lane job.
    CancelAll,
    /// The deadline of a job with the `expire` policy passes and another engine's sweep runs.
    Expire,
    /// The deadline of a job with the `urgent` policy passes and another engine's sweep runs.
    Promote,
    /// This engine stalls past its lease while another engine takes the batch over.
    Stall,
}

/// What a rule does when its point is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Do {
    Crash,
    Fail,
    Race(Race),
    RaceThenCrash(Race),
}

/// One scenario: rules per phase (phase `k` is armed after the `k`-th crash), and faults the
/// API injects.
#[derive(Debug, Clone)]
struct Case {
    /// The point the scenario explores (the last rule's).
    point: &'static str,
    mode: String,
    phases: Vec<(&'static str, Do)>,
    /// A rule armed from the start besides the first phase's.
    also: Option<(&'static str, Do)>,
    faults: &'static [&'static str],
    /// Messages calls whose answer never reached the store (lost in transit, or the process
    /// died between the answer and its commit) are billed and cannot be recorded: the
    /// Messages API has no idempotency key to look them up by.
    unrecordable: bool,
}

fn case(phases: &[(&'static str, Do)]) -> Case {
    let (point, last) = *phases.last().expect("one rule at least");
    let mode = match last {
        Do::Crash => "crash".to_owned(),
        Do::Fail => "fail".to_owned(),
        Do::Race(r) => format!("{r:?}+continue").to_lowercase(),
        Do::RaceThenCrash(r) => format!("{r:?}+crash").to_lowercase(),
    };
    let mode = if phases.len() > 1 {
        format!("{mode} (after crash at {})", phases[0].0)
    } else {
        mode
    };
    // Dying, or failing to store, between an answer and its commit loses the answer.
    let unrecordable = phases
        .iter()
        .any(|(p, d)| *p == "urgent.answered" && matches!(d, Do::Crash | Do::Fail));
    Case {
        point,
        mode,
        phases: phases.to_vec(),
        also: None,
        faults: &[],
        unrecordable,
    }
}

fn api(point: &'static str, faults: &'static [&'static str], unrecordable: bool) -> Case {
    Case {
        point,
        mode: format!("api {}", faults.join(",")),
        phases: Vec::new(),
        also: None,
        faults,
        unrecordable,
    }
}

/// Every scenario of the explorer.
fn cases() -> Vec<Case> {
    use Do::{Crash, Fail, Race as R, RaceThenCrash as RC};
    let mut all = Vec::new();
    // Crash and fail at each point a plain run reaches.
    for point in [
        "step.swept",
        "step.taken_over",
        "create.read",
        "store.begin_create.unfrozen",
        "create.begun",
        "create.sent",
        "create.finished",
        "poll.claimed",
        "poll.retrieved",
        "poll.chunk_stored",
        "poll.stored",
        "poll.ended",
        "urgent.claimed",
        "urgent.answered",
        "urgent.stored",
        "usage.claimed",
        "usage.sunk",
        "store.mark_recorded.one_outbox",
        "usage.marked",
    ] {
        all.push(case(&[(point, Crash)]));
        all.push(case(&[(point, Fail)]));
    }
    // Points reached only on the way back from a crash.
    for (first, point) in [
        ("create.begun", "step.taken_over"),
        ("create.begun", "reconcile.listed"),
        ("create.begun", "reconcile.before_abort"),
        ("create.sent", "reconcile.listed"),
        ("create.sent", "reconcile.adopted"),
    ] {
        all.push(case(&[(first, Crash), (point, Crash)]));
        all.push(case(&[(first, Crash), (point, Fail)]));
    }
    // A create whose owner stalled past its lease: the batch is another engine's now.
    all.push(case(&[("create.sent", R(Race::Stall))]));
    for (point, then) in [
        ("duplicate.found", Crash),
        ("duplicate.canceled", Crash),
        ("duplicate.canceled", Fail),
    ] {
        let mut c = case(&[("create.sent", R(Race::Stall))]);
        c.also = Some((point, then));
        c.point = point;
        c.mode = format!("{then:?} (after a stall at create.sent)").to_lowercase();
        all.push(c);
    }
    // Every race with every point of a create, then go on or die.
    for point in [
        "create.read",
        "create.begun",
        "create.sent",
        "create.finished",
    ] {
        for race in [Race::Cancel, Race::Expire, Race::Promote] {
            all.push(case(&[(point, R(race))]));
            all.push(case(&[(point, RC(race))]));
        }
    }
    // The create was out when the process died, and the race happens before the restart.
    for race in [Race::Cancel, Race::Expire, Race::Promote] {
        all.push(case(&[
            ("create.sent", RC(race)),
            ("reconcile.listed", Crash),
        ]));
    }
    // Everything canceled between reading the batch and freezing it: no API call at all.
    for then in [None, Some(Crash), Some(Fail)] {
        let mut c = case(&[("create.read", R(Race::CancelAll))]);
        if let Some(then) = then {
            c.also = Some(("create.closed_empty", then));
            c.point = "create.closed_empty";
            c.mode = format!("{then:?} (after cancel of all at create.read)").to_lowercase();
        }
        all.push(c);
    }
    // The API fails the I/O.
    all.extend([
        api("create.refused", &["create:429:20"], false),
        api("create.refused", &["create:500:20"], false),
        api("reconcile.listed", &["create:reset"], false),
        api("reconcile.adopted", &["create:lost"], false),
        api(
            "poll.retrieved",
            &["retrieve:reset:3", "retrieve:500:3"],
            false,
        ),
        // Damaged in transit: a later download is whole, and nothing billed is lost.
        api("poll.stored", &["results:badline=2"], false),
        api("poll.stored", &["results:garbage=3:2"], false),
        api("poll.stored", &["results:dropline=1:2"], false),
        // Damaged at every download: what the damaged lines billed is never known.
        api("poll.stored", &["results:badline=2@1"], true),
        api("poll.stored", &["results:dropline=1@1"], true),
        api("poll.chunk_stored", &["results:truncate=300:2"], false),
        api("urgent.answered", &["messages:reset"], false),
        api("urgent.answered", &["messages:lost"], true),
        api("urgent.answered", &["messages:429:5"], false),
        api("reconcile.listed", &["create:reset", "list:reset:3"], false),
    ]);
    all
}

/// A sink that keeps one line per key, as the ledger does, and checks that every redelivery
/// is the same line.
#[derive(Debug, Default)]
struct Ledger {
    lines: Mutex<BTreeMap<String, UsageRecord>>,
    redelivered: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl UsageSink for Ledger {
    async fn record(&self, usage: &UsageRecord) -> Result<(), SinkError> {
        let mut lines = self.lines.lock().unwrap();
        match lines.get(&usage.key()) {
            Some(first) => {
                let same = (&first.job, first.lane, &first.usage, &first.batch)
                    == (&usage.job, usage.lane, &usage.usage, &usage.batch);
                if !same {
                    self.redelivered
                        .lock()
                        .unwrap()
                        .push(format!("{} differs: {first:?} vs {usage:?}", usage.key()));
                }
            }
            None => {
                lines.insert(usage.key(), usage.clone());
            }
        }
        Ok(())
    }
}

/// The database behind a store, for what the store's API does not expose.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    /// Rows of two text columns.
    async fn pairs(&self, sql: &'static str) -> Vec<(String, Option<String>)> {
        match self {
            Self::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Self::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// Moves a job's deadline into the past.
    async fn overdue(&self, job: &JobId) {
        let sql = "UPDATE tenantry_queue_jobs SET deadline = 1 WHERE id = $1";
        match self {
            Self::Sqlite(p) => sqlx::query(sql)
                .bind(job.as_str())
                .execute(p)
                .await
                .map(|_| ()),
            Self::Postgres(p) => sqlx::query(sql)
                .bind(job.as_str())
                .execute(p)
                .await
                .map(|_| ()),
        }
        .unwrap();
    }

    /// Batch records not ended yet, and usage not handed to the sink yet.
    async fn open_work(&self) -> usize {
        let batches = self
            .pairs("SELECT id, state FROM tenantry_queue_batches WHERE state <> 'ended'")
            .await;
        let usage = self
            .pairs(
                "SELECT id, usage_state FROM tenantry_queue_jobs \
                 WHERE usage_state IN ('pending', 'sending') \
                 UNION ALL SELECT id, usage_state FROM tenantry_queue_extra_usage \
                 WHERE usage_state IN ('pending', 'sending')",
            )
            .await;
        batches.len() + usage.len()
    }

    /// Batch record → API batch id.
    async fn api_ids(&self) -> HashMap<String, Option<String>> {
        self.pairs("SELECT id, api_batch_id FROM tenantry_queue_batches")
            .await
            .into_iter()
            .collect()
    }
}

fn params(text: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": text}]
    })
}

/// The marker in the prompt of the `i`-th job: the emulator tells Messages calls apart by it.
fn marker(i: usize) -> String {
    format!("request number {i} of the scenario")
}

fn plan(faults: &[&str]) -> FaultPlan {
    let mut plan = FaultPlan::new();
    for spec in faults {
        plan = plan.with_spec(spec).unwrap();
    }
    plan
}

async fn emulator() -> Emulator {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_300);
    Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(100))
        .seed(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        .start()
        .await
        .unwrap()
}

fn client(emu_url: &str) -> tenantry_batch::Client {
    let retry = tenantry_batch::RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .max_retry_after(Duration::from_millis(20));
    tenantry_batch::Client::new(
        tenantry_batch::Config::new("sk-test")
            .base_url(emu_url)
            .retry(retry),
    )
    .unwrap()
}

fn config() -> EngineConfig {
    EngineConfig::new()
        .poll_interval(Duration::from_millis(20), Duration::from_millis(60))
        .lease(LEASE)
        .max_attempts(3)
        .chunk(2)
        .idle(Duration::from_millis(5))
}

/// Another system's batch of the same size, under the same key.
async fn foreign_batch(emu_url: &str, n: &mut usize) {
    let mut body = tenantry_batch::BatchRequests::new();
    for i in 0..BATCH_JOBS {
        let id = format!("foreign-{n}-{i}");
        body.push(&id, &serde_json::from_value(params(&id)).unwrap())
            .unwrap();
    }
    *n += 1;
    client(emu_url).batches().create(body).await.unwrap();
}

/// The jobs of a scenario: `BATCH_JOBS` batch-lane ones (the fourth with the `urgent` deadline
/// policy, the fifth with `expire`, deadlines an hour away) then `URGENT_JOBS` urgent ones.
async fn submit<S: ClaimStore>(store: &S, t: &TenantId) -> Vec<JobId> {
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(3_600);
    let subs: Vec<_> = (0..BATCH_JOBS + URGENT_JOBS)
        .map(|i| {
            let mut options = SubmitOptions::new().max_wait(Duration::from_millis(1));
            options = match i {
                3 => options.deadline(later, DeadlinePolicy::Urgent),
                4 => options.deadline(later, DeadlinePolicy::Expire),
                i if i >= BATCH_JOBS => options.lane(Lane::Urgent),
                _ => options,
            };
            Submission::new("f", "u", params(&marker(i))).with_options(options)
        })
        .collect();
    let ids = store.submit_many(t, &subs).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    ids
}

/// What the race does, as a hook run at the point.
fn race_hook<S: ClaimStore + Clone>(
    race: Race,
    store: &S,
    db: &Db,
    t: &TenantId,
    ids: &[JobId],
    emu_url: &str,
    sink: &Arc<Ledger>,
) -> Hook {
    let (store, db, t, ids, url, sink) = (
        store.clone(),
        db.clone(),
        t.clone(),
        ids.to_vec(),
        emu_url.to_owned(),
        sink.clone(),
    );
    Arc::new(move || {
        let (store, db, t, ids, url, sink) = (
            store.clone(),
            db.clone(),
            t.clone(),
            ids.clone(),
            url.clone(),
            sink.clone(),
        );
        Box::pin(async move {
            match race {
                Race::Cancel | Race::CancelAll => {
                    let n = if race == Race::CancelAll {
                        BATCH_JOBS
                    } else {
                        1
                    };
                    for id in &ids[..n] {
                        let _ = store.cancel(&t, id).await;
                    }
                }
                Race::Expire | Race::Promote => {
                    let job = if race == Race::Expire {
                        &ids[4]
                    } else {
                        &ids[3]
                    };
                    db.overdue(job).await;
                    store.sweep_capped(3).await.unwrap();
                }
                Race::Stall => {
                    tokio::time::sleep(LEASE + LEASE / 2).await;
                    let other = Engine::new(store.clone(), client(&url), sink, config());
                    let _ = other.step().await;
                }
            }
        })
    })
}

/// One scenario's outcome: a line for the table, or why it broke an invariant.
async fn explore<S: ClaimStore + Clone>(case: &Case, store: S, db: Db) -> Result<String, String> {
    let started = Instant::now();
    let emu = emulator().await;
    let url = emu.base_url().to_owned();
    let t = tenant("acme");
    let mut foreign = 0;
    foreign_batch(&url, &mut foreign).await;
    // Faults from now on: another system's creates are not ours to break.
    emu.set_faults(plan(case.faults));
    let ids = submit(&store, &t).await;
    let sink = Arc::new(Ledger::default());
    let scenario = Scenario::new();
    let arm = |phase: usize| {
        let also = case.also.filter(|_| phase == 0);
        for (point, what) in case.phases.get(phase).into_iter().chain(also.as_ref()) {
            let at = scenario.hits().get(point).copied().unwrap_or(0) + 1;
            let hook = |r| race_hook(r, &store, &db, &t, &ids, &url, &sink);
            let action = match *what {
                Do::Crash => Action::Crash,
                Do::Fail => Action::Fail,
                Do::Race(r) => Action::Run(hook(r)),
                Do::RaceThenCrash(r) => Action::RunThenCrash(hook(r)),
            };
            scenario.on(point, at, 1, action);
        }
    };
    arm(0);
    let mut crashes = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut engine = Engine::new(store.clone(), client(&url), sink.clone(), config());
    let mut quiet = 0;
    let mut steps = 0;
    while quiet < 3 {
        steps += 1;
        if steps > MAX_STEPS {
            let states = job_states(&store, &t).await;
            return Err(format!(
                "not quiescent after {MAX_STEPS} steps: {states:?}, {} batch records or \
                 usage rows open; step errors: {first_error:?}",
                db.open_work().await
            ));
        }
        match scenario.run(engine.step()).await {
            Err(_crashed) => {
                crashes += 1;
                // The process is gone: nothing of it survives but the database.
                drop(engine);
                scenario.clear();
                arm(crashes);
                foreign_batch(&url, &mut foreign).await;
                tokio::time::sleep(LEASE).await;
                engine = Engine::new(store.clone(), client(&url), sink.clone(), config());
                quiet = 0;
                continue;
            }
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:?}"));
            }
            Ok(Ok(_)) => {}
        }
        let settled = job_states(&store, &t)
            .await
            .iter()
            .all(|(s, _)| s.is_terminal())
            && db.open_work().await == 0;
        quiet = if settled { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    let fired = scenario.fired();
    for (point, _) in case.phases.iter().chain(&case.also) {
        if !fired.contains(point) {
            return Err(format!("{point} was never reached (fired: {fired:?})"));
        }
    }
    if !scenario.hits().contains_key(case.point) {
        return Err(format!("{} was never reached", case.point));
    }
    let unrecorded = check(&store, &db, &emu, &t, &ids, &sink, case)
        .await
        .map_err(|e| format!("{e}; step errors: {first_error:?}"))?;
    let unrecorded = if unrecorded > 0 {
        format!(", {unrecorded} billed but unrecordable")
    } else {
        String::new()
    };
    Ok(format!(
        "ok: {crashes} crash(es), {errors} failed step(s), {steps} steps, {} ms{unrecorded}",
        started.elapsed().as_millis()
    ))
}

async fn job_states<S: ClaimStore>(store: &S, t: &TenantId) -> Vec<(JobState, u32)> {
    store
        .list(t, &JobFilter::new().limit(100), None)
        .await
        .unwrap()
        .items()
        .iter()
        .map(|j| (j.state, j.attempts))
        .collect()
}

/// Checks (a), (b), (c) and (e) once the scenario is quiescent; returns how many billed
/// requests could not be recorded (allowed only in `unrecordable` cases).
async fn check<S: ClaimStore>(
    store: &S,
    db: &Db,
    emu: &Emulator,
    t: &TenantId,
    ids: &[JobId],
    sink: &Ledger,
    case: &Case,
) -> Result<usize, String> {
    let served = emu.served();
    let ours: HashSet<&str> = ids.iter().map(JobId::as_str).collect();
    // (a) one terminal state, one terminal event.
    let events = store
        .events_after(t, Position::START, 10_000)
        .await
        .unwrap();
    for id in ids {
        let job = store.job(t, id).await.unwrap();
        if !job.state.is_terminal() {
            return Err(format!("(a) {id} is {}", job.state));
        }
        let terminal = events
            .iter()
            .filter(|e| &e.job_id == id && e.state.is_terminal())
            .count();
        if terminal != 1 {
            return Err(format!("(a) {id} has {terminal} terminal events"));
        }
    }
    // (b) received at most once per recorded attempt.
    for (i, id) in ids.iter().enumerate() {
        let job = store.job(t, id).await.unwrap();
        let in_batches: usize = served
            .batches
            .iter()
            .map(|b| b.custom_ids.iter().filter(|c| *c == id.as_str()).count())
            .sum();
        let calls = served
            .messages
            .iter()
            .filter(|m| m.prompt == marker(i))
            .count();
        let received = in_batches + calls;
        if received > job.attempts as usize {
            return Err(format!(
                "(b) {id} ({}) reached the API {received} times ({in_batches} in batches, \
                 {calls} calls) for {} recorded attempts",
                job.state, job.attempts
            ));
        }
    }
    // (e) another system's batches: never recorded, canceled or billed.
    let records = db.api_ids().await;
    let recorded: HashMap<&str, &str> = records
        .iter()
        .filter_map(|(id, api)| api.as_deref().map(|a| (a, id.as_str())))
        .collect();
    for b in &served.batches {
        let foreign = b.custom_ids.iter().any(|c| !ours.contains(c.as_str()));
        if foreign {
            if recorded.contains_key(b.id.as_str()) {
                return Err(format!("(e) foreign batch {} was recorded", b.id));
            }
            if b.canceled {
                return Err(format!("(e) foreign batch {} was canceled", b.id));
            }
        }
        // Another system's batch may still run (a short scenario ends before it does); ours
        // must all have ended.
        if !foreign && !b.ended {
            return Err(format!("batch {} has not ended at quiescence", b.id));
        }
    }
    // (c) the sink's lines are the billed requests, each once, at the lane's price.
    if let Some(bad) = sink.redelivered.lock().unwrap().first() {
        return Err(format!("(c) a redelivered line {bad}"));
    }
    let mut billed_batch: HashMap<(String, String), Usage> = HashMap::new();
    for b in &served.batches {
        if b.custom_ids.iter().all(|c| ours.contains(c.as_str())) {
            for (custom_id, usage) in &b.billed {
                billed_batch.insert((b.id.clone(), custom_id.clone()), typed(usage)?);
            }
        }
    }
    let mut billed_calls: Vec<(usize, Usage, bool)> = Vec::new();
    for m in &served.messages {
        if let Some(i) = (0..ids.len()).find(|i| m.prompt == marker(*i)) {
            billed_calls.push((i, typed(&m.usage)?, false));
        }
    }
    let lines = sink.lines.lock().unwrap().clone();
    for (key, line) in &lines {
        let Some(batch) = &line.batch else {
            return Err(format!("(c) line {key} names no batch or call"));
        };
        if batch.starts_with("qu_") {
            let i = ids.iter().position(|id| *id == line.job).unwrap();
            let Some(call) = billed_calls
                .iter_mut()
                .find(|(j, usage, used)| *j == i && !*used && *usage == line.usage)
            else {
                return Err(format!("(c) line {key} matches no billed Messages call"));
            };
            call.2 = true;
            if tier(&line.usage) != "standard" {
                return Err(format!("(c) urgent line {key} not at the standard tier"));
            }
        } else {
            let Some(Some(api)) = records.get(batch) else {
                return Err(format!("(c) line {key} names unrecorded batch {batch}"));
            };
            let Some(usage) = billed_batch.remove(&(api.clone(), line.job.to_string())) else {
                return Err(format!(
                    "(c) line {key} matches no billed request of {api} (or a second line does)"
                ));
            };
            if usage != line.usage || tier(&line.usage) != "batch" {
                return Err(format!(
                    "(c) line {key} has usage {:?} not {usage:?}",
                    line.usage
                ));
            }
            if line.lane != Lane::Batch {
                return Err(format!(
                    "(c) line {key} billed by a batch is on the {:?} lane (priced at the \
                     synchronous rate)",
                    line.lane
                ));
            }
        }
    }
    if let Some(((api, job), _)) = billed_batch.iter().next()
        && !case.unrecordable
    {
        return Err(format!("(c) {job} billed in {api} has no line"));
    }
    let unrecorded = billed_calls.iter().filter(|c| !c.2).count();
    if unrecorded > 0 && !case.unrecordable {
        return Err(format!(
            "(c) {unrecorded} billed Messages call(s) have no line"
        ));
    }
    Ok(unrecorded + billed_batch.len())
}

fn tier(usage: &Usage) -> String {
    usage
        .service_tier
        .as_ref()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default()
}

/// The API's usage object as the client decodes it.
fn typed(usage: &serde_json::Value) -> Result<Usage, String> {
    serde_json::from_value(usage.clone()).map_err(|e| format!("usage {usage} does not decode: {e}"))
}

/// Runs every case on one store kind, `PARALLEL` at a time, prints the table, and fails with
/// every broken case.
async fn explore_all(store_name: &'static str) {
    let started = Instant::now();
    // `CRASH_POINTS=text` runs only the scenarios whose point and mode contain it.
    let only = std::env::var("CRASH_POINTS").unwrap_or_default();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| format!("{} [{}]", c.point, c.mode).contains(&only))
        .collect();
    let outcomes: Vec<(Case, Result<String, String>)> = futures::stream::iter(cases)
        .map(|case| async move {
            let run = async {
                match store_name {
                    "sqlite" => {
                        let (store, db) = support::sqlite().await;
                        let pool = Db::Sqlite(db.pool().clone());
                        explore(&case, store, pool).await
                    }
                    _ => {
                        let (store, db) = support::postgres().await;
                        let pool = Db::Postgres(db.pool().clone());
                        explore(&case, store, pool).await
                    }
                }
            };
            let outcome = tokio::time::timeout(SCENARIO_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| Err(format!("hung for {SCENARIO_TIMEOUT:?}")));
            (case, outcome)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut table = String::new();
    let mut broken = Vec::new();
    let mut sorted = outcomes;
    sorted.sort_by(|a, b| (a.0.point, &a.0.mode).cmp(&(b.0.point, &b.0.mode)));
    for (case, outcome) in &sorted {
        let text = match outcome {
            Ok(ok) => ok.clone(),
            Err(e) => {
                broken.push(format!("{} [{}]: {e}", case.point, case.mode));
                format!("BROKEN: {e}")
            }
        };
        table.push_str(&format!(
            "| {:<32} | {:<8} | {:<48} | {text} |\n",
            case.point, store_name, case.mode
        ));
    }
    println!(
        "crash-point explorer on {store_name}: {} scenarios in {:.1} s\n| point | store | mode | outcome |\n{table}",
        sorted.len(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_postgres() {
    explore_all("postgres").await;
}

/// The points of a submit, each with the size of call that reaches it: a small call waits for
/// a group's commit, a large one is a write of its own (a `COPY` on PostgreSQL).
const SUBMIT_POINTS: [(&str, usize); 2] = [("store.submit.group", 7), ("store.submit.bulk", 100)];

/// A submit that dies or fails at its point stores nothing (no job, no event); the same submit
/// made again then stores each job once, with one `queued` event each, in input order.
async fn explore_submit<S: ClaimStore>(
    store: S,
    point: &'static str,
    jobs: usize,
    crash: bool,
) -> Result<(), String> {
    let t = tenant("acme");
    let subs: Vec<_> = (0..jobs)
        .map(|i| Submission::new("f", "u", params(&marker(i))))
        .collect();
    let scenario = Scenario::new();
    let action = if crash { Action::Crash } else { Action::Fail };
    scenario.on(point, 1, 1, action);
    match scenario.run(store.submit_many(&t, &subs)).await {
        Err(crashed) if crash && crashed.point == point => {}
        Ok(Err(e)) if !crash && e.to_string() == "database error" => {}
        other => return Err(format!("{point}: the submit went on: {other:?}")),
    }
    let stored = store
        .list(&t, &JobFilter::new().limit(500), None)
        .await
        .map_err(|e| e.to_string())?;
    let events = store
        .events_after(&t, Position::START, 1_000)
        .await
        .map_err(|e| e.to_string())?;
    if !stored.items().is_empty() || !events.is_empty() {
        return Err(format!(
            "{point}: {} jobs and {} events left behind",
            stored.items().len(),
            events.len()
        ));
    }
    let ids = store
        .submit_many(&t, &subs)
        .await
        .map_err(|e| e.to_string())?;
    let events = store
        .events_after(&t, Position::START, 1_000)
        .await
        .map_err(|e| e.to_string())?;
    let evented: Vec<JobId> = events.into_iter().map(|e| e.job_id).collect();
    if evented != ids {
        return Err(format!(
            "{point}: the events after the retry are not one per job"
        ));
    }
    Ok(())
}

async fn explore_submit_points(store_name: &str) {
    let mut broken = Vec::new();
    for (point, jobs) in SUBMIT_POINTS {
        for crash in [true, false] {
            let outcome = if store_name == "sqlite" {
                let (store, _db) = support::sqlite().await;
                explore_submit(store, point, jobs, crash).await
            } else {
                let (store, _db) = support::postgres().await;
                explore_submit(store, point, jobs, crash).await
            };
            let mode = if crash { "crash" } else { "fail" };
            println!("| {point:<32} | {store_name:<8} | {mode:<48} | {outcome:?} |");
            if let Err(e) = outcome {
                broken.push(e);
            }
        }
    }
    assert!(broken.is_empty(), "broken submit points: {broken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_submit_sqlite() {
    explore_submit_points("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_submit_postgres() {
    explore_submit_points("postgres").await;
}

/// The failpoint names in the queue's source.
fn points_in_source() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("failpoint!(\"").skip(1) {
                    if let Some((name, _)) = piece.split_once('"') {
                        found.insert(name.to_owned(), path.display().to_string());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_point_in_the_code_is_explored() {
    let explored: HashSet<&str> = cases()
        .iter()
        .flat_map(|c| {
            let mut p: Vec<&str> = c.phases.iter().chain(&c.also).map(|(p, _)| *p).collect();
            p.push(c.point);
            p
        })
        .chain(SUBMIT_POINTS.map(|(p, _)| p))
        .collect();
    let missing: Vec<_> = points_in_source()
        .into_iter()
        .filter(|(name, _)| !explored.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "points in the code no scenario explores: {missing:?}"
    );
    assert!(points_in_source().len() >= 20, "the scan found the points");
}
