//! The cost formula, written down once: exclusive token buckets × rate snapshot → nano-USD.
//!
//! # The formula
//!
//! Rates are integer **micro-USD per million tokens** (µUSD/MTok), which is the same number as
//! **pico-USD per token**; so `$3.75/MTok` is `3_750_000` and `$0.025/MTok` is `25_000`.
//! Multipliers are integers too: the provider modifiers in **per-mille** (‰, `1000` = 1×: batch
//! `500`, `inference_geo: us` `1100`) and the host's feature-tier and region multipliers in
//! **basis points** (`10_000` = 1×, resolution 0.01 %).
//!
//! ```text
//! pico  = input_tokens          × input_rate
//!       + cache_write_5m_tokens × cache_write_5m_rate
//!       + cache_write_1h_tokens × cache_write_1h_rate
//!       + cache_read_tokens     × cache_read_rate
//!       + output_tokens         × output_rate                  (exact, pico-USD)
//! cost_nanos          = round½( pico × batch_permille × geo_permille × tier_bp × region_bp / 10¹⁷ )
//! standard_cost_nanos = round½( pico × 1000           × geo_permille × tier_bp × region_bp / 10¹⁷ )
//! ```
//!
//! `10¹⁷ = 10³ (pico → nano) × 10³ (‰) × 10³ (‰) × 10⁴ (bp) × 10⁴ (bp)`, and `round½` rounds
//! half away from zero, **once**, on the exact rational value. Nothing before it is rounded, so a
//! line can be re-derived from its row alone, and a reversal (all tokens negated) costs exactly
//! the negated amount.
//!
//! Long-context pricing switches *all* tokens of a request to another rate set; that choice is
//! made when the snapshot is taken ([`crate::PriceBook::snapshot`]) and the chosen rates are the
//! ones stored on the row, so the formula above has no tier logic.
//!
//! # Ranges (enforced in Rust and by `CHECK` constraints in both databases)
//!
//! | value | range |
//! |---|---|
//! | each token bucket | `−10⁹ ..= 10⁹` (negative only on correction rows) |
//! | each rate | `0 ..= 10⁹` µUSD/MTok (up to $1,000 per million tokens) |
//! | `batch_permille` | `0 ..= 1000` (a batch discount never raises the price) |
//! | `geo_permille` | `0 ..= 10_000` (up to 10×) |
//! | `tier_bp`, `region_bp` | `0 ..= 100_000` (up to 10× each) |
//!
//! So `|pico| ≤ 5 × 10⁹ × 10⁹ = 5 × 10¹⁸ < 2⁶³ ≈ 9.22 × 10¹⁸`, the multiplier product is
//! `≤ 10³ · 10⁴ · 10⁵ · 10⁵ = 10¹⁷`, and the result is `≤ 5 × 10¹⁸ · 10¹⁷ / 10¹⁷`, which fits an
//! `i64`. The full product (`≤ 5 × 10³⁵`) fits an `i128` (`1.7 × 10³⁸`), which is what Rust uses.
//!
//! # The same formula in each engine
//!
//! * **Rust**: `i128` product, then one division by 10¹⁷ rounding half away from zero.
//! * **PostgreSQL**: `pico` and the multiplier product in `bigint` (both proved to fit above;
//!   PostgreSQL raises an error on overflow rather than wrapping), their product in `numeric`
//!   (exact; its scale is the sum of the scales), multiplied by the literal
//!   `0.00000000000000001` (exact, unlike numeric division), then `round(numeric)`, which
//!   rounds half away from zero. Keeping `numeric` to the last two operations keeps the
//!   generated columns cheap on insert.
//! * **SQLite** has no decimal type and turns an overflowing integer into a float, so the
//!   product is done exactly in base-10⁹ limbs of `i64`, on `a = abs(pico)` and the
//!   multiplier product `p` (`B = 10⁹`):
//!
//!   ```text
//!   a1 = a / B   (≤ 5·10⁹)      a0 = a % B  (< 10⁹)
//!   p1 = p / B   (≤ 10⁸)        p0 = p % B  (< 10⁹)
//!   lo = a0·p0                                   < 10¹⁸
//!   m  = a1·p0 + a0·p1 + lo / B                  < 5·10¹⁸ + 10¹⁷ + 10⁹
//!   hi = a1·p1 + m / B                           ≤ 5·10¹⁷ + 5.1·10⁹
//!        (so a·p = hi·10¹⁸ + (m % B)·10⁹ + lo % B)
//!   q  = hi·10 + (m % B) / 10⁸                   = ⌊a·p / 10¹⁷⌋ ≤ 5·10¹⁸
//!   r  = ((m % B) % 10⁸)·10⁹ + lo % B            = a·p mod 10¹⁷ < 10¹⁷
//!   cost = sign(pico) · (q + (r ≥ 5·10¹⁶ ? 1 : 0))
//!   ```
//!
//!   Every intermediate stays below `2⁶³`; a crate-private Rust twin of this expression is
//!   property-tested against the `i128` path without a database.
//!
//! The property test in `tests/parity.rs` inserts ≥ 10,000 random rows (zeros, bounds,
//! negative corrections, every multiplier) into real PostgreSQL and SQLite and compares every
//! stored value with [`line_cost`].

