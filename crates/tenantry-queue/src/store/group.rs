//! Group commit of concurrent small submits: calls that arrive while a write is in flight wait
//! for it, then go together as one write with one commit.
//!
//! A single `submit` costs one commit, and a commit costs a flush of the log to disk (the
//! server's default `synchronous_commit`, and SQLite's `synchronous = FULL`): with many tasks
//! submitting at once, the flushes (and the statements' fixed costs on a busy CPU) bound the
//! rate, not the work. Grouped, eight concurrent submits cost one statement and one flush.
//!
//! What a caller sees does not change: its call is stored all or nothing, with its `queued`
//! events, and returns when it is committed. A group's write is atomic; if it fails, each of
//! its calls is written again on its own, so a call fails only for its own reason. A keyed job
//! whose key another call of the same group took first is skipped, exactly as if the two calls
//! had been made one after the other.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::TenantId;
use crate::error::{Error, Result};
use crate::store::backend::Store;
use crate::validate::NewJob;

/// One `submit_many` call waiting in a group.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) tenant: TenantId,
    pub(crate) jobs: Vec<NewJob>,
    pub(crate) at: i64,
    /// Where the answer goes; `None` for a call written alone, outside any group.
    done: Option<oneshot::Sender<Result<HashSet<String>>>>,
}

impl Call {
    /// A call written on its own, not through a group.
    pub(crate) fn alone(tenant: TenantId, jobs: Vec<NewJob>, at: i64) -> Self {
        Self {
            tenant,
            jobs,
            at,
            done: None,
        }
    }

    fn answer(self, result: Result<HashSet<String>>) {
        if let Some(done) = self.done {
            // A caller that stopped waiting needs no answer.
            let _ = done.send(result);
        }
    }
}

/// The calls waiting for the next write, and whether a writer task is running.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    calls: Vec<Call>,
    writing: bool,
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stores one call's jobs as part of a group; returns the ids inserted, as
/// [`Store::insert_new_jobs`] does.
pub(crate) async fn submit<S: Store>(
    store: &S,
    tenant: &TenantId,
    jobs: &[NewJob],
    at: i64,
) -> Result<HashSet<String>> {
    // The call is about to wait for a group's commit: a crash or a failure here leaves
    // nothing stored.
    crate::failpoint!("store.submit.group");
    let (done, result) = oneshot::channel();
    let start_writer = {
        let mut waiting = store.groups().lock();
        waiting.calls.push(Call {
            tenant: tenant.clone(),
            jobs: jobs.to_vec(),
            at,
            done: Some(done),
        });
        !std::mem::replace(&mut waiting.writing, true)
    };
    if start_writer {
        // A task of its own: a caller that stops waiting does not stop the others' write.
        tokio::spawn(write_groups(store.clone()));
    }
    result.await.map_err(|_| Error::Corrupt {
        what: "submit group",
        detail: "the group's writer stopped before answering".to_owned(),
    })?
}

/// A writer that stops other than by finding nothing left to write (a panic): the next call
/// starts a new one, and no call is left waiting for this one (a dropped call answers its
/// caller with an error).
struct Writing<'a> {
    groups: &'a Groups,
    finished: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut waiting = self.groups.lock();
            waiting.writing = false;
            waiting.calls.clear();
        }
    }
}

/// Writes the waiting calls, one group at a time, until none is left.
async fn write_groups<S: Store>(store: S) {
    let mut writer = Writing {
        groups: store.groups(),
        finished: false,
    };
    loop {
        // Let the submits that the last group's answers woke up join this group.
        tokio::task::yield_now().await;
        let calls = {
            let mut waiting = store.groups().lock();
            if waiting.calls.is_empty() {
                // Under the same lock as the check: a call pushed after this starts a writer.
                waiting.writing = false;
                writer.finished = true;
                return;
            }
            std::mem::take(&mut waiting.calls)
        };
        match store.insert_group(&calls).await {
            Ok(inserted) => {
                for call in calls {
                    let mine = call
                        .jobs
                        .iter()
                        .filter(|j| inserted.contains(j.id.as_str()))
                        .map(|j| j.id.as_str().to_owned())
                        .collect();
                    call.answer(Ok(mine));
                }
            }
            Err(e) if calls.len() == 1 => {
                if let Some(call) = calls.into_iter().next() {
                    call.answer(Err(e));
                }
            }
            // Nothing of the group was stored: each call again on its own, for its own answer.
            Err(_) => {
                for call in calls {
                    let one = std::slice::from_ref(&call);
                    let result = store.insert_group(one).await;
                    call.answer(result);
                }
            }
        }
    }
}
