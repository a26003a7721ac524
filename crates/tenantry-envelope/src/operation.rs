//! `Operation`: work that was accepted but is not finished, and where to ask about it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;
use crate::problem::whole_seconds;

/// Accepted work that is still running: the body of a pending envelope and of an HTTP
/// `202 Accepted` response.
///
/// `status_url` is the status monitor: the client polls it (not sooner than `retry_after`
/// seconds) until it answers with a success or error envelope. The `axum` integration sends it
/// as the `Location` header and `retry_after` as `Retry-After`.
///
/// Wire form: `{"id":"job_7","state":"queued","status_url":"/v1/jobs/job_7","retry_after":5}`
/// (`retry_after` omitted when unset).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tenantry_envelope::{Operation, OperationState};
///
/// let operation = Operation::new("job_7", "/v1/jobs/job_7")?
///     .with_state(OperationState::Running)
///     .with_retry_after(Duration::from_secs(5));
/// assert_eq!(
///     serde_json::to_string(&operation)?,
///     r#"{"id":"job_7","state":"running","status_url":"/v1/jobs/job_7","retry_after":5}"#,
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Operation {
    id: OperationId,
    state: OperationState,
    status_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    retry_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    notice: Option<String>,
}

impl Operation {
    /// A queued operation with this id, polled at `status_url` (absolute, or relative to the
    /// request URL).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeaderValue`] if the id or the URL is empty or holds characters outside
    /// visible ASCII (both travel in headers and URLs).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Operation, OperationState};
    ///
    /// let operation = Operation::new("job_1", "/v1/jobs/job_1")?;
    /// assert_eq!(operation.state(), OperationState::Queued);
    /// assert!(Operation::new("job 1", "/v1/jobs/job 1").is_err());
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    pub fn new(id: impl Into<String>, status_url: impl Into<String>) -> Result<Operation, Error> {
        Ok(Operation {
            id: OperationId::new(id)?,
            state: OperationState::Queued,
            status_url: visible_ascii("status_url", status_url.into())?,
            retry_after: None,
            notice: None,
        })
    }

    /// Sets the state (default: [`OperationState::Queued`]).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Operation, OperationState};
    ///
    /// let operation = Operation::new("job_1", "/v1/jobs/job_1")?.with_state(OperationState::Running);
    /// assert_eq!(operation.state(), OperationState::Running);
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn with_state(mut self, state: OperationState) -> Operation {
        self.state = state;
        self
    }

    /// Sets how long the client should wait before polling, sent in whole seconds rounded up.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenantry_envelope::Operation;
    ///
    /// let operation = Operation::new("job_1", "/v1/jobs/job_1")?.with_retry_after(Duration::from_millis(200));
    /// assert_eq!(operation.retry_after(), Some(Duration::from_secs(1)));
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Operation {
        self.retry_after = Some(whole_seconds(delay));
        self
    }

    /// The operation's id.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Operation;
    ///
    /// assert_eq!(Operation::new("job_1", "/v1/jobs/job_1")?.id().as_str(), "job_1");
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn id(&self) -> &OperationId {
        &self.id
    }

    /// Where the operation stands.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Operation, OperationState};
    ///
    /// assert_eq!(Operation::new("job_1", "/v1/jobs/job_1")?.state(), OperationState::Queued);
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> OperationState {
        self.state
    }

    /// The URL of the status monitor.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Operation;
    ///
    /// assert_eq!(Operation::new("job_1", "/v1/jobs/job_1")?.status_url(), "/v1/jobs/job_1");
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn status_url(&self) -> &str {
        &self.status_url
    }

    /// How long to wait before polling.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Operation;
    ///
    /// assert_eq!(Operation::new("job_1", "/v1/jobs/job_1")?.retry_after(), None);
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
            .map(|secs| Duration::from_secs(u64::from(secs)))
    }

    /// Sets a notice for the client: how the work was accepted differently from what it asked
    /// (for example, sent down the batch lane because its budget passed a soft limit).
    /// Default: none.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Operation;
    ///
    /// let operation = Operation::new("job_1", "/v1/jobs/job_1")?.with_notice("batch_lane");
    /// assert_eq!(operation.notice(), Some("batch_lane"));
    /// assert!(serde_json::to_string(&operation)?.ends_with(r#","notice":"batch_lane"}"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_notice(mut self, notice: impl Into<String>) -> Operation {
        self.notice = Some(notice.into());
        self
    }

    /// The notice, if any.
    #[must_use]
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }
}

