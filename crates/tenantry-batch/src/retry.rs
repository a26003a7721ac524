//! The retry policy: which failures are retried, and how long to wait before the next attempt.
//!
//! # Defaults
//!
//! The official SDKs' rules: 2 retries (3 attempts), backoff `min(0.5 s · 2ⁿ, 8 s)` reduced by up
//! to 25 % of random jitter, server-provided delays honoured up to 60 s.
//!
//! # Classifiers
//!
//! 1. A response header `x-should-retry: true|false` decides, before anything else.
//! 2. Else 408, 409, 429 and every status ≥ 500 (including 529 `overloaded_error`) are retried,
//!    except a 429 whose `error.details.error_code` is `enforced_spend_limit_reached`: waiting
//!    does not lift a spend limit.
//! 3. Connection errors and per-attempt timeouts are retried, except for a batch create whose
//!    body may have reached the server (see [`Batches::create`](crate::Batches::create)).
//!
//! The delay is `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date),
//! capped at [`RetryPolicy::max_retry_after`]; without either header it is the backoff above.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// `error.details.error_code` of a 429 that stops at a spend limit.
pub(crate) const SPEND_LIMIT_CODE: &str = "enforced_spend_limit_reached";

/// How often and how patiently failed calls are retried.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tenantry_batch::RetryPolicy;
///
/// let policy = RetryPolicy::default().max_retries(5).max_delay(Duration::from_secs(20));
/// assert_eq!(policy.backoff(0, 0.0), Duration::from_millis(500));
/// assert_eq!(policy.backoff(10, 0.0), Duration::from_secs(20));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    #[must_use]
    pub fn none() -> Self {
        Self::default().max_retries(0)
    }

    /// Retries after the first attempt. Default: 2.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first backoff delay, doubled on each retry. Default: 500 ms.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest backoff delay. Default: 8 s.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest server-requested delay (`retry-after`) honoured; longer ones are capped to it.
    /// Default: 60 s.
    #[must_use]
    pub fn max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// Whether backoff delays are reduced by up to 25 % at random. Default: true.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries after the first attempt.
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether a response with this status and these headers is retried (ignoring the count).
    /// `error_code` is the body's `error.details.error_code`.
    #[must_use]
    pub fn should_retry(status: u16, headers: &HeaderMap, error_code: Option<&str>) -> bool {
        match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => return true,
            Some("false") => return false,
            _ => {}
        }
        if status == 429 && error_code == Some(SPEND_LIMIT_CODE) {
            return false;
        }
        matches!(status, 408 | 409 | 429) || status >= 500
    }

    /// The delay before retry number `retry` (0 for the first retry) after a response with
    /// `headers` (pass an empty map after a transport error), received at `now`.
    #[must_use]
    pub fn delay(&self, retry: u32, headers: &HeaderMap, now: SystemTime) -> Duration {
        match server_delay(headers, now) {
            Some(delay) if !delay.is_zero() => delay.min(self.max_retry_after),
            _ => {
                let jitter = if self.jitter {
                    rand::random::<f64>()
                } else {
                    0.0
                };
                self.backoff(retry, jitter)
            }
        }
    }

    /// The backoff delay before retry number `retry`: `min(initial · 2^retry, max) · (1 − 0.25 · jitter)`,
    /// `jitter` in `[0, 1)`.
    #[must_use]
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let doubled = self.initial_delay.saturating_mul(1u32 << retry.min(31));
        let base = doubled.min(self.max_delay);
        base.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }
}

/// The delay the server asked for: `retry-after-ms`, else `retry-after` (seconds or HTTP date).
pub(crate) fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    SystemTime::from(date).duration_since(now).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn statuses_retried_like_the_official_sdks() {
        let none = HeaderMap::new();
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(RetryPolicy::should_retry(status, &none, None), "{status}");
        }
        for status in [400, 401, 402, 403, 404, 413, 422] {
            assert!(!RetryPolicy::should_retry(status, &none, None), "{status}");
        }
    }

    #[test]
    fn x_should_retry_wins() {
        assert!(!RetryPolicy::should_retry(
            529,
            &headers(&[("x-should-retry", "false")]),
            None
        ));
        assert!(RetryPolicy::should_retry(
            400,
            &headers(&[("x-should-retry", "true")]),
            None
        ));
        assert!(RetryPolicy::should_retry(
            429,
            &headers(&[("x-should-retry", "true")]),
            Some(SPEND_LIMIT_CODE)
        ));
    }

    #[test]
    fn spend_limit_is_not_retried() {
        assert!(!RetryPolicy::should_retry(
            429,
            &HeaderMap::new(),
            Some(SPEND_LIMIT_CODE)
        ));
        assert!(RetryPolicy::should_retry(
            429,
            &HeaderMap::new(),
            Some("other")
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_up_to_a_quarter() {
        let p = RetryPolicy::default();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(p.backoff(0, 0.0)), 500);
        assert_eq!(ms(p.backoff(1, 0.0)), 1000);
        assert_eq!(ms(p.backoff(2, 0.0)), 2000);
        assert_eq!(ms(p.backoff(4, 0.0)), 8000);
        assert_eq!(ms(p.backoff(40, 0.0)), 8000);
        assert_eq!(ms(p.backoff(0, 0.999_999)), 375);
        assert_eq!(ms(p.backoff(1, 0.5)), 875);
        for retry in 0..6 {
            let d = p.delay(retry, &HeaderMap::new(), SystemTime::now());
            let base = p.backoff(retry, 0.0);
            assert!(d <= base && d >= base.mul_f64(0.75), "{d:?} vs {base:?}");
        }
    }

    #[test]
    fn server_delays_win_and_are_capped() {
        let p = RetryPolicy::default();
        let now = SystemTime::now();
        assert_eq!(
            p.delay(0, &headers(&[("retry-after-ms", "1500")]), now),
            Duration::from_millis(1500)
        );
        assert_eq!(
            p.delay(
                0,
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Duration::from_millis(250)
        );
        assert_eq!(
            p.delay(1, &headers(&[("retry-after", "3")]), now),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(0, &headers(&[("retry-after", "3600")]), now),
            Duration::from_secs(60)
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            p.delay(
                0,
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]),
                at - Duration::from_secs(7)
            ),
            Duration::from_secs(7)
        );
        let fallback = p.delay(0, &headers(&[("retry-after", "soon")]), now);
        assert!(fallback <= Duration::from_millis(500));
    }
}
