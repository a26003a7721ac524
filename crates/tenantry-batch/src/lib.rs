//! Typed async client for Anthropic's Messages and Message Batches APIs.
//!
//! A client a service can trust with money: every batch operation, results streamed at memory
//! speed in bounded memory, the official SDKs' retry rules, and no way to submit a batch twice by
//! accident.
//!
//! # Example
//!
//! Against the local emulator (the same code runs against the real API with
//! [`Client::from_env`]):
//!
//! ```
//! use futures_util::TryStreamExt;
//! use tenantry_batch::types::{MessageParam, MessageParams, ResultOutcome};
//! use tenantry_batch::{BatchRequests, Client, Config, PollPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let emulator = tenantry_emulator::Emulator::builder().api_key("sk-test").start().await?;
//! # let base_url = emulator.base_url();
//! let client = Client::new(Config::new("sk-test").base_url(base_url))?;
//!
//! let mut requests = BatchRequests::new();
//! for (id, question) in [("q1", "What is 2 + 2?"), ("q2", "Name a prime number.")] {
//!     let params = MessageParams::new("claude-haiku-4-5", 64, vec![MessageParam::user(question)]);
//!     requests.push(id, &params)?;
//! }
//! let batch = client.batches().create(requests).await?;
//! let poll = PollPolicy::default().initial(std::time::Duration::from_millis(50));
//! let ended = client.batches().wait(&batch.id, poll, |b| println!("{:?}", b.request_counts)).await?;
//! assert_eq!(ended.request_counts.total(), 2);
//!
//! let mut results = client.batches().results(&batch.id).await?;
//! while let Some(line) = results.try_next().await? {
//!     if let ResultOutcome::Succeeded { message } = &line.result {
//!         println!("{}: {}", line.custom_id, message.text());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # What is where
//!
//! - [`Client`] (from a [`Config`]) hands out [`Messages`] (`create`, `count_tokens`) and
//!   [`Batches`] (`create`, `retrieve`, `list`, `list_all`, `cancel`, `delete`, `results`,
//!   `watch`, `wait`), and [`Reports`] (the Admin API's usage and cost reports, read with an
//!   [`AdminKey`], as typed paged streams).
//! - [`BatchRequests`] validates and serializes a batch before anything is sent;
//!   [`BatchSplitter`] packs any number of requests into the fewest batches.
//! - [`ResultStream`] decodes results straight off the HTTP body ([`jsonl`] is its core).
//! - [`RetryPolicy`] holds the retry rules; [`Error`] is the one error type.
//! - [`types`] holds the wire models.
//!
//! # Retries and the batch create
//!
//! Calls are retried like the official SDKs do (see [`retry`](RetryPolicy)). A batch create is
//! not idempotent: when its outcome is unknown it is reconciled against the batch list, never
//! re-sent (see [`Batches::create`], and [`Batches::try_create`] for callers that settle an
//! unknown outcome themselves).
//!
//! # Secrets
//!
//! The API key is an [`ApiKey`]: no `Debug`, `Display` or error of this crate shows it, and the
//! header carrying it is marked sensitive.
//!
//! # Telemetry
//!
//! Every call is a `tracing` span (`tenantry.api.call`) with its endpoint, method, status, the
//! API's request id and its retries; never a header, a body or the key. With the `telemetry`
//! feature, calls by endpoint and status and retries are counted through the `metrics`
//! facade ([`telemetry`] lists the names).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api_clock;
mod batches;
mod client;
mod config;
mod error;
pub mod jsonl;
mod messages;
mod reports;
mod requests;
mod results;
mod retry;
pub mod telemetry;
pub mod types;

pub use batches::{Batches, Direction, ListParams, PollPolicy};
pub use client::Client;
pub use config::{API_VERSION, AdminKey, ApiKey, Config, DEFAULT_BASE_URL};
pub use error::{ApiError, Error, Result, ValidationRule};
pub use messages::Messages;
pub use reports::{
    Amount, BucketWidth, CacheCreationTokens, CostBucket, CostGroupBy, CostReportPage,
    CostReportParams, CostRow, Reports, UsageBucket, UsageGroupBy, UsageReportPage,
    UsageReportParams, UsageRow,
};
pub use requests::{BatchLimits, BatchRequests, BatchSplitter, validate_request};
pub use results::ResultStream;
pub use retry::RetryPolicy;
