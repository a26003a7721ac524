#![doc = include_str!("lib.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// With one database driver (or none) compiled in, the other backend's paths are unused by
// design; the default features build and test both.
#![cfg_attr(
    not(all(feature = "postgres", feature = "sqlite")),
    allow(dead_code, unused_imports, unused_variables, unreachable_code)
)]
// Money is integer arithmetic only: no float may creep onto a money path.
#![deny(
    clippy::float_arithmetic,
    clippy::float_cmp,
    clippy::cast_precision_loss
)]

pub mod alert;
mod budget;
mod error;
pub mod formula;
mod hold;
mod ledger;
mod money;
mod multiplier;
mod price_book;
pub mod reconcile;
pub mod report;
mod schema;
mod usage;

pub use alert::{AlertSink, BudgetAlert};
pub use budget::{BudgetPolicy, BudgetStatus, Budgets, Window, budget_window};
pub use error::{Error, Result};
pub use formula::{ContextTier, LineCost, RateSnapshot, Rates, TokenBuckets};
pub use hold::{Hold, HoldRequest};
pub use ledger::{Ledger, LedgerEntry, LedgerLine, Recorded};
pub use money::Nanos;
pub use multiplier::Multipliers;
pub use price_book::{LongContext, PriceBook, PriceQuery, RateRow};
pub use report::{GroupBy, Reports, SpendQuery, SpendRow};
pub use schema::MIGRATIONS;
pub use tenantry_core::Lane;
pub use tenantry_core::UnixMicros;
pub use tenantry_core::{CacheCreation, Usage};
pub use tenantry_core::{InvalidTenantId, TenantId};
pub use usage::served_lane;
