//! `tenantry dead-letters list|retry|reprice`.

use serde_json::json;
use tenantry::Tenantry;

use crate::cli::{DeadLettersCommand, DeadListArgs, DeadRepriceArgs, DeadRetryArgs};
use crate::commands::jobs::{report, tenant};
use crate::exit::Failure;
use crate::output::{self, Table};
use crate::view;

pub(crate) async fn run(
    t: &Tenantry,
    command: &DeadLettersCommand,
    as_json: bool,
) -> Result<(), Failure> {
    match command {
        DeadLettersCommand::List(args) => list(t, args, as_json).await,
        DeadLettersCommand::Retry(args) => retry(t, args, as_json).await,
        DeadLettersCommand::Reprice(args) => reprice(t, args, as_json).await,
    }
}

async fn list(t: &Tenantry, args: &DeadListArgs, as_json: bool) -> Result<(), Failure> {
    let name = &args.tenant.tenant;
    tenant(name)?;
    let failed = t.repair().failed(name, args.limit, None).await?;
    let unpriced = t.repair().dead_usage(name, args.limit).await?;
    if as_json {
        let failed: Vec<_> = failed
            .items()
            .iter()
            .map(|j| view::job_json(j, false))
            .collect();
        let unpriced: Vec<_> = unpriced.iter().map(view::dead_usage_json).collect();
        output::json(&json!({"failed": failed, "unpriced_usage": unpriced}));
        return Ok(());
    }
    println!("failed jobs: {}", failed.items().len());
    if !failed.items().is_empty() {
        let mut table = Table::new(view::JOB_HEADER.to_vec());
        for job in failed.items() {
            table.row(view::job_row(job));
        }
        table.print();
    }
    println!("unpriced usage: {}", unpriced.len());
    if !unpriced.is_empty() {
        let mut table = Table::new(vec!["job", "model", "lane", "dead since", "reason"]);
        for dead in &unpriced {
            table.row(vec![
                dead.record.job.to_string(),
                dead.record.model.clone(),
                dead.record.lane.as_str().to_owned(),
                output::time(dead.dead_at),
                dead.reason.clone(),
            ]);
        }
        table.print();
    }
    Ok(())
}

async fn retry(t: &Tenantry, args: &DeadRetryArgs, as_json: bool) -> Result<(), Failure> {
    let name = &args.tenant.tenant;
    tenant(name)?;
    let mut ids = args.ids.clone();
    if args.all {
        // Every failed job is listed first, page by page, then retried: a retry moves a job
        // out of the list, which would shift pages read while retrying.
        let mut cursor = None;
        loop {
            let page = t.repair().failed(name, 1000, cursor.as_ref()).await?;
            ids.extend(page.items().iter().map(|j| j.id.to_string()));
            match page.next_cursor() {
                Some(next) => cursor = Some(next.clone()),
                None => break,
            }
        }
    }
    let mut results = Vec::new();
    let mut first_failure = None;
    for id in &ids {
        match t.repair().retry(name, id).await {
            Ok(job) => results.push(json!({"id": id, "state": job.state.as_str()})),
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

async fn reprice(t: &Tenantry, args: &DeadRepriceArgs, as_json: bool) -> Result<(), Failure> {
    let name = &args.tenant.tenant;
    tenant(name)?;
    let handed_back = match &args.id {
        Some(id) => t.repair().reprice(name, id).await?,
        None => t.repair().reprice_all(name).await?,
    };
    if as_json {
        output::json(&json!({"tenant": name, "job": args.id, "repriced": handed_back}));
    } else {
        println!(
            "{handed_back} usage records handed back to the engine; a running engine prices them at its next step"
        );
    }
    Ok(())
}