use sea_query::{Expr, ExprTrait, Func};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::{Nanos, div_round_half_away};
use crate::schema::Usage;

/// Largest absolute token count of one bucket on one row.
pub const MAX_TOKENS: i64 = 1_000_000_000;
/// Largest rate, in micro-USD per million tokens ($1,000/MTok).
pub const MAX_RATE: i64 = 1_000_000_000;
/// Largest batch multiplier, in per-mille (1×).
pub const MAX_BATCH_PERMILLE: i64 = 1_000;
/// Largest data-residency multiplier, in per-mille (10×).
pub const MAX_GEO_PERMILLE: i64 = 10_000;
/// Largest feature-tier or region multiplier, in basis points (10×).
pub const MAX_TENANT_BP: i64 = 100_000;
/// A multiplier of exactly 1×, in per-mille.
pub const ONE_PERMILLE: i64 = 1_000;
/// A multiplier of exactly 1×, in basis points.
pub const ONE_BP: i64 = 10_000;

const DENOMINATOR: i128 = 100_000_000_000_000_000; // 10^17

/// Token counts in five mutually exclusive buckets: no token is in two of them.
///
/// Anthropic reports `input_tokens` *without* the cache tokens, so its usage maps one to one
/// ([`TokenBuckets::from_usage`] is the single place that says so). A provider that
/// reports inclusive totals must subtract before building this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenBuckets {
    /// Uncached input tokens.
    pub input: i64,
    /// Tokens written to the 5-minute prompt cache.
    pub cache_write_5m: i64,
    /// Tokens written to the 1-hour prompt cache.
    pub cache_write_1h: i64,
    /// Tokens read from the prompt cache.
    pub cache_read: i64,
    /// Output tokens (thinking included).
    pub output: i64,
}

impl TokenBuckets {
    /// The buckets as `(column name, count)` pairs, in formula order.
    #[must_use]
    pub(crate) const fn as_array(&self) -> [(&'static str, i64); 5] {
        [
            ("input_tokens", self.input),
            ("cache_write_5m_tokens", self.cache_write_5m),
            ("cache_write_1h_tokens", self.cache_write_1h),
            ("cache_read_tokens", self.cache_read),
            ("output_tokens", self.output),
        ]
    }

    /// Tokens that count toward a long-context threshold: input plus every cache bucket.
    #[must_use]
    pub const fn prompt_tokens(&self) -> i64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    /// Every bucket negated, for a reversal row.
    #[must_use]
    pub const fn negated(&self) -> Self {
        Self {
            input: -self.input,
            cache_write_5m: -self.cache_write_5m,
            cache_write_1h: -self.cache_write_1h,
            cache_read: -self.cache_read,
            output: -self.output,
        }
    }

    /// Checks every bucket against [`MAX_TOKENS`].
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] naming the first bucket outside `−MAX_TOKENS ..= MAX_TOKENS`.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in self.as_array() {
            check_range(field, value, -MAX_TOKENS, MAX_TOKENS)?;
        }
        Ok(())
    }
}

/// One rate per token bucket, in micro-USD per million tokens (= pico-USD per token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rates {
    /// Uncached input.
    pub input: i64,
    /// 5-minute cache write.
    pub cache_write_5m: i64,
    /// 1-hour cache write.
    pub cache_write_1h: i64,
    /// Cache read.
    pub cache_read: i64,
    /// Output.
    pub output: i64,
}

impl Rates {
    /// The rates as `(column name, rate)` pairs, in formula order.
    #[must_use]
    pub(crate) const fn as_array(&self) -> [(&'static str, i64); 5] {
        [
            ("input_rate", self.input),
            ("cache_write_5m_rate", self.cache_write_5m),
            ("cache_write_1h_rate", self.cache_write_1h),
            ("cache_read_rate", self.cache_read),
            ("output_rate", self.output),
        ]
    }

    /// Checks every rate against `0 ..= MAX_RATE`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] naming the first rate outside the range.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in self.as_array() {
            check_range(field, value, 0, MAX_RATE)?;
        }
        Ok(())
    }
}

