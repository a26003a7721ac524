//! Reconciliation of the ledger with the provider's own account: its usage report (tokens)
//! and cost report (money), reached through [`Ledger::reconcile`].
//!
//! # What is compared
//!
//! For every UTC day of the range, the ledger is summed by **cell**: (day, scope, model,
//! service tier, context window, inference geo) and token class. The provider's usage
//! report gives the same cells' tokens and its cost report their amounts. Each cell is
//! compared **token for token** and, where the tokens agree, **to the last unit** of money
//! (10⁻¹⁸ USD, [`AttoUsd`]).
//!
//! | ledger | provider |
//! |---|---|
//! | `occurred_at` (UTC day) | bucket `starting_at` (`1d` buckets) |
//! | `model`, resolved through the price book's aliases | `model`, resolved the same way |
//! | `lane`: `batch` → `batch`, `sync` → `standard` | `service_tier` |
//! | prompt tokens (input + cache writes + cache reads) > 200,000 → `200k-1M`, else `0-200k` | `context_window` |
//! | `inference_geo`, absent → `global` | `inference_geo` (`not_available` → `global`) |
//! | the five token buckets | `uncached_input_tokens`, `cache_creation.*`, `cache_read_input_tokens`, `output_tokens` |
//! | tokens × the row's rates × batch and data-residency multipliers (the provider's price, **without** the host's feature-tier and region multipliers) | `amount` (decimal cents, converted exactly) |
//!
//! # How differences are classified
//!
//! - Tokens differ: an **ingestion** difference. [`DifferenceKind::MissingUsage`] when the
//!   provider billed tokens the ledger lacks (a lost result, an unrecorded call);
//!   [`DifferenceKind::DuplicateUsage`] when the ledger holds tokens the provider did not bill
//!   (a request recorded twice, or dropped from the provider's account). The cost difference
//!   of such a cell follows from the tokens and is not classified again.
//! - Tokens agree and the amounts differ by at most the stated tolerance
//!   ([`ReconcileRequest::tolerance`], default one cent per cell): [`DifferenceKind::Rounding`].
//!   State the tolerance the provider's rounding needs: within it, a cell cannot tell a
//!   rounding from a small price difference (a few hundred tokens at a stale rate move a
//!   cell by less than a cent), so a provider that writes exact amounts is reconciled with
//!   a tolerance of [`AttoUsd::ZERO`].
//! - Tokens agree and the amounts differ by more: [`DifferenceKind::PriceDifference`], with
//!   the ledger's effective rate and the rate the provider's amount implies (a stale or wrong
//!   price book).
//!
//! # Attribution
//!
//! The provider's reports know workspaces and API keys, not tenants. With
//! [`Attribution::Workspaces`] each cell is scoped by workspace, both reports split by it, so
//! a difference names the tenants of that workspace. With [`Attribution::ApiKeys`] the token
//! comparison is scoped by API key, but the cost report has no API-key dimension, so money is
//! compared for the whole organization. Tenants without a mapping, and provider usage in
//! workspaces or keys no tenant maps to, fall into the unscoped cell (`scope = None`):
//! [`Reconciliation::unattributed`] says which, plainly. With [`Attribution::Organization`]
//! (the default) nothing is attributed to a tenant.
//!
//! # Runs are stored
//!
//! Every run is stored with its differences (`tenantry_reconciliation_runs`,
//! `tenantry_reconciliation_diffs`, migration 2 of [`crate::MIGRATIONS`]); a later run over
//! overlapping days lists what changed since the latest earlier one
//! ([`Reconciliation::changes`]).

mod compare;
mod ledger_sums;
mod store;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::{Error, Result};
use crate::formula::TokenBuckets;
use crate::ledger::Ledger;
use tenantry_core::TenantId;

/// An exact amount of money in 10⁻¹⁸ USD (atto-USD): the unit in which a token count times
/// a rate (pico-USD per token) times two per-mille multipliers is an integer, and in which
/// the cost report's decimal cents convert exactly (1 cent = 10¹⁶).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct AttoUsd(pub i128);

impl AttoUsd {
    /// Zero.
    pub const ZERO: Self = Self(0);
    /// One cent.
    pub const CENT: Self = Self(10_000_000_000_000_000);

