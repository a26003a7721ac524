//! Message Batches: stored batches, their lifecycle on the virtual clock, and their wire objects.
//!
//! A batch's requests are answered when it is created (the responder runs once per
//! request, as of the virtual time the request would start), and only the compact
//! per-request results are kept. What the client sees is derived from the clock: request
//! `i` of `n` starts at `created + latency·i/n` and finishes at `created + latency·(i+1)/n`.
//! A cancel at time `c` lets started requests finish and cancels the rest; the 24-hour
//! expiry turns every request not finished by then into `expired`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::wire::{ApiError, timestamp};

/// How long a batch may process before it expires.
pub(crate) const EXPIRY: Duration = Duration::from_secs(24 * 3_600);
/// How long after creation results stay available.
pub(crate) const ARCHIVE_AFTER: Duration = Duration::from_secs(29 * 24 * 3_600);

/// The stored result of one request, as serialized JSON.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The `message` object.
    Succeeded(Box<str>),
    /// The `error` object (`{"type":"error","error":{…},"request_id":…}`).
    Errored(Box<str>),
}

/// One request of a batch.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) custom_id: Box<str>,
    pub(crate) outcome: Outcome,
}

/// What became of one request once the batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Processed,
    Canceled,
    Expired,
}

#[derive(Debug, Default)]
struct Mutable {
    cancel_initiated_at: Option<OffsetDateTime>,
}

/// A stored batch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) created_at: OffsetDateTime,
    latency: Duration,
    pub(crate) items: Vec<Item>,
    /// Seeds the shuffled order of the results file.
    pub(crate) order_seed: u64,
    mutable: Mutex<Mutable>,
}

/// `processing_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Canceling,
    Ended,
}

/// `request_counts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub(crate) processing: u64,
    pub(crate) succeeded: u64,
    pub(crate) errored: u64,
    pub(crate) canceled: u64,
    pub(crate) expired: u64,
}

/// The `MessageBatch` wire object: all ten keys, nulls present, in the real API's order.
#[derive(Debug, Serialize)]
pub(crate) struct WireBatch<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    processing_status: &'static str,
    request_counts: Counts,
    ended_at: Option<String>,
    created_at: String,
    expires_at: String,
    archived_at: Option<String>,
    cancel_initiated_at: Option<String>,
    results_url: Option<String>,
}

/// A batch as seen at one instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub(crate) status: Status,
    pub(crate) ended_at: Option<OffsetDateTime>,
    pub(crate) cancel_initiated_at: Option<OffsetDateTime>,
    pub(crate) archived: bool,
    /// Index of the last request that started (requests after it are canceled).
    last_started: usize,
    end: OffsetDateTime,
}

fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

