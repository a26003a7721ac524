//! What a job looks like to a client: its envelope (pending, success with the model's output,
//! or a problem).

use serde::{Deserialize, Serialize};
use tenantry_envelope::{Code, Envelope, Operation, OperationState, Problem};
use tenantry_queue::{Job, JobState};
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, JOB_CANCELED, JOB_EXPIRED, JOB_FAILED};

/// The result of a finished job, the `data` of its success envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct JobOutput {
    /// The job id.
    pub id: String,
    /// The product feature.
    pub feature: String,
    /// The end user.
    pub user: String,
    /// The text of the answer (all text blocks, concatenated).
    pub text: String,
    /// The full Message the API returned.
    pub message: serde_json::Value,
    /// The billed usage the API reported.
    pub usage: Option<serde_json::Value>,
    /// When the job finished (RFC 3339).
    pub finished_at: Option<String>,
}

/// The text of a Message: its `text` blocks, concatenated.
fn text_of(message: &serde_json::Value) -> String {
    message
        .get("content")
        .and_then(serde_json::Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(serde_json::Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(serde_json::Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The pending envelope's operation for a job still in flight.
pub(crate) fn operation(
    status_path: &str,
    id: &str,
    state: OperationState,
) -> Result<Operation, Error> {
    Operation::new(id, format!("{status_path}{id}"))
        .map(|o| o.with_state(state))
        .map_err(|e| Error::Config(format!("status path gives an invalid URL: {e}")))
}

/// The envelope a client sees for a job in its current state.
pub(crate) fn envelope(status_path: &str, job: Job) -> Result<Envelope<JobOutput>, Error> {
    let id = job.id.to_string();
    let failed = |code: Code, fallback: &str| {
        let message = job.error.as_ref().map_or_else(
            || fallback.to_owned(),
            |e| format!("{}: {}", e.kind, e.message),
        );
        Envelope::error(Problem::new(code, message))
    };
    Ok(match job.state {
        JobState::Succeeded => {
            let message = job.result.clone().unwrap_or_default();
            let usage = job
                .usage
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| Error::Queue(tenantry_queue::Error::Json(e)))?;
            Envelope::success(JobOutput {
                text: text_of(&message),
                id,
                feature: job.feature.clone(),
                user: job.user.clone(),
                message,
                usage,
                finished_at: job.finished_at.and_then(|t| t.format(&Rfc3339).ok()),
            })
        }
        JobState::Failed => failed(JOB_FAILED.into(), "the request failed"),
        JobState::Canceled => failed(JOB_CANCELED.into(), "the job was canceled"),
        JobState::Expired => failed(JOB_EXPIRED.into(), "the job's deadline passed"),
        JobState::Submitted => {
            Envelope::pending(operation(status_path, &id, OperationState::Running)?)
        }
        _ => Envelope::pending(operation(status_path, &id, OperationState::Queued)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_joins_text_blocks_only() {
        let m = serde_json::json!({"content": [
            {"type": "text", "text": "a"}, {"type": "tool_use", "id": "x"}, {"type": "text", "text": "b"}
        ]});
        assert_eq!(text_of(&m), "ab");
        assert_eq!(text_of(&serde_json::json!({})), "");
    }

    #[test]
    fn operation_points_at_the_status_path() {
        let op = operation("/v1/jobs/", "job_1", OperationState::Running).unwrap();
        assert_eq!(op.status_url(), "/v1/jobs/job_1");
        assert_eq!(op.state(), OperationState::Running);
        assert!(operation("/v1/jobs with space/", "job_1", OperationState::Queued).is_err());
    }
}
