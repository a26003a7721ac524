//! Property test of `MetricsCache`: random queries, each rendered through one shared cache with
//! two sets of values, give exactly the SQL and values of rendering without it, on both
//! dialects; a second query whose SQL text equals the first's is a cache hit.
//!
//! Values come from small pools, so equal periods, features and permissions occur often: equal
//! aggregates are rendered once, which changes the SQL, and the cache must tell those shapes
//! apart.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tenantry_metrics::builtin::{self, Slice};
use tenantry_metrics::{
    Backend, Dimension, Metric, MetricFilter, MetricsCache, MetricsQuery, Order, Period, Scope,
    Usage, case_when, count_distinct, count_rows, lit, null, sum, usage,
};

const CASES: u32 = 1_000;
/// Metric kinds [`metric`] builds.
const KINDS: u8 = 17;

/// Everything about a query except its values.
#[derive(Clone, Debug)]
struct Recipe {
    metrics: Vec<u8>,
    scope: (u8, usize),
    level: Option<i32>,
    max_depth: u32,
    filters: Vec<(u8, u8)>,
    order: Vec<(u8, bool)>,
    limit: bool,
    dimensions: Vec<u8>,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        vec(0..KINDS, 1..6),
        (0..3u8, 0..70usize),
        proptest::option::of(0..3i32),
        prop_oneof![Just(32u32), Just(5u32)],
        vec((0..KINDS, 0..5u8), 0..3),
        vec((0..KINDS, any::<bool>()), 0..3),
        any::<bool>(),
        vec(0..3u8, 0..3),
    )
        .prop_map(
            |(metrics, scope, level, max_depth, filters, order, limit, dimensions)| Recipe {
                metrics,
                scope,
                level,
                max_depth,
                filters,
                order,
                limit,
                dimensions,
            },
        )
}

/// Draws the query's values, one small number at a time.
struct Values<'a>(std::slice::Iter<'a, u8>);

impl Values<'_> {
    fn pick(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn int(&mut self) -> i64 {
        [0, 1, 2, 1_000][usize::from(self.pick() % 4)]
    }
    fn text(&mut self) -> String {
        format!("v{}", self.pick() % 3)
    }
    fn period(&mut self) -> Period {
        let (start, end) = [(0, 10), (10, 20), (0, 20)][usize::from(self.pick() % 3)];
        Period::new(start, end).expect("period")
    }
}

fn metric(kind: u8, v: &mut Values<'_>) -> Metric {
    match kind {
        0 => builtin::users(),
        1 => builtin::active_users(v.period()),
        2 => builtin::adoption_rate(&v.text(), v.period()),
        3 => builtin::requests(v.period()),
        4 => builtin::tokens(v.period()),
        5 => builtin::cost(v.period()),
        6 => builtin::cost_per_active_user(v.period()),
        7 => {
            let slice = {
                let mut sliced = Slice::all().feature(v.text());
                sliced.model = v.pick().is_multiple_of(2).then(|| v.text());
                sliced
            };
            builtin::cost_in(&slice, v.period())
        }
        8 => builtin::batch_share(v.period()),
        9 => builtin::batch_savings(v.period()),
        10 => builtin::max_inheritance_depth(&v.text()),
        11 => builtin::inheritance_depth_count(&v.text(), v.int()),
        12 => builtin::permission_holders(&v.text()),
        13 => builtin::delta(builtin::cost, v.period(), v.period()),
        14 => Metric::from(
            sum(usage::cost_nanos() * lit(v.int()))
                .filter(usage::feature().equals(v.text().as_str())),
        )
        .ratio(count_rows::<Usage>(), v.int().max(1))
        .expect("positive scale"),
        15 => Metric::constant(v.int())
            .plus(builtin::requests(v.period()))
            .or_zero(),
        _ => count_distinct(case_when(
            usage::lane().equals(v.text().as_str()),
            usage::model(),
            null(),
        ))
        .into(),
    }
}

fn filter(kind: u8, op: u8, v: &mut Values<'_>) -> MetricFilter {
    let m = metric(kind, v);
    let threshold = v.int();
    match op {
        0 => m.gt(threshold),
        1 => m.ge(threshold),
        2 => m.lt(threshold),
        3 => m.le(threshold),
        _ => m.equals(threshold),
    }
}

fn query(r: &Recipe, values: &[u8]) -> MetricsQuery {
    let v = &mut Values(values.iter());
    let mut q = MetricsQuery::new();
    q.max_depth(r.max_depth);
    match r.scope.0 {
        0 => {}
        1 => {
            q.scope(Scope::Ids((0..r.scope.1).map(|_| v.text()).collect()));
        }
        _ => {
            q.scope(Scope::Subtree(v.text()));
        }
    }
    if let Some(level) = r.level {
        q.level(level);
    }
    for (i, kind) in r.metrics.iter().enumerate() {
        q.select(&format!("m{i}"), metric(*kind, v))
            .expect("distinct names");
    }
    for (kind, op) in &r.filters {
        q.filter(filter(*kind, *op, v));
    }
    for (kind, asc) in &r.order {
        let order = if *asc { Order::Asc } else { Order::Desc };
        q.order_by(metric(*kind, v), order);
    }
    if r.limit {
        q.limit(u64::from(v.pick()) * 7);
    }
    for d in &r.dimensions {
        q.group_by([Dimension::Feature, Dimension::Model, Dimension::Lane][usize::from(*d)]);
    }
    q
}

type Built = Result<(String, sea_query::Values), String>;

fn cached(cache: &MetricsCache, q: &MetricsQuery, d: Backend) -> (Built, Option<Arc<str>>) {
    match cache.build(q, d) {
        Ok((sql, values)) => (Ok((sql.to_string(), values)), Some(sql)),
        Err(e) => (Err(e.to_string()), None),
    }
}

#[test]
fn cached_rendering_equals_rendering() {
    // Smaller than the number of shapes, so eviction happens along the way.
    let cache = MetricsCache::new(64);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let hits = std::cell::Cell::new(0u32);
    runner
        .run(
            &(recipe(), vec(any::<u8>(), 96), vec(any::<u8>(), 96)),
            |(r, first, second)| {
                for d in [Backend::Postgres, Backend::Sqlite] {
                    let mut seen: Option<(String, Arc<str>)> = None;
                    for values in [&first, &second] {
                        let q = query(&r, values);
                        let expected: Built = q.build(d).map_err(|e| e.to_string());
                        let (actual, sql) = cached(&cache, &q, d);
                        prop_assert_eq!(&actual, &expected);
                        let (Ok((text, _)), Some(sql)) = (expected, sql) else {
                            continue;
                        };
                        if let Some((earlier, earlier_sql)) = &seen
                            && *earlier == text
                        {
                            prop_assert!(Arc::ptr_eq(earlier_sql, &sql), "same SQL, no hit");
                            hits.set(hits.get() + 1);
                        }
                        seen = Some((text, sql));
                    }
                }
                Ok::<(), TestCaseError>(())
            },
        )
        .expect("cached rendering differs");
    // About a quarter of the 2 × CASES second queries share the first one's SQL (the value
    // pools are small); each of those must have been a hit.
    assert!(hits.get() > CASES / 4, "{} hits", hits.get());
    assert!(cache.len() <= 64);
}