/// Which rate set of a model was applied to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextTier {
    /// The model's standard rates.
    Standard,
    /// The long-context rates: the prompt passed the model's threshold, so every token of the
    /// request is priced at them.
    Long,
}

impl ContextTier {
    /// The value stored in the `context_tier` column.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Long => "long",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "standard" => Ok(Self::Standard),
            "long" => Ok(Self::Long),
            other => Err(Error::InvalidRow(format!("unknown context tier `{other}`"))),
        }
    }
}

/// Everything the formula needs besides the tokens: the rates and every multiplier used.
///
/// A ledger row stores all of it, so the line can be re-derived and audited after the price
/// book has changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateSnapshot {
    /// The price-book row the rates came from (`model@effective_from`).
    pub price_id: String,
    /// Standard or long-context rate set.
    pub context_tier: ContextTier,
    /// The rates of the chosen set.
    pub rates: Rates,
    /// Batch multiplier in per-mille: `500` on the Message Batches API, `1000` otherwise.
    pub batch_permille: i64,
    /// Data-residency multiplier in per-mille (`1100` for `inference_geo: us`, else `1000`).
    pub geo_permille: i64,
    /// The host's feature-tier multiplier in basis points (`10_000` = 1×).
    pub tier_bp: i64,
    /// The host's region multiplier in basis points (`10_000` = 1×).
    pub region_bp: i64,
}

impl RateSnapshot {
    /// Checks rates and multipliers against their documented ranges.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] naming the first value outside its range.
    pub fn validate(&self) -> Result<()> {
        self.rates.validate()?;
        check_range("batch_permille", self.batch_permille, 0, MAX_BATCH_PERMILLE)?;
        check_range("geo_permille", self.geo_permille, 0, MAX_GEO_PERMILLE)?;
        check_range("tier_bp", self.tier_bp, 0, MAX_TENANT_BP)?;
        check_range("region_bp", self.region_bp, 0, MAX_TENANT_BP)?;
        Ok(())
    }
}

/// The priced line: what is charged, and what the same usage costs without the batch discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineCost {
    /// The charged cost (`cost_nanos`).
    pub cost: Nanos,
    /// The same usage at synchronous prices (`standard_cost_nanos`).
    pub standard_cost: Nanos,
}

impl LineCost {
    /// What batching saved on this line: `standard_cost − cost`.
    #[must_use]
    pub fn saved_by_batching(&self) -> Nanos {
        self.standard_cost - self.cost
    }
}

/// Prices one line with the formula of this module, after checking every range.
///
/// ```
/// use tenantry_cost::formula::{line_cost, ContextTier, RateSnapshot, Rates, TokenBuckets};
/// let snapshot = RateSnapshot {
///     price_id: "claude-sonnet-4-5@2025-09-29".into(),
///     context_tier: ContextTier::Standard,
///     rates: Rates { input: 3_000_000, cache_write_5m: 3_750_000, cache_write_1h: 6_000_000,
///                    cache_read: 300_000, output: 15_000_000 },
///     batch_permille: 500, geo_permille: 1000, tier_bp: 10_000, region_bp: 10_000,
/// };
/// let tokens = TokenBuckets { input: 1_000, output: 1_000, ..Default::default() };
/// let line = line_cost(&tokens, &snapshot)?;
/// assert_eq!(line.standard_cost.get(), 18_000_000); // $0.018
/// assert_eq!(line.cost.get(), 9_000_000); // half of it on the batch lane
/// # Ok::<(), tenantry_cost::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::OutOfRange`] when a token count, rate or multiplier is outside the documented range.
pub fn line_cost(tokens: &TokenBuckets, snapshot: &RateSnapshot) -> Result<LineCost> {
    tokens.validate()?;
    snapshot.validate()?;
    Ok(line_cost_unchecked(tokens, snapshot))
}

/// [`line_cost`] on values already known to be in range.
pub(crate) fn line_cost_unchecked(tokens: &TokenBuckets, snapshot: &RateSnapshot) -> LineCost {
    cost_parts(
        tokens,
        &snapshot.rates,
        [
            snapshot.batch_permille,
            snapshot.geo_permille,
            snapshot.tier_bp,
            snapshot.region_bp,
        ],
    )
}

