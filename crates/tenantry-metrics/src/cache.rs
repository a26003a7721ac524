//! [`MetricsCache`]: rendered SQL kept by query shape, so a dashboard asked again with other
//! tenants, periods, thresholds or feature names binds only its values.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustc_hash::FxBuildHasher;
use sea_query::{Value, Values};

use crate::error::{Error, Result};
use crate::query::{Aggregates, MetricsQuery};
use crate::render::Backend;
use crate::schema::Schema;
use crate::shape::{Param, Shape, sentinel_position};

/// A bounded, thread-safe cache of rendered queries, keyed by the query's shape (SQLAlchemy's
/// "SQL compilation caching").
///
/// A dashboard asks the same shape of query again and again: the same metrics, scope kind,
/// level, grouping, filters and order, with other tenant ids, periods, thresholds or feature
/// names. The first time a shape is seen the query is rendered as usual and the cache learns
/// where each of the query's values lands among the bound values; after that the SQL text is
/// shared and only the values are bound, without building or rendering a sea-query statement.
/// Values are always bound, never written into the SQL.
///
/// The key is an exact encoding of everything the SQL text depends on (see
/// [`MetricsQuery::build`]), compared in full on every hit, never a hash alone, so two queries
/// that render different SQL never share an entry. Computing it walks the query once, without
/// rendering.
///
/// # Sharing
/// Cloning is cheap and clones share the entries (an `Arc`): the host keeps one cache for the
/// process, next to its pool, and passes it to every dashboard query. The cache is not inside
/// [`MetricsQuery`] because a query is rebuilt per request, and the entries must outlive it.
///
/// # Eviction
/// At most `capacity` shapes are kept (default [`MetricsCache::DEFAULT_CAPACITY`]); adding one
/// more drops the least recently used. Hits take a read lock only.
///
/// # Example
/// ```
/// use tenantry_metrics::{builtin, Backend, MetricsCache, MetricsQuery, Period, Scope};
/// let cache = MetricsCache::default();
/// let dashboard = |tenant: &str, period: Period| -> tenantry_metrics::Result<MetricsQuery> {
///     let mut q = MetricsQuery::new();
///     q.scope(Scope::Ids(vec![tenant.into()]));
///     q.select("cost", builtin::cost(period))?;
///     q.select("adoption_ppm", builtin::adoption_rate("summarize", period))?;
///     Ok(q)
/// };
/// let may = Period::new(1_777_593_600_000_000, 1_780_272_000_000_000)?;
/// let june = Period::new(1_780_272_000_000_000, 1_782_864_000_000_000)?;
/// let (first, _) = cache.build(&dashboard("acme", may)?, Backend::Postgres)?;
/// // Another tenant and period: the same SQL text, other values.
/// let q = dashboard("globex", june)?;
/// let (sql, values) = cache.build(&q, Backend::Postgres)?;
/// assert!(std::sync::Arc::ptr_eq(&first, &sql));
/// assert_eq!((sql.to_string(), values), q.build(Backend::Postgres)?);
/// assert_eq!(cache.len(), 1);
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
#[derive(Clone)]
pub struct MetricsCache {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    clock: AtomicU64,
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Templates by the hash of their shape; a bucket holds more than one when hashes collide
    /// or shapes are used with several schemas, and a hit compares the full shape and schema.
    /// The hash is Fx (fast, unkeyed): shapes come from the host's code, the buckets' length
    /// is bounded by the capacity, and a collision costs a comparison, never a wrong hit.
    by_hash: HashMap<u64, Vec<Arc<Template>>, FxBuildHasher>,
    len: usize,
}

/// One shape's SQL and where each of its bound values comes from.
struct Template {
    schema: Schema,
    key: Vec<u8>,
    sql: Arc<str>,
    slots: Vec<Slot>,
    last_used: AtomicU64,
}

/// A bound value of a template: fixed by the shape (`0`, the depth guard, the level, …) or the
/// query's value at this position of its walk order.
enum Slot {
    Fixed(Value),
    Param(usize),
}

