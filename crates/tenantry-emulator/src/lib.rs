//! A faithful local Anthropic API server with fault injection, for tests, examples and benchmarks.
//!
//! It serves the Message Batches API (create, retrieve, list, cancel, delete, results) and
//! the Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) on loopback,
//! with the real API's objects, ids, headers, limits and error shapes, so a client that
//! works against it works against the real API, including the official SDKs.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tenantry_emulator::{Emulator, Endpoint, Fault, FaultPlan};
//!
//! let emu = Emulator::builder()
//!     .batch_latency(Duration::from_millis(200)) // create → ended; default 1 s
//!     .seed(7)
//!     .api_key("sk-test")
//!     .faults(FaultPlan::new().script(Endpoint::CreateBatch, Fault::overloaded(), 2))
//!     .start()
//!     .await?;
//! println!("point your client at {}", emu.base_url());
//! // A day passes in an instant: every batch created so far has ended.
//! emu.clock().advance(Duration::from_secs(24 * 3600));
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//!
//! - **Lifecycle.** A batch is `in_progress` until `created_at + batch_latency`, its
//!   requests finishing evenly over that span; counts stay hidden (`processing = n`) until
//!   it ends. Cancel moves it to `canceling`; requests already started finish, the others
//!   become `canceled`. At `expires_at` (created + 24 h) unfinished requests become
//!   `expired`. After 29 days `archived_at` is set and results answer 404. Delete works
//!   only on ended batches; afterwards the id answers 404.
//! - **Time.** Every time above is on the [`Clock`], which tests speed up, advance or
//!   offset from real time. Every response carries that virtual time in its `date` header
//!   ([`http_date`] format, `Thu, 03 Dec 2026 09:10:40 GMT`), as the real API sends one, so
//!   a client can learn the emulated API's clock offset from it.
//! - **Choices where the API documentation is silent.** Results of a batch that has not
//!   ended: 400 `invalid_request_error`; of an archived batch: 404. Cancel of an ended
//!   batch: 400; a repeated cancel while `canceling` returns the unchanged batch. Delete of
//!   an `in_progress` or `canceling` batch: 400. `list` with both `before_id` and
//!   `after_id`, or with an id unknown in the workspace: 400. Unknown route: 404
//!   `not_found_error`; known route with the wrong method: 405 `invalid_request_error`. A
//!   request body that stalls longer than the body timeout: 408 `timeout_error`.
//! - **Validation.** Envelope problems fail the create with 400 and pydantic-style messages
//!   (`requests.3.custom_id: …`); bodies over the limit get 413 `request_too_large`.
//!   Problems inside `params` (unknown model → `not_found_error`, `max_tokens` out of
//!   range, `stream: true`, batch-only restrictions, extra fields) become `errored` lines.
//! - **Content.** A [`Responder`] decides each message's content ([`EchoResponder`] by
//!   default). `usage.input_tokens` is counted as `count_tokens` counts (4 characters per
//!   token plus framing); `cache_control` breakpoints write and then read the prompt cache
//!   within its TTL (5 minutes or 1 hour); batch messages carry `service_tier: "batch"`.
//! - **Results.** `application/x-jsonl`, `\n` line endings, no blank lines, shuffled
//!   (deterministically per seed), built lazily from compact per-request results.
//! - **Auth and headers.** `x-api-key` or `Authorization: Bearer`, `anthropic-version`
//!   required, `request-id` on every response, unknown beta headers, `?beta=true` and
//!   `x-stainless-*` ignored; batches are scoped to the key's workspace. An optional
//!   requests-per-minute limit ([`EmulatorBuilder::requests_per_minute`]) answers 429 with
//!   `retry-after` and adds `anthropic-ratelimit-requests-*` headers.
//! - **Faults.** A [`FaultPlan`] injects 429/529/500/404 answers (with `retry-after`,
//!   `retry-after-ms`, `x-should-retry`), connection resets (before the work, or after it
//!   with the answer lost), truncated or slow bodies, CRLF results, one malformed, garbage
//!   or missing results line, and retryable `errored` results, scripted or by probability; every request, every completed request and every
//!   fault is counted in [`FaultCounts`].
//!
//! - **Admin API reports.** `GET /v1/organizations/usage_report/messages` and
//!   `GET /v1/organizations/cost_report` answer from the account of what the emulator billed
//!   ([`Emulator::billed`]): every Messages API call and every processed request of an ended
//!   batch, at its virtual time, with its workspace, key id ([`Emulator::api_key_id`]),
//!   model, `service_tier` (`standard` or `batch`), `context_window` (`0-200k`, or
//!   `200k-1M` past 200,000 prompt tokens) and `inference_geo` (the request's, else
//!   `global`). Buckets of `1d`, `1h` or `1m` (the cost report: `1d`), `group_by[]`, the
//!   usage report's filters (`models[]`, `workspace_ids[]`, `api_key_ids[]`,
//!   `service_tiers[]`, `context_window[]`, `inference_geos[]`), `limit` buckets per page
//!   (defaults 7 / 24 / 60, maxima 31 / 168 / 1440) and `has_more` / `next_page`, as the
//!   real API pages. The cost report's `amount` is a decimal string in cents, priced with
//!   the emulator's own table ([`Prices`]; batch ×0.5, `inference_geo: us` ×1.1,
//!   long-context rates for the models that have them). Only Admin keys (`sk-ant-admin…`,
//!   [`EmulatorBuilder::admin_key`]) may read them, and the Messages and Batches APIs refuse
//!   Admin keys (401 `authentication_error`). Tests make the account disagree with a
//!   client's ledger with [`Emulator::change_price`], [`Emulator::drop_from_account`],
//!   [`Emulator::double_in_account`] and [`Emulator::set_cost_rounding`].
//!
//! # Control routes
//!
//! Hosts that cannot call the Rust API (the binary, tests in other languages) steer the
//! emulator over HTTP under `/_emulator/`, a prefix the real API never uses (no key needed):
//!
//! | route | body | effect |
//! |---|---|---|
//! | `POST /_emulator/clock` | `{"offset_ms": O, "advance_ms": N, "scale": S}` (all optional, applied in that order) | [`Clock::set_offset`], [`Clock::advance`], [`Clock::set_scale`] |
//! | `POST /_emulator/config` | `{"batch_latency_ms": N}` | [`Emulator::set_batch_latency`] |
//! | `POST /_emulator/faults` | `{"specs": ["create:529:2", …]}` | [`Emulator::set_faults`] with [`FaultPlan::with_spec`] rules |
//! | `GET /_emulator/fault_counts` | — | [`FaultCounts::to_json`] |
//!
//! # Known models
//!
//! The current Claude models (`claude-opus-4-8`, `claude-sonnet-4-6`, `claude-haiku-4-5`, …)
//! with their output limits; [`EmulatorBuilder::model`] adds others. Any other model name
//! gets `not_found_error` (`model: NAME`), as the real API answers.
#![deny(missing_docs)]

mod account;
mod batch;
mod body;
mod cache;
mod clock;
mod conn;
mod control;
mod emulator;
mod envelope;
mod error;
mod faults;
mod ids;
mod message;
mod params;
mod ratelimit;
mod reports;
mod responder;
mod results;
mod served;
mod server;
mod tokens;
mod wire;

pub use account::{BilledUsage, CostRounding, Prices};
pub use clock::{Clock, http_date};
pub use emulator::{Emulator, EmulatorBuilder, MAX_BATCH_BODY_BYTES};
pub use error::{Error, Result};
pub use faults::{Endpoint, Fault, FaultCounts, FaultKind, FaultPlan};
pub use responder::{EchoResponder, MessageRequest, Reply, Responder};
pub use served::{Served, ServedBatch, ServedMessage};
pub use wire::ErrorType;
