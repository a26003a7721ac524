//! A query split into its shape and its values: two queries with the same shape render the same
//! SQL text and differ only in the values bound to it, which is what lets
//! [`MetricsCache`](crate::MetricsCache) reuse rendered SQL.
//!
//! The shape is an exact byte encoding (not a hash) of everything the SQL text depends on: the
//! dialect, the depth guard, the level, the grouping dimensions, the scope's kind and id count,
//! each distinct aggregate's tree without its literals, which aggregate every metric node reads
//! (aggregates equal in their values too are rendered once, so that sharing is part of the
//! shape), the metrics' trees, the filter operators, the order directions and whether there is a
//! limit. The schema is compared beside it. The values (tenant ids, literals of the aggregates'
//! trees, metric constants and scales, filter thresholds, the limit) are listed in a fixed walk
//! order; [`crate::cache`] learns once per shape where each lands among the bound values.

use std::sync::Arc;

use sea_query::Value;

use crate::expr::Node;
use crate::metric::{AggCall, MNode, Metric};
use crate::query::{Aggregates, MetricsQuery, Scope};
use crate::render::Backend;

/// A value of the query, in walk order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param<'q> {
    Int(i64),
    Text(&'q str),
    Limit(u64),
}

impl Param<'_> {
    /// The value as the renderer binds it.
    pub(crate) fn value(self) -> Value {
        match self {
            Param::Int(v) => Value::BigInt(Some(v)),
            Param::Text(t) => Value::String(Some(t.to_owned())),
            Param::Limit(v) => Value::BigUnsigned(Some(v)),
        }
    }
}

/// The shape of a query and its values.
#[derive(Debug)]
pub(crate) struct Shape<'q> {
    pub(crate) key: Vec<u8>,
    pub(crate) params: Vec<Param<'q>>,
    /// Where each distinct aggregate's values start in `params`.
    call_starts: Vec<usize>,
    /// Where the metrics' own values start in `params`, after the aggregates'.
    metrics_start: usize,
}

/// Tags of the encoding. Every variable-length part is preceded by its count or is a tree whose
/// nodes all carry a tag, so the encoding is prefix-free: two different shapes never encode to
/// the same bytes.
mod tag {
    pub(super) const COL: u8 = 1;
    pub(super) const INT: u8 = 2;
    pub(super) const TEXT: u8 = 3;
    pub(super) const NULL: u8 = 4;
    pub(super) const ARITH: u8 = 5;
    pub(super) const CMP: u8 = 6;
    pub(super) const AND: u8 = 7;
    pub(super) const OR: u8 = 8;
    pub(super) const NOT: u8 = 9;
    pub(super) const IS_NULL: u8 = 10;
    pub(super) const CASE: u8 = 11;
    pub(super) const COALESCE: u8 = 12;
    pub(super) const NONE: u8 = 13;
    pub(super) const TRUE: u8 = 14;
    pub(super) const AGG: u8 = 20;
    pub(super) const LIT: u8 = 21;
    pub(super) const ADD: u8 = 22;
    pub(super) const SUB: u8 = 23;
    pub(super) const MUL: u8 = 24;
    pub(super) const DIV: u8 = 25;
    pub(super) const RATIO: u8 = 26;
    pub(super) const M_COALESCE: u8 = 27;
}

struct Walk<'q> {
    key: Vec<u8>,
    params: Vec<Param<'q>>,
}

