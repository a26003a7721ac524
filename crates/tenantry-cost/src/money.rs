//! The money unit: integer nano-USD in an `i64`, and the one rounding rule.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, Neg, Sub};

use serde::{Deserialize, Serialize};

/// An amount of money in integer nano-USD (1 nano-USD = 10⁻⁹ USD).
///
/// `i64` holds ±9.22 × 10¹⁸ nano-USD, that is ±$9.22 billion: a tenant spending $100M in a
/// period sums to 10¹⁷, 1/92 of the range. Negative amounts are credits and corrections.
///
/// ```
/// use tenantry_cost::Nanos;
/// let three_dollars = Nanos::from_usd_micros(3_000_000);
/// assert_eq!(three_dollars.get(), 3_000_000_000);
/// assert_eq!(three_dollars.to_string(), "$3.000000000");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i64);

impl Nanos {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// The raw count of nano-USD.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }

    /// An amount given in micro-USD (10⁻⁶ USD), saturating at the range ends.
    #[must_use]
    pub const fn from_usd_micros(micros: i64) -> Self {
        Self(micros.saturating_mul(1_000))
    }

    /// Addition that reports overflow instead of wrapping.
    #[must_use]
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
}

impl Add for Nanos {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0 + rhs.0)
    }
}

impl Sub for Nanos {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 - rhs.0)
    }
}

impl Neg for Nanos {
    type Output = Self;
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl Sum for Nanos {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

impl fmt::Display for Nanos {
    /// Dollars with all nine decimals, e.g. `$0.000000027` or `-$1.500000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}${}.{:09}",
            abs / 1_000_000_000,
            abs % 1_000_000_000
        )
    }
}

/// Divides `numerator` by a positive `denominator`, rounding half away from zero.
///
/// This is the single rounding step of the cost formula; PostgreSQL's `round(numeric)` and the
/// SQLite expression in [`crate::formula`] round the same way.
pub(crate) const fn div_round_half_away(numerator: i128, denominator: i128) -> i128 {
    let abs = numerator.unsigned_abs();
    let den = denominator.unsigned_abs();
    let q = abs / den;
    let r = abs % den;
    let rounded = if r >= den - r { q + 1 } else { q };
    // `rounded <= abs / den + 1`, and callers keep `abs / den` far below i128::MAX.
    #[allow(clippy::cast_possible_wrap)]
    let rounded = rounded as i128;
    if numerator < 0 { -rounded } else { rounded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round_half_away(25, 10), 3);
        assert_eq!(div_round_half_away(-25, 10), -3);
        assert_eq!(div_round_half_away(24, 10), 2);
        assert_eq!(div_round_half_away(-24, 10), -2);
        assert_eq!(div_round_half_away(26, 10), 3);
        assert_eq!(div_round_half_away(5, 10), 1);
        assert_eq!(div_round_half_away(4, 10), 0);
        assert_eq!(div_round_half_away(0, 10), 0);
        assert_eq!(div_round_half_away(15, 10), 2);
        assert_eq!(div_round_half_away(35, 10), 4);
    }

    #[test]
    fn display_shows_nine_decimals() {
        assert_eq!(Nanos(27).to_string(), "$0.000000027");
        assert_eq!(Nanos(-1_500_000_000).to_string(), "-$1.500000000");
        assert_eq!(Nanos(i64::MIN).to_string(), "-$9223372036.854775808");
    }
}
