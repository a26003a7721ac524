//! `tenantry batches list|show|reconcile`: an operator's view of the batch records.

use serde_json::{Value, json};
use tenantry::Tenantry;
use tenantry::queue::{BatchInfo, BatchState};

use crate::cli::{BatchArgs, BatchListArgs, BatchesCommand};
use crate::exit::{Failure, NOT_FOUND, REFUSED};
use crate::output::{self, Table, time};

/// Why a batch that is not `submitted` is not reconciled on demand.
const NOT_SUBMITTED: &str = "only a submitted batch is reconciled on demand: a batch left \
`creating` (its create call's outcome unknown) is taken over by a running engine when its lease \
ends and matched against the API's batch list, never sent again; a planned one is not at the API \
yet; an ended or released one has nothing left to ask.";

pub(crate) async fn run(
    t: &Tenantry,
    command: &BatchesCommand,
    as_json: bool,
) -> Result<(), Failure> {
    match command {
        BatchesCommand::List(args) => list(t, args, as_json).await,
        BatchesCommand::Show(args) => show(t, args, as_json).await.map(|_| ()),
        BatchesCommand::Reconcile(args) => reconcile(t, args, as_json).await,
    }
}

fn batch_json(b: &BatchInfo) -> Value {
    json!({
        "id": b.id,
        "state": b.state.as_str(),
        "api_batch_id": b.api_batch_id,
        "requests": b.requests,
        "bytes": b.bytes,
        "created_at": time(b.created_at),
        "updated_at": time(b.updated_at),
        "submitted_at": b.submitted_at.map(time),
        "lease_expires_at": b.lease_expires_at.map(time),
    })
}

fn batch_row(b: &BatchInfo) -> Vec<String> {
    vec![
        b.id.clone(),
        b.state.as_str().to_owned(),
        b.api_batch_id.clone().unwrap_or_default(),
        b.requests.to_string(),
        time(b.created_at),
        time(b.updated_at),
    ]
}

const HEADER: [&str; 6] = ["id", "state", "api id", "requests", "created", "updated"];

async fn list(t: &Tenantry, args: &BatchListArgs, as_json: bool) -> Result<(), Failure> {
    let batches = t.repair().batches(args.limit).await?;
    if as_json {
        let rows: Vec<_> = batches.iter().map(batch_json).collect();
        output::json(&json!({"batches": rows}));
    } else {
        let mut table = Table::new(HEADER.to_vec());
        for b in &batches {
            table.row(batch_row(b));
        }
        table.print();
    }
    Ok(())
}

async fn show(t: &Tenantry, args: &BatchArgs, as_json: bool) -> Result<(), Failure> {
    let (batch, jobs) = t
        .repair()
        .batch(&args.id)
        .await?
        .ok_or_else(|| Failure::new(NOT_FOUND, format!("batch {} not found", args.id)))?;
    if as_json {
        let mut value = batch_json(&batch);
        value["jobs"] = jobs
            .iter()
            .map(|(tenant, job, state)| {
                json!({"tenant": tenant.as_str(), "id": job.as_str(), "state": state.as_str()})
            })
            .collect();
        output::json(&value);
    } else {
        let mut table = Table::new(HEADER.to_vec());
        table.row(batch_row(&batch));
        table.print();
        println!();
        let mut members = Table::new(vec!["tenant", "job", "state"]);
        for (tenant, job, state) in &jobs {
            members.row(vec![tenant.to_string(), job.to_string(), state.to_string()]);
        }
        members.print();
    }
    Ok(())
}

/// Makes a submitted batch due now, so the next engine step asks the API for its status and
/// ingests its results if it has ended.
async fn reconcile(t: &Tenantry, args: &BatchArgs, as_json: bool) -> Result<(), Failure> {
    let (batch, _) = t
        .repair()
        .batch(&args.id)
        .await?
        .ok_or_else(|| Failure::new(NOT_FOUND, format!("batch {} not found", args.id)))?;
    if batch.state != BatchState::Submitted {
        return Err(Failure::new(
            REFUSED,
            format!(
                "batch {} is {}: {NOT_SUBMITTED}",
                batch.id,
                batch.state.as_str()
            ),
        ));
    }
    let due_now = t.repair().poll_batch_now(&batch.id).await?;
    if as_json {
        output::json(&json!({"id": batch.id, "state": batch.state.as_str(), "due_now": due_now}));
    } else if due_now {
        println!(
            "batch {} is due now: the next engine step asks the API for its status and ingests its results if it has ended",
            batch.id
        );
    } else {
        println!(
            "batch {} is being polled or already due: a running engine reconciles it at its next step",
            batch.id
        );
    }
    Ok(())
}