fn from_nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(n % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

/// When request `i` of `n` starts in a batch created at `created_at` that takes `latency`.
pub(crate) fn start_time(
    created_at: OffsetDateTime,
    latency: Duration,
    n: usize,
    i: usize,
) -> OffsetDateTime {
    let n = u128::try_from(n).unwrap_or(u128::MAX).max(1);
    let i = u128::try_from(i).unwrap_or(u128::MAX);
    created_at + from_nanos(nanos(latency) * i / n)
}

impl Batch {
    pub(crate) fn new(
        id: String,
        workspace: String,
        created_at: OffsetDateTime,
        latency: Duration,
        items: Vec<Item>,
        order_seed: u64,
    ) -> Self {
        Self {
            id,
            workspace,
            created_at,
            latency,
            items,
            order_seed,
            mutable: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.mutable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn n(&self) -> u128 {
        u128::try_from(self.items.len()).unwrap_or(u128::MAX).max(1)
    }

    /// Virtual time at which request `i` starts.
    pub(crate) fn start_of(&self, i: usize) -> OffsetDateTime {
        start_time(self.created_at, self.latency, self.items.len(), i)
    }

    fn finish_of(&self, i: usize) -> OffsetDateTime {
        self.start_of(i + 1)
    }

    pub(crate) fn expires_at(&self) -> OffsetDateTime {
        self.created_at + EXPIRY
    }

    /// The batch's state at `now`.
    pub(crate) fn view(&self, now: OffsetDateTime) -> View {
        let cancel = self.lock().cancel_initiated_at;
        let last = self.items.len().saturating_sub(1);
        let last_started = match cancel {
            Some(_) if self.latency.is_zero() => last,
            Some(c) => {
                let since =
                    u128::try_from((c - self.created_at).whole_nanoseconds().max(0)).unwrap_or(0);
                let k = since * self.n() / nanos(self.latency);
                usize::try_from(k).unwrap_or(usize::MAX).min(last)
            }
            None => last,
        };
        let end = self.finish_of(last_started).min(self.expires_at());
        let ended = now >= end;
        let status = if ended {
            Status::Ended
        } else if cancel.is_some() {
            Status::Canceling
        } else {
            Status::InProgress
        };
        View {
            status,
            ended_at: ended.then_some(end),
            cancel_initiated_at: cancel,
            archived: now >= self.created_at + ARCHIVE_AFTER,
            last_started,
            end,
        }
    }

    /// The class of request `i` in an ended batch.
    pub(crate) fn class_of(&self, view: &View, i: usize) -> Class {
        if i > view.last_started {
            Class::Canceled
        } else if self.finish_of(i) > view.end {
            Class::Expired
        } else {
            Class::Processed
        }
    }

    /// `request_counts` as the client may see them in `view`.
    pub(crate) fn counts(&self, view: &View) -> Counts {
        let n = u64::try_from(self.items.len()).unwrap_or(u64::MAX);
        if view.status != Status::Ended {
            return Counts {
                processing: n,
                ..Counts::default()
            };
        }
        let mut counts = Counts::default();
        for (i, item) in self.items.iter().enumerate() {
            match (self.class_of(view, i), &item.outcome) {
                (Class::Canceled, _) => counts.canceled += 1,
                (Class::Expired, _) => counts.expired += 1,
                (Class::Processed, Outcome::Succeeded(_)) => counts.succeeded += 1,
                (Class::Processed, Outcome::Errored(_)) => counts.errored += 1,
            }
        }
        counts
    }

    /// The `MessageBatch` object at `now`, with `results_url` under `base_url`.
    pub(crate) fn to_wire(&self, now: OffsetDateTime, base_url: &str) -> WireBatch<'_> {
        let view = self.view(now);
        let counts = self.counts(&view);
        let status = match view.status {
            Status::InProgress => "in_progress",
            Status::Canceling => "canceling",
            Status::Ended => "ended",
        };
        WireBatch {
            id: &self.id,
            kind: "message_batch",
            processing_status: status,
            request_counts: counts,
            ended_at: view.ended_at.map(timestamp),
            created_at: timestamp(self.created_at),
            expires_at: timestamp(self.expires_at()),
            archived_at: view
                .archived
                .then(|| timestamp(self.created_at + ARCHIVE_AFTER)),
            cancel_initiated_at: view.cancel_initiated_at.map(timestamp),
            results_url: (view.status == Status::Ended)
                .then(|| format!("{base_url}/v1/messages/batches/{}/results", self.id)),
        }
    }

    /// Starts cancellation at `now`.
    ///
    /// # Errors
    ///
    /// `invalid_request_error` when the batch has already ended. A repeated cancel while
    /// `canceling` changes nothing.
    pub(crate) fn cancel(&self, now: OffsetDateTime) -> Result<(), ApiError> {
        if self.view(now).status == Status::Ended {
            return Err(ApiError::invalid(format!(
                "Message Batch {} has already ended and cannot be canceled.",
                self.id
            )));
        }
        let mut mutable = self.lock();
        if mutable.cancel_initiated_at.is_none() {
            mutable.cancel_initiated_at = Some(now);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct StoreInner {
    /// Live batches by creation sequence (oldest first).
    by_seq: BTreeMap<u64, Arc<Batch>>,
    /// Every batch ever created (also deleted ones, for cursors): id → (seq, workspace).
    by_id: HashMap<String, (u64, String)>,
    next_seq: u64,
}

/// All batches of one emulator.
#[derive(Debug, Default)]
pub(crate) struct BatchStore {
    inner: RwLock<StoreInner>,
}

/// A page of `list`.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) data: Vec<Arc<Batch>>,
    pub(crate) has_more: bool,
}

fn not_found() -> ApiError {
    ApiError::not_found("The requested resource could not be found.")
}

impl BatchStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, StoreInner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, StoreInner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, batch: Arc<Batch>) {
        let mut inner = self.write();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner
            .by_id
            .insert(batch.id.clone(), (seq, batch.workspace.clone()));
        inner.by_seq.insert(seq, batch);
    }

    /// The live batch `id` of `workspace`.
    ///
    /// # Errors
    ///
    /// `not_found_error` when it does not exist, was deleted or belongs to another workspace.
    pub(crate) fn get(&self, workspace: &str, id: &str) -> Result<Arc<Batch>, ApiError> {
        let inner = self.read();
        let (seq, owner) = inner.by_id.get(id).ok_or_else(not_found)?;
        if owner != workspace {
            return Err(not_found());
        }
        inner.by_seq.get(seq).cloned().ok_or_else(not_found)
    }

    /// Removes a batch (the caller checked it has ended).
    pub(crate) fn remove(&self, batch: &Batch) {
        let mut inner = self.write();
        if let Some((seq, _)) = inner.by_id.get(&batch.id).cloned() {
            inner.by_seq.remove(&seq);
        }
    }

    fn cursor(inner: &StoreInner, workspace: &str, id: &str, name: &str) -> Result<u64, ApiError> {
        match inner.by_id.get(id) {
            Some((seq, owner)) if owner == workspace => Ok(*seq),
            _ => Err(ApiError::invalid(format!(
                "{name}: no Message Batch with id {id:?} in this workspace"
            ))),
        }
    }

    /// Newest-first page of `workspace`'s batches.
    ///
    /// # Errors
    ///
    /// `invalid_request_error` when both cursors are given or a cursor is unknown.
    pub(crate) fn list(
        &self,
        workspace: &str,
        before_id: Option<&str>,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Page, ApiError> {
        let inner = self.read();
        let mine = |b: &&Arc<Batch>| b.workspace == workspace;
        match (before_id, after_id) {
            (Some(_), Some(_)) => Err(ApiError::invalid(String::from(
                "before_id and after_id cannot both be set",
            ))),
            (Some(before), None) => {
                let seq = Self::cursor(&inner, workspace, before, "before_id")?;
                // Newer than the cursor: take the `limit` closest to it, then present newest first.
                let mut newer = inner.by_seq.range(seq + 1..).map(|(_, b)| b).filter(mine);
                let mut data: Vec<Arc<Batch>> = newer.by_ref().take(limit).cloned().collect();
                let has_more = newer.next().is_some();
                data.reverse();
                Ok(Page { data, has_more })
            }
            (None, after) => {
                let upper = match after {
                    Some(after) => Self::cursor(&inner, workspace, after, "after_id")?,
                    None => u64::MAX,
                };
                let mut older = inner
                    .by_seq
                    .range(..upper)
                    .rev()
                    .map(|(_, b)| b)
                    .filter(mine);
                let data: Vec<Arc<Batch>> = older.by_ref().take(limit).cloned().collect();
                let has_more = older.next().is_some();
                Ok(Page { data, has_more })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, latency: Duration) -> Batch {
        let items = (0..n)
            .map(|i| Item {
                custom_id: format!("r{i}").into(),
                outcome: if i % 4 == 3 {
                    Outcome::Errored("{}".into())
                } else {
                    Outcome::Succeeded("{}".into())
                },
            })
            .collect();
        Batch::new(
            "msgbatch_x".into(),
            "w".into(),
            OffsetDateTime::UNIX_EPOCH,
            latency,
            items,
            1,
        )
    }

    #[test]
    fn counts_hidden_until_the_end() {
        let b = batch(8, Duration::from_secs(8));
        let t0 = b.created_at;
        let view = b.view(t0 + Duration::from_secs(7));
        assert_eq!(view.status, Status::InProgress);
        assert_eq!(
            b.counts(&view),
            Counts {
                processing: 8,
                ..Counts::default()
            }
        );
        let view = b.view(t0 + Duration::from_secs(8));
        assert_eq!(view.status, Status::Ended);
        assert_eq!(view.ended_at, Some(t0 + Duration::from_secs(8)));
        assert_eq!(
            b.counts(&view),
            Counts {
                succeeded: 6,
                errored: 2,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn cancel_lets_started_requests_finish() {
        let b = batch(8, Duration::from_secs(8));
        let t0 = b.created_at;
        // At 2.5 s requests 0, 1, 2 have started.
        b.cancel(t0 + Duration::from_millis(2_500)).unwrap();
        let view = b.view(t0 + Duration::from_millis(2_600));
        assert_eq!(view.status, Status::Canceling);
        let view = b.view(t0 + Duration::from_secs(3));
        assert_eq!(view.status, Status::Ended);
        assert_eq!(
            b.counts(&view),
            Counts {
                succeeded: 3,
                canceled: 5,
                ..Counts::default()
            }
        );
        assert!(b.cancel(t0 + Duration::from_secs(4)).is_err());
    }

    #[test]
    fn expiry_turns_unfinished_requests_into_expired() {
        let b = batch(4, Duration::from_secs(48 * 3_600));
        let view = b.view(b.created_at + Duration::from_secs(25 * 3_600));
        assert_eq!(view.status, Status::Ended);
        assert_eq!(view.ended_at, Some(b.expires_at()));
        let counts = b.counts(&view);
        assert_eq!(counts.succeeded, 2);
        assert_eq!(counts.expired, 2);
    }

    #[test]
    fn archive_after_29_days() {
        let b = batch(1, Duration::ZERO);
        assert!(
            !b.view(b.created_at + Duration::from_secs(28 * 86_400))
                .archived
        );
        let json =
            serde_json::to_value(b.to_wire(b.created_at + ARCHIVE_AFTER, "http://h")).unwrap();
        assert_eq!(json["archived_at"], "1970-01-30T00:00:00.000000Z");
        assert_eq!(
            json["results_url"],
            "http://h/v1/messages/batches/msgbatch_x/results"
        );
        assert_eq!(json.as_object().unwrap().len(), 10);
    }

    proptest::proptest! {
        /// Walking pages forward (after_id) and backward (before_id) visits every live
        /// batch of the workspace exactly once, newest first, whatever the page size.
        #[test]
        fn paging_covers_everything_once(
            owners in proptest::collection::vec(proptest::bool::ANY, 1..40),
            deleted in proptest::collection::vec(proptest::bool::weighted(0.2), 40),
            limit in 1_usize..7,
        ) {
            let store = BatchStore::default();
            let mut expected = Vec::new();
            for (i, mine) in owners.iter().enumerate() {
                let mut b = batch(1, Duration::ZERO);
                b.id = format!("b{i:02}");
                b.workspace = if *mine { "w".into() } else { "x".into() };
                let b = Arc::new(b);
                store.insert(b.clone());
                if deleted[i] {
                    store.remove(&b);
                } else if *mine {
                    expected.push(b.id.clone());
                }
            }
            expected.reverse();
            let mut forward = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store.list("w", None, cursor.as_deref(), limit).unwrap();
                proptest::prop_assert!(page.data.len() <= limit);
                forward.extend(page.data.iter().map(|b| b.id.clone()));
                match (page.has_more, page.data.last()) {
                    (true, Some(last)) => cursor = Some(last.id.clone()),
                    _ => break,
                }
            }
            proptest::prop_assert_eq!(&forward, &expected);
            if let Some(oldest) = expected.last().cloned() {
                // Backward from the oldest: pages come newest-first, each newer than the last.
                let mut backward: Vec<String> = Vec::new();
                let mut cursor = oldest.clone();
                loop {
                    let page = store.list("w", Some(&cursor), None, limit).unwrap();
                    let ids: Vec<String> = page.data.iter().map(|b| b.id.clone()).collect();
                    let mut chunk = ids.clone();
                    chunk.extend(backward);
                    backward = chunk;
                    match (page.has_more, page.data.first()) {
                        (true, Some(first)) => cursor = first.id.clone(),
                        _ => break,
                    }
                }
                backward.push(oldest);
                proptest::prop_assert_eq!(&backward, &expected);
            }
        }
    }

    #[test]
    fn list_pages_both_ways() {
        let store = BatchStore::default();
        for i in 0..5 {
            let mut b = batch(1, Duration::ZERO);
            b.id = format!("b{i}");
            store.insert(Arc::new(b));
        }
        let ids = |p: &Page| p.data.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
        let first = store.list("w", None, None, 2).unwrap();
        assert_eq!(ids(&first), ["b4", "b3"]);
        assert!(first.has_more);
        let next = store.list("w", None, Some("b3"), 2).unwrap();
        assert_eq!(ids(&next), ["b2", "b1"]);
        let last = store.list("w", None, Some("b1"), 2).unwrap();
        assert_eq!(ids(&last), ["b0"]);
        assert!(!last.has_more);
        let back = store.list("w", Some("b1"), None, 2).unwrap();
        assert_eq!(ids(&back), ["b3", "b2"]);
        assert!(back.has_more);
        assert!(store.list("other", None, None, 20).unwrap().data.is_empty());
        assert!(store.list("w", Some("zz"), None, 2).is_err());
    }
}