    /// An amount in cents written as `digits × 10^-scale` (the cost report's decimal string,
    /// parsed), when it converts exactly.
    ///
    /// ```
    /// use tenantry_cost::reconcile::AttoUsd;
    /// // "123.45" cents = $1.2345
    /// assert_eq!(AttoUsd::from_cents(12_345, 2), Some(AttoUsd(1_234_500_000_000_000_000)));
    /// assert_eq!(AttoUsd::from_cents(1, 17), None); // below 10⁻¹⁸ USD
    /// ```
    #[must_use]
    pub fn from_cents(digits: i128, scale: u32) -> Option<Self> {
        if scale <= 16 {
            10i128
                .checked_pow(16 - scale)
                .and_then(|f| digits.checked_mul(f))
                .map(Self)
        } else {
            let f = 10i128.checked_pow(scale - 16)?;
            (digits % f == 0).then_some(Self(digits / f))
        }
    }

    fn to_decimal_string(self) -> String {
        self.0.to_string()
    }

    fn from_decimal_string(text: &str) -> Result<Self> {
        text.parse()
            .map(Self)
            .map_err(|_| Error::InvalidRow(format!("amount `{text}` is not an integer")))
    }
}

impl fmt::Display for AttoUsd {
    /// Dollars with every significant decimal, e.g. `$0.0123` or `-$1.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let unit = 1_000_000_000_000_000_000u128;
        let fraction = format!("{:018}", abs % unit);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{sign}${}", abs / unit)
        } else {
            write!(f, "{sign}${}.{fraction}", abs / unit)
        }
    }
}

/// A token class: one of the five exclusive buckets, as the reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenClass {
    /// Uncached input (`uncached_input_tokens`).
    Input,
    /// 5-minute cache writes (`cache_creation.ephemeral_5m_input_tokens`).
    CacheWrite5m,
    /// 1-hour cache writes (`cache_creation.ephemeral_1h_input_tokens`).
    CacheWrite1h,
    /// Cache reads (`cache_read_input_tokens`).
    CacheRead,
    /// Output (`output_tokens`).
    Output,
}

impl TokenClass {
    /// Every class, in formula order.
    pub const ALL: [Self; 5] = [
        Self::Input,
        Self::CacheWrite5m,
        Self::CacheWrite1h,
        Self::CacheRead,
        Self::Output,
    ];

    /// The cost report's `token_type` value.
    #[must_use]
    pub const fn token_type(self) -> &'static str {
        match self {
            Self::Input => "uncached_input_tokens",
            Self::CacheWrite5m => "cache_creation.ephemeral_5m_input_tokens",
            Self::CacheWrite1h => "cache_creation.ephemeral_1h_input_tokens",
            Self::CacheRead => "cache_read_input_tokens",
            Self::Output => "output_tokens",
        }
    }

    /// The class of a cost report `token_type`; `None` for one this version does not know.
    #[must_use]
    pub fn from_token_type(token_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.token_type() == token_type)
    }

    /// This class's rate in `rates`.
    pub(crate) const fn of_rates(self, rates: &crate::formula::Rates) -> i64 {
        match self {
            Self::Input => rates.input,
            Self::CacheWrite5m => rates.cache_write_5m,
            Self::CacheWrite1h => rates.cache_write_1h,
            Self::CacheRead => rates.cache_read,
            Self::Output => rates.output,
        }
    }

    /// The stored name (`input`, `cache_write_5m`, …).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::CacheWrite5m => "cache_write_5m",
            Self::CacheWrite1h => "cache_write_1h",
            Self::CacheRead => "cache_read",
            Self::Output => "output",
        }
    }

    /// This class's count in `tokens`.
    #[must_use]
    pub const fn of(self, tokens: &TokenBuckets) -> i64 {
        match self {
            Self::Input => tokens.input,
            Self::CacheWrite5m => tokens.cache_write_5m,
            Self::CacheWrite1h => tokens.cache_write_1h,
            Self::CacheRead => tokens.cache_read,
            Self::Output => tokens.output,
        }
    }
}

/// One row of the provider's usage report (a `1d` bucket, grouped by every dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUsage {
    /// The bucket's UTC day.
    pub day: Date,
    /// `workspace_id`, if grouped by it.
    pub workspace_id: Option<String>,
    /// `api_key_id`, if grouped by it.
    pub api_key_id: Option<String>,
    /// `model`.
    pub model: String,
    /// `service_tier`.
    pub service_tier: String,
    /// `context_window`.
    pub context_window: String,
    /// `inference_geo`.
    pub inference_geo: String,
    /// The row's tokens.
    pub tokens: TokenBuckets,
}

