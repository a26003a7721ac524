//! Batch planning: when a batch closes and how its slots are shared between tenants.
//!
//! Pure functions, no I/O. The store summarises the open backlog per tenant
//! ([`TenantBacklog`]); [`plan`] decides whether a batch is due and how many jobs each tenant
//! gets ([`Plan`]); once the store has claimed those jobs, the store trims the claim to
//! the byte limit in the same fair order.
//!
//! # Flush policy
//!
//! A batch closes when the backlog fills it ([`FlushPolicy::max_requests`] jobs or
//! [`FlushPolicy::max_bytes`]), or when the oldest job's max wait has passed (a partial
//! batch). Slots are shared by *water-filling*: every tenant gets an equal share, tenants
//! needing less than their share give the rest to the others. So one tenant's backlog of
//! 100,000 jobs never keeps another tenant's single job out of the next batch, and that
//! batch closes no later than the single job's max wait.

use std::collections::BTreeMap;

use crate::TenantId;

/// The batch API's limit on requests per batch.
pub const API_MAX_REQUESTS: usize = 100_000;
/// The batch API's body limit, 256 MB.
pub const API_MAX_BYTES: u64 = 256_000_000;
/// Bytes added to each request's `params` in the batch body (`{"custom_id":"job_…","params":…},`).
pub const REQUEST_OVERHEAD_BYTES: u64 = 64;

/// When a batch closes. Built with owned setters; every setter states its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct FlushPolicy {
    max_requests: usize,
    max_bytes: u64,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_requests: API_MAX_REQUESTS,
            max_bytes: API_MAX_BYTES - 1_000_000,
        }
    }
}

impl FlushPolicy {
    /// 100,000 requests and 255 MB per batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests per batch. Default 100,000; clamped to 1..=100,000.
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = n.clamp(1, API_MAX_REQUESTS);
        self
    }

    /// Body bytes per batch (params plus [`REQUEST_OVERHEAD_BYTES`] each). Default
    /// 255,000,000; clamped below the API's 256 MB.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.clamp(1, API_MAX_BYTES - 1);
        self
    }

    /// The request limit.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.max_requests
    }

    /// The byte limit.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// One tenant's open batch-lane backlog, as summarised by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantBacklog {
    /// The tenant.
    pub tenant: TenantId,
    /// Jobs waiting.
    pub jobs: u64,
    /// Their body bytes, overhead included.
    pub bytes: u64,
    /// The earliest flush time among them (microseconds since the epoch).
    pub oldest_flush_at: i64,
}

/// Why a batch closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushReason {
    /// The backlog has at least a full batch of requests.
    Requests,
    /// The backlog has at least a full batch of bytes.
    Bytes,
    /// The oldest job's max wait has passed.
    MaxWait,
}

/// A batch to claim: how many jobs each tenant gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Why the batch closes now.
    pub reason: FlushReason,
    /// Per tenant, in claim order (oldest first), how many of its oldest jobs to take.
    pub quotas: Vec<(TenantId, usize)>,
}

