//! Price book, exact cost attribution, and a usage ledger with generated cost columns.
#![deny(missing_docs)]

mod clock;
mod error;
pub mod formula;
mod money;
mod price_book;
mod schema;
mod usage;

pub use clock::UnixMicros;
pub use error::{Error, Result};
pub use formula::{ContextTier, LineCost, RateSnapshot, Rates, TokenBuckets};
pub use money::Nanos;
pub use price_book::{LongContext, PriceBook, PriceQuery, RateRow};
pub use usage::{AnthropicUsage, CacheCreation, Lane};
mod db;
mod ledger;
pub use ledger::{Ledger, LedgerLine, Recorded, UsageRecord};
mod budget;
pub use budget::{BudgetPolicy, BudgetStatus, Period, ReservationRequest, Reserved, window};
pub mod report;
pub use report::{GroupBy, SpendQuery, SpendRow};
