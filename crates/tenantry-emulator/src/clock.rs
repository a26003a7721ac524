//! The emulator's controllable clock: real time, optionally sped up, plus manual jumps.
//!
//! Everything time-dependent in the emulator (batch latency, the 24-hour expiry, the
//! 29-day archive, prompt-cache lifetimes, timestamps in responses) reads this clock, so a
//! test can cross a day in microseconds with [`Clock::advance`] or run time faster with
//! [`Clock::set_scale`].

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
    fn scaled_clock_runs_faster() {
        let clock = Clock::new();
        clock.set_scale(1000);
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.now() - before >= time::Duration::seconds(5));
    }
}
