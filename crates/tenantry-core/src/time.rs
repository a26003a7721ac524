//! [`UnixMicros`]: the one stored unit of time, so periods compare the same way in Rust,
//! PostgreSQL and SQLite.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// Every table stores time in this unit (`BIGINT`), so a period is the same half-open range of
/// integers on every backend and in Rust.
///
/// # Example
///
/// ```
/// use tenantry_core::UnixMicros;
///
/// let new_year = UnixMicros::from_ymd(2026, 1, 1)?;
/// assert_eq!(new_year.get(), 1_767_225_600_000_000);
/// assert_eq!(UnixMicros::from(new_year.to_datetime()?), new_year);
/// # Ok::<(), tenantry_core::time::OutOfRange>(())
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMicros(pub i64);

/// A date or instant outside the calendar this crate converts to (years −9999 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("time out of range: {0} µs since the Unix epoch")]
pub struct OutOfRange(pub i64);

impl UnixMicros {
    /// The current time.
    #[must_use]
    pub fn now() -> Self {
        OffsetDateTime::now_utc().into()
    }

    /// Midnight UTC of a calendar date.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] for a date that does not exist.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Result<Self, OutOfRange> {
        let month = time::Month::try_from(month).map_err(|_| OutOfRange(0))?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| OutOfRange(0))?;
        Ok(Self::from_date(date))
    }

    /// Midnight UTC of `date`.
    #[must_use]
    pub fn from_date(date: Date) -> Self {
        let seconds = date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
        Self(seconds * 1_000_000)
    }

    /// The instant as a UTC date-time.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] beyond the years −9999 to 9999.
    pub fn to_datetime(self) -> Result<OffsetDateTime, OutOfRange> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .map_err(|_| OutOfRange(self.0))
    }

    /// The raw microsecond count.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for UnixMicros {
    /// A raw microsecond count, as stored.
    fn from(micros: i64) -> Self {
        Self(micros)
    }
}

impl From<OffsetDateTime> for UnixMicros {
    /// Truncates to the microsecond; saturates beyond `i64` (never reached by a real clock).
    fn from(at: OffsetDateTime) -> Self {
        let micros = at.unix_timestamp_nanos() / 1_000;
        Self(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_convert_both_ways() {
        assert_eq!(UnixMicros::from_ymd(1970, 1, 1), Ok(UnixMicros(0)));
        assert!(UnixMicros::from_ymd(2026, 2, 30).is_err());
        assert!(UnixMicros(i64::MAX).to_datetime().is_err());
        let at = time::macros::datetime!(2026-12-03 13:21:37.123456789 UTC);
        assert_eq!(UnixMicros::from(at).get(), 1_796_304_097_123_456);
    }
}