/// One token row of the provider's cost report (grouped by description, and by workspace
/// when tenants map to workspaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCost {
    /// The bucket's UTC day.
    pub day: Date,
    /// `workspace_id`, if grouped by it.
    pub workspace_id: Option<String>,
    /// `model`.
    pub model: String,
    /// `service_tier`.
    pub service_tier: String,
    /// `context_window`.
    pub context_window: String,
    /// `inference_geo`.
    pub inference_geo: String,
    /// The `token_type`.
    pub token_class: TokenClass,
    /// The amount, exactly.
    pub amount: AttoUsd,
}

/// What the provider's account says about a range of days: the rows of both reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderAccount {
    /// Usage report rows.
    pub usage: Vec<ProviderUsage>,
    /// Cost report token rows (other cost types, e.g. web search, are not ledger usage and
    /// are left out by whoever fills this).
    pub cost: Vec<ProviderCost>,
}

/// How tenants map to what the provider's reports know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribution {
    /// No mapping: the organization is compared as a whole. The default.
    #[default]
    Organization,
    /// Each listed tenant uses this provider workspace (several tenants may share one).
    Workspaces(BTreeMap<TenantId, String>),
    /// Each listed tenant uses this API key id (`apikey_…`; several may share one). Tokens
    /// are compared per key; money for the whole organization (the cost report has no
    /// API-key dimension).
    ApiKeys(BTreeMap<TenantId, String>),
}

/// What to reconcile: days `from ..= to` (UTC), how tenants map, and the rounding tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileRequest {
    /// First day (inclusive).
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
    /// Tenant mapping. Default [`Attribution::Organization`].
    pub attribution: Attribution,
    /// Largest cost difference of one cell (with equal tokens) still called rounding.
    /// Default one cent ([`AttoUsd::CENT`]).
    pub tolerance: AttoUsd,
}

impl ReconcileRequest {
    /// Days `from ..= to`, the whole organization, a tolerance of one cent per cell.
    #[must_use]
    pub fn new(from: Date, to: Date) -> Self {
        Self {
            from,
            to,
            attribution: Attribution::Organization,
            tolerance: AttoUsd::CENT,
        }
    }

    /// Tenant mapping.
    #[must_use]
    pub fn attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// Rounding tolerance per cell.
    #[must_use]
    pub fn tolerance(mut self, tolerance: AttoUsd) -> Self {
        self.tolerance = tolerance;
        self
    }
}

/// A cell: the dimensions both sides are summed by, besides the token class.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cell {
    /// UTC day.
    pub day: Date,
    /// Workspace or API key id, with a mapping; `None` for the organization or what no
    /// tenant maps to.
    pub scope: Option<String>,
    /// Model (canonical id when the price book knows it).
    pub model: String,
    /// `standard` or `batch` (or another tier the provider reports).
    pub service_tier: String,
    /// `0-200k` or `200k-1M`.
    pub context_window: String,
    /// `global`, `us`, …
    pub inference_geo: String,
}

/// How one cell and token class disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DifferenceKind {
    /// The provider billed tokens the ledger lacks (lost or unrecorded usage).
    MissingUsage,
    /// The ledger holds tokens the provider did not bill (a duplicate recording, or usage
    /// the provider's account dropped).
    DuplicateUsage,
    /// Same tokens, money apart by more than the tolerance: the price book is stale or wrong.
    PriceDifference {
        /// The ledger's effective rate (multipliers applied), micro-USD per million tokens.
        ledger_rate: i64,
        /// The rate the provider's amount implies, micro-USD per million tokens.
        implied_rate: i64,
    },
    /// Same tokens, money apart by no more than the tolerance.
    Rounding,
}

impl DifferenceKind {
    /// The stored name: `missing_usage`, `duplicate_usage`, `price_difference`, `rounding`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::MissingUsage => "missing_usage",
            Self::DuplicateUsage => "duplicate_usage",
            Self::PriceDifference { .. } => "price_difference",
            Self::Rounding => "rounding",
        }
    }
}

