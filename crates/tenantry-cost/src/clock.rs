//! Points in time as integer Unix microseconds (UTC), the ledger's `occurred_at` unit.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};

use crate::error::{Error, Result};

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// One integer type on every backend, so periods compare the same way in Rust, PostgreSQL and
/// SQLite.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    /// The current time.
    #[must_use]
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
        Self(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Midnight UTC of a calendar date.
    ///
    /// # Errors
    ///
    /// [`Error::TimeRange`] for an invalid date.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Result<Self> {
        let month = time::Month::try_from(month).map_err(|_| Error::TimeRange(0))?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| Error::TimeRange(0))?;
        Ok(Self::from_date(date))
    }

    pub(crate) fn from_date(date: Date) -> Self {
        let seconds = date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
        Self(seconds * 1_000_000)
    }

    pub(crate) fn to_datetime(self) -> Result<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .map_err(|_| Error::TimeRange(self.0))
    }

    /// The raw microsecond count.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }
}
