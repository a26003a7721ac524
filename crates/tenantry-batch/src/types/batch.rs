//! The MessageBatch object, its request counts, list pages and the deletion receipt.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use tenantry_core::open_enum;

/// A Message Batch as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageBatch {
    /// The batch id (`msgbatch_…`); treat as opaque.
    pub id: String,
    /// Where processing is.
    pub processing_status: ProcessingStatus,
    /// How many requests are in each state.
    pub request_counts: RequestCounts,
    /// When processing ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// When the batch was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When unfinished requests expire (24 hours after creation).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When the results were archived (no longer downloadable).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub archived_at: Option<OffsetDateTime>,
    /// When cancellation was requested.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub cancel_initiated_at: Option<OffsetDateTime>,
    /// Where the results are, once processing ended.
    #[serde(default)]
    pub results_url: Option<String>,
}

impl MessageBatch {
    /// Whether processing has ended (results are available unless archived).
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.processing_status == ProcessingStatus::Ended
    }
}

open_enum! {
    /// Where a batch's processing is.
    ProcessingStatus {
        /// Requests are being processed.
        InProgress = "in_progress",
        /// Cancellation was requested; in-flight requests finish.
        Canceling = "canceling",
        /// Every request succeeded, errored, was canceled or expired.
        Ended = "ended",
    }
}

/// How many requests of a batch are in each state. The sum is the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Not finished yet.
    #[serde(default)]
    pub processing: u64,
    /// Succeeded.
    #[serde(default)]
    pub succeeded: u64,
    /// Errored (not billed).
    #[serde(default)]
    pub errored: u64,
    /// Canceled (not billed).
    #[serde(default)]
    pub canceled: u64,
    /// Expired (not billed).
    #[serde(default)]
    pub expired: u64,
}

impl RequestCounts {
    /// The number of requests in the batch.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.processing + self.succeeded + self.errored + self.canceled + self.expired
    }
}

/// The answer of `GET /v1/messages/batches`: one page of the API's batch list, in the API's
/// own wire shape (tenantry's own lists page with `tenantry_core::Page`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageBatchList {
    /// The batches, newest first.
    pub data: Vec<MessageBatch>,
    /// Whether more items exist in the direction of travel.
    #[serde(default)]
    pub has_more: bool,
    /// The first id of `data` (use as `before_id` for the newer page).
    #[serde(default)]
    pub first_id: Option<String>,
    /// The last id of `data` (use as `after_id` for the older page).
    #[serde(default)]
    pub last_id: Option<String>,
}

/// The receipt of `DELETE /v1/messages/batches/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeletedMessageBatch {
    /// The deleted batch's id.
    pub id: String,
}