/// The formula on its parts: `[batch ‰, geo ‰, tier bp, region bp]`, all in range.
pub(crate) fn cost_parts(tokens: &TokenBuckets, rates: &Rates, mults: [i64; 4]) -> LineCost {
    let [batch, geo, tier, region] = mults;
    let pico = pico_usd(tokens, rates);
    let rest = i128::from(geo) * i128::from(tier) * i128::from(region);
    let standard = pico * (i128::from(ONE_PERMILLE) * rest);
    let charged = pico * (i128::from(batch) * rest);
    LineCost {
        cost: Nanos(narrow(div_round_half_away(charged, DENOMINATOR))),
        standard_cost: Nanos(narrow(div_round_half_away(standard, DENOMINATOR))),
    }
}

/// The exact pre-multiplier amount of a line, in pico-USD.
fn pico_usd(tokens: &TokenBuckets, rates: &Rates) -> i128 {
    i128::from(tokens.input) * i128::from(rates.input)
        + i128::from(tokens.cache_write_5m) * i128::from(rates.cache_write_5m)
        + i128::from(tokens.cache_write_1h) * i128::from(rates.cache_write_1h)
        + i128::from(tokens.cache_read) * i128::from(rates.cache_read)
        + i128::from(tokens.output) * i128::from(rates.output)
}

