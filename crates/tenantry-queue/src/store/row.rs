//! Stored rows and their conversion to the public types.

use std::time::Duration;

use crate::Lane;
use crate::TenantId;
use crate::error::{Error, Result};
use crate::event::{JobEvent, Position};
use crate::ids::JobId;
use crate::job::{DeadlinePolicy, HoldId, Job, JobError, JobState};
use crate::validate::from_micros;

/// A jobs-table row as read by [`JOB_COLUMNS`](super::sql::jobs::JOB_COLUMNS).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    tenant: String,
    feature: String,
    user_id: String,
    lane: String,
    state: String,
    params: String,
    metadata: String,
    idempotency_key: Option<String>,
    max_wait_ms: i64,
    deadline: Option<i64>,
    on_deadline: String,
    attempts: i64,
    batch_id: Option<String>,
    result: Option<String>,
    error: Option<String>,
    usage: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    hold_id: Option<i64>,
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(Error::Json)
}

pub(crate) fn parse_state(s: &str) -> Result<JobState> {
    s.parse().map_err(|e| corrupt("job state", e))
}

pub(crate) fn parse_job_id(s: &str) -> Result<JobId> {
    s.parse().map_err(|e| corrupt("job id", e))
}

impl TryFrom<JobRow> for Job {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self> {
        Ok(Self {
            id: parse_job_id(&row.id)?,
            tenant: TenantId::new(row.tenant).map_err(|e| corrupt("tenant", e))?,
            feature: row.feature,
            user: row.user_id,
            lane: row
                .lane
                .parse::<Lane>()
                .map_err(|_| corrupt("lane", &row.lane))?,
            state: parse_state(&row.state)?,
            params: json(&row.params)?,
            metadata: json(&row.metadata)?,
            idempotency_key: row.idempotency_key,
            max_wait: Duration::from_millis(u64::try_from(row.max_wait_ms).unwrap_or(0)),
            deadline: row.deadline.map(from_micros),
            on_deadline: DeadlinePolicy::parse(&row.on_deadline)
                .ok_or_else(|| corrupt("deadline policy", &row.on_deadline))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt("attempts", e))?,
            batch_id: row.batch_id,
            result: row.result.as_deref().map(json).transpose()?,
            error: row
                .error
                .as_deref()
                .map(|e| serde_json::from_str::<JobError>(e).map_err(Error::Json))
                .transpose()?,
            usage: row
                .usage
                .as_deref()
                .map(|u| serde_json::from_str(u).map_err(Error::Json))
                .transpose()?,
            hold: row.hold_id.map(HoldId::new),
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            finished_at: row.finished_at.map(from_micros),
        })
    }
}

/// An events-table row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    job_id: String,
    state: String,
    at: i64,
}

impl EventRow {
    pub(crate) fn into_event(self, tenant: &TenantId) -> Result<JobEvent> {
        Ok(JobEvent {
            position: Position(self.seq),
            tenant: tenant.clone(),
            job_id: parse_job_id(&self.job_id)?,
            state: parse_state(&self.state)?,
            at: from_micros(self.at),
        })
    }
}
