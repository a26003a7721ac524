//! Submit-time checks: a rejected request is named precisely and never stored.
//!
//! These are the rules of the batch API that can be checked without calling it: `model`
//! and a non-empty `messages` present, no caller-chosen `custom_id` (the job id is used),
//! a size limit, and then the client's own batch-builder checks (the params decode as a
//! Messages request; `max_tokens` ≥ 1, no streaming, a valid `custom_id`), so a request
//! the engine could not put into a batch is refused here instead of failing later.

use std::time::Duration;

use serde::Deserialize;
use tenantry_batch::ValidationRule;
use tenantry_batch::types::MessageParams;
use time::OffsetDateTime;

use crate::TenantId;
use crate::error::InvalidRequest;
use crate::ids::JobId;
use crate::job::{MAX_MAX_WAIT, Submission};

/// The largest serialized request accepted, in bytes: the Messages API's 32 MB request
/// limit, which also keeps any one request far below a batch's 256 MB.
pub const MAX_REQUEST_BYTES: usize = 32 * 1000 * 1000;
/// The largest `max_tokens` accepted: the most output the API allows any model (300,000, with
/// the Message Batches API's extended-output beta on the largest models). Each model's own
/// limit is lower and is the API's to enforce; this bound keeps a request's worst-case cost
/// (its budget hold) within what the cost ledger can price.
pub const MAX_OUTPUT_TOKENS: u64 = 300_000;
/// The longest feature, user or idempotency key accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 255;

/// A checked submission, ready to be stored.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) id: JobId,
    pub(crate) tenant: TenantId,
    pub(crate) feature: String,
    pub(crate) user: String,
    pub(crate) lane: &'static str,
    pub(crate) params: String,
    pub(crate) request_bytes: i64,
    pub(crate) metadata: String,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) max_wait_ms: i64,
    pub(crate) deadline: Option<i64>,
    pub(crate) on_deadline: &'static str,
    pub(crate) created_at: i64,
    pub(crate) flush_at: i64,
    pub(crate) hold: Option<i64>,
}

fn text_field(field: &'static str, value: &str) -> Result<(), InvalidRequest> {
    if value.is_empty() || value.len() > MAX_FIELD_BYTES {
        Err(InvalidRequest::Field {
            field,
            max: MAX_FIELD_BYTES,
        })
    } else {
        Ok(())
    }
}

/// The queue's own rules first (each names its field), then the batch builder's: the
/// params must decode as the client's `MessageParams` and pass
/// [`tenantry_batch::validate_request`] under the job's id, exactly as the engine will
/// push them into a batch.
fn check_params(id: &JobId, params: &serde_json::Value) -> Result<(), InvalidRequest> {
    let obj = params.as_object().ok_or(InvalidRequest::ParamsNotObject)?;
    match obj.get("model").and_then(serde_json::Value::as_str) {
        Some(m) if !m.is_empty() => {}
        _ => return Err(InvalidRequest::Model),
    }
    if obj
        .get("max_tokens")
        .and_then(serde_json::Value::as_u64)
        .is_none()
    {
        return Err(InvalidRequest::MaxTokens);
    }
    match obj.get("messages").and_then(serde_json::Value::as_array) {
        Some(m) if !m.is_empty() => {}
        _ => return Err(InvalidRequest::Messages),
    }
    if obj.contains_key("custom_id") {
        return Err(InvalidRequest::CustomId);
    }
    let typed = MessageParams::deserialize(params).map_err(|e| InvalidRequest::Params {
        detail: e.to_string(),
    })?;
    tenantry_batch::validate_request(id.as_str(), &typed).map_err(|rule| match rule {
        ValidationRule::MaxTokensZero => InvalidRequest::MaxTokens,
        ValidationRule::StreamSet => InvalidRequest::Stream,
        rule => InvalidRequest::BatchRule(rule),
    })?;
    // Last, so a value the client cannot even decode is reported as the decoder sees it.
    check_max_tokens(params)
}

/// Checks `params.max_tokens`: an integer from 1 to [`MAX_OUTPUT_TOKENS`] (zero is refused
/// by the batch builder's rules, after this).
///
/// # Errors
///
/// [`InvalidRequest::MaxTokens`] when it is missing or not a non-negative integer,
/// [`InvalidRequest::MaxTokensAbove`] above the limit.
pub fn check_max_tokens(params: &serde_json::Value) -> Result<(), InvalidRequest> {
    match params.get("max_tokens").and_then(serde_json::Value::as_u64) {
        None => Err(InvalidRequest::MaxTokens),
        Some(n) if n > MAX_OUTPUT_TOKENS => Err(InvalidRequest::MaxTokensAbove {
            max: MAX_OUTPUT_TOKENS,
        }),
        Some(_) => Ok(()),
    }
}