/// In range (see the module's range analysis) the result always fits `i64`; saturate anyway
/// rather than wrap.
fn narrow(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn check_range(field: &'static str, value: i64, min: i64, max: i64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// The SQLite evaluation of the formula, done in `i64` limbs exactly as the generated column
/// does it; kept in Rust so a unit test can compare it with the `i128` path without a database.
///
/// `pico` is the exact bucket sum (`|pico| ≤ 5 × 10¹⁸`), `mult` the multiplier product
/// (`0 ≤ mult ≤ 10¹⁷`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn sqlite_limbs(pico: i64, mult: i64) -> i64 {
    const B: i64 = 1_000_000_000; // limb base 10^9
    let a = pico.abs(); // ≤ 5e18
    let (a1, a0) = (a / B, a % B); // a1 ≤ 5e9, a0 < 1e9
    let (p1, p0) = (mult / B, mult % B); // p1 ≤ 1e8, p0 < 1e9
    let a0p0 = a0 * p0; // < 1e18
    let m = a1 * p0 + a0 * p1 + a0p0 / B; // < 5e18 + 1e17 + 1e9
    let c2 = a1 * p1 + m / B; // ≤ 5e17 + 5.1e9; product = c2·10^18 + (m % B)·10^9 + a0p0 % B
    let q = c2 * 10 + (m % B) / 100_000_000; // product / 10^17, truncated
    let rem = (m % B) % 100_000_000 * B + a0p0 % B; // product % 10^17, < 10^17
    let mag = q + i64::from(rem >= 50_000_000_000_000_000);
    if pico < 0 { -mag } else { mag }
}

fn col(c: Usage) -> Expr {
    Expr::col(c)
}

fn pico_expr() -> Expr {
    let term = |t: Usage, r: Usage| col(t).mul(col(r));
    term(Usage::InputTokens, Usage::InputRate)
        .add(term(Usage::CacheWrite5mTokens, Usage::CacheWrite5mRate))
        .add(term(Usage::CacheWrite1hTokens, Usage::CacheWrite1hRate))
        .add(term(Usage::CacheReadTokens, Usage::CacheReadRate))
        .add(term(Usage::OutputTokens, Usage::OutputRate))
}

fn mult_expr(standard: bool) -> Expr {
    let batch = if standard {
        Expr::val(ONE_PERMILLE)
    } else {
        col(Usage::BatchPermille)
    };
    batch
        .mul(col(Usage::GeoPermille))
        .mul(col(Usage::TierBp))
        .mul(col(Usage::RegionBp))
}

/// The PostgreSQL generated-column expression (`standard` = without the batch multiplier).
pub(crate) fn postgres_expr(standard: bool) -> Expr {
    // A numeric literal, not a bound value: DDL has no parameters, and 10^-17 as a numeric
    // literal is exact (a float would not be).
    let scale = Expr::cust("0.00000000000000001");
    let exact = Expr::expr(pico_expr())
        .cast_as("numeric")
        .mul(mult_expr(standard));
    Func::round(exact.mul(scale)).cast_as("bigint")
}

/// The SQLite generated-column expression: [`sqlite_limbs`] written as SQL.
pub(crate) fn sqlite_expr(standard: bool) -> Expr {
    let b = || Expr::val(1_000_000_000_i64);
    let a = || Expr::expr(Func::abs(pico_expr()));
    let a1 = || a().div(b());
    let a0 = || a().modulo(b());
    let p1 = || mult_expr(standard).div(b());
    let p0 = || mult_expr(standard).modulo(b());
    let a0p0 = || a0().mul(p0());
    let m = || a1().mul(p0()).add(a0().mul(p1())).add(a0p0().div(b()));
    let c2 = || a1().mul(p1()).add(m().div(b()));
    let q = || {
        c2().mul(Expr::val(10_i64))
            .add(m().modulo(b()).div(Expr::val(100_000_000_i64)))
    };
    let rem = || {
        m().modulo(b())
            .modulo(Expr::val(100_000_000_i64))
            .mul(b())
            .add(a0p0().modulo(b()))
    };
    let up: Expr = Expr::case(rem().gte(Expr::val(50_000_000_000_000_000_i64)), 1_i64)
        .finally(0_i64)
        .into();
    let mag = || q().add(up.clone());
    Expr::case(pico_expr().lt(0_i64), Expr::val(0_i64).sub(mag()))
        .finally(mag())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn snapshot(rates: Rates, batch: i64, geo: i64, tier: i64, region: i64) -> RateSnapshot {
        RateSnapshot {
            price_id: "m@2025-01-01".into(),
            context_tier: ContextTier::Standard,
            rates,
            batch_permille: batch,
            geo_permille: geo,
            tier_bp: tier,
            region_bp: region,
        }
    }

    #[test]
    fn extremes_fit_i64() {
        let max = TokenBuckets {
            input: MAX_TOKENS,
            cache_write_5m: MAX_TOKENS,
            cache_write_1h: MAX_TOKENS,
            cache_read: MAX_TOKENS,
            output: MAX_TOKENS,
        };
        let r = Rates {
            input: MAX_RATE,
            cache_write_5m: MAX_RATE,
            cache_write_1h: MAX_RATE,
            cache_read: MAX_RATE,
            output: MAX_RATE,
        };
        let s = snapshot(
            r,
            MAX_BATCH_PERMILLE,
            MAX_GEO_PERMILLE,
            MAX_TENANT_BP,
            MAX_TENANT_BP,
        );
        let line = line_cost(&max, &s).unwrap();
        assert_eq!(line.cost.get(), 5_000_000_000_000_000_000);
        let neg = line_cost(&max.negated(), &s).unwrap();
        assert_eq!(neg.cost.get(), -5_000_000_000_000_000_000);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let t = TokenBuckets {
            output: MAX_TOKENS + 1,
            ..TokenBuckets::default()
        };
        let s = snapshot(Rates::default(), 1000, 1000, ONE_BP, ONE_BP);
        assert!(matches!(
            line_cost(&t, &s),
            Err(Error::OutOfRange {
                field: "output_tokens",
                ..
            })
        ));
        let s = snapshot(Rates::default(), 1001, 1000, ONE_BP, ONE_BP);
        assert!(matches!(
            line_cost(&TokenBuckets::default(), &s),
            Err(Error::OutOfRange {
                field: "batch_permille",
                ..
            })
        ));
    }

    #[test]
    fn midpoints_round_away_from_zero() {
        // 1 token at 25_000 pico ($0.025/MTok) × 0.5 batch = 12.5 pico... = 0.0125 nano → 0;
        // 100 tokens at 25_000 pico × 0.5 = 1_250_000 pico = 1250 nano exactly.
        // 1 token at 1_500 pico = 1.5 nano → 2, and −1 token → −2.
        let r = Rates {
            input: 1_500,
            ..Rates::default()
        };
        let s = snapshot(r, 1000, 1000, ONE_BP, ONE_BP);
        let one = TokenBuckets {
            input: 1,
            ..TokenBuckets::default()
        };
        assert_eq!(line_cost(&one, &s).unwrap().cost, Nanos(2));
        assert_eq!(line_cost(&one.negated(), &s).unwrap().cost, Nanos(-2));
        let s = snapshot(
            Rates {
                input: 2_500,
                ..Rates::default()
            },
            1000,
            1000,
            ONE_BP,
            ONE_BP,
        );
        assert_eq!(line_cost(&one, &s).unwrap().cost, Nanos(3));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn sqlite_limbs_match_i128(
            pico in -5_000_000_000_000_000_000_i64..=5_000_000_000_000_000_000,
            b in 0..=MAX_BATCH_PERMILLE, g in 0..=MAX_GEO_PERMILLE,
            t in 0..=MAX_TENANT_BP, r in 0..=MAX_TENANT_BP,
        ) {
            let mult = b * g * t * r;
            let exact = div_round_half_away(i128::from(pico) * i128::from(mult), DENOMINATOR);
            prop_assert_eq!(i128::from(sqlite_limbs(pico, mult)), exact);
        }
    }
}