impl<'q> Walk<'q> {
    fn len(&mut self, n: usize) {
        self.key
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    fn node(&mut self, n: &'q Node) {
        match n {
            Node::Col(c) => self
                .key
                .extend_from_slice(&[tag::COL, c.source as u8, c.number]),
            Node::Int(v) => {
                self.key.push(tag::INT);
                self.params.push(Param::Int(*v));
            }
            Node::Text(t) => {
                self.key.push(tag::TEXT);
                self.params.push(Param::Text(t));
            }
            Node::Null(kind) => self.key.extend_from_slice(&[tag::NULL, *kind as u8]),
            Node::True => self.key.push(tag::TRUE),
            Node::Arith(op, a, b) => self.nodes(&[tag::ARITH, *op as u8], &[a, b]),
            Node::Cmp(op, a, b) => self.nodes(&[tag::CMP, *op as u8], &[a, b]),
            Node::And(a, b) => self.nodes(&[tag::AND], &[a, b]),
            Node::Or(a, b) => self.nodes(&[tag::OR], &[a, b]),
            Node::Not(a) => self.nodes(&[tag::NOT], &[a]),
            Node::IsNull(a) => self.nodes(&[tag::IS_NULL], &[a]),
            Node::Case(c, t, e) => self.nodes(&[tag::CASE], &[c, t, e]),
            Node::Coalesce(a, b) => self.nodes(&[tag::COALESCE], &[a, b]),
        }
    }

    fn nodes(&mut self, tags: &[u8], children: &[&'q Node]) {
        self.key.extend_from_slice(tags);
        for c in children {
            self.node(c);
        }
    }

    fn optional(&mut self, n: Option<&'q Node>) {
        match n {
            Some(n) => self.node(n),
            None => self.key.push(tag::NONE),
        }
    }

    fn call(&mut self, call: &'q AggCall) {
        self.key
            .extend_from_slice(&[call.source as u8, call.func as u8]);
        self.optional(call.arg.as_ref());
        self.optional(call.filter.as_ref());
    }

    fn metric(&mut self, n: &'q MNode, aggs: &Aggregates<'_>) {
        let pair = |w: &mut Self, t: u8, a: &'q MNode, b: &'q MNode| {
            w.key.push(t);
            w.metric(a, aggs);
            w.metric(b, aggs);
        };
        match n {
            MNode::Agg(call) => {
                self.key.push(tag::AGG);
                self.len(aggs.of(call));
            }
            MNode::Lit(v) => {
                self.key.push(tag::LIT);
                self.params.push(Param::Int(*v));
            }
            MNode::Add(a, b) => pair(self, tag::ADD, a, b),
            MNode::Sub(a, b) => pair(self, tag::SUB, a, b),
            MNode::Mul(a, b) => pair(self, tag::MUL, a, b),
            MNode::Div(a, b) => pair(self, tag::DIV, a, b),
            MNode::Coalesce(a, b) => pair(self, tag::M_COALESCE, a, b),
            MNode::Ratio(a, b, scale) => {
                pair(self, tag::RATIO, a, b);
                self.params.push(Param::Int(*scale));
            }
        }
    }
}

impl MetricsQuery {
    /// The query's shape for `dialect` and its values in walk order: the scope's ids, then each
    /// distinct aggregate's literals (in the order of `aggs.calls`), then the metrics' constants,
    /// each filter's constants and threshold, the order metrics' constants, and the limit.
    /// [`MetricsQuery::with_sentinels`] walks in the same order.
    pub(crate) fn shape<'q>(&'q self, dialect: Backend, aggs: &Aggregates<'q>) -> Shape<'q> {
        let mut w = Walk {
            key: Vec::with_capacity(1024),
            params: Vec::with_capacity(64),
        };
        w.key.push(dialect as u8);
        w.key.extend_from_slice(&self.max_depth.to_le_bytes());
        match self.level {
            Some(level) => {
                w.key.push(1);
                w.key.extend_from_slice(&level.to_le_bytes());
            }
            None => w.key.push(0),
        }
        w.len(self.dimensions.len());
        w.key.extend(self.dimensions.iter().map(|d| *d as u8));
        match &self.scope {
            Scope::All => w.key.push(0),
            Scope::Ids(ids) => {
                w.key.push(1);
                w.len(ids.len());
                w.params.extend(ids.iter().map(|id| Param::Text(id)));
            }
            Scope::Subtree(root) => {
                w.key.push(2);
                w.params.push(Param::Text(root));
            }
        }
        w.len(aggs.calls.len());
        let mut call_starts = Vec::with_capacity(aggs.calls.len());
        for call in &aggs.calls {
            call_starts.push(w.params.len());
            w.call(call);
        }
        let metrics_start = w.params.len();
        w.len(self.metrics.len());
        for m in &self.metrics {
            w.metric(&m.node, aggs);
        }
        w.len(self.filters.len());
        for f in &self.filters {
            w.metric(&f.metric.node, aggs);
            w.key.push(f.op as u8);
            w.params.push(Param::Int(f.value));
        }
        w.len(self.order.len());
        for (m, order) in &self.order {
            w.metric(&m.node, aggs);
            w.key.push(*order as u8);
        }
        match self.limit {
            Some(limit) => {
                w.key.push(1);
                w.params.push(Param::Limit(limit));
            }
            None => w.key.push(0),
        }
        Shape {
            key: w.key,
            params: w.params,
            call_starts,
            metrics_start,
        }
    }

    /// A copy of this query whose every value is replaced by a sentinel naming its position in
    /// the walk order of [`MetricsQuery::shape`]; rendering it shows where each value lands.
    /// Aggregates equal here stay equal (their sentinels come from their index in `aggs.calls`),
    /// and different ones stay different, so the copy renders the same SQL text.
    pub(crate) fn with_sentinels(&self, aggs: &Aggregates<'_>, shape: &Shape<'_>) -> Self {
        let mut q = self.clone();
        let mut next = 0;
        match &mut q.scope {
            Scope::All => {}
            Scope::Ids(ids) => ids.iter_mut().for_each(|id| *id = text_sentinel(&mut next)),
            Scope::Subtree(root) => *root = text_sentinel(&mut next),
        }
        debug_assert_eq!(
            next,
            (shape.call_starts.first().copied()).unwrap_or(shape.metrics_start)
        );
        let mut next = shape.metrics_start;
        let metric = |m: &mut Metric, next: &mut usize| {
            sentinel_metric(&mut m.node, &aggs.calls, &shape.call_starts, next);
        };
        for m in &mut q.metrics {
            metric(m, &mut next);
        }
        for f in &mut q.filters {
            metric(&mut f.metric, &mut next);
            f.value = int_sentinel(&mut next);
        }
        for (m, _) in &mut q.order {
            metric(m, &mut next);
        }
        if let Some(limit) = &mut q.limit {
            *limit = limit_sentinel(&mut next);
        }
        debug_assert_eq!(next, shape.params.len(), "sentinel walk out of step");
        q
    }
}

/// Calls `f` on every literal of an aggregate's tree, argument first, in the order of
/// [`Walk::node`].
fn for_each_literal_mut(call: &mut AggCall, f: &mut impl FnMut(&mut Node)) {
    fn walk(n: &mut Node, f: &mut impl FnMut(&mut Node)) {
        match n {
            Node::Int(_) | Node::Text(_) => f(n),
            Node::Col(..) | Node::Null(_) | Node::True => {}
            // Copy on write: the children may be shared with other trees.
            Node::Arith(_, a, b)
            | Node::Cmp(_, a, b)
            | Node::And(a, b)
            | Node::Or(a, b)
            | Node::Coalesce(a, b) => {
                walk(Arc::make_mut(a), f);
                walk(Arc::make_mut(b), f);
            }
            Node::Not(a) | Node::IsNull(a) => walk(Arc::make_mut(a), f),
            Node::Case(c, t, e) => {
                walk(Arc::make_mut(c), f);
                walk(Arc::make_mut(t), f);
                walk(Arc::make_mut(e), f);
            }
        }
    }
    for n in [call.arg.as_mut(), call.filter.as_mut()]
        .into_iter()
        .flatten()
    {
        walk(n, f);
    }
}

fn sentinel_metric(n: &mut MNode, originals: &[&AggCall], call_starts: &[usize], next: &mut usize) {
    match n {
        MNode::Agg(call) => {
            let k = originals
                .iter()
                .position(|c| *c == call)
                .unwrap_or_else(|| unreachable!("every aggregate of the query is listed"));
            let mut at = call_starts[k];
            for_each_literal_mut(call, &mut |n| match n {
                Node::Int(v) => *v = int_sentinel(&mut at),
                Node::Text(t) => *t = text_sentinel(&mut at).into(),
                _ => {}
            });
        }
        MNode::Lit(v) => *v = int_sentinel(next),
        MNode::Add(a, b)
        | MNode::Sub(a, b)
        | MNode::Mul(a, b)
        | MNode::Div(a, b)
        | MNode::Coalesce(a, b) => {
            sentinel_metric(Arc::make_mut(a), originals, call_starts, next);
            sentinel_metric(Arc::make_mut(b), originals, call_starts, next);
        }
        MNode::Ratio(a, b, scale) => {
            sentinel_metric(Arc::make_mut(a), originals, call_starts, next);
            sentinel_metric(Arc::make_mut(b), originals, call_starts, next);
            *scale = int_sentinel(next);
        }
    }
}

/// Sentinels: the position `n` in the walk order, as a value no query builds itself (integers
/// far below any constant the renderer adds, text starting with a NUL byte, limits near
/// `u64::MAX`).
const TEXT_SENTINEL: &str = "\0mq";

fn int_sentinel(next: &mut usize) -> i64 {
    let n = *next;
    *next += 1;
    i64::MIN.wrapping_add(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text_sentinel(next: &mut usize) -> String {
    let n = *next;
    *next += 1;
    format!("{TEXT_SENTINEL}{n}")
}

fn limit_sentinel(next: &mut usize) -> u64 {
    let n = *next;
    *next += 1;
    u64::MAX - n as u64
}

/// The walk position a rendered value stands for, if it is a sentinel of a query with `len`
/// values.
pub(crate) fn sentinel_position(value: &Value, len: usize) -> Option<usize> {
    let n = match value {
        Value::BigInt(Some(v)) => usize::try_from(v.wrapping_sub(i64::MIN)).ok()?,
        Value::String(Some(s)) => s.strip_prefix(TEXT_SENTINEL)?.parse().ok()?,
        Value::BigUnsigned(Some(v)) => usize::try_from(u64::MAX - v).ok()?,
        _ => return None,
    };
    (n < len).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Period, builtin};

    #[test]
    fn values_do_not_change_the_shape_but_sharing_does() {
        let may = Period::new(0, 10).expect("period");
        let june = Period::new(10, 20).expect("period");
        let shape_of = |a: Period, b: Period| {
            let mut q = MetricsQuery::new();
            q.select("a", builtin::cost(a)).expect("select");
            q.select("b", builtin::cost(b)).expect("select");
            let aggs = q.aggregates().expect("aggregates");
            q.shape(Backend::Postgres, &aggs).key
        };
        assert_eq!(shape_of(may, june), shape_of(june, may));
        // The same period twice is one aggregate rendered once: different SQL.
        assert_ne!(shape_of(may, june), shape_of(may, may));
    }

    #[test]
    fn sentinels_name_their_position() {
        let mut next = 0;
        let values = [
            Value::BigInt(Some(int_sentinel(&mut next))),
            Value::String(Some(text_sentinel(&mut next))),
            Value::BigUnsigned(Some(limit_sentinel(&mut next))),
        ];
        for (i, v) in values.iter().enumerate() {
            assert_eq!(sentinel_position(v, 3), Some(i));
        }
        assert_eq!(sentinel_position(&Value::BigInt(Some(0)), 3), None);
        assert_eq!(sentinel_position(&Value::BigInt(Some(32)), 3), None);
    }
}
