//! The database's clock, on which every lease, deadline and poll time is kept.
//!
//! Engines on several hosts compare each other's lease times. Taken from each host's own clock,
//! a host running a lease-length ahead would take over work that is still in flight and send
//! it again. So a PostgreSQL store reads the server's clock (`clock_timestamp()`) and keeps the
//! offset to its host's: `now()` is the host's clock plus that offset, re-measured at least
//! every [`RESYNC`] (the engine asks at each step), so no call waits on a round trip. SQLite
//! runs in the host's process, so its clock is the host's.

#[cfg(feature = "postgres")]
pub(crate) use server::DbClock;
use time::OffsetDateTime;

use crate::validate::micros;

/// The host's clock, in microseconds since the epoch.
pub(crate) fn host_now() -> i64 {
    micros(OffsetDateTime::now_utc())
}

#[cfg(feature = "postgres")]
mod server {
    use std::sync::Mutex;
    use std::sync::PoisonError;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    use sqlx::PgPool;

    use super::host_now;
    use crate::error::Result;

    /// How long a measured offset is trusted.
    pub(crate) const RESYNC: Duration = Duration::from_secs(30);

    /// The offset of a database server's clock from this host's.
    #[derive(Debug)]
    pub(crate) struct DbClock {
        offset: AtomicI64,
        synced: Mutex<Option<Instant>>,
        host: fn() -> i64,
    }

    impl Default for DbClock {
        fn default() -> Self {
            Self::with_host_clock(host_now)
        }
    }

    impl DbClock {
        fn with_host_clock(host: fn() -> i64) -> Self {
            Self {
                offset: AtomicI64::new(0),
                synced: Mutex::new(None),
                host,
            }
        }

        /// The database's time now, in microseconds since the epoch.
        pub(crate) fn now(&self) -> i64 {
            (self.host)().saturating_add(self.offset.load(Ordering::Relaxed))
        }

        /// Measures the offset again if it is older than [`RESYNC`] (or never measured).
        pub(crate) async fn sync_if_stale(&self, pool: &PgPool) -> Result<()> {
            let stale = self
                .synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|at| at.elapsed() >= RESYNC);
            if stale {
                self.sync(pool).await?;
            }
            Ok(())
        }

        /// Measures the offset: the server's time against the midpoint of the round trip.
        pub(crate) async fn sync(&self, pool: &PgPool) -> Result<()> {
            let before = (self.host)();
            let server: i64 = sqlx::query_scalar(
                "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
            )
            .fetch_one(pool)
            .await?;
            let after = (self.host)();
            let midpoint = before + (after - before) / 2;
            self.offset
                .store(server.saturating_sub(midpoint), Ordering::Relaxed);
            *self.synced.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A host whose clock runs an hour behind.
        fn an_hour_behind() -> i64 {
            host_now() - 3_600_000_000
        }

        #[tokio::test]
        async fn a_skewed_host_keeps_the_servers_time() {
            let db = tenantry_testkit::PgDatabase::create().await;
            let clock = DbClock::with_host_clock(an_hour_behind);
            clock.sync(db.pool()).await.unwrap();
            let server: i64 = sqlx::query_scalar(
                "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            let drift = (clock.now() - server).abs();
            assert!(drift < 1_000_000, "{drift} µs off the server's clock");
        }
    }
}
