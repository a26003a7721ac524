//! What a host submits: one AI request for a tenant's feature and user, with its options.

use std::time::Duration;

use tenantry_queue::{DeadlinePolicy, HoldId, Lane, Submission, SubmitOptions};
use time::OffsetDateTime;

/// One AI request: the Messages API body plus who it is for and how to send it.
///
/// Built with owned setters; every setter states its default.
///
/// # Example
///
/// ```
/// use tenantry::Request;
///
/// let request = Request::new("summaries", "user-7", serde_json::json!({
///     "model": "claude-haiku-4-5", "max_tokens": 200,
///     "messages": [{"role": "user", "content": "Summarise: the invoice is late."}]
/// }))
/// .idempotency_key("doc-42")
/// .max_wait(std::time::Duration::from_secs(30));
/// assert_eq!(request.feature(), "summaries");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Request {
    feature: String,
    user: String,
    params: serde_json::Value,
    lane: Lane,
    max_wait: Option<Duration>,
    deadline: Option<(OffsetDateTime, DeadlinePolicy)>,
    idempotency_key: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl Request {
    /// A request of `feature` (for cost reports) on behalf of `user`, with the Messages API body
    /// `params` (`model`, `max_tokens`, `messages`, …).
    pub fn new(
        feature: impl Into<String>,
        user: impl Into<String>,
        params: serde_json::Value,
    ) -> Self {
        Self {
            feature: feature.into(),
            user: user.into(),
            params,
            lane: Lane::Batch,
            max_wait: None,
            deadline: None,
            idempotency_key: None,
            metadata: serde_json::Map::new(),
        }
    }

    /// Sends it at once through the synchronous Messages API, at full price. Default: the batch
    /// lane, at half price.
    pub fn urgent(mut self) -> Self {
        self.lane = Lane::Urgent;
        self
    }

    /// Sends it down the batch lane (a soft limit turned it away from the urgent lane).
    pub(crate) fn send_by_batch(&mut self) {
        self.lane = Lane::Batch;
    }

    /// The longest the request waits for a batch to fill. Default: the queue's 60 s.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// A deadline after which an unfinished request expires (or goes urgent, per `policy`).
    /// Default: none.
    pub fn deadline(mut self, at: OffsetDateTime, policy: DeadlinePolicy) -> Self {
        self.deadline = Some((at, policy));
        self
    }

    /// Submitting again with the same key (same tenant) returns the first job. Default: none.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Caller data stored with the job under `key`. Default: none.
    pub fn metadata(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// The feature.
    #[must_use]
    pub fn feature(&self) -> &str {
        &self.feature
    }

    /// The end user.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The Messages API body.
    #[must_use]
    pub fn params(&self) -> &serde_json::Value {
        &self.params
    }

    /// The lane.
    #[must_use]
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The idempotency key, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// `params.model`, or `""` when missing (the queue rejects it then).
    pub(crate) fn model(&self) -> &str {
        self.params
            .get("model")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }

    /// `params.max_tokens`, or 0 when missing or not an integer (the queue rejects it then).
    pub(crate) fn max_tokens(&self) -> i64 {
        self.params
            .get("max_tokens")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    }

    /// The prompt's input tokens as [`InputTokens::Estimate`](crate::InputTokens::Estimate)
    /// sizes them: one token per 3 bytes of the body.
    pub(crate) fn input_token_estimate(&self) -> i64 {
        let bytes = serde_json::to_vec(&self.params).map_or(0, |v| v.len());
        i64::try_from(bytes.div_ceil(3)).unwrap_or(i64::MAX)
    }

    /// The queue submission, carrying its budget hold in the job's hold column.
    pub(crate) fn into_submission(self, hold: Option<HoldId>) -> Submission {
        let mut options = SubmitOptions::new()
            .lane(self.lane)
            .metadata(serde_json::Value::Object(self.metadata));
        if let Some(hold) = hold {
            options = options.hold(hold);
        }
        if let Some(wait) = self.max_wait {
            options = options.max_wait(wait);
        }
        if let Some((at, policy)) = self.deadline {
            options = options.deadline(at, policy);
        }
        if let Some(key) = self.idempotency_key {
            options = options.idempotency_key(key);
        }
        Submission::new(self.feature, self.user, self.params).with_options(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reads_model_and_limits() {
        let r = Request::new(
            "f",
            "u",
            serde_json::json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .metadata("doc", "42".into());
        assert_eq!(r.model(), "m");
        assert_eq!(r.max_tokens(), 10);
        let bytes = serde_json::to_vec(r.params()).unwrap().len();
        assert_eq!(
            r.input_token_estimate(),
            i64::try_from(bytes.div_ceil(3)).unwrap()
        );
        let s = r.into_submission(Some(HoldId::new(7)));
        assert_eq!((s.feature.as_str(), s.user.as_str()), ("f", "u"));
        // The hold is the job's own column, not the caller's metadata.
        assert_eq!(
            s.options,
            SubmitOptions::new()
                .metadata(serde_json::json!({"doc": "42"}))
                .hold(HoldId::new(7))
        );
    }

    #[test]
    fn missing_fields_read_as_empty() {
        let r = Request::new("f", "u", serde_json::json!({}));
        assert_eq!((r.model(), r.max_tokens()), ("", 0));
    }
}
