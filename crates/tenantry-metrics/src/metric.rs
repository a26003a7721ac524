//! Metrics: aggregates over one fact source, and metrics composed from other metrics.
//!
//! Every metric value is an `Option<i64>`: counts, integer nano-USD, token counts, tree depths and
//! ratios scaled to an integer (parts per million by default). `None` is SQL `NULL`: a `SUM`,
//! `MIN` or `MAX` over no rows, a division by zero, anything combined with `NULL`.

use std::sync::Arc;

use crate::expr::{Bool, Expr, Int, Node, Source, SourceKind, ValueType};

/// The aggregate functions. `AVG` is deliberately not among them: [`avg`] is `SUM / COUNT`
/// truncated toward zero, the same integer on every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AggFunc {
    CountRows,
    Count,
    CountDistinct,
    Sum,
    Min,
    Max,
}

/// One aggregate over the rows of a fact source in a tenant's subtree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AggCall {
    pub(crate) source: SourceKind,
    pub(crate) func: AggFunc,
    pub(crate) arg: Option<Node>,
    pub(crate) filter: Option<Node>,
}

/// The untyped tree behind [`Metric`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MNode {
    Agg(AggCall),
    Lit(i64),
    Add(Arc<MNode>, Arc<MNode>),
    Sub(Arc<MNode>, Arc<MNode>),
    Mul(Arc<MNode>, Arc<MNode>),
    /// Truncating division, `NULL` on a zero divisor.
    Div(Arc<MNode>, Arc<MNode>),
    /// `(a * scale) / b` truncating, `NULL` on a zero divisor.
    Ratio(Arc<MNode>, Arc<MNode>, i64),
    Coalesce(Arc<MNode>, Arc<MNode>),
}

/// An aggregate over fact source `S`, optionally filtered (`FILTER (WHERE …)`). Converts into a
/// [`Metric`]; an aggregate cannot be nested in another (it is not an [`Expr`]).
///
/// ```compile_fail
/// use tenantry_metrics::{count, sum, usage};
/// let nested = sum(count(usage::user_id())); // aggregate inside an aggregate
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Aggregate<S> {
    call: AggCall,
    avg: bool,
    _source: std::marker::PhantomData<fn() -> S>,
}

impl<S: Source> Aggregate<S> {
    fn new(func: AggFunc, arg: Option<Node>) -> Self {
        Self {
            call: AggCall {
                source: S::KIND,
                func,
                arg,
                filter: None,
            },
            avg: false,
            _source: std::marker::PhantomData,
        }
    }

    /// Only rows for which `condition` is `TRUE` are aggregated (`NULL` counts as false).
    /// A second call combines both conditions with `AND`.
    pub fn filter(mut self, condition: Expr<Bool, S>) -> Self {
        if condition.node == Node::True {
            return self;
        }
        self.call.filter = Some(match self.call.filter.take() {
            None => condition.node,
            Some(prev) => Node::And(Arc::new(prev), Arc::new(condition.node)),
        });
        self
    }
}

/// `COUNT(*)`: the number of rows of source `S`.
///
/// ```
/// use tenantry_metrics::{count_rows, usage, Usage};
/// let batch_requests = count_rows::<Usage>().filter(usage::lane().equals("batch"));
/// # let _ = batch_requests;
/// ```
pub fn count_rows<S: Source>() -> Aggregate<S> {
    Aggregate::new(AggFunc::CountRows, None)
}

/// `COUNT(expr)`: rows where `expr` is not `NULL`. Zero over no rows.
pub fn count<T: ValueType, S: Source>(expr: Expr<T, S>) -> Aggregate<S> {
    Aggregate::new(AggFunc::Count, Some(expr.node))
}

/// `COUNT(DISTINCT expr)`: distinct non-`NULL` values. Zero over no rows. Not additive: a
/// parent's value is recomputed from its subtree's rows, never summed from its children.
pub fn count_distinct<T: ValueType, S: Source>(expr: Expr<T, S>) -> Aggregate<S> {
    Aggregate::new(AggFunc::CountDistinct, Some(expr.node))
}

/// `SUM(expr)` of an integer: `NULL` over no (non-`NULL`) rows; a total outside `i64` is
/// [`Error::Overflow`](crate::Error::Overflow) in Rust, an error on PostgreSQL (`CAST(SUM(..) AS
/// BIGINT)`) and on SQLite (`integer overflow`).
pub fn sum<S: Source>(expr: Expr<Int, S>) -> Aggregate<S> {
    Aggregate::new(AggFunc::Sum, Some(expr.node))
}

/// `MIN(expr)` of an integer: `NULL` over no rows.
pub fn min<S: Source>(expr: Expr<Int, S>) -> Aggregate<S> {
    Aggregate::new(AggFunc::Min, Some(expr.node))
}

/// `MAX(expr)` of an integer: `NULL` over no rows.
pub fn max<S: Source>(expr: Expr<Int, S>) -> Aggregate<S> {
    Aggregate::new(AggFunc::Max, Some(expr.node))
}

/// The integer mean: `SUM(expr) / COUNT(expr)` truncated toward zero, `NULL` over no rows.
///
/// SQL's own `AVG` returns `numeric` on PostgreSQL and a float on SQLite; this one is the same
/// integer on every backend and in Rust.
pub fn avg<S: Source>(expr: Expr<Int, S>) -> Aggregate<S> {
    let mut a = Aggregate::new(AggFunc::Sum, Some(expr.node));
    a.avg = true;
    a
}

impl<S: Source> From<Aggregate<S>> for Metric {
    fn from(a: Aggregate<S>) -> Self {
        if a.avg {
            let count = AggCall {
                func: AggFunc::Count,
                ..a.call.clone()
            };
            Metric::from_node(MNode::Div(
                Arc::new(MNode::Agg(a.call)),
                Arc::new(MNode::Agg(count)),
            ))
        } else {
            Metric::from_node(MNode::Agg(a.call))
        }
    }
}

