//! Gives budget holds back as soon as their jobs end without usage (failed, or canceled or
//! expired before their request was sent), instead of letting them block the tenant's budget
//! until their TTL.
//!
//! The engine task follows the queue's durable event log of every tenant that still has a live
//! hold, from where it last read, and releases the hold of each job that entered one of those
//! states. Where it has read to is stored per tenant as the queue's consumer cursor `holds`
//! ([`JobStore::advance_consumer`](tenantry_queue::JobStore::advance_consumer)), so a restarted
//! engine, or another instance, goes on from there instead of reading every tenant's log from
//! the start. Releasing closes a hold only while it is still held, and settling records a line once per request (idempotent on the ledger's
//! `(source, request_id)`), so a late usage report for a released hold is charged exactly once
//! and the hold is closed exactly once, whichever comes first.

use std::collections::HashMap;

use tenantry_cost::{Ledger, UnixMicros};
use tenantry_queue::{HoldId, Job, JobState, Position, TenantId};

use crate::db::Store;
use crate::error::Result;

/// Events read per page.
const PAGE: u32 = 500;

/// The releaser's name among the consumers of the queue's event log.
const CONSUMER: &str = "holds";

/// Where the releaser has read each tenant's event log up to (a cache of the stored cursors).
#[derive(Debug, Default)]
pub(crate) struct HoldReleaser {
    read: HashMap<TenantId, Position>,
}

/// What one [`HoldReleaser::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Holds given back.
    pub(crate) released: u64,
    /// Events read.
    pub(crate) events: u64,
}

/// Whether a job that entered `state` may have left a hold nothing else will close.
fn may_end_unbilled(state: JobState) -> bool {
    matches!(
        state,
        JobState::Failed | JobState::Canceled | JobState::Expired
    )
}

/// Whether the job will never report usage for its hold.
///
/// A failed job's last request came back unbilled. A job canceled or expired while its request
/// was out at the API (it keeps that batch) may still be billed, so its hold keeps counting
/// until its usage settles it, or, if the API does not bill it, until the hold's TTL.
fn never_billed(job: &Job) -> bool {
    match job.state {
        JobState::Failed => true,
        JobState::Canceled | JobState::Expired => job.batch_id.is_none(),
        _ => false,
    }
}

/// Gives back the live holds, at least `min_age` old, that no job can bill any more: a hold
/// whose submit died after taking it and before storing its job, and the hold of a job closed
/// while a create that turned out never to have happened was in flight (no event marks that
/// moment). The event-driven [`HoldReleaser`] covers every other ending at once; this is the
/// periodic reconciliation of the ledger's holds with the queue's jobs behind it. Returns how
/// many holds it gave back.
pub(crate) async fn reconcile_holds(
    ledger: &Ledger,
    store: &Store,
    min_age: std::time::Duration,
) -> Result<u64> {
    let now = UnixMicros::now();
    let age = i64::try_from(min_age.as_micros()).unwrap_or(i64::MAX);
    let taken_before = UnixMicros(now.0.saturating_sub(age));
    let mut released = 0;
    for id in ledger.held_tenants(now).await? {
        let held = ledger.holds_in_force(&id, taken_before, now).await?;
        if held.is_empty() {
            continue;
        }
        let holds: Vec<HoldId> = held.iter().copied().map(HoldId::new).collect();
        let in_use: std::collections::HashSet<i64> = store
            .jobs()
            .holds_in_use(&id, &holds)
            .await?
            .into_iter()
            .map(HoldId::get)
            .collect();
        let orphaned: Vec<i64> = held.into_iter().filter(|h| !in_use.contains(h)).collect();
        if !orphaned.is_empty() {
            released += ledger.release_many(&orphaned).await?;
        }
    }
    Ok(released)
}