#[derive(Deserialize)]
struct OperationWire {
    id: String,
    state: OperationState,
    status_url: String,
    #[serde(default)]
    retry_after: Option<u32>,
    #[serde(default)]
    notice: Option<String>,
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = OperationWire::deserialize(deserializer)?;
        let operation =
            Operation::new(wire.id, wire.status_url).map_err(serde::de::Error::custom)?;
        Ok(Operation {
            state: wire.state,
            retry_after: wire.retry_after,
            notice: wire.notice,
            ..operation
        })
    }
}

/// The id of an [`Operation`]: a string (never a number, so JavaScript cannot round it).
///
/// # Example
///
/// ```
/// use tenantry_envelope::OperationId;
///
/// let id = OperationId::new("0190f3a0-7c1e-7000-8000-000000000001")?;
/// assert_eq!(id.to_string(), "0190f3a0-7c1e-7000-8000-000000000001");
/// assert!(OperationId::new("").is_err());
/// # Ok::<(), tenantry_envelope::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OperationId(String);

impl OperationId {
    /// An operation id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeaderValue`] if it is empty or holds characters outside visible ASCII.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::OperationId;
    ///
    /// assert_eq!(OperationId::new("job_1")?.as_str(), "job_1");
    /// assert!(OperationId::new("job\n1").is_err());
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    pub fn new(id: impl Into<String>) -> Result<OperationId, Error> {
        visible_ascii("operation id", id.into()).map(OperationId)
    }

    /// The id as a string.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::OperationId;
    ///
    /// assert_eq!(OperationId::new("job_1")?.as_str(), "job_1");
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OperationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        OperationId::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Where an unfinished operation stands. Finished operations are no longer pending: their
/// status monitor answers with a success or error envelope instead.
///
/// # Example
///
/// ```
/// use tenantry_envelope::OperationState;
///
/// assert_eq!(serde_json::to_string(&OperationState::Queued)?, r#""queued""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OperationState {
    /// Accepted and stored; waiting to be sent (e.g. collected into the next batch).
    Queued,
    /// Being worked on (e.g. its batch is processing at the provider).
    Running,
    /// A cancellation was requested and is being carried out.
    Canceling,
}

/// Values that go into headers and URLs: non-empty, visible ASCII only.
fn visible_ascii(field: &'static str, value: String) -> Result<String, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidHeaderValue { field, value });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_unsafe_values_are_rejected() {
        assert!(Operation::new("job 7", "/v1/jobs/7").is_err());
        assert!(Operation::new("job_7", "/v1/jobs/7\r\nSet-Cookie: x").is_err());
        assert!(Operation::new("job_7", "").is_err());
        assert!(Operation::new("jöb", "/v1").is_err());
        let err = serde_json::from_str::<Operation>(
            r#"{"id":"","state":"queued","status_url":"/v1/jobs/7"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("operation id cannot be sent"),
            "{err}"
        );
    }

    #[test]
    fn unknown_state_is_named() {
        let err = serde_json::from_str::<Operation>(
            r#"{"id":"a","state":"sleeping","status_url":"/v1/jobs/a"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `sleeping`"),
            "{err}"
        );
    }

    #[test]
    fn round_trip_keeps_state_and_delay() {
        let operation = Operation::new("a", "https://api.example.com/v1/jobs/a")
            .unwrap()
            .with_state(OperationState::Canceling)
            .with_retry_after(Duration::from_millis(2500));
        let back: Operation =
            serde_json::from_str(&serde_json::to_string(&operation).unwrap()).unwrap();
        assert_eq!(back, operation);
        assert_eq!(back.retry_after(), Some(Duration::from_secs(3)));
    }
}
