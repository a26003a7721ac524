//! The emulator's controllable clock: real time, optionally sped up, plus manual jumps.
//!
//! Everything time-dependent in the emulator (batch latency, the 24-hour expiry, the
//! 29-day archive, prompt-cache lifetimes, timestamps in responses) reads this clock, so a
//! test can cross a day in microseconds with [`Clock::advance`] or run time faster with
//! [`Clock::set_scale`]. Every response's `date` header is read from it too (see
//! [`http_date`]), so a client that learns the API's clock offset from `date` sees the
//! offset a test gave the clock with [`Clock::advance`] or [`Clock::set_offset`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Virtual time never passes this instant, so adding a batch's lifetimes to it cannot overflow.
const LATEST: OffsetDateTime = time::macros::datetime!(9000-01-01 0:00 UTC);

/// `at + by`, saturating at [`LATEST`].
fn add_capped(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    let by = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
    at.saturating_add(by).min(LATEST)
}

/// A shared, controllable clock. Cloning gives another handle to the same clock.
///
/// Virtual time starts at the real UTC time when the emulator starts and then runs at
/// `scale` times real speed (default 1), plus every [`advance`](Clock::advance).
///
/// At scale 1 the offset from real time stays fixed: [`advance`](Clock::advance) by an hour
/// puts the emulator's clock an hour ahead of the host's for good, as a server whose clock
/// is ahead would be; [`set_offset`](Clock::set_offset) sets that offset directly, behind as
/// well as ahead. Every response carries the virtual time in its `date` header, and
/// timestamps in bodies (`created_at`, `ended_at`, …) agree with it.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tenantry_emulator::Error> {
/// use std::time::Duration;
///
/// let emu = tenantry_emulator::Emulator::builder().start().await?;
/// let clock = emu.clock();
/// clock.set_scale(0); // frozen: only `advance` moves it
/// let before = clock.now();
/// clock.advance(Duration::from_secs(25 * 3600)); // every batch so far has expired
/// assert_eq!(clock.now() - before, time::Duration::hours(25));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    /// Virtual time at `anchor`.
    virtual_at_anchor: OffsetDateTime,
    /// Real instant of the last re-anchoring.
    anchor: Instant,
    /// How many virtual nanoseconds pass per real nanosecond.
    scale: u32,
}

impl Clock {
    /// A clock that starts now at real speed.
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                virtual_at_anchor: OffsetDateTime::now_utc(),
                anchor: Instant::now(),
                scale: 1,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current virtual time (UTC).
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        let state = self.lock();
        state.now()
    }

    /// Moves virtual time forward by `by`, as if that much time had passed (virtual time
    /// stops at the year 9000).
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        let now = state.now();
        state.virtual_at_anchor = add_capped(now, by);
        state.anchor = Instant::now();
    }

    /// Sets virtual time to the real UTC time plus `offset` (negative: behind real time).
    /// At scale 1 the offset then stays fixed; at other scales virtual time runs on from
    /// there at its scale.
    ///
    /// Unlike [`advance`](Clock::advance) this can move virtual time backwards: batches
    /// created at a later virtual time then look as if they had not reached that time yet
    /// (still `in_progress`), so set a negative offset before creating batches.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tenantry_emulator::Error> {
    /// let emu = tenantry_emulator::Emulator::builder().start().await?;
    /// // The emulated API's clock runs 90 seconds behind this host's.
    /// emu.clock().set_offset(time::Duration::seconds(-90));
    /// let behind = time::OffsetDateTime::now_utc() - emu.clock().now();
    /// assert!((behind - time::Duration::seconds(90)).abs() < time::Duration::seconds(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_offset(&self, offset: time::Duration) {
        let mut state = self.lock();
        let now = OffsetDateTime::now_utc()
            .saturating_add(offset)
            .clamp(OffsetDateTime::UNIX_EPOCH, LATEST);
        state.virtual_at_anchor = now;
        state.anchor = Instant::now();
    }

    /// Makes virtual time run `scale` times faster than real time from now on
    /// (1 = real time, the default; 0 freezes the clock except for [`advance`](Clock::advance)).
    pub fn set_scale(&self, scale: u32) {
        let mut state = self.lock();
        let now = state.now();
        state.virtual_at_anchor = now;
        state.anchor = Instant::now();
        state.scale = scale;
    }

    /// The current time scale (see [`set_scale`](Clock::set_scale)).
    #[must_use]
    pub fn scale(&self) -> u32 {
        self.lock().scale
    }
}

/// `at` as an HTTP-date (RFC 9110 / RFC 7231 IMF-fixdate, always GMT), the form of the
/// `date` header: `Thu, 03 Dec 2026 09:10:40 GMT`. Fractions of a second are dropped.
///
/// ```
/// let at = time::macros::datetime!(2026-12-03 09:10:40.75 UTC);
/// assert_eq!(tenantry_emulator::http_date(at), "Thu, 03 Dec 2026 09:10:40 GMT");
/// ```
#[must_use]
pub fn http_date(at: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

impl ClockState {
    fn now(&self) -> OffsetDateTime {
        let real = self.anchor.elapsed();
        let scaled = real.saturating_mul(self.scale);
        add_capped(self.virtual_at_anchor, scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;
    use std::time::Duration;

    #[test]
    fn advance_moves_time_forward() {
        let clock = Clock::new();
        clock.set_scale(0);
        let before = clock.now();
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(clock.now() - before, time::Duration::days(1));
    }

    #[test]
    fn huge_jumps_saturate_instead_of_overflowing() {
        let clock = Clock::new();
        clock.set_scale(u32::MAX);
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), super::LATEST);
    }

    #[test]
    fn frozen_clock_does_not_move() {
        let clock = Clock::new();
        clock.set_scale(0);
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), before);
        assert_eq!(clock.scale(), 0);
    }

    #[test]
    fn offsets_go_both_ways_and_stay_fixed() {
        let clock = Clock::new();
        clock.set_offset(time::Duration::hours(-2));
        let behind = time::OffsetDateTime::now_utc() - clock.now();
        assert!((behind - time::Duration::hours(2)).abs() < time::Duration::seconds(1));
        clock.set_offset(time::Duration::minutes(5));
        let ahead = clock.now() - time::OffsetDateTime::now_utc();
        assert!((ahead - time::Duration::minutes(5)).abs() < time::Duration::seconds(1));
        assert_eq!(clock.scale(), 1);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        let at = time::macros::datetime!(2026-01-05 07:08:09.999 +02:00);
        assert_eq!(super::http_date(at), "Mon, 05 Jan 2026 05:08:09 GMT");
        let parsed = time::PrimitiveDateTime::parse(
            super::http_date(at).trim_end_matches(" GMT"),
            time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
            ),
        )
        .unwrap()
        .assume_utc();
        assert_eq!(parsed, at.replace_millisecond(0).unwrap());
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let clock = Clock::new();
        clock.set_scale(1000);
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.now() - before >= time::Duration::seconds(5));
    }
}