impl Template {
    fn bind(&self, params: &[Param<'_>]) -> Values {
        Values(
            self.slots
                .iter()
                .map(|s| match s {
                    Slot::Fixed(v) => v.clone(),
                    Slot::Param(n) => params[*n].value(),
                })
                .collect(),
        )
    }

    /// Learns the template of `query`'s shape from a copy whose values are sentinels, and checks
    /// it against the query's own rendering. `None` (nothing cached) if they disagree, which
    /// would be a bug in the shape: the caller still gets the query's own rendering.
    fn learn(
        query: &MetricsQuery,
        dialect: Backend,
        (aggs, shape): (&Aggregates<'_>, &Shape<'_>),
        (sql, values): (&Arc<str>, &Values),
    ) -> Option<Self> {
        let (sentinel_sql, sentinel_values) = query
            .with_sentinels(aggs, shape)
            .build_unchecked(dialect)
            .ok()?;
        let slots = (sentinel_values.0.into_iter())
            .map(|v| match sentinel_position(&v, shape.params.len()) {
                Some(n) => Slot::Param(n),
                None => Slot::Fixed(v),
            })
            .collect();
        let template = Self {
            schema: query.schema.clone(),
            key: shape.key.clone(),
            sql: Arc::clone(sql),
            slots,
            last_used: AtomicU64::new(0),
        };
        let agrees = *sentinel_sql == **sql && template.bind(&shape.params) == *values;
        debug_assert!(
            agrees,
            "the shape of a query missed something its SQL depends on"
        );
        agrees.then_some(template)
    }
}

impl Default for MetricsCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for MetricsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsCache")
            .field("capacity", &self.inner.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MetricsCache {
    /// The number of shapes [`MetricsCache::default`] keeps: far more than the distinct
    /// dashboards of a service, a few megabytes at most.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A cache keeping at most `capacity` query shapes (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                clock: AtomicU64::new(0),
                entries: RwLock::default(),
            }),
        }
    }

    /// The number of query shapes kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len
    }

    /// Whether no shape is kept yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Renders `query` for `dialect` like [`MetricsQuery::build`], with the same SQL text and
    /// values, reusing the SQL of an earlier query of the same shape.
    ///
    /// # Errors
    /// As [`MetricsQuery::build`]: [`Error::NoMetrics`] when nothing is selected,
    /// [`Error::DimensionSource`] when a grouped query aggregates another source than the ledger.
    pub fn build(&self, query: &MetricsQuery, dialect: Backend) -> Result<(Arc<str>, Values)> {
        if query.metrics.is_empty() {
            return Err(Error::NoMetrics);
        }
        query.check(dialect)?;
        let aggs = query.aggregates()?;
        let shape = query.shape(dialect, &aggs);
        let hash = FxBuildHasher.hash_one(&shape.key);
        if let Some(t) = self.find(&self.read(), hash, &query.schema, &shape.key) {
            t.last_used.store(self.tick(), Ordering::Relaxed);
            return Ok((Arc::clone(&t.sql), t.bind(&shape.params)));
        }
        let (sql, values) = query.build(dialect)?;
        let sql: Arc<str> = sql.into();
        if let Some(t) = Template::learn(query, dialect, (&aggs, &shape), (&sql, &values)) {
            self.insert(hash, t);
        }
        Ok((sql, values))
    }

    fn tick(&self) -> u64 {
        self.inner.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        // The entries stay consistent when a holder panics: every change is made whole.
        self.inner
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn find(
        &self,
        entries: &Entries,
        hash: u64,
        schema: &Schema,
        key: &[u8],
    ) -> Option<Arc<Template>> {
        let bucket = entries.by_hash.get(&hash)?;
        bucket
            .iter()
            .find(|t| t.key == key && t.schema == *schema)
            .cloned()
    }

    fn insert(&self, hash: u64, template: Template) {
        let mut entries = (self.inner.entries.write()).unwrap_or_else(PoisonError::into_inner);
        if self
            .find(&entries, hash, &template.schema, &template.key)
            .is_some()
        {
            // Another caller learned the same shape meanwhile.
            return;
        }
        if entries.len >= self.inner.capacity {
            let oldest = (entries.by_hash.iter())
                .flat_map(|(h, b)| b.iter().enumerate().map(move |(i, t)| (*h, i, t)))
                .min_by_key(|(_, _, t)| t.last_used.load(Ordering::Relaxed))
                .map(|(h, i, _)| (h, i));
            if let Some((h, i)) = oldest {
                let bucket = entries.by_hash.get_mut(&h).expect("bucket just seen");
                bucket.swap_remove(i);
                if bucket.is_empty() {
                    entries.by_hash.remove(&h);
                }
                entries.len -= 1;
            }
        }
        template.last_used.store(self.tick(), Ordering::Relaxed);
        entries
            .by_hash
            .entry(hash)
            .or_default()
            .push(Arc::new(template));
        entries.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Period, Scope, builtin};

    fn cost_for(tenant: &str) -> MetricsQuery {
        let mut q = MetricsQuery::new();
        q.scope(Scope::Subtree(tenant.into()));
        q.select("cost", builtin::cost(Period::all_time()))
            .expect("select");
        q
    }

    #[test]
    fn evicts_the_least_recently_used_shape() {
        let cache = MetricsCache::new(2);
        let by_level = |level: i32| {
            let mut q = cost_for("acme");
            q.level(level);
            cache.build(&q, Backend::Sqlite).expect("build").0
        };
        let zero = by_level(0);
        let one = by_level(1);
        // Level 0 is used again, so level 1 is the one dropped for level 2.
        assert!(Arc::ptr_eq(&zero, &by_level(0)));
        by_level(2);
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&zero, &by_level(0)));
        assert!(!Arc::ptr_eq(&one, &by_level(1)));
    }

    #[test]
    fn schemas_and_dialects_are_part_of_the_key() {
        let cache = MetricsCache::default();
        let q = cost_for("acme");
        let other = MetricsQuery {
            schema: Schema::default()
                .with_table(crate::Table::Usage, "ledger")
                .expect("name"),
            ..q.clone()
        };
        for (query, dialect) in [
            (&q, Backend::Postgres),
            (&q, Backend::Sqlite),
            (&other, Backend::Postgres),
        ] {
            let (sql, values) = cache.build(query, dialect).expect("build");
            assert_eq!(
                (sql.to_string(), values),
                query.build(dialect).expect("build")
            );
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn shared_between_threads() {
        fn send_sync<T: Send + Sync + 'static>(_: &T) {}
        let cache = MetricsCache::default();
        send_sync(&cache);
        let q = cost_for("acme");
        let sql: Vec<Arc<str>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| cache.clone().build(&q, Backend::Postgres).expect("build").0))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(sql.iter().all(|s| **s == *sql[0]));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn errors_are_those_of_build() {
        let cache = MetricsCache::default();
        assert!(matches!(
            cache.build(&MetricsQuery::new(), Backend::Sqlite),
            Err(Error::NoMetrics)
        ));
        assert!(cache.is_empty());
    }
}
