//! Gives budget holds back as soon as their jobs end without usage (failed, canceled, expired),
//! instead of letting them block the tenant's budget until their TTL.
//!
//! The engine task follows the queue's durable event log of every tenant that still has a live
//! hold, from where it last read (from the start after a restart), and releases the hold of
//! each job that entered `failed`, `canceled` or `expired`. Releasing closes a hold only while
//! it is still held, and settling records a line once per request (idempotent on the ledger's
//! `(source, request_id)`), so a late usage report for a released hold is charged exactly once
//! and the hold is closed exactly once, whichever comes first.

use std::collections::HashMap;

use tenantry_cost::{Ledger, UnixMicros};
use tenantry_queue::{JobState, JobStore, Position, TenantId};

use crate::error::Result;
use crate::request::reservation_of;

/// Events read per page.
const PAGE: u32 = 500;

/// Where the releaser has read each tenant's event log up to.
#[derive(Debug, Default)]
pub(crate) struct HoldReleaser {
    read: HashMap<String, Position>,
}

/// Whether a job in this state will never report usage for its hold.
fn ends_unbilled(state: JobState) -> bool {
    matches!(
        state,
        JobState::Failed | JobState::Canceled | JobState::Expired
    )
}

impl HoldReleaser {
    /// Reads the new events of every tenant with a live hold and releases the holds of jobs
    /// that ended without usage. Returns how many holds it released.
    pub(crate) async fn step(&mut self, ledger: &Ledger, jobs: &dyn JobStore) -> Result<u64> {
        let mut released = 0;
        for tenant in ledger.held_tenants(UnixMicros::now()).await? {
            let Ok(id) = TenantId::new(tenant.as_str()) else {
                continue; // not a queue tenant: its holds were not taken for jobs
            };
            let read = self.read.entry(tenant).or_insert(Position::START);
            loop {
                let events = jobs.events_after(&id, *read, PAGE).await?;
                let full = events.len() >= usize::try_from(PAGE).unwrap_or(usize::MAX);
                for event in events {
                    if ends_unbilled(event.state) {
                        let job = jobs.job(&id, &event.job_id).await?;
                        if let Some(hold) = reservation_of(&job.metadata)
                            && ledger.release(hold).await?
                        {
                            released += 1;
                        }
                    }
                    *read = event.position;
                }
                if !full {
                    break;
                }
            }
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unbilled_endings_release() {
        let released: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| ends_unbilled(*s))
            .collect();
        assert_eq!(
            released,
            [JobState::Failed, JobState::Canceled, JobState::Expired]
        );
    }
}
