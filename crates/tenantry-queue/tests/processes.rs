//! Engines as child processes: killed with SIGKILL at random moments and restarted, on
//! PostgreSQL and on a SQLite file, and three running at once on one PostgreSQL database and
//! on one SQLite file (case 11 of the recovery issue: SQLite serialises every write
//! transaction across processes with `BEGIN IMMEDIATE`, and claims, leases and fences are the
//! same statements as on PostgreSQL). The same guarantees hold in every run:
//! every job ends in exactly one terminal state, every billed request has exactly one
//! ledger line, and no request is sent to the API more often than its recorded attempts.
//!
//! This test has its own `main` (`harness = false`): started with `TENANTRY_QUEUE_CHILD_DB`
//! set, the binary is an engine process instead.

use std::time::Duration;

use futures::StreamExt;
use tenantry_emulator::{Emulator, FaultPlan};
use tenantry_queue::planner::FlushPolicy;
use tenantry_queue::{
    ClaimStore, Engine, EngineConfig, JobStore, PgStore, SqliteStore, Submission, SubmitOptions,
    TenantId, UsageRecord, UsageSink,
};

const CHILD_DB: &str = "TENANTRY_QUEUE_CHILD_DB";
const CHILD_API: &str = "TENANTRY_QUEUE_CHILD_API";
/// Set for a child whose store is this SQLite file (the ledger stays on `CHILD_DB`).
const CHILD_SQLITE: &str = "TENANTRY_QUEUE_CHILD_SQLITE";
const JOBS_PER_TENANT: usize = 100;
const TENANTS: usize = 20;

/// A durable ledger stand-in: one row per usage key, counting deliveries.
#[derive(Debug)]
struct TableLedger(sqlx::PgPool);

#[async_trait::async_trait]
impl UsageSink for TableLedger {
    async fn record(&self, usage: &UsageRecord) -> Result<(), tenantry_queue::SinkError> {
        sqlx::query(
            "INSERT INTO test_ledger (key, deliveries) VALUES ($1, 1) \
             ON CONFLICT (key) DO UPDATE SET deliveries = test_ledger.deliveries + 1",
        )
        .bind(usage.key())
        .execute(&self.0)
        .await
        .map_err(tenantry_queue::SinkError::unavailable)?;
        Ok(())
    }
}

fn client(base_url: &str) -> tenantry_batch::Client {
    let retry = tenantry_batch::RetryPolicy::default()
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .max_retry_after(Duration::from_millis(50));
    tenantry_batch::Client::new(
        tenantry_batch::Config::new("sk-test")
            .base_url(base_url)
            .retry(retry),
    )
    .unwrap()
}

/// The child: an engine that runs until it is killed.
async fn child(db: String, api: String, sqlite: Option<String>) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db)
        .await
        .unwrap();
    let ledger = std::sync::Arc::new(TableLedger(pool.clone()));
    match sqlite {
        Some(path) => {
            let file = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let lite = sqlx::SqlitePool::connect_with(file).await.unwrap();
            run(SqliteStore::open(lite).await.unwrap(), &api, ledger).await;
        }
        None => run(PgStore::open(pool).await.unwrap(), &api, ledger).await,
    }
}

async fn run<S: ClaimStore>(store: S, api: &str, ledger: std::sync::Arc<TableLedger>) {
    let config = EngineConfig::new()
        .lease(Duration::from_millis(800))
        .poll_interval(Duration::from_millis(30), Duration::from_millis(100))
        .flush(FlushPolicy::new().max_requests(150))
        .max_attempts(8)
        .chunk(50)
        .idle(Duration::from_millis(20));
    let engine = Engine::new(store, client(api), ledger, config);
    engine.run(std::future::pending()).await.unwrap();
}

/// The databases of one run: the ledger (and, without SQLite, the store) on PostgreSQL.
struct Run {
    db: tenantry_testkit::PgDatabase,
    lite: Option<tenantry_testkit::SqliteDatabase>,
    emu: Emulator,
    jobs: usize,
}