/// Microseconds since the Unix epoch, the stored time format.
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Checks one submission and prepares its row.
pub(crate) fn prepare(
    tenant: &TenantId,
    submission: &Submission,
    now: OffsetDateTime,
) -> Result<NewJob, InvalidRequest> {
    text_field("feature", &submission.feature)?;
    text_field("user", &submission.user)?;
    let opts = &submission.options;
    if let Some(key) = &opts.idempotency_key {
        text_field("idempotency_key", key)?;
    }
    if opts.max_wait < Duration::from_millis(1) || opts.max_wait > MAX_MAX_WAIT {
        return Err(InvalidRequest::MaxWait {
            max_secs: MAX_MAX_WAIT.as_secs(),
        });
    }
    if !opts.metadata.is_object() {
        return Err(InvalidRequest::MetadataNotObject);
    }
    let id = JobId::generate();
    check_params(&id, &submission.params)?;
    let params = submission.params.to_string();
    if params.len() > MAX_REQUEST_BYTES {
        return Err(InvalidRequest::TooLarge {
            size: params.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let created_at = micros(now);
    let max_wait_ms = duration_ms(opts.max_wait);
    Ok(NewJob {
        id,
        tenant: tenant.clone(),
        feature: submission.feature.clone(),
        user: submission.user.clone(),
        lane: opts.lane.as_str(),
        request_bytes: i64::try_from(params.len()).unwrap_or(i64::MAX),
        params,
        metadata: opts.metadata.to_string(),
        idempotency_key: opts.idempotency_key.clone(),
        max_wait_ms,
        deadline: opts.deadline.map(micros),
        on_deadline: opts.on_deadline.as_str(),
        created_at,
        flush_at: created_at.saturating_add(max_wait_ms.saturating_mul(1000)),
        hold: opts.hold.map(crate::job::HoldId::get),
    })
}

/// Checks a whole `submit_many` call: any invalid item rejects all of them.
pub(crate) fn prepare_many(
    tenant: &TenantId,
    submissions: &[Submission],
    now: OffsetDateTime,
) -> Result<Vec<NewJob>, InvalidRequest> {
    let mut keys = std::collections::HashSet::new();
    submissions
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let job = prepare(tenant, s, now).map_err(|reason| InvalidRequest::Item {
                index,
                reason: Box::new(reason),
            })?;
            if let Some(key) = &job.idempotency_key
                && !keys.insert(key.clone())
            {
                return Err(InvalidRequest::DuplicateKey { index });
            }
            Ok(job)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::job::SubmitOptions;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    fn params() -> serde_json::Value {
        json!({"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    }

    fn check(params: serde_json::Value) -> Result<NewJob, InvalidRequest> {
        prepare(
            &tenant(),
            &Submission::new("f", "u", params),
            OffsetDateTime::now_utc(),
        )
    }

    #[test]
    fn a_valid_request_is_prepared() {
        let job = check(params()).unwrap();
        assert_eq!(job.lane, "batch");
        assert_eq!(job.flush_at - job.created_at, 60_000_000);
        assert_eq!(job.request_bytes, i64::try_from(job.params.len()).unwrap());
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut p = params();
        p["max_tokens"] = json!(0);
        assert_eq!(check(p).unwrap_err(), InvalidRequest::MaxTokens);
        let mut p = params();
        p["max_tokens"] = json!(2_000_000_000_u64);
        assert_eq!(
            check(p).unwrap_err(),
            InvalidRequest::MaxTokensAbove {
                max: MAX_OUTPUT_TOKENS
            }
        );
        let mut p = params();
        p["max_tokens"] = json!(MAX_OUTPUT_TOKENS);
        assert!(check(p).is_ok());
        let mut p = params();
        p["stream"] = json!(true);
        assert_eq!(check(p).unwrap_err(), InvalidRequest::Stream);
        let mut p = params();
        p["stream"] = json!(false);
        assert!(check(p).is_ok());
        let mut p = params();
        p["messages"] = json!([]);
        assert_eq!(check(p).unwrap_err(), InvalidRequest::Messages);
        let mut p = params();
        p.as_object_mut().unwrap().remove("model");
        assert_eq!(check(p).unwrap_err(), InvalidRequest::Model);
        let mut p = params();
        p["stream"] = json!("yes");
        assert!(
            matches!(check(p).unwrap_err(), InvalidRequest::Params { detail } if detail.contains("boolean"))
        );
        let mut p = params();
        p["messages"][0].as_object_mut().unwrap().remove("role");
        assert!(
            matches!(check(p).unwrap_err(), InvalidRequest::Params { detail } if detail.contains("`role`"))
        );
        let mut p = params();
        p["custom_id"] = json!("mine");
        assert_eq!(check(p).unwrap_err(), InvalidRequest::CustomId);
        assert_eq!(
            check(json!([1])).unwrap_err(),
            InvalidRequest::ParamsNotObject
        );
        let mut p = params();
        p["system"] = json!("x".repeat(MAX_REQUEST_BYTES));
        assert!(matches!(
            check(p).unwrap_err(),
            InvalidRequest::TooLarge { .. }
        ));
    }

    #[test]
    fn options_are_checked() {
        let s = Submission::new("f", "u", params())
            .with_options(SubmitOptions::new().max_wait(Duration::ZERO));
        assert!(matches!(
            prepare(&tenant(), &s, OffsetDateTime::now_utc()),
            Err(InvalidRequest::MaxWait { .. })
        ));
        let s = Submission::new("", "u", params());
        assert_eq!(
            prepare(&tenant(), &s, OffsetDateTime::now_utc()).unwrap_err(),
            InvalidRequest::Field {
                field: "feature",
                max: MAX_FIELD_BYTES
            }
        );
        let s = Submission::new("f", "u", params())
            .with_options(SubmitOptions::new().metadata(json!("x")));
        assert_eq!(
            prepare(&tenant(), &s, OffsetDateTime::now_utc()).unwrap_err(),
            InvalidRequest::MetadataNotObject
        );
    }

    #[test]
    fn submit_many_rejects_repeated_keys_and_names_the_item() {
        let keyed = Submission::new("f", "u", params())
            .with_options(SubmitOptions::new().idempotency_key("k"));
        let err = prepare_many(
            &tenant(),
            &[keyed.clone(), keyed],
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert_eq!(err, InvalidRequest::DuplicateKey { index: 1 });
        let bad = Submission::new("f", "u", json!({}));
        let err = prepare_many(
            &tenant(),
            &[Submission::new("f", "u", params()), bad],
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            InvalidRequest::Item {
                index: 1,
                reason: Box::new(InvalidRequest::Model)
            }
        );
    }

    #[test]
    fn micros_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        assert_eq!(from_micros(micros(t)), t);
    }
}