/// Decides whether a batch is due now and shares its slots fairly.
///
/// Returns `None` when nothing is due (no backlog, or a partial batch whose oldest job may
/// still wait).
#[must_use]
pub fn plan(backlog: &[TenantBacklog], policy: FlushPolicy, now: i64) -> Option<Plan> {
    let backlog: Vec<&TenantBacklog> = backlog.iter().filter(|b| b.jobs > 0).collect();
    let total_jobs: u64 = backlog.iter().map(|b| b.jobs).sum();
    let total_bytes: u64 = backlog.iter().map(|b| b.bytes).sum();
    let reason = if total_jobs >= u64::try_from(policy.max_requests).unwrap_or(u64::MAX) {
        FlushReason::Requests
    } else if total_bytes >= policy.max_bytes {
        FlushReason::Bytes
    } else if backlog.iter().any(|b| b.oldest_flush_at <= now) {
        FlushReason::MaxWait
    } else {
        return None;
    };
    let mut order = backlog;
    order.sort_by(|a, b| {
        a.oldest_flush_at
            .cmp(&b.oldest_flush_at)
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    let needs: Vec<usize> = order
        .iter()
        .map(|b| usize::try_from(b.jobs).unwrap_or(usize::MAX))
        .collect();
    // Claim about as many jobs as fit in the byte limit at the backlog's average size (plus
    // a tenth for variance), so the byte trim gives little back.
    let fit_by_bytes = policy
        .max_bytes
        .saturating_mul(total_jobs)
        .checked_div(total_bytes)
        .unwrap_or(u64::MAX);
    let slots = usize::try_from(
        fit_by_bytes
            .saturating_add(fit_by_bytes / 10)
            .saturating_add(1),
    )
    .unwrap_or(usize::MAX)
    .min(policy.max_requests);
    let shares = water_fill(&needs, slots);
    let quotas = order
        .iter()
        .zip(shares)
        .filter(|(_, n)| *n > 0)
        .map(|(b, n)| (b.tenant.clone(), n))
        .collect();
    Some(Plan { reason, quotas })
}

/// Shares `slots` between needs: equal shares, unused share redistributed; earlier entries
/// get the remainder of an uneven split.
fn water_fill(needs: &[usize], slots: usize) -> Vec<usize> {
    let mut given = vec![0; needs.len()];
    let mut left = slots;
    loop {
        let hungry: Vec<usize> = (0..needs.len()).filter(|&i| given[i] < needs[i]).collect();
        if hungry.is_empty() || left == 0 {
            return given;
        }
        let share = (left / hungry.len()).max(1);
        for i in hungry {
            if left == 0 {
                break;
            }
            let take = share.min(needs[i] - given[i]).min(left);
            given[i] += take;
            left -= take;
        }
    }
}

/// A claimed job, as the byte trim sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed<K> {
    /// The job's key (its id in the store).
    pub(crate) key: K,
    /// Its tenant.
    pub(crate) tenant: TenantId,
    /// Its body bytes, overhead included.
    pub(crate) bytes: u64,
}

/// Splits claimed jobs (each tenant's in its flush order) into those kept within
/// `max_bytes` and those to give back, taking them round-robin across tenants so the byte
/// limit is shared as fairly as the slots.
#[must_use]
pub(crate) fn fit_bytes<K>(
    claimed: Vec<Claimed<K>>,
    max_bytes: u64,
) -> (Vec<Claimed<K>>, Vec<Claimed<K>>) {
    let mut order: Vec<TenantId> = Vec::new();
    let mut queues: BTreeMap<TenantId, std::collections::VecDeque<Claimed<K>>> = BTreeMap::new();
    for c in claimed {
        if !queues.contains_key(&c.tenant) {
            order.push(c.tenant.clone());
        }
        queues.entry(c.tenant.clone()).or_default().push_back(c);
    }
    let (mut keep, mut give_back) = (Vec::new(), Vec::new());
    let mut used = 0_u64;
    let mut full = false;
    loop {
        let mut any = false;
        for t in &order {
            let Some(c) = queues
                .get_mut(t)
                .and_then(std::collections::VecDeque::pop_front)
            else {
                continue;
            };
            any = true;
            if !full && used.saturating_add(c.bytes) <= max_bytes {
                used += c.bytes;
                keep.push(c);
            } else {
                // The first job that does not fit closes the batch: later, smaller jobs are
                // not squeezed in ahead of it.
                full = true;
                give_back.push(c);
            }
        }
        if !any {
            return (keep, give_back);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    fn backlog(name: &str, jobs: u64, oldest: i64) -> TenantBacklog {
        TenantBacklog {
            tenant: t(name),
            jobs,
            bytes: jobs * 1000,
            oldest_flush_at: oldest,
        }
    }

    #[test]
    fn nothing_is_due_before_the_oldest_max_wait() {
        let b = [backlog("a", 10, 100)];
        assert_eq!(plan(&b, FlushPolicy::new(), 99), None);
        let p = plan(&b, FlushPolicy::new(), 100).unwrap();
        assert_eq!(p.reason, FlushReason::MaxWait);
        assert_eq!(p.quotas, [(t("a"), 10)]);
        assert_eq!(plan(&[], FlushPolicy::new(), 1000), None);
    }

    #[test]
    fn a_full_batch_closes_at_once() {
        let policy = FlushPolicy::new().max_requests(5);
        let p = plan(&[backlog("a", 5, 1000)], policy, 0).unwrap();
        assert_eq!(
            (p.reason, p.quotas),
            (FlushReason::Requests, vec![(t("a"), 5)])
        );
        let policy = FlushPolicy::new().max_bytes(4000);
        assert_eq!(
            plan(&[backlog("a", 4, 1000)], policy, 0).unwrap().reason,
            FlushReason::Bytes
        );
    }

    #[test]
    fn slots_follow_the_byte_limit_at_the_average_size() {
        let policy = FlushPolicy::new().max_bytes(10_000);
        // 1,000 bytes a job: 10 fit; a tenth more plus one are claimed for variance.
        let p = plan(&[backlog("a", 100, 0)], policy, 0).unwrap();
        assert_eq!(p.quotas, [(t("a"), 12)]);
    }

    #[test]
    fn a_large_backlog_leaves_room_for_a_single_job() {
        let policy = FlushPolicy::new().max_requests(1000);
        let b = [backlog("big", 100_000, 0), backlog("small", 1, 50)];
        let p = plan(&b, policy, 10).unwrap();
        assert_eq!(p.quotas, [(t("big"), 999), (t("small"), 1)]);
    }

    #[test]
    fn byte_trim_is_round_robin_and_stops_at_the_first_misfit() {
        let c = |k: u32, tenant: &str, bytes: u64| Claimed {
            key: k,
            tenant: t(tenant),
            bytes,
        };
        let claimed = vec![
            c(1, "a", 40),
            c(2, "a", 40),
            c(3, "a", 40),
            c(4, "b", 10),
            c(5, "b", 10),
        ];
        let (keep, back) = fit_bytes(claimed, 100);
        assert_eq!(keep.iter().map(|c| c.key).collect::<Vec<_>>(), [1, 4, 2, 5]);
        assert_eq!(back.iter().map(|c| c.key).collect::<Vec<_>>(), [3]);
    }

    proptest! {
        #[test]
        fn quotas_respect_limits_and_share_fairly(
            jobs in proptest::collection::vec(0_u64..5000, 1..20),
            max in 1_usize..3000,
        ) {
            let b: Vec<_> = jobs.iter().enumerate().map(|(i, &n)| backlog(&format!("t{i}"), n, 0)).collect();
            let policy = FlushPolicy::new().max_requests(max);
            let total: u64 = jobs.iter().sum();
            let Some(p) = plan(&b, policy, 0) else {
                prop_assert_eq!(total, 0);
                return Ok(());
            };
            let given: usize = p.quotas.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(given as u64, total.min(max as u64), "fills the batch or takes everything");
            for (tenant, n) in &p.quotas {
                let need = b.iter().find(|x| &x.tenant == tenant).unwrap().jobs;
                prop_assert!(*n as u64 <= need);
            }
            // Max-min fair: a tenant that got less than it needs got at least as much as
            // anybody else, minus one for the rounding remainder.
            let top = p.quotas.iter().map(|(_, n)| *n).max().unwrap_or(0);
            for (tenant, n) in &p.quotas {
                let need = b.iter().find(|x| &x.tenant == tenant).unwrap().jobs;
                if (*n as u64) < need {
                    prop_assert!(*n + 1 >= top, "{} got {} of {} while another got {}", tenant, n, need, top);
                }
            }
            // Every waiting tenant is in the batch when there are at least as many slots as tenants.
            let waiting = jobs.iter().filter(|&&n| n > 0).count();
            if max >= waiting {
                prop_assert_eq!(p.quotas.len(), waiting);
            }
        }

        #[test]
        fn byte_trim_never_exceeds_the_limit_and_loses_nothing(
            sizes in proptest::collection::vec((0_usize..5, 1_u64..500), 0..60),
            max in 1_u64..5000,
        ) {
            let claimed: Vec<_> = sizes.iter().enumerate()
                .map(|(k, &(tn, bytes))| Claimed { key: k, tenant: t(&format!("t{tn}")), bytes })
                .collect();
            let (keep, back) = fit_bytes(claimed, max);
            prop_assert!(keep.iter().map(|c| c.bytes).sum::<u64>() <= max);
            let mut all: Vec<_> = keep.iter().chain(&back).map(|c| c.key).collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..sizes.len()).collect::<Vec<_>>());
            // Within a tenant, kept jobs precede given-back ones (flush order is kept).
            for c in &back {
                prop_assert!(!keep.iter().any(|k| k.tenant == c.tenant && k.key > c.key));
            }
        }
    }
}
