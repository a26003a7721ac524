//! `tenantry doctor`: is this database healthy? Schema, stuck jobs, dead letters, listeners,
//! clock. Exits with [`PROBLEMS`] when any check fails.

use std::time::Duration;

use serde_json::json;
use tenantry::queue::JobState;

use crate::cli::DoctorArgs;
use crate::context::{connect, handle, schema_problems};
use crate::exit::{Failure, PROBLEMS};
use crate::output::{self, Table};

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

pub(crate) async fn run(
    url: Option<&str>,
    args: &DoctorArgs,
    as_json: bool,
) -> Result<(), Failure> {
    let db = connect(url, false).await?;
    let mut checks = Vec::new();
    let status = db.schema_status().await?;
    for s in &status {
        let detail = format!("applied {}, shipped {}", s.applied, s.shipped);
        checks.push(check(
            "schema",
            s.is_current(),
            format!("{}: {detail}", s.component),
        ));
    }
    let problems = schema_problems(&status);
    if problems.is_empty() {
        let t = handle(db).await?;
        let repair = t.repair();
        // Queued and batched jobs move within minutes when an engine runs; submitted ones wait
        // for the API, which ends a batch within 24 hours.
        let waiting = repair.stale_open_jobs(args.stuck_after).await?;
        let out = repair.stale_open_jobs(args.submitted_stuck_after).await?;
        let stuck: Vec<_> = waiting
            .iter()
            .filter(|s| s.state != JobState::Submitted)
            .chain(out.iter().filter(|s| s.state == JobState::Submitted))
            .collect();
        if stuck.is_empty() {
            checks.push(check(
                "stuck jobs",
                true,
                format!(
                    "none queued or batched for {}, none submitted for {}",
                    seconds(args.stuck_after),
                    seconds(args.submitted_stuck_after)
                ),
            ));
        }
        for s in stuck {
            checks.push(check(
                "stuck jobs",
                false,
                format!(
                    "{} {} since {} or earlier",
                    s.jobs,
                    s.state,
                    output::time(s.oldest_change)
                ),
            ));
        }
        let dead = t.dead_usage_count().await?;
        checks.push(check(
            "dead-lettered usage",
            dead == 0,
            format!("{dead} records the ledger could not price (see `tenantry dead-letters list`)"),
        ));
        let listeners = repair.listeners().await?;
        checks.push(check(
            "event listeners",
            true,
            match listeners {
                Some(n) => format!("{n} listener connections open on the database"),
                None => "SQLite: events travel inside each process".to_owned(),
            },
        ));
        let offset = repair.clock_offset_micros().await?;
        let max = i64::try_from(args.max_clock_offset.as_micros()).unwrap_or(i64::MAX);
        checks.push(check(
            "clock offset",
            offset.abs() <= max,
            format!("database minus host: {:.3} s", offset as f64 / 1e6),
        ));
    } else {
        checks.push(check(
            "schema",
            false,
            format!(
                "{}: run `tenantry migrate`; other checks skipped",
                problems.join("; ")
            ),
        ));
    }
    let ok = checks.iter().all(|c| c.ok);
    if as_json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        output::json(&json!({"ok": ok, "checks": list}));
    } else {
        let mut table = Table::new(vec!["check", "result", "detail"]);
        for c in &checks {
            let result = if c.ok { "ok" } else { "PROBLEM" };
            table.row(vec![c.name.to_owned(), result.to_owned(), c.detail.clone()]);
        }
        table.print();
    }
    if ok {
        Ok(())
    } else {
        let n = checks.iter().filter(|c| !c.ok).count();
        Err(Failure::new(PROBLEMS, format!("{n} problems found")))
    }
}
