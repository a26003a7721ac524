//! `Envelope<T>`: the one wire shape of every response, discriminated by `status`.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::{Operation, Problem};

/// Every response body: a success with data, an error with a [`Problem`], or a pending
/// [`Operation`], told apart by the `status` member.
///
/// ```json
/// {"status":"success","data":T,"meta":{...}}   // meta is optional
/// {"status":"error","error":Problem}
/// {"status":"pending","operation":Operation}
/// ```
///
/// `data` is always a member of its own, so `T` may be an object, a list, a number or a string.
/// A TypeScript client narrows on `status` with one `switch`; one generic fetch function serves
/// every endpoint. With the `axum` feature an envelope is a response: 200, the problem's status,
/// or 202 with `Location` and `Retry-After`.
///
/// Reading an envelope with an unknown `status`, or without one of its members, fails with a
/// serde error that names the unknown value or the missing member.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Code, Envelope, Problem};
///
/// let ok = Envelope::success(vec!["a", "b"]);
/// assert_eq!(serde_json::to_string(&ok)?, r#"{"status":"success","data":["a","b"]}"#);
///
/// let failed: Envelope<Vec<String>> = Problem::new(Code::NotFound, "no such tenant").into();
/// let json = serde_json::to_string(&failed)?;
/// assert!(json.starts_with(r#"{"status":"error","error":{"code":"NOT_FOUND""#));
/// assert_eq!(serde_json::from_str::<Envelope<Vec<String>>>(&json)?, failed);
///
/// let err = serde_json::from_str::<Envelope<u8>>(r#"{"status":"loading"}"#).unwrap_err();
/// assert!(err.to_string().contains("unknown variant `loading`"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Envelope<T> {
    /// The request succeeded.
    Success {
        /// The result.
        data: T,
        /// Information about the response rather than the result (request id, extensions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        meta: Option<Meta>,
    },
    /// The request failed.
    Error {
        /// What went wrong.
        error: Problem,
    },
    /// The request was accepted and is still being worked on.
    Pending {
        /// Where it stands and where to poll.
        operation: Operation,
    },
}

impl<T> Envelope<T> {
    /// A success carrying `data`, without meta.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Envelope;
    ///
    /// assert_eq!(serde_json::to_string(&Envelope::success(42))?, r#"{"status":"success","data":42}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn success(data: T) -> Envelope<T> {
        Envelope::Success { data, meta: None }
    }

    /// A success carrying `data` and `meta`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Envelope, Meta};
    ///
    /// let envelope = Envelope::success_with_meta("hi", Meta::new().with_request_id("req_9"));
    /// assert_eq!(
    ///     serde_json::to_string(&envelope)?,
    ///     r#"{"status":"success","data":"hi","meta":{"request_id":"req_9"}}"#,
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn success_with_meta(data: T, meta: Meta) -> Envelope<T> {
        Envelope::Success {
            data,
            meta: Some(meta),
        }
    }

    /// An error carrying `problem`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Code, Envelope, Problem};
    ///
    /// let envelope: Envelope<u8> = Envelope::error(Problem::new(Code::Conflict, "already canceled"));
    /// assert_eq!(envelope.http_status(), http::StatusCode::CONFLICT);
    /// ```
    #[must_use]
    pub fn error(problem: Problem) -> Envelope<T> {
        Envelope::Error { error: problem }
    }

    /// A pending envelope for accepted work.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Envelope, Operation};
    ///
    /// let envelope: Envelope<u8> = Envelope::pending(Operation::new("job_1", "/v1/jobs/job_1")?);
    /// assert_eq!(envelope.status(), "pending");
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn pending(operation: Operation) -> Envelope<T> {
        Envelope::Pending { operation }
    }

    /// The wire value of `status`: `"success"`, `"error"` or `"pending"`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Envelope;
    ///
    /// assert_eq!(Envelope::success(()).status(), "success");
    /// ```
    #[must_use]
    pub fn status(&self) -> &'static str {
        match self {
            Envelope::Success { .. } => "success",
            Envelope::Error { .. } => "error",
            Envelope::Pending { .. } => "pending",
        }
    }

    /// The HTTP status this envelope is sent with: 200 for a success, the problem's status for
    /// an error, 202 for pending work.
    ///
    /// # Example
    ///
    /// ```
    /// use http::StatusCode;
    /// use tenantry_envelope::{Envelope, Operation};
    ///
    /// let pending: Envelope<()> = Operation::new("job_1", "/v1/jobs/job_1")?.into();
    /// assert_eq!(pending.http_status(), StatusCode::ACCEPTED);
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        match self {
            Envelope::Success { .. } => StatusCode::OK,
            Envelope::Error { error } => error.http_status(),
            Envelope::Pending { .. } => StatusCode::ACCEPTED,
        }
    }

    /// Transforms the data of a success; errors and pending envelopes pass through.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Envelope;
    ///
    /// assert_eq!(Envelope::success(2).map(|n| n * 2), Envelope::success(4));
    /// ```
    #[must_use]
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        match self {
            Envelope::Success { data, meta } => Envelope::Success {
                data: f(data),
                meta,
            },
            Envelope::Error { error } => Envelope::Error { error },
            Envelope::Pending { operation } => Envelope::Pending { operation },
        }
    }

    /// The data of a success, the problem of an error, or the operation of pending work, as a
    /// `Result` for callers that consume envelopes (clients, tests).
    ///
    /// # Errors
    ///
    /// [`Outcome::Failed`] with the problem, or [`Outcome::Pending`] with the operation.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::{Envelope, Outcome};
    ///
    /// let envelope: Envelope<u32> = serde_json::from_str(r#"{"status":"success","data":7}"#)?;
    /// assert_eq!(envelope.into_result().ok(), Some(7));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn into_result(self) -> Result<T, Outcome> {
        match self {
            Envelope::Success { data, .. } => Ok(data),
            Envelope::Error { error } => Err(Outcome::Failed(error)),
            Envelope::Pending { operation } => Err(Outcome::Pending(operation)),
        }
    }
}

