//! Built-in metrics remembered per parameter set, so a dashboard rebuilt for every request
//! shares the trees it asked for before instead of allocating and dropping them again.
//!
//! A built-in's tree is a pure function of its parameters, and trees are immutable once built
//! (their children are shared `Arc`s; the only code that edits a tree, the cache's sentinel
//! copy, copies on write). So handing out a clone of a tree built earlier is indistinguishable
//! from building it again, and costs a few reference-count increments instead of one allocation
//! per node. The memo is per thread (no lock, nothing shared between request handlers) and
//! bounded: when it holds [`CAPACITY`] parameter sets it starts over.

use std::cell::RefCell;
use std::hash::BuildHasher as _;

use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::metric::Metric;

/// Parameter sets kept per thread before the memo starts over: far more than the distinct
/// built-ins of a service's dashboards, and a few hundred kilobytes at most.
pub(crate) const CAPACITY: usize = 1024;

/// The built-ins that are remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Builtin {
    Users,
    ActiveUsers,
    FeatureActiveUsers,
    AdoptionRate,
    Requests,
    Tokens,
    Cost,
    CostPerActiveUser,
    RequestsIn,
    TokensIn,
    CostIn,
    BatchRequests,
    BatchShare,
    BatchSavings,
    MaxInheritanceDepth,
    InheritanceDepthCount,
    PermissionHolders,
    MaxRoleInheritanceDepth,
    RoleInheritanceDepthCount,
    RolePermissionHolders,
}

/// A built-in with its parameters, borrowed for the lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key<'a> {
    pub(crate) builtin: Builtin,
    pub(crate) ints: [i64; 2],
    pub(crate) texts: [Option<&'a str>; 2],
}

impl<'a> Key<'a> {
    /// A built-in without parameters.
    pub(crate) fn of(builtin: Builtin) -> Self {
        Self {
            builtin,
            ints: [0; 2],
            texts: [None; 2],
        }
    }

    /// With integer parameters (a period's start and end, a depth).
    pub(crate) fn ints(self, ints: [i64; 2]) -> Self {
        Self { ints, ..self }
    }

    /// With text parameters (a feature, a model, a permission).
    pub(crate) fn texts(self, texts: [Option<&'a str>; 2]) -> Self {
        Self { texts, ..self }
    }
}

/// A [`Key`] kept in the memo.
struct OwnedKey {
    builtin: Builtin,
    ints: [i64; 2],
    texts: [Option<Box<str>>; 2],
}

impl OwnedKey {
    fn new(key: &Key<'_>) -> Self {
        Self {
            builtin: key.builtin,
            ints: key.ints,
            texts: key.texts.map(|t| t.map(Box::from)),
        }
    }

    fn matches(&self, key: &Key<'_>) -> bool {
        self.builtin == key.builtin
            && self.ints == key.ints
            && (self.texts.iter().zip(&key.texts)).all(|(a, b)| a.as_deref() == *b)
    }
}

thread_local! {
    /// Metrics by the hash of their key. A hash collision replaces the entry: a memo only has
    /// to be right when it answers, and every answer is checked against the full key.
    static MEMO: RefCell<FxHashMap<u64, (OwnedKey, Metric)>> = RefCell::default();
}

/// The metric `key` stands for: the one remembered on this thread, or `build()`'s, which is then
/// remembered.
pub(crate) fn remembered(key: Key<'_>, build: impl FnOnce() -> Metric) -> Metric {
    let hash = FxBuildHasher.hash_one(key);
    let hit = MEMO.with_borrow(|memo| {
        memo.get(&hash)
            .filter(|(k, _)| k.matches(&key))
            .map(|(_, m)| m.clone())
    });
    if let Some(m) = hit {
        return m;
    }
    // Not borrowed while building: a built-in is made of other built-ins.
    let m = build();
    MEMO.with_borrow_mut(|memo| {
        if memo.len() >= CAPACITY {
            memo.clear();
        }
        memo.insert(hash, (OwnedKey::new(&key), m.clone()));
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricsQuery, Period, builtin};

    fn sql_of(m: Metric) -> (String, sea_query::Values) {
        let mut q = MetricsQuery::new();
        q.select("m", m).expect("select");
        q.build(crate::Backend::Postgres).expect("build")
    }

    /// Builds with an empty memo on this thread: from scratch (its parts are remembered again).
    fn fresh(build: impl FnOnce() -> Metric) -> Metric {
        MEMO.with_borrow_mut(|memo| memo.clear());
        build()
    }

    #[test]
    fn a_remembered_metric_equals_a_fresh_one() {
        let june = Period::new(10, 20).expect("period");
        let slice = builtin::Slice::all().feature("summarize");
        let builtins: [&dyn Fn() -> Metric; 5] = [
            &|| builtin::adoption_rate("summarize", june),
            &|| builtin::cost_per_active_user(june),
            &|| builtin::tokens_in(&slice, june),
            &|| builtin::batch_share(june),
            &|| builtin::inheritance_depth_count("admin", 2),
        ];
        for b in builtins {
            let built = fresh(b);
            let again = b();
            assert_eq!(built, again);
            assert_eq!(sql_of(built), sql_of(again));
        }
        // Other parameters are other metrics.
        let other = builtin::adoption_rate("classify", june);
        assert_ne!(builtin::adoption_rate("summarize", june), other);
        assert_ne!(
            sql_of(builtin::adoption_rate("summarize", june)),
            sql_of(other)
        );
    }

    #[test]
    fn keys_tell_parameters_apart() {
        let a = OwnedKey::new(&Key::of(Builtin::CostIn).texts([Some("f"), None]));
        assert!(a.matches(&Key::of(Builtin::CostIn).texts([Some("f"), None])));
        assert!(!a.matches(&Key::of(Builtin::CostIn).texts([None, Some("f")])));
        assert!(!a.matches(&Key::of(Builtin::TokensIn).texts([Some("f"), None])));
        assert!(
            !a.matches(
                &Key::of(Builtin::CostIn)
                    .texts([Some("f"), None])
                    .ints([0, 1])
            )
        );
    }

    #[test]
    fn starts_over_when_full() {
        for depth in 0..=i64::try_from(CAPACITY).expect("small") {
            let m = builtin::inheritance_depth_count("admin", depth);
            assert_eq!(m, builtin::inheritance_depth_count("admin", depth));
        }
        assert!(MEMO.with_borrow(|memo| memo.len()) <= CAPACITY);
    }
}