impl HoldReleaser {
    /// Reads the new events of every tenant with a live hold and releases the holds of jobs
    /// that ended without usage.
    pub(crate) async fn step(&mut self, ledger: &Ledger, store: &Store) -> Result<Step> {
        let mut step = Step::default();
        let jobs = store.jobs();
        for id in ledger.held_tenants(UnixMicros::now()).await? {
            let start = match self.read.get(&id) {
                Some(read) => *read,
                None => jobs.consumer_position(CONSUMER, &id).await?,
            };
            let mut read = start;
            loop {
                let events = jobs.events_after(&id, read, PAGE).await?;
                let full = events.len() >= usize::try_from(PAGE).unwrap_or(usize::MAX);
                for event in events {
                    step.events += 1;
                    if may_end_unbilled(event.state) {
                        let job = jobs.job(&id, &event.job_id).await?;
                        if never_billed(&job)
                            && let Some(hold) = job.hold
                            && ledger.release(hold.get()).await?
                        {
                            step.released += 1;
                            tenantry_queue::failpoint!("holds.released");
                        }
                    }
                    read = event.position;
                }
                if !full {
                    break;
                }
            }
            // Saved after the releases: a crash in between reads those events again, and
            // releasing is idempotent.
            tenantry_queue::failpoint!("holds.read");
            if read > start {
                jobs.advance_consumer(CONSUMER, &id, read).await?;
            }
            self.read.insert(id, read);
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_endings_that_may_be_unbilled_are_looked_at() {
        let released: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| may_end_unbilled(*s))
            .collect();
        assert_eq!(
            released,
            [JobState::Failed, JobState::Canceled, JobState::Expired]
        );
    }

    /// Needs a store: SQLite is enough.
    #[cfg(feature = "sqlite")]
    mod restart {
        use super::*;
        use crate::{Envelope, Request, Tenantry};

        fn request() -> Request {
            Request::new(
                "summaries",
                "user-1",
                serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 64,
                    "messages": [{"role": "user", "content": "hi"}]}),
            )
        }

        async fn submit(tenantry: &Tenantry) -> String {
            match tenantry.submit("acme", request()).await.unwrap() {
                Envelope::Pending { operation } => operation.id().to_string(),
                other => panic!("expected pending, got {other:?}"),
            }
        }

        #[tokio::test]
        async fn a_restarted_releaser_goes_on_from_the_stored_cursor() {
            let db = tenantry_testkit::SqliteDatabase::create().await;
            let tenantry = Tenantry::builder()
                .database_pool(crate::Database::Sqlite(db.pool().clone()))
                .api(tenantry_batch::Config::new("sk-test").base_url("http://127.0.0.1:9"))
                .build()
                .await
                .unwrap();
            let (ledger, store) = (&tenantry.inner.ledger, &tenantry.inner.store);
            let acme = TenantId::new("acme").unwrap();

            // A live hold keeps the tenant followed.
            submit(&tenantry).await;
            for _ in 0..2 {
                let id = submit(&tenantry).await;
                tenantry.cancel("acme", &id).await.unwrap();
            }
            let mut releaser = HoldReleaser::default();
            // Three `queued` and two `canceled` events; the canceled jobs' holds were given back by
            // `cancel` itself.
            let first = releaser.step(ledger, store).await.unwrap();
            assert_eq!(
                first,
                Step {
                    released: 0,
                    events: 5
                }
            );
            assert_eq!(releaser.step(ledger, store).await.unwrap(), Step::default());
            let read = store.jobs().latest_position(&acme).await.unwrap();
            let cursor = || store.jobs().consumer_position(CONSUMER, &acme);
            assert_eq!(cursor().await.unwrap(), read);

            // A new releaser (a restart, or another instance) reads only the event written since.
            submit(&tenantry).await;
            let mut restarted = HoldReleaser::default();
            assert_eq!(
                restarted.step(ledger, store).await.unwrap(),
                Step {
                    released: 0,
                    events: 1
                }
            );
            assert!(cursor().await.unwrap() > read);

            // A job canceled before it was sent, behind `Tenantry::cancel`'s back: the releaser
            // gives its hold back.
            let id = submit(&tenantry).await;
            let canceled = store
                .jobs()
                .cancel(&acme, &id.parse().unwrap())
                .await
                .unwrap();
            assert_eq!(canceled.batch_id, None);
            assert_eq!(
                restarted.step(ledger, store).await.unwrap(),
                Step {
                    released: 1,
                    events: 2
                }
            );

            // A cursor written behind the stored one (a slower instance) does not move it back.
            store
                .jobs()
                .advance_consumer(CONSUMER, &acme, read)
                .await
                .unwrap();
            assert!(cursor().await.unwrap() > read);
        }
    }
}
