//! The Rust plan of a [`MetricsQuery`]: the same query evaluated over rows in memory, group by
//! group, with the SQL plan's semantics (roll-up over the subtree, `NULL` rules, overflow, order).

use std::collections::HashMap;

use super::{MetricRow, MetricsQuery, Scope};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval;
use crate::expr::SourceKind;
use crate::metric::Order;

impl MetricsQuery {
    /// Evaluates the query in Rust on rows already in memory. The result equals what
    /// [`fetch`](Self::fetch) returns
    /// for the same rows, in the same order.
    ///
    /// # Errors
    /// [`Error::NoMetrics`] when nothing is selected, [`Error::Overflow`] where the databases
    /// would fail with an integer overflow.
    pub fn evaluate(&self, data: &Dataset) -> Result<Vec<MetricRow>> {
        if self.metrics.is_empty() {
            return Err(Error::NoMetrics);
        }
        let tree = eval::Tree::new(&data.tenants, self.max_depth);
        let mut groups: Vec<&str> = match &self.scope {
            Scope::All => data.tenants.iter().map(|t| t.id.as_str()).collect(),
            Scope::Ids(ids) => data
                .tenants
                .iter()
                .map(|t| t.id.as_str())
                .filter(|id| ids.iter().any(|i| i == id))
                .collect(),
            Scope::Subtree(root) => match tree.get(root) {
                None => Vec::new(),
                Some(r) => {
                    let sub = tree.subtree(&r.id);
                    data.tenants
                        .iter()
                        .map(|t| t.id.as_str())
                        .filter(|id| sub.contains(id))
                        .collect()
                }
            },
        };
        if let Some(level) = self.level {
            groups.retain(|id| tree.get(id).is_some_and(|t| t.level == level));
        }
        let aggs = self.aggregates()?;
        let aggs = aggs.calls;
        let reads = |source| aggs.iter().any(|a| a.source == source);
        let derived = eval::DerivedRows {
            access: if reads(SourceKind::Access) {
                eval::access_rows(data, &tree)
            } else {
                Vec::new()
            },
            role_access: if reads(SourceKind::RoleAccess) {
                eval::role_access_rows(data, self.max_depth)
            } else {
                Vec::new()
            },
        };
        let mut by_source = HashMap::new();
        let dimension_source = (!self.dimensions.is_empty()).then_some(SourceKind::Usage);
        for source in aggs.iter().map(|a| a.source).chain(dimension_source) {
            by_source
                .entry(source)
                .or_insert_with(|| eval::fact_rows(data, &derived, source));
        }
        let names = self.names();
        let mut out = Vec::new();
        let parts = groups.into_iter().flat_map(|g| {
            let rows = eval::rows_in(&by_source, &tree.subtree(g));
            eval::partition(rows, &self.dimensions)
                .into_iter()
                .map(move |(key, rows)| (g, key, rows))
        });
        for (g, key, rows) in parts {
            let values = eval::eval_aggregates(&aggs, &rows)?;
            let mut passes = true;
            for f in &self.filters {
                let v = eval::eval_metric(&f.metric.node, &values)?;
                passes &= eval::filter_passes(f.op, v, f.value);
            }
            if !passes {
                continue;
            }
            let keys = self
                .order
                .iter()
                .map(|(m, _)| eval::eval_metric(&m.node, &values))
                .collect::<Result<Vec<_>>>()?;
            let metrics = self
                .metrics
                .iter()
                .map(|m| eval::eval_metric(&m.node, &values))
                .collect::<Result<Vec<_>>>()?;
            out.push((
                keys,
                MetricRow {
                    tenant_id: g.to_owned(),
                    dimensions: self
                        .dimensions
                        .iter()
                        .zip(key)
                        .map(|(d, v)| (*d, v.to_owned()))
                        .collect(),
                    values: metrics,
                    names: names.clone(),
                },
            ));
        }
        out.sort_by(|(ka, ra), (kb, rb)| {
            for ((a, b), (_, order)) in ka.iter().zip(kb).zip(&self.order) {
                let o = match (a, b) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (Some(x), Some(y)) => match order {
                        Order::Asc => x.cmp(y),
                        Order::Desc => y.cmp(x),
                    },
                };
                if o.is_ne() {
                    return o;
                }
            }
            ra.tenant_id
                .as_bytes()
                .cmp(rb.tenant_id.as_bytes())
                // `String` orders byte-wise.
                .then_with(|| {
                    let a = ra.dimensions.iter().map(|(_, v)| v);
                    a.cmp(rb.dimensions.iter().map(|(_, v)| v))
                })
        });
        let rows = out.into_iter().map(|(_, r)| r);
        Ok(match self.limit {
            Some(l) => rows
                .take(usize::try_from(l).unwrap_or(usize::MAX))
                .collect(),
            None => rows.collect(),
        })
    }
}
