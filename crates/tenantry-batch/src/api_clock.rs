//! The API's clock as this host sees it: a lower bound of how far it runs ahead of ours.
//!
//! A batch create whose answer was lost is looked for among the batches created *after* it
//! was sent, in the API's clock. Comparing the API's `created_at` with this host's clock would
//! adopt a batch created just before the send (a host clock running ahead) or miss the batch
//! itself (a host clock running behind). So the client learns the offset from what the API
//! says about time: the `Date` header of every response and the `created_at` of every batch it
//! creates. Each observation gives a lower bound (the API stamped the value no later than we
//! received it); the latest bound of each kind is kept and the larger one wins. Used as
//! `send time + bound`, it is never later than the API's time of the send, so the batch the
//! send created is never excluded.

use std::sync::Mutex;
use std::sync::PoisonError;

use time::OffsetDateTime;

/// Lower bounds of the API clock's offset from this host's.
#[derive(Debug, Default)]
pub(crate) struct ApiClock {
    bounds: Mutex<Bounds>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Bounds {
    /// From the `Date` header (whole seconds, rounded down by the server).
    date: Option<time::Duration>,
    /// From a created batch's `created_at` (sub-second).
    created: Option<time::Duration>,
}

impl ApiClock {
    /// A response with this `Date` header value arrived at `received`.
    pub(crate) fn observe_date(&self, date: &str, received: OffsetDateTime) {
        if let Some(at) = parse_http_date(date) {
            self.bounds().date = Some(at - received);
        }
    }

    /// The API stamped `created_at` on a batch whose create answer arrived at `received`.
    pub(crate) fn observe_created(&self, created_at: OffsetDateTime, received: OffsetDateTime) {
        self.bounds().created = Some(created_at - received);
    }

    /// The best lower bound known, or `None` before the first answer.
    pub(crate) fn offset(&self) -> Option<time::Duration> {
        let bounds = *self.bounds();
        match (bounds.date, bounds.created) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn bounds(&self) -> std::sync::MutexGuard<'_, Bounds> {
        self.bounds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An IMF-fixdate (`Wed, 03 Dec 2026 09:10:40 GMT`), the only `Date` format servers send now.
fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn an_imf_fixdate_is_read_and_anything_else_is_ignored() {
        assert_eq!(
            parse_http_date("Wed, 03 Dec 2026 09:10:40 GMT"),
            Some(datetime!(2026-12-03 09:10:40 UTC))
        );
        assert_eq!(parse_http_date("2026-12-03T09:10:40Z"), None);
        let clock = ApiClock::default();
        clock.observe_date("yesterday", OffsetDateTime::now_utc());
        assert_eq!(clock.offset(), None);
    }

    #[test]
    fn the_larger_of_the_latest_bounds_wins() {
        let clock = ApiClock::default();
        let received = datetime!(2026-12-03 09:10:40.900 UTC);
        // The server's clock read 09:10:40.x, so it is at least 0.9 s behind ours.
        clock.observe_date("Wed, 03 Dec 2026 09:10:40 GMT", received);
        assert_eq!(clock.offset(), Some(time::Duration::milliseconds(-900)));
        clock.observe_created(datetime!(2026-12-03 09:10:40.850 UTC), received);
        assert_eq!(clock.offset(), Some(time::Duration::milliseconds(-50)));
        // A later, smaller observation replaces its kind's bound (a clock may be stepped back).
        clock.observe_created(datetime!(2026-12-03 09:10:40.100 UTC), received);
        assert_eq!(clock.offset(), Some(time::Duration::milliseconds(-800)));
    }
}
