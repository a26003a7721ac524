//! The queue's statements, built once with sea-query for both backends, one module per area
//! of the store.

pub(crate) mod batches;
mod bulk;
pub(crate) mod claims;
#[cfg(feature = "postgres")]
pub(crate) mod copy;
pub(crate) mod deadlines;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod polls;
pub(crate) mod repair;
pub(crate) mod skip_locked;
pub(crate) mod snapshot;
pub(crate) mod submit;
pub(crate) mod urgent;
