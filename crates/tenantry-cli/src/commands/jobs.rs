//! `tenantry jobs list|show|retry|cancel|purge`.

use serde_json::json;
use tenantry::Tenantry;
use tenantry::queue::{Cursor, JobFilter, JobState, Purge, TenantId};

use crate::cli::{JobArgs, JobsArgs, JobsCommand, JobsListArgs, PurgeArgs};
use crate::exit::{Failure, USAGE};
use crate::output::{self, Table};
use crate::view;

pub(crate) async fn run(t: &Tenantry, command: &JobsCommand, as_json: bool) -> Result<(), Failure> {
    match command {
        JobsCommand::List(args) => list(t, args, as_json).await,
        JobsCommand::Show(args) => show(t, args, as_json).await,
        JobsCommand::Retry(args) => each(t, args, as_json, Action::Retry).await,
        JobsCommand::Cancel(args) => each(t, args, as_json, Action::Cancel).await,
        JobsCommand::Purge(args) => purge(t, args, as_json).await,
    }
}

pub(crate) fn tenant(name: &str) -> Result<TenantId, Failure> {
    TenantId::new(name).map_err(|e| Failure::new(USAGE, format!("--tenant: {e}")))
}

fn states(names: &[String]) -> Result<Vec<JobState>, Failure> {
    names
        .iter()
        .map(|s| {
            s.parse::<JobState>()
                .ok()
                .filter(|st| st.is_job_state())
                .ok_or_else(|| {
                    Failure::new(
                        USAGE,
                        format!("--state: unknown state `{s}` (queued, batched, submitted, succeeded, failed, canceled, expired)"),
                    )
                })
        })
        .collect()
}

async fn list(t: &Tenantry, args: &JobsListArgs, as_json: bool) -> Result<(), Failure> {
    let tenant = tenant(&args.tenant.tenant)?;
    let mut filter = JobFilter::new()
        .states(states(&args.state)?)
        .limit(args.limit);
    if let Some(f) = &args.feature {
        filter = filter.feature(f.clone());
    }
    if let Some(u) = &args.user {
        filter = filter.user(u.clone());
    }
    let cursor = args.cursor.as_deref().map(Cursor::new);
    let page = t.jobs().list(&tenant, &filter, cursor.as_ref()).await?;
    let next = page.next_cursor().map(|c| c.as_str().to_owned());
    if as_json {
        let jobs: Vec<_> = page
            .items()
            .iter()
            .map(|j| view::job_json(j, false))
            .collect();
        output::json(&json!({"jobs": jobs, "next_cursor": next}));
    } else {
        let mut table = Table::new(view::JOB_HEADER.to_vec());
        for job in page.items() {
            table.row(view::job_row(job));
        }
        table.print();
        if let Some(next) = next {
            println!("more: --cursor {next}");
        }
    }
    Ok(())
}

async fn show(t: &Tenantry, args: &JobArgs, as_json: bool) -> Result<(), Failure> {
    let tenant = tenant(&args.tenant.tenant)?;
    let id = args
        .id
        .parse()
        .map_err(|_| Failure::new(crate::exit::NOT_FOUND, format!("job {} not found", args.id)))?;
    let job = t.jobs().job(&tenant, &id).await?;
    let value = view::job_json(&job, true);
    if as_json {
        output::json(&value);
    } else {
        let mut table = Table::new(vec!["field", "value"]);
        if let Some(fields) = value.as_object() {
            for (k, v) in fields {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                table.row(vec![k.clone(), text]);
            }
        }
        table.print();
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Action {
    Retry,
    Cancel,
}

/// Retries or cancels each job; every id is tried, and the first failure decides the exit
/// code after all of them.
async fn each(t: &Tenantry, args: &JobsArgs, as_json: bool, action: Action) -> Result<(), Failure> {
    let mut results = Vec::new();
    let mut first_failure = None;
    for id in &args.ids {
        let outcome = match action {
            Action::Retry => t
                .repair()
                .retry(&args.tenant.tenant, id)
                .await
                .map(|job| job.state),
            Action::Cancel => t.cancel(&args.tenant.tenant, id).await,
        };
        match outcome {
            Ok(state) => results.push(json!({"id": id, "state": state.as_str()})),
            Err(e) => {
                let failure = Failure::from(e);
                results
                    .push(json!({"id": id, "error": failure.name(), "message": failure.message}));
                first_failure.get_or_insert(failure);
            }
        }
    }
    report(&results, as_json);
    first_failure.map_or(Ok(()), Err)
}

/// Prints the outcome of each id.
pub(crate) fn report(results: &[serde_json::Value], as_json: bool) {
    if as_json {
        output::json(&json!({"results": results}));
        return;
    }
    let mut table = Table::new(vec!["id", "result"]);
    for r in results {
        let outcome = r["state"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("error: {}", r["message"].as_str().unwrap_or_default()));
        table.row(vec![
            r["id"].as_str().unwrap_or_default().to_owned(),
            outcome,
        ]);
    }
    table.print();
}

async fn purge(t: &Tenantry, args: &PurgeArgs, as_json: bool) -> Result<(), Failure> {
    let cutoff = time::OffsetDateTime::now_utc() - args.older_than;
    let purge = Purge::before(cutoff).batch_size(args.batch_size);
    let done = t.repair().purge(&args.tenant.tenant, &purge).await?;
    if as_json {
        output::json(&json!({
            "tenant": args.tenant.tenant,
            "before": output::time(cutoff),
            "jobs": done.jobs,
            "events": done.events,
            "transactions": done.transactions,
        }));
    } else {
        println!(
            "purged {} jobs and {} events of {} finished before {} ({} transactions of at most {} rows)",
            done.jobs,
            done.events,
            args.tenant.tenant,
            output::time(cutoff),
            done.transactions,
            purge.rows_per_transaction()
        );
    }
    Ok(())
}
