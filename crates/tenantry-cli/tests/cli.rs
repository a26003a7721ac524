//! The built `tenantry` binary against SQLite and PostgreSQL: migrate and doctor on a fresh
//! database, jobs and dead letters listed, shown, retried, canceled and purged, budgets set and
//! shown, spend exported, and the exit codes scripts rely on.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tenantry::cost::{Lane as CostLane, LedgerEntry, TokenBuckets, UnixMicros};
use tenantry::queue::planner::FlushPolicy;
use tenantry::queue::{
    ClaimStore, ItemOutcome, JobError, JobId, JobState, MissingResult, PgStore, ResultItem,
    SqliteStore, TenantId, WorkerId,
};
use tenantry::{Database, Envelope, Request, Tenantry, batch::Config};

const LEASE: Duration = Duration::from_secs(60);

/// What one run of the binary printed and how it exited.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

fn tenantry_bin(url: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run the binary");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(url: &str, args: &[&str]) -> Run {
    let run = tenantry_bin(url, args);
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    run
}

fn request(text: &str) -> Request {
    Request::new(
        "summaries",
        "user-1",
        serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": text}]}),
    )
    .max_wait(Duration::from_millis(1))
}

fn pending(envelope: &Envelope<tenantry::JobOutput>) -> String {
    match envelope {
        Envelope::Pending { operation } => operation.id().to_string(),
        other => panic!("expected pending, got {other:?}"),
    }
}

/// Sends every due job in a batch, fails them all for good, as a refused request does, and
/// ends the batch.
async fn fail_due<S: ClaimStore>(store: &S) -> Vec<JobId> {
    let w = WorkerId::generate();
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("due");
    store
        .begin_create(&claim.batch, &w, LEASE, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert!(
        store
            .finish_create(&claim.batch, &w, "msgbatch_x")
            .await
            .unwrap()
    );
    let items: Vec<ResultItem> = claim
        .jobs
        .iter()
        .map(|job| ResultItem {
            job: job.clone(),
            outcome: ItemOutcome::Failed {
                error: JobError {
                    kind: "invalid_request_error".into(),
                    message: "refused".into(),
                },
                retryable: false,
            },
        })
        .collect();
    store.ingest(&claim.batch, &items, 3).await.unwrap();
    // Ended, as the poller does once every result is stored.
    let poll = store
        .claim_poll(&w, LEASE)
        .await
        .unwrap()
        .expect("due for a poll");
    assert_eq!(poll.batch, claim.batch);
    store
        .end_batch(&claim.batch, &w, MissingResult::Fail, 3)
        .await
        .unwrap()
        .expect("held");
    claim.jobs
}

/// Sends every due job in a batch, stores a billed message for each, ends the batch, and
/// dead-letters their usage as a ledger that cannot price it does.
async fn bill_and_dead_letter<S: ClaimStore>(store: &S) -> Vec<JobId> {
    let w = WorkerId::generate();
    let claim = store
        .claim_due(&w, FlushPolicy::new(), LEASE)
        .await
        .unwrap()
        .expect("due");
    store
        .begin_create(&claim.batch, &w, LEASE, &claim.jobs, None)
        .await
        .unwrap()
        .expect("planned");
    assert!(
        store
            .finish_create(&claim.batch, &w, "msgbatch_y")
            .await
            .unwrap()
    );
    let message: tenantry::batch::types::Message = serde_json::from_value(serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 34}
    }))
    .unwrap();
    let items: Vec<ResultItem> = claim
        .jobs
        .iter()
        .map(|job| ResultItem {
            job: job.clone(),
            outcome: ItemOutcome::Succeeded {
                message: Box::new(message.clone()),
            },
        })
        .collect();
    store.ingest(&claim.batch, &items, 3).await.unwrap();
    let records = store.claim_usage(&w, 10, LEASE).await.unwrap();
    let dead: Vec<_> = records
        .into_iter()
        .map(|r| {
            (
                r,
                "model `claude-haiku-4-5` is not in the price book".to_owned(),
            )
        })
        .collect();
    store.dead_letter_usage(&dead).await.unwrap();
    claim.jobs
}

