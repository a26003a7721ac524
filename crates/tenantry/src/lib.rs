#![doc = include_str!("lib.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "_handle")]
mod alerts;
#[cfg(feature = "_handle")]
mod builder;
#[cfg(feature = "_handle")]
mod db;
#[cfg(feature = "_handle")]
mod engine;
#[cfg(feature = "_handle")]
mod error;
#[cfg(feature = "_handle")]
mod handle;
#[cfg(feature = "_handle")]
mod holds;
#[cfg(feature = "_handle")]
mod input;
#[cfg(feature = "_handle")]
mod jobs;
#[cfg(feature = "_handle")]
mod output;
#[cfg(feature = "_handle")]
mod reconcile;
#[cfg(feature = "_handle")]
mod repair;
#[cfg(feature = "_handle")]
mod request;
#[cfg(feature = "_handle")]
mod sink;
#[cfg(feature = "_handle")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub mod telemetry;
#[cfg(feature = "ts")]
#[cfg_attr(docsrs, doc(cfg(feature = "ts")))]
pub mod ts;

#[cfg(feature = "batch")]
#[cfg_attr(docsrs, doc(cfg(feature = "batch")))]
#[doc(inline)]
pub use tenantry_batch as batch;
#[cfg(feature = "cost")]
#[cfg_attr(docsrs, doc(cfg(feature = "cost")))]
#[doc(inline)]
pub use tenantry_cost as cost;
#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
#[doc(inline)]
pub use tenantry_emulator as emulator;
#[cfg(feature = "envelope")]
#[cfg_attr(docsrs, doc(cfg(feature = "envelope")))]
#[doc(inline)]
pub use tenantry_envelope as envelope;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc(inline)]
pub use tenantry_metrics as metrics;
#[cfg(feature = "queue")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue")))]
#[doc(inline)]
pub use tenantry_queue as queue;
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
#[doc(inline)]
pub use tenantry_webhooks as webhooks;

#[cfg(feature = "envelope")]
#[cfg_attr(docsrs, doc(cfg(feature = "envelope")))]
pub use tenantry_envelope::{Envelope, Operation, Problem};

#[cfg(feature = "_handle")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use crate::{
    alerts::BUDGET_THRESHOLD,
    builder::{DEFAULT_HOLD_RECONCILE, DEFAULT_HOLD_TTL, DEFAULT_STATUS_PATH, TenantryBuilder},
    db::Database,
    engine::EngineTask,
    error::{Error, JOB_CANCELED, JOB_EXPIRED, JOB_FAILED, Result},
    handle::{SOFT_LIMIT_NOTICE, Tenantry},
    input::InputTokens,
    jobs::Jobs,
    output::JobOutput,
    repair::Repair,
    request::Request,
    sink::{SOURCE_BATCH, SOURCE_MESSAGES},
};