/// A metric: one integer (or `NULL`) per tenant group, computed from the base rows of the
/// group's whole subtree.
///
/// Compose metrics with the methods below; every composition is recomputed per group from the
/// underlying aggregates, so ratios and distinct counts roll up correctly.
///
/// # Example
/// ```
/// use tenantry_metrics::{count_distinct, count_rows, sum, usage, Metric, Usage};
/// let cost: Metric = sum(usage::cost_nanos()).into();
/// let users: Metric = count_distinct(usage::user_id()).into();
/// let per_user = cost.per(users);
/// let batch_share = Metric::from(count_rows::<Usage>().filter(usage::lane().equals("batch")))
///     .ratio(count_rows::<Usage>(), 1_000_000)?;
/// # let _ = (per_user, batch_share);
/// # Ok::<(), tenantry_metrics::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct Metric {
    pub(crate) node: MNode,
}

impl Metric {
    pub(crate) fn from_node(node: MNode) -> Self {
        Self { node }
    }

    fn bin(self, other: impl Into<Metric>, f: fn(Arc<MNode>, Arc<MNode>) -> MNode) -> Self {
        Self::from_node(f(Arc::new(self.node), Arc::new(other.into().node)))
    }

    /// A constant.
    pub fn constant(value: i64) -> Self {
        Self::from_node(MNode::Lit(value))
    }

    /// `self + other`.
    pub fn plus(self, other: impl Into<Metric>) -> Self {
        self.bin(other, MNode::Add)
    }

    /// `self - other`; with the same aggregate filtered on two periods this is a period delta.
    pub fn minus(self, other: impl Into<Metric>) -> Self {
        self.bin(other, MNode::Sub)
    }

    /// `self * other`.
    pub fn times(self, other: impl Into<Metric>) -> Self {
        self.bin(other, MNode::Mul)
    }

    /// `self / other` truncated toward zero, `NULL` when `other` is zero: "per user", "per
    /// request" values in the unit of `self`.
    pub fn per(self, other: impl Into<Metric>) -> Self {
        self.bin(other, MNode::Div)
    }

    /// `self * scale / other` truncated toward zero, `NULL` when `other` is zero. With
    /// `scale = 1_000_000` the value is in parts per million. Exact: no floats anywhere.
    ///
    /// # Errors
    /// [`Error::InvalidScale`](crate::Error::InvalidScale) when `scale` is not positive.
    pub fn ratio(self, other: impl Into<Metric>, scale: i64) -> crate::Result<Self> {
        if scale <= 0 {
            return Err(crate::Error::InvalidScale(scale));
        }
        Ok(Self::from_node(MNode::Ratio(
            Arc::new(self.node),
            Arc::new(other.into().node),
            scale,
        )))
    }

    /// `COALESCE(self, 0)`.
    pub fn or_zero(self) -> Self {
        self.bin(Metric::constant(0), MNode::Coalesce)
    }

    /// `self > value`, for [`MetricsQuery::filter`](crate::MetricsQuery::filter).
    pub fn gt(self, value: i64) -> MetricFilter {
        MetricFilter::new(self, FilterOp::Gt, value)
    }
    /// `self >= value`.
    pub fn ge(self, value: i64) -> MetricFilter {
        MetricFilter::new(self, FilterOp::Ge, value)
    }
    /// `self < value`.
    pub fn lt(self, value: i64) -> MetricFilter {
        MetricFilter::new(self, FilterOp::Lt, value)
    }
    /// `self <= value`.
    pub fn le(self, value: i64) -> MetricFilter {
        MetricFilter::new(self, FilterOp::Le, value)
    }
    /// `self = value`.
    pub fn equals(self, value: i64) -> MetricFilter {
        MetricFilter::new(self, FilterOp::Eq, value)
    }

    /// Adds this metric's aggregates to `out`, each distinct aggregate once, and records for
    /// every aggregate node of the tree (by address) its position in `out`, so rendering finds
    /// it without hashing the tree.
    pub(crate) fn aggregates<'m>(
        &'m self,
        out: &mut Vec<&'m AggCall>,
        index: &mut Vec<(*const AggCall, usize)>,
    ) {
        fn walk<'m>(
            n: &'m MNode,
            out: &mut Vec<&'m AggCall>,
            index: &mut Vec<(*const AggCall, usize)>,
        ) {
            match n {
                MNode::Agg(a) => {
                    let i = out.iter().position(|c| *c == a).unwrap_or_else(|| {
                        out.push(a);
                        out.len() - 1
                    });
                    index.push((std::ptr::from_ref(a), i));
                }
                MNode::Lit(_) => {}
                MNode::Add(a, b)
                | MNode::Sub(a, b)
                | MNode::Mul(a, b)
                | MNode::Div(a, b)
                | MNode::Ratio(a, b, _)
                | MNode::Coalesce(a, b) => {
                    walk(a, out, index);
                    walk(b, out, index);
                }
            }
        }
        walk(&self.node, out, index);
    }
}

/// Comparison of a metric with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FilterOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition on a metric value (`cost > 1000`), for filtering tenant groups. A group whose
/// metric is `NULL` never passes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct MetricFilter {
    pub(crate) metric: Metric,
    pub(crate) op: FilterOp,
    pub(crate) value: i64,
}

impl MetricFilter {
    fn new(metric: Metric, op: FilterOp, value: i64) -> Self {
        Self { metric, op, value }
    }
}

/// Sort direction for [`MetricsQuery::order_by`](crate::MetricsQuery::order_by). `NULL` values
/// always sort last, in both directions and on every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}
