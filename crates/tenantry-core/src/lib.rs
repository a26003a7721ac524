//! The internal core of tenantry, the way `sqlx-core` sits under `sqlx`: the domain types the
//! crates share, one SQL layer that runs sea-query statements on PostgreSQL or SQLite with bound
//! values, and one migration runner for every component's schema.
//!
//! Hosts use it through the crates above it, which re-export what they hand out (a
//! [`TenantId`], a [`Lane`], a [`Usage`], a [`Page`]); its own API carries no stability promise
//! beyond theirs.
//!
//! | module | what it holds |
//! |---|---|
//! | [`error_kind`] | [`ErrorKind`]: the kinds of failure every crate's error falls into; [`ExceededLimit`]: the limit an input broke |
//! | [`tenant`] | [`TenantId`]: the validated id every store call is scoped by |
//! | [`lane`] | [`Lane`]: batch (discounted) or urgent (the synchronous Messages API) |
//! | [`usage`] | [`Usage`] and its cache breakdown, as the Anthropic API reports them |
//! | [`page`] | [`Page`] and [`Cursor`]: one page of a list |
//! | [`time`] | [`UnixMicros`]: the stored unit of time |
//! | `db` (feature `sql`) | `Backend`, `Pool`, `Tx`: one statement API over both databases |
//! | `migrate` (feature `sql`) | `Component`, `Migration`, `migrate`: versioned, checksummed, locked |
//!
//! # Example
//!
//! ```
//! use tenantry_core::{Lane, TenantId};
//!
//! let tenant = TenantId::new("acme")?;
//! assert_eq!(tenant.as_str(), "acme");
//! assert_eq!(Lane::default(), Lane::Batch);
//! # Ok::<(), tenantry_core::InvalidTenantId>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error_kind;
pub mod lane;
mod open_enum;
pub mod page;
pub mod tenant;
pub mod time;
pub mod usage;

#[cfg(feature = "sql")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
pub mod db;
#[cfg(feature = "sql")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
pub mod migrate;

pub use error_kind::{ErrorKind, ExceededLimit};
pub use lane::{Lane, ParseLaneError};
pub use page::{Cursor, Page};
pub use tenant::{InvalidTenantId, TENANT_ID_MAX, TenantId};
pub use time::UnixMicros;
pub use usage::{CacheCreation, OutputTokensDetails, ServerToolUsage, ServiceTier, Usage};