async fn admin_commands(database: Database, url: &str) {
    // A fresh database: nothing but `migrate` and `doctor` runs, and both say why.
    let run = tenantry_bin(url, &["jobs", "list", "--tenant", "acme"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.stderr.contains("tenantry migrate"), "{run:?}");
    let run = tenantry_bin(url, &["--json", "doctor"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(run.json()["ok"], false);
    let dry = ok(url, &["--json", "migrate", "--dry-run"]).json();
    let pending_count = dry["pending"].as_array().unwrap().len();
    assert!(pending_count > 10, "{dry}");
    let applied = ok(url, &["--json", "migrate"]).json();
    assert_eq!(applied["applied"].as_array().unwrap().len(), pending_count);
    assert!(
        applied["applied"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["component"] == "queue" && m["version"] == 10),
        "{applied}"
    );
    assert!(ok(url, &["migrate"]).stdout.contains("nothing to apply"));
    let doctor = ok(url, &["--json", "doctor"]).json();
    assert_eq!(doctor["ok"], true, "{doctor}");
    let names: Vec<&str> = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for check in [
        "schema",
        "stuck jobs",
        "dead-lettered usage",
        "event listeners",
        "clock offset",
    ] {
        assert!(names.contains(&check), "{doctor}");
    }

    // Jobs of two tenants, through the library: acme's two fail, one of globex waits.
    let t = Tenantry::builder()
        .database_pool(database.clone())
        .api(Config::new("sk-test").base_url("http://127.0.0.1:9"))
        .build()
        .await
        .unwrap();
    let first = pending(&t.submit("acme", request("one")).await.unwrap());
    let second = pending(&t.submit("acme", request("two")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failed = match &database {
        Database::Sqlite(pool) => fail_due(&SqliteStore::open(pool.clone()).await.unwrap()).await,
        Database::Postgres(pool) => fail_due(&PgStore::open(pool.clone()).await.unwrap()).await,
        _ => unreachable!("both backends are compiled in"),
    };
    assert_eq!(failed.len(), 2);
    let theirs = pending(
        &t.submit(
            "globex",
            request("theirs").max_wait(Duration::from_secs(3600)),
        )
        .await
        .unwrap(),
    );
    let acme = TenantId::new("acme").unwrap();

    // The batch that failed them, as an operator sees it.
    let batches = ok(url, &["--json", "batches", "list"]).json();
    let batch = &batches["batches"][0];
    assert_eq!(batch["requests"], 2, "{batches}");
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let shown = ok(url, &["--json", "batches", "show", &batch_id]).json();
    let mut members: Vec<&str> = shown["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(
                (&j["tenant"], &j["state"]),
                (&Value::from("acme"), &Value::from("failed"))
            );
            j["id"].as_str().unwrap()
        })
        .collect();
    members.sort_unstable();
    let mut sent = vec![first.as_str(), second.as_str()];
    sent.sort_unstable();
    assert_eq!(members, sent);
    assert_eq!(tenantry_bin(url, &["batches", "show", "qb_nope"]).code, 3);
    let run = tenantry_bin(url, &["batches", "reconcile", &batch_id]);
    assert_eq!(run.code, 6, "{run:?}");
    assert!(
        run.stderr.contains("is ended: only a submitted batch"),
        "{run:?}"
    );
    assert_eq!(
        tenantry_bin(url, &["batches", "reconcile", "qb_nope"]).code,
        3
    );

    // Listed and shown, tenant by tenant.
    let list = ok(
        url,
        &[
            "--json", "jobs", "list", "--tenant", "acme", "--state", "failed",
        ],
    )
    .json();
    let mut ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let table = ok(url, &["jobs", "list", "--tenant", "acme"]).stdout;
    assert!(
        table.starts_with("id ") && table.contains(&first) && table.contains("failed"),
        "{table}"
    );
    let shown = ok(url, &["--json", "jobs", "show", "--tenant", "acme", &first]).json();
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["error"]["message"], "refused");
    assert_eq!(
        tenantry_bin(url, &["jobs", "show", "--tenant", "globex", &first]).code,
        3
    );
    assert_eq!(
        tenantry_bin(url, &["jobs", "show", "--tenant", "acme", "job_nope"]).code,
        3
    );
    let dead = ok(url, &["--json", "dead-letters", "list", "--tenant", "acme"]).json();
    assert_eq!(dead["failed"].as_array().unwrap().len(), 2);
    assert_eq!(dead["unpriced_usage"].as_array().unwrap().len(), 0);
    let dead = ok(
        url,
        &["--json", "dead-letters", "list", "--tenant", "globex"],
    )
    .json();
    assert_eq!(dead["failed"].as_array().unwrap().len(), 0);

    // Another tenant cannot retry acme's job: not found, and nothing changes.
    let run = tenantry_bin(url, &["jobs", "retry", "--tenant", "globex", &first]);
    assert_eq!(run.code, 3, "{run:?}");
    let job = t.jobs().job(&acme, &first.parse().unwrap()).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    let old_hold = job.hold;

    // Retried: queued again with a new budget hold, the old one given back.
    let retried = ok(
        url,
        &["--json", "jobs", "retry", "--tenant", "acme", &first],
    )
    .json();
    assert_eq!(retried["results"][0]["state"], "queued", "{retried}");
    let job = t.jobs().job(&acme, &first.parse().unwrap()).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.hold.is_some() && job.hold != old_hold);
    // Not retryable while it waits: refused.
    let run = tenantry_bin(url, &["jobs", "retry", "--tenant", "acme", &first]);
    assert_eq!(run.code, 6, "{run:?}");
    // `dead-letters retry --all` takes the other failed job.
    let all = ok(
        url,
        &[
            "--json",
            "dead-letters",
            "retry",
            "--tenant",
            "acme",
            "--all",
        ],
    )
    .json();
    assert_eq!(all["results"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["results"][0]["id"], second.as_str());
    assert_eq!(
        ok(
            url,
            &["--json", "dead-letters", "reprice", "--tenant", "acme"]
        )
        .json()["repriced"],
        0
    );

    // Canceled (twice: the second changes nothing) and then purged; globex's open job stays.
    let canceled = ok(
        url,
        &[
            "--json", "jobs", "cancel", "--tenant", "acme", &first, &second,
        ],
    )
    .json();
    assert!(
        canceled["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "canceled"),
        "{canceled}"
    );
    ok(url, &["jobs", "cancel", "--tenant", "acme", &first]);
    let purged = ok(
        url,
        &[
            "--json",
            "jobs",
            "purge",
            "--tenant",
            "acme",
            "--older-than",
            "0s",
            "--batch-size",
            "1",
        ],
    )
    .json();
    assert_eq!(purged["jobs"], 2, "{purged}");
    assert!(purged["transactions"].as_u64().unwrap() >= 2);
    assert_eq!(
        tenantry_bin(url, &["jobs", "show", "--tenant", "acme", &first]).code,
        3
    );
    let globex = TenantId::new("globex").unwrap();
    assert_eq!(
        t.jobs()
            .job(&globex, &theirs.parse().unwrap())
            .await
            .unwrap()
            .state,
        JobState::Queued
    );

    // Budgets: set, then shown with this window's spend.
    ok(
        url,
        &["budgets", "set", "--tenant", "acme", "--limit-usd", "12.5"],
    );
    let budgets = ok(url, &["--json", "budgets", "show", "--tenant", "acme"]).json();
    let rows = budgets["budgets"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{budgets}");
    assert_eq!(rows[0]["limit_nanos"], 12_500_000_000_i64);
    let status = t
        .ledger()
        .budgets()
        .status(&acme, "", UnixMicros::now())
        .await
        .unwrap();
    assert_eq!(rows[0]["held_nanos"], status[0].held.0);

    // Spend: the ledger's figures, exactly, in each format.
    let line = LedgerEntry::new(
        "anthropic-batch",
        "req-1",
        acme.clone(),
        "summaries, long",
        "claude-haiku-4-5",
        CostLane::Batch,
        UnixMicros::from_ymd(2026, 11, 15).unwrap(),
    )
    .with_user("user-1")
    .with_tokens(TokenBuckets {
        input: 1_000,
        output: 500,
        ..TokenBuckets::default()
    });
    let recorded = t.ledger().record(&line).await.unwrap();
    let spend = ok(
        url,
        &[
            "spend",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--by",
            "feature",
            "--format",
            "json",
        ],
    )
    .json();
    assert_eq!(spend["rows"][0]["key"], "summaries, long");
    assert_eq!(spend["rows"][0]["cost_nanos"], recorded.cost.cost.0);
    assert_eq!(spend["rows"][0]["lines"], 1);
    let csv = ok(
        url,
        &[
            "spend",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--by",
            "feature",
            "--format",
            "csv",
        ],
    )
    .stdout;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("key,cost,standard_cost,saved,lines"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("\"summaries, long\",") && row.ends_with(",1"),
        "{csv}"
    );
    let outside = ok(
        url,
        &[
            "--json",
            "spend",
            "--from",
            "2026-12-01",
            "--to",
            "2027-01-01",
            "--tenant",
            "acme",
        ],
    )
    .json();
    assert!(outside["rows"].as_array().unwrap().is_empty(), "{outside}");

    // Usage the ledger could not price: the doctor finds it, the dead letters list it, and
    // re-pricing hands it back (only to its own tenant).
    let billed = pending(&t.submit("acme", request("billed")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dead = match &database {
        Database::Sqlite(pool) => {
            bill_and_dead_letter(&SqliteStore::open(pool.clone()).await.unwrap()).await
        }
        Database::Postgres(pool) => {
            bill_and_dead_letter(&PgStore::open(pool.clone()).await.unwrap()).await
        }
        _ => unreachable!("both backends are compiled in"),
    };
    // The batch that billed it took globex's waiting job along: both are dead letters.
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().any(|j| j.as_str() == billed));
    assert!(dead.iter().any(|j| j.as_str() == theirs));
    let run = tenantry_bin(url, &["--json", "doctor"]);
    assert_eq!(run.code, 5, "{run:?}");
    let doctor = run.json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "dead-lettered usage")
        .unwrap();
    assert_eq!(check["ok"], false, "{doctor}");
    let listed = ok(url, &["--json", "dead-letters", "list", "--tenant", "acme"]).json();
    let unpriced = listed["unpriced_usage"].as_array().unwrap();
    assert_eq!(unpriced.len(), 1, "{listed}");
    assert_eq!(unpriced[0]["job"], billed.as_str());
    assert!(
        unpriced[0]["reason"]
            .as_str()
            .unwrap()
            .contains("price book")
    );
    // A succeeded job is not run again.
    assert_eq!(
        tenantry_bin(url, &["jobs", "retry", "--tenant", "acme", &billed]).code,
        6
    );
    assert_eq!(
        tenantry_bin(
            url,
            &["dead-letters", "reprice", "--tenant", "globex", &billed]
        )
        .code,
        3
    );
    let repriced = ok(
        url,
        &[
            "--json",
            "dead-letters",
            "reprice",
            "--tenant",
            "acme",
            &billed,
        ],
    )
    .json();
    assert_eq!(repriced["repriced"], 1, "{repriced}");
    // globex's is still there: the doctor still finds it, until its own tenant re-prices it.
    assert_eq!(t.dead_usage_count().await.unwrap(), 1);
    assert_eq!(tenantry_bin(url, &["doctor"]).code, 5);
    let repriced = ok(
        url,
        &["--json", "dead-letters", "reprice", "--tenant", "globex"],
    )
    .json();
    assert_eq!(repriced["repriced"], 1, "{repriced}");
    assert_eq!(t.dead_usage_count().await.unwrap(), 0);
    ok(url, &["doctor"]);

    // A job waiting in the queue is stuck once it waits longer than the doctor allows.
    t.submit("acme", request("waits").max_wait(Duration::from_secs(3600)))
        .await
        .unwrap();
    // Twice the threshold: the binary measures the database clock afresh, within milliseconds.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let run = tenantry_bin(url, &["--json", "doctor", "--stuck-after", "1s"]);
    assert_eq!(run.code, 5, "{run:?}");
    let doctor = run.json();
    assert!(
        doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "stuck jobs"
                && c["ok"] == false
                && c["detail"].as_str().unwrap().contains("1 queued")),
        "{doctor}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_on_sqlite() {
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let url = format!("sqlite:{}", db.path().display());
    admin_commands(Database::Sqlite(db.pool().clone()), &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_on_postgres() {
    let db = tenantry_testkit::PgDatabase::create().await;
    admin_commands(Database::Postgres(db.pool().clone()), db.url()).await;
}

#[test]
fn every_command_has_help_and_bad_usage_exits_2() {
    let url = "sqlite:/nonexistent/tenantry.db";
    for args in [
        vec!["--help"],
        vec!["migrate", "--help"],
        vec!["doctor", "--help"],
        vec!["jobs", "--help"],
        vec!["jobs", "list", "--help"],
        vec!["jobs", "show", "--help"],
        vec!["jobs", "retry", "--help"],
        vec!["jobs", "cancel", "--help"],
        vec!["jobs", "purge", "--help"],
        vec!["dead-letters", "--help"],
        vec!["dead-letters", "list", "--help"],
        vec!["dead-letters", "retry", "--help"],
        vec!["dead-letters", "reprice", "--help"],
        vec!["spend", "--help"],
        vec!["budgets", "--help"],
        vec!["budgets", "show", "--help"],
        vec!["budgets", "set", "--help"],
        vec!["batches", "--help"],
        vec!["batches", "list", "--help"],
        vec!["batches", "show", "--help"],
        vec!["batches", "reconcile", "--help"],
    ] {
        let run = tenantry_bin(url, &args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stdout.contains("Usage:"), "{args:?}: {run:?}");
    }
    for args in [
        vec!["jobs", "list"],
        vec!["jobs", "purge", "--tenant", "acme", "--older-than", "5x"],
        vec!["spend", "--from", "yesterday", "--to", "2026-01-01"],
        vec![
            "budgets",
            "set",
            "--tenant",
            "acme",
            "--limit-usd",
            "1.0000000001",
        ],
        vec!["nonsense"],
    ] {
        assert_eq!(tenantry_bin(url, &args).code, 2, "{args:?}");
    }
}

#[test]
fn an_unreachable_database_exits_4() {
    let run = tenantry_bin(
        "sqlite:/nonexistent/dir/tenantry.db",
        &["jobs", "list", "--tenant", "a"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let run = tenantry_bin(
        "postgres://postgres@127.0.0.1:1/none",
        &["--json", "doctor"],
    );
    assert_eq!(run.code, 4, "{run:?}");
    let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["error"], "unavailable");
}
