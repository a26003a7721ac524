//! Named crash points for tests (feature `failpoints`): a scenario decides, per point, whether
//! the process dies there, the I/O there fails, or something else happens there first.
//!
//! Every `.await` on the engine's and the facade's money paths that talks to the API or
//! commits to a database has a named point right before or right after it
//! ([`failpoint!`](crate::failpoint)). Without the feature the macro expands to nothing, so a
//! host's build carries neither the points nor this module.
//!
//! A [`Scenario`] is scoped to one task ([`Scenario::run`]), not to the process: each test runs
//! its own scenarios in parallel with others, and only the engine (and store, and facade) calls
//! made inside that task see it. That is why this is a small in-crate mechanism rather than a
//! process-global failpoint registry, which would serialise every scenario of the suite.
//!
//! A *crash* unwinds the task from the point without running anything after it (no error
//! handler, no clean-up statement), as a process killed there would; [`Scenario::run`] returns
//! [`Crashed`]. The test then drops every in-memory state and starts a new engine on the same
//! database.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;

/// An async action run at a point, in the task that reached it.
pub type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What happens when a point fires.
#[derive(Clone)]
#[non_exhaustive]
pub enum Action {
    /// The process dies at the point.
    Crash,
    /// The I/O at the point fails: the enclosing function returns a database I/O error.
    Fail,
    /// Something happens elsewhere at this moment (a cancel, a deadline, another engine), then
    /// the code goes on.
    Run(Hook),
    /// As [`Run`](Action::Run), then the process dies.
    RunThenCrash(Hook),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Crash => "Crash",
            Self::Fail => "Fail",
            Self::Run(_) => "Run",
            Self::RunThenCrash(_) => "RunThenCrash",
        })
    }
}

#[derive(Debug)]
struct Rule {
    action: Action,
    /// Fires at this hit of the point (1-based) ...
    at: u64,
    /// ... and at most this many times from there.
    times: u64,
}

#[derive(Debug, Default)]
struct State {
    rules: BTreeMap<&'static str, Rule>,
    hits: BTreeMap<&'static str, u64>,
    fired: Vec<&'static str>,
}

/// The points that fire in one task, and what each did. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    state: Arc<Mutex<State>>,
}

/// The payload of a crash's unwind, and what [`Scenario::run`] returns after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crashed {
    /// The point the process died at.
    pub point: &'static str,
}

tokio::task_local! {
    static SCENARIO: Scenario;
}

impl Scenario {
    /// A scenario where no point fires.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At the `at`-th time (1-based) `point` is reached, and up to `times` times from there,
    /// `action` happens. Replaces an earlier rule for the same point.
    pub fn on(&self, point: &'static str, at: u64, times: u64, action: Action) {
        self.lock().rules.insert(
            point,
            Rule {
                action,
                at: at.max(1),
                times,
            },
        );
    }

    /// Removes every rule (hits and fired points are kept).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many times each point was reached.
    #[must_use]
    pub fn hits(&self) -> BTreeMap<&'static str, u64> {
        self.lock().hits.clone()
    }

    /// The points that fired, in order.
    #[must_use]
    pub fn fired(&self) -> Vec<&'static str> {
        self.lock().fired.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` with this scenario in scope. A crash at a point stops `work` there and is
    /// returned as `Err`; any other panic goes on unwinding.
    ///
    /// # Errors
    ///
    /// [`Crashed`] when a point crashed the work.
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, Crashed> {
        let scoped = SCENARIO.scope(self.clone(), work);
        match AssertUnwindSafe(scoped).catch_unwind().await {
            Ok(out) => Ok(out),
            Err(payload) => match payload.downcast::<Crashed>() {
                Ok(crashed) => Err(*crashed),
                Err(other) => std::panic::resume_unwind(other),
            },
        }
    }

    fn take(&self, point: &'static str) -> Option<Action> {
        let mut state = self.lock();
        let hit = {
            let n = state.hits.entry(point).or_insert(0);
            *n += 1;
            *n
        };
        let rule = state.rules.get(point)?;
        if hit < rule.at || hit - rule.at >= rule.times {
            return None;
        }
        let action = rule.action.clone();
        state.fired.push(point);
        Some(action)
    }
}

/// Reached by [`failpoint!`](crate::failpoint): applies the scenario in scope, if any.
///
/// # Errors
///
/// An I/O error when the point's action is [`Action::Fail`].
#[doc(hidden)]
pub async fn hit(point: &'static str) -> Result<(), sqlx::Error> {
    let Ok(Some(action)) = SCENARIO.try_with(|s| s.take(point)) else {
        return Ok(());
    };
    let crash = || std::panic::resume_unwind(Box::new(Crashed { point }));
    match action {
        Action::Crash => crash(),
        Action::Fail => Err(sqlx::Error::Io(std::io::Error::other(format!(
            "failpoint {point}: the I/O failed"
        )))),
        Action::Run(hook) => {
            hook().await;
            Ok(())
        }
        Action::RunThenCrash(hook) => {
            hook().await;
            crash()
        }
    }
}

/// A named crash point (see [`failpoints`](crate::failpoints)): in an `async fn` whose error
/// converts from `sqlx::Error`. With the feature off it expands to nothing.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        if let Err(e) = $crate::failpoints::hit($name).await {
            return Err(e.into());
        }
    };
}
