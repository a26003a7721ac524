//! An optional requests-per-minute limit per workspace, with the real API's rate-limit headers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// The state of a workspace's window after one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateInfo {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// When the window resets (virtual time).
    pub(crate) reset: OffsetDateTime,
}

/// Fixed one-minute windows per workspace on the virtual clock.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u64,
    windows: Mutex<HashMap<String, (OffsetDateTime, u64)>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit: limit.max(1),
            windows: Mutex::default(),
        }
    }

    /// Counts one request; `Err` when the workspace is over its limit in this window.
    pub(crate) fn check(&self, workspace: &str, now: OffsetDateTime) -> Result<RateInfo, RateInfo> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(workspace.to_owned()).or_insert((now, 0));
        if now >= window.0 + WINDOW || now < window.0 {
            *window = (now, 0);
        }
        let reset = window.0 + WINDOW;
        if window.1 >= self.limit {
            return Err(RateInfo {
                limit: self.limit,
                remaining: 0,
                reset,
            });
        }
        window.1 += 1;
        Ok(RateInfo {
            limit: self.limit,
            remaining: self.limit - window.1,
            reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_window_and_workspace() {
        let limiter = RateLimiter::new(2);
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(limiter.check("w", t0).unwrap().remaining, 1);
        assert_eq!(limiter.check("w", t0).unwrap().remaining, 0);
        let over = limiter
            .check("w", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(over.reset, t0 + WINDOW);
        assert!(limiter.check("other", t0).is_ok());
        assert_eq!(limiter.check("w", t0 + WINDOW).unwrap().remaining, 1);
    }
}