impl Run {
    fn spawn_child(&self) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        command
            .env(CHILD_DB, self.db.url())
            .env(CHILD_API, self.emu.base_url());
        if let Some(lite) = &self.lite {
            command.env(CHILD_SQLITE, lite.path());
        }
        command
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// One number from the store's tables.
    async fn jobs_scalar(&self, sql: &'static str) -> i64 {
        match &self.lite {
            Some(lite) => sqlx::query_scalar(sql)
                .fetch_one(lite.pool())
                .await
                .unwrap(),
            None => scalar(self.db.pool(), sql).await,
        }
    }

    /// `(state, count)` rows from the store's tables.
    async fn jobs_groups(&self, sql: &'static str) -> Vec<(String, i64)> {
        match &self.lite {
            Some(lite) => sqlx::query_as(sql).fetch_all(lite.pool()).await.unwrap(),
            None => sqlx::query_as(sql).fetch_all(self.db.pool()).await.unwrap(),
        }
    }
}

async fn setup(sqlite: bool) -> Run {
    let db = tenantry_testkit::PgDatabase::create().await;
    sqlx::query("CREATE TABLE test_ledger (key text PRIMARY KEY, deliveries int NOT NULL)")
        .execute(db.pool())
        .await
        .unwrap();
    let lite = if sqlite {
        Some(tenantry_testkit::SqliteDatabase::create().await)
    } else {
        None
    };
    let store: Box<dyn JobStore> = match &lite {
        Some(lite) => Box::new(SqliteStore::open(lite.pool().clone()).await.unwrap()),
        None => Box::new(PgStore::open(db.pool().clone()).await.unwrap()),
    };
    let faults = FaultPlan::new()
        .with_spec("create:529@0.1")
        .and_then(|p| p.with_spec("retrieve:429=20@0.1"))
        .and_then(|p| p.with_spec("results:500@0.1"))
        .and_then(|p| p.with_spec("list:500@0.1"))
        .and_then(|p| p.with_spec("errored=0.1/overloaded_error"))
        .unwrap();
    let emu = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(200))
        .faults(faults)
        .start()
        .await
        .unwrap();
    for t in 0..TENANTS {
        let tenant = TenantId::new(format!("t{t}")).unwrap();
        let batch: Vec<_> = (0..JOBS_PER_TENANT)
            .map(|i| {
                Submission::new(
                    "f",
                    "u",
                    serde_json::json!({
                        "model": "claude-haiku-4-5", "max_tokens": 16,
                        "messages": [{"role": "user", "content": format!("{t}/{i}")}]
                    }),
                )
                .with_options(
                    SubmitOptions::new().max_wait(Duration::from_millis(1 + 20 * (i % 10) as u64)),
                )
            })
            .collect();
        store.submit_many(&tenant, &batch).await.unwrap();
    }
    Run {
        db,
        lite,
        emu,
        jobs: TENANTS * JOBS_PER_TENANT,
    }
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits until every job is terminal and all usage is handed over.
async fn wait_done(run: &Run) {
    for _ in 0..1200 {
        let open = run.jobs_scalar("SELECT count(*) FROM tenantry_queue_jobs WHERE state IN ('queued','batched','submitted')").await;
        let pending = run
            .jobs_scalar(
                "SELECT count(*) FROM tenantry_queue_jobs WHERE usage_state IN ('pending', 'sending')",
            )
            .await;
        if open == 0 && pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = run
        .jobs_groups("SELECT state, count(*) FROM tenantry_queue_jobs GROUP BY state")
        .await;
    let batches = run
        .jobs_groups("SELECT state, count(*) FROM tenantry_queue_batches GROUP BY state")
        .await;
    panic!("the engines did not finish the jobs within 120 s: jobs {jobs:?}, batches {batches:?}");
}

async fn verify(run: &Run, label: &str) {
    let pool = run.db.pool();
    let emu = &run.emu;
    let jobs = i64::try_from(run.jobs).unwrap();
    let terminal = run.jobs_scalar("SELECT count(*) FROM tenantry_queue_jobs WHERE state IN ('succeeded','failed','canceled','expired')").await;
    assert_eq!(terminal, jobs, "{label}: every job is terminal");
    let once = run
        .jobs_scalar(
            "SELECT count(*) FROM (SELECT job_id FROM tenantry_queue_events \
             WHERE state IN ('succeeded','failed','canceled','expired') GROUP BY job_id HAVING count(*) = 1) t",
        )
        .await;
    assert_eq!(once, jobs, "{label}: exactly one terminal event per job");
    let billed = run
        .jobs_scalar("SELECT count(*) FROM tenantry_queue_jobs WHERE usage IS NOT NULL")
        .await;
    let ledger = scalar(pool, "SELECT count(*) FROM test_ledger").await;
    assert_eq!(
        ledger, billed,
        "{label}: one ledger line per billed request"
    );
    let attempts = run
        .jobs_scalar("SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM tenantry_queue_jobs")
        .await;
    let mut sent = 0_u64;
    let mut succeeded_at_api = 0_u64;
    let mut pages = Box::pin(client(emu.base_url()).batches().list_all(
        tenantry_batch::ListParams::default().limit(100),
        tenantry_batch::Direction::Older,
    ));
    while let Some(b) = pages.next().await {
        let b = b.unwrap();
        sent += b.request_counts.total();
        succeeded_at_api += b.request_counts.succeeded;
    }
    assert_eq!(
        i64::try_from(sent).unwrap(),
        attempts,
        "{label}: no request sent more often than recorded (no duplicate batch)"
    );
    assert_eq!(
        i64::try_from(succeeded_at_api).unwrap(),
        ledger,
        "{label}: everything the API billed is in the ledger"
    );
    let deliveries = scalar(
        pool,
        "SELECT COALESCE(SUM(deliveries), 0)::bigint FROM test_ledger",
    )
    .await;
    println!(
        "{label}: {jobs} jobs, {billed} billed, {sent} requests sent, {deliveries} sink deliveries, faults injected: {}",
        emu.fault_counts().total_injected()
    );
}

async fn sigkill_at_random_moments_then_restart(sqlite: bool) {
    let run = setup(sqlite).await;
    let mut seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    let mut kills = 0;
    for _ in 0..12 {
        let mut child = run.spawn_child();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let wait = 150 + (seed >> 33) % 600;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().await.unwrap(); // SIGKILL
        kills += 1;
    }
    let mut last = run.spawn_child();
    wait_done(&run).await;
    last.kill().await.unwrap();
    assert!(kills >= 10);
    let store = if sqlite { "SQLite" } else { "PostgreSQL" };
    verify(&run, &format!("{store}, after {kills} SIGKILLs")).await;
}

async fn three_engine_processes_at_once(sqlite: bool) {
    let run = setup(sqlite).await;
    let mut children: Vec<_> = (0..3).map(|_| run.spawn_child()).collect();
    wait_done(&run).await;
    for c in &mut children {
        c.kill().await.unwrap();
    }
    let store = if sqlite {
        "case_11: one SQLite file"
    } else {
        "one PostgreSQL database"
    };
    verify(&run, &format!("three engine processes on {store}")).await;
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let (Ok(db), Ok(api)) = (std::env::var(CHILD_DB), std::env::var(CHILD_API)) {
        runtime.block_on(child(db, api, std::env::var(CHILD_SQLITE).ok()));
        return;
    }
    runtime.block_on(sigkill_at_random_moments_then_restart(false));
    runtime.block_on(sigkill_at_random_moments_then_restart(true));
    runtime.block_on(three_engine_processes_at_once(false));
    runtime.block_on(three_engine_processes_at_once(true));
}
