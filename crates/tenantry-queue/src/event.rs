//! Job events: what a subscriber receives, and the subscription stream both stores share.
//!
//! An event says that a job changed state; the job's data stays in the jobs table. Events
//! live in a durable, ordered table written in the same transaction as the change, so a
//! subscriber that reads "everything after my last position" never misses one. The
//! backend's wake-up (PostgreSQL `NOTIFY`, or an in-process channel for SQLite) only makes
//! that read happen sooner; a poll timer backs it up.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};

use crate::TenantId;
use crate::error::Result;
use crate::ids::JobId;
use crate::job::JobState;
use crate::store::JobStore;

/// A position in a tenant's event log. Positions grow with every event; a subscriber
/// resumes from the last position it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub(crate) i64);

impl Position {
    /// Before the first event: subscribing from here replays the whole log.
    pub const START: Self = Self(0);

    /// The position as a number, for storing it.
    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }

    /// A position stored earlier with [`get`](Self::get).
    #[must_use]
    pub fn from_i64(value: i64) -> Self {
        Self(value.max(0))
    }
}

/// A job changed state, or, with one of [`JobState::EVENTS_ONLY`], something happened to it
/// that is not a state: its billed usage could not be priced and was dead-lettered
/// ([`JobState::UsageUnpriced`]), was handed back to be priced again
/// ([`JobState::UsageRepriced`]), or the finished job was purged ([`JobState::Purged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobEvent {
    /// Where this event sits in the tenant's log.
    pub position: Position,
    /// The job's tenant (always the subscribed tenant).
    pub tenant: TenantId,
    /// The job.
    pub job_id: JobId,
    /// The state it entered, or one of [`JobState::EVENTS_ONLY`].
    pub state: JobState,
    /// When the change was committed (to the microsecond).
    pub at: OffsetDateTime,
}

impl JobEvent {
    /// Whether the job entered a new state: every event but those of
    /// [`JobState::EVENTS_ONLY`], which are about its billing or its stored row. A subscriber
    /// that keeps each job's latest state skips the others.
    #[must_use]
    pub fn is_state_change(&self) -> bool {
        self.state.is_job_state()
    }
}

/// A wake-up sent to subscriptions: look at the table now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// New events for this tenant may be there.
    Tenant(String),
    /// Wake-ups may have been lost (listener reconnected): every subscription catches up.
    All,
}

/// How often a subscription reads the table even without a wake-up.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
const PAGE: u32 = 500;
const BUFFER: usize = 1024;

/// A live stream of one tenant's job events, in log order, without gaps.
///
/// Items are `Result`s: a database error while catching up is reported and the
/// subscription keeps going (it retries on the next wake-up or poll). Dropping the
/// subscription stops its background task.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<JobEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for Subscription {
    type Item = Result<JobEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

async fn woken(wake: &mut Option<broadcast::Receiver<Wake>>, tenant: &str) {
    let Some(rx) = wake.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(Wake::Tenant(t)) if t == tenant => return,
            Ok(Wake::Tenant(_)) => {}
            // Lost wake-ups: catch up to be safe.
            Ok(Wake::All) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                *wake = None;
                return std::future::pending().await;
            }
        }
    }
}

/// Starts the catch-up-then-wait loop of one subscription.
pub(crate) fn spawn_subscription(
    store: Arc<dyn JobStore>,
    tenant: TenantId,
    after: Position,
    wake: broadcast::Receiver<Wake>,
    poll: Duration,
) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        let mut wake = Some(wake);
        let mut last = after;
        loop {
            loop {
                match store.events_after(&tenant, last, PAGE).await {
                    Ok(events) => {
                        let full = events.len() >= usize::try_from(PAGE).unwrap_or(usize::MAX);
                        for event in events {
                            last = event.position;
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        if tx.send(Err(e)).await.is_err() {
                            return;
                        }
                        break;
                    }
                }
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(poll) => {}
                () = woken(&mut wake, tenant.as_str()) => {}
            }
        }
    });
    Subscription { rx, task }
}