impl<T> From<Problem> for Envelope<T> {
    fn from(problem: Problem) -> Self {
        Envelope::error(problem)
    }
}

impl<T> From<Operation> for Envelope<T> {
    fn from(operation: Operation) -> Self {
        Envelope::pending(operation)
    }
}

impl<T, E: Into<Problem>> From<Result<T, E>> for Envelope<T> {
    /// `Ok(data)` becomes a success, `Err(e)` an error with `e.into()`.
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(data) => Envelope::success(data),
            Err(error) => Envelope::error(error.into()),
        }
    }
}

/// Why [`Envelope::into_result`] has no data: the request failed or is still pending.
///
/// # Example
///
/// ```
/// use tenantry_envelope::{Code, Envelope, Outcome, Problem};
///
/// let envelope: Envelope<u8> = Problem::new(Code::NotFound, "gone").into();
/// match envelope.into_result() {
///     Err(Outcome::Failed(problem)) => assert_eq!(problem.code(), &Code::NotFound),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The envelope was an error.
    Failed(Problem),
    /// The envelope was pending.
    Pending(Operation),
}

/// Information about a success response rather than its data.
///
/// Wire form: `{"request_id":"req_1","extra":{"deprecation":"use /v2"}}`, each member omitted
/// when unset or empty.
///
/// # Example
///
/// ```
/// use tenantry_envelope::Meta;
///
/// let meta = Meta::new().with_request_id("req_1").with_extra("api_version", "2026-11-01");
/// assert_eq!(
///     serde_json::to_string(&meta)?,
///     r#"{"request_id":"req_1","extra":{"api_version":"2026-11-01"}}"#,
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct Meta {
    /// The id of the request, for support and log correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub request_id: Option<String>,
    /// Host-defined members, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Meta {
    /// Empty meta.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Meta;
    ///
    /// let meta = Meta::new();
    /// assert!(meta.request_id.is_none() && meta.extra.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Meta {
        Meta::default()
    }

    /// Sets the request id.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Meta;
    ///
    /// assert_eq!(Meta::new().with_request_id("req_1").request_id.as_deref(), Some("req_1"));
    /// ```
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Meta {
        self.request_id = Some(request_id.into());
        self
    }

    /// Adds a host-defined member.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::Meta;
    ///
    /// let meta = Meta::new().with_extra("shard", 3);
    /// assert_eq!(meta.extra["shard"], 3);
    /// ```
    #[must_use]
    pub fn with_extra(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Meta {
        self.extra.insert(name.into(), value.into());
        self
    }
}
