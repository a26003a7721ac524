//! How jobs and dead letters look in a table row and in JSON.

use serde_json::{Value, json};
use tenantry::queue::{DeadUsage, Job};

use crate::output::time;

/// A job as JSON; with `full`, its request and result too.
pub(crate) fn job_json(job: &Job, full: bool) -> Value {
    let mut value = json!({
        "id": job.id.as_str(),
        "tenant": job.tenant.as_str(),
        "feature": job.feature,
        "user": job.user,
        "lane": job.lane.as_str(),
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "batch_id": job.batch_id,
        "idempotency_key": job.idempotency_key,
        "error": job.error.as_ref().map(|e| json!({"kind": e.kind, "message": e.message})),
        "hold": job.hold.map(|h| h.get()),
        "usage": job.usage.as_ref().and_then(|u| serde_json::to_value(u).ok()),
        "deadline": job.deadline.map(time),
        "created_at": time(job.created_at),
        "updated_at": time(job.updated_at),
        "finished_at": job.finished_at.map(time),
    });
    if full {
        value["params"] = job.params.clone();
        value["metadata"] = job.metadata.clone();
        value["result"] = job.result.clone().unwrap_or(Value::Null);
    }
    value
}

/// The columns of [`job_row`].
pub(crate) const JOB_HEADER: [&str; 7] = [
    "id", "state", "feature", "lane", "attempts", "updated", "error",
];

/// A job as a table row.
pub(crate) fn job_row(job: &Job) -> Vec<String> {
    vec![
        job.id.to_string(),
        job.state.to_string(),
        job.feature.clone(),
        job.lane.as_str().to_owned(),
        job.attempts.to_string(),
        time(job.updated_at),
        job.error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .unwrap_or_default(),
    ]
}

/// Dead-lettered usage as JSON.
pub(crate) fn dead_usage_json(dead: &DeadUsage) -> Value {
    json!({
        "job": dead.record.job.as_str(),
        "batch": dead.record.batch,
        "model": dead.record.model,
        "lane": dead.record.lane.as_str(),
        "key": dead.record.key(),
        "reason": dead.reason,
        "dead_at": time(dead.dead_at),
    })
}