/// One difference between the ledger and the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Difference {
    /// Where.
    pub cell: Cell,
    /// Which tokens.
    pub class: TokenClass,
    /// What kind.
    pub kind: DifferenceKind,
    /// The ledger's tokens.
    pub ledger_tokens: i64,
    /// The provider's tokens (usage report).
    pub provider_tokens: i64,
    /// The ledger's provider cost. With [`Attribution::ApiKeys`] money is compared per
    /// organization cell, so both amounts are the organization's.
    pub ledger_cost: AttoUsd,
    /// The provider's amount (cost report).
    pub provider_cost: AttoUsd,
}

impl Difference {
    /// Provider minus ledger, in tokens.
    #[must_use]
    pub fn token_delta(&self) -> i64 {
        self.provider_tokens - self.ledger_tokens
    }

    /// Provider minus ledger, in money.
    #[must_use]
    pub fn cost_delta(&self) -> AttoUsd {
        AttoUsd(self.provider_cost.0 - self.ledger_cost.0)
    }
}

/// How a difference changed since the previous run over the same days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// Not there before.
    New,
    /// There before, with another kind, tokens or amounts.
    Changed,
    /// There before, gone now.
    Resolved,
}

/// One change since the previous run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The difference now (`None` when resolved).
    pub now: Option<Difference>,
    /// The difference in the previous run (`None` when new).
    pub before: Option<Difference>,
}

/// Usage that cannot be attributed to one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Unattributed {
    /// Tenants with ledger usage in the range but no workspace or API key mapping: their
    /// usage is compared in the unscoped cells.
    UnmappedTenants(Vec<TenantId>),
    /// Provider workspaces or API keys with usage that no tenant maps to (compared in the
    /// unscoped cells).
    UnmappedScopes(Vec<String>),
    /// Money compared for the whole organization only: the cost report has no API-key
    /// dimension.
    CostByOrganizationOnly,
    /// No mapping was given: nothing is attributed to a tenant.
    Organization,
}

/// The outcome of [`Ledger::reconcile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reconciliation {
    /// The stored run's id.
    pub run_id: i64,
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
    /// The rounding tolerance used.
    pub tolerance: AttoUsd,
    /// Cells × token classes compared (those with tokens or money on either side).
    pub compared: u64,
    /// The ledger's provider cost over the range.
    pub ledger_cost: AttoUsd,
    /// The provider's amount over the range.
    pub provider_cost: AttoUsd,
    /// Every difference, by cell and class.
    pub differences: Vec<Difference>,
    /// What cannot be attributed to a tenant.
    pub unattributed: Vec<Unattributed>,
    /// Changes since the latest earlier run that overlaps these days (`None`: no such run).
    pub previous_run: Option<i64>,
    /// Those changes.
    pub changes: Vec<Change>,
}

impl Reconciliation {
    /// Whether the ledger and the provider agree (no difference at all, rounding included).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// The differences of one kind (compared by name, ignoring rates).
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Difference> + 'a {
        self.differences
            .iter()
            .filter(move |d| d.kind.as_str() == kind)
    }
}

impl Ledger {
    /// Reconciles days `request.from ..= request.to` of the ledger with the provider's
    /// reports for the same days, stores the run, and lists what changed since the previous
    /// run over those days (see the [module docs](self)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tenantry_cost::reconcile::{ProviderAccount, ReconcileRequest};
    /// use tenantry_cost::{Ledger, PriceBook};
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
    ///     .connect("sqlite::memory:").await?;
    /// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
    /// ledger.migrate().await?;
    /// let days = ReconcileRequest::new(time::macros::date!(2026-03-01), time::macros::date!(2026-03-31));
    /// // In a real run the account comes from the Admin API (the facade fills it).
    /// let run = ledger.reconcile(&days, &ProviderAccount::default()).await?;
    /// assert!(run.is_clean() && run.previous_run.is_none());
    /// let again = ledger.reconcile(&days, &ProviderAccount::default()).await?;
    /// assert_eq!(again.previous_run, Some(run.run_id));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReconciliation`] when `to` is before `from`; [`Error::TimeRange`] when
    /// the range is outside the calendar;
    /// [`Error::Database`] when the ledger cannot be read or the run stored.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        account: &ProviderAccount,
    ) -> Result<Reconciliation> {
        if request.to < request.from {
            return Err(Error::InvalidReconciliation(format!(
                "reconciliation range ends ({}) before it starts ({})",
                request.to, request.from
            )));
        }
        let sums = ledger_sums::sum(self, request).await?;
        let outcome = compare::compare(self.price_book(), request, &sums, account);
        store::store(self, request, outcome).await
    }
}
