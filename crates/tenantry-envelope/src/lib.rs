//! Typed response envelopes: one wire shape for success, error and pending work, which a
//! TypeScript client narrows on a single `status` member.
//!
//! This is the server half of the "one generic fetch function for every endpoint" client
//! pattern. Every handler answers with an [`Envelope<T>`]:
//!
//! ```json
//! {"status":"success","data":T,"meta":{...}}
//! {"status":"error","error":{"code":"BUDGET_EXCEEDED","status":402,"message":"...","retryable":false}}
//! {"status":"pending","operation":{"id":"job_7","state":"queued","status_url":"/v1/jobs/job_7"}}
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tenantry_envelope::{Code, Envelope, Limit, Operation, Page, Problem};
//!
//! // A list endpoint.
//! let page = Envelope::success(Page::last(vec!["summary-1", "summary-2"]));
//! assert_eq!(page.http_status(), http::StatusCode::OK);
//!
//! // A submit endpoint that accepted work for later.
//! let accepted: Envelope<()> = Operation::new("job_7", "/v1/jobs/job_7")?
//!     .with_retry_after(Duration::from_secs(5))
//!     .into();
//! assert_eq!(accepted.http_status(), http::StatusCode::ACCEPTED);
//!
//! // A refusal with a stable code and the limit that was hit.
//! let refused: Envelope<()> = Problem::budget_exceeded(
//!     "the monthly budget of tenant acme is spent",
//!     Limit::new("monthly_spend", "usd_micros", 50_000_000),
//! )
//! .into();
//! let json = serde_json::to_string(&refused)?;
//! assert!(json.contains(r#""code":"BUDGET_EXCEEDED""#));
//! assert_eq!(serde_json::from_str::<Envelope<()>>(&json)?, refused);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The parts
//!
//! - [`Envelope<T>`]: the union, tagged on `status`; `data` is always its own member, so `T`
//!   can be a list, a number or a string.
//! - [`Problem`]: a stable [`Code`] (built-in, or a host's [`CustomCode`]), a message for
//!   people, `retryable`, optional [`Details`] (field errors with a [`JsonPointer`], limits) and
//!   a request id. Each code maps to one HTTP status. [`Problem::to_problem_details`] renders
//!   RFC 9457 `application/problem+json` for clients that want that instead.
//! - [`Operation`]: accepted work, with a string id, a state, a status URL and a retry hint;
//!   sent as `202 Accepted` with `Location` and `Retry-After`.
//! - [`Page<T>`]: a list page with an opaque [`Cursor`] and `has_more`.
//!
//! 64-bit integers of our own types never travel as bare JSON numbers: [`Limit`] values are
//! decimal strings, ids are strings, delays are seconds in a `u32`.
//!
//! # Feature flags
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `axum` | `IntoResponse` for the wire types; `axum::Json`, `axum::Query` and `axum::Path` extractors whose rejections are error envelopes; fallbacks for unknown routes and methods | no |
//! | `ts` | TypeScript definitions of the wire types through ts-rs, and `ts::export` to write them | no |
//!
//! Without features the crate depends on serde, serde_json, http and thiserror only.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod code;
mod envelope;
mod error;
mod operation;
mod pointer;
mod problem;
mod problem_details;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "ts")]
pub mod ts;

pub use crate::code::{Code, CustomCode};
pub use crate::envelope::{Envelope, Meta, Outcome};
pub use crate::error::{Error, Result};
pub use crate::operation::{Operation, OperationId, OperationState};
pub use crate::pointer::JsonPointer;
pub use crate::problem::{Details, FieldError, Limit, Problem};
pub use crate::problem_details::{FieldProblem, PROBLEM_JSON, ProblemDetails};
pub use tenantry_core::{Cursor, Page};
