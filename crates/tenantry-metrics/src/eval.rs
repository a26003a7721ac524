//! The Rust interpreter: evaluates a metrics query on rows already in memory, with exactly the
//! semantics the SQL renderer emits (three-valued logic, `NULL` propagation, truncating integer
//! division, `NULL` on a zero divisor, overflow as an error).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::data::{Dataset, RoleRow, TenantRow, UsageRow};
use crate::dimension::Dimension;
use crate::error::{Error, Result};
use crate::expr::{ArithOp, CmpOp, Node, SourceKind};
use crate::metric::{AggCall, AggFunc, FilterOp, MNode};

/// A value of one row-level expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Val<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bool(bool),
}

/// A fact row of any source, read by column name.
pub(crate) enum FactRow<'a> {
    Usage(&'a UsageRow),
    Members {
        user_id: &'a str,
        tenant_id: &'a str,
    },
    Access(&'a AccessRow),
}

/// One effective-access row (see [`crate::Access`] and [`crate::RoleAccess`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessRow {
    tenant_id: String,
    user_id: String,
    permission: String,
    depth: i64,
}

impl<'a> FactRow<'a> {
    fn tenant(&self) -> &'a str {
        match self {
            FactRow::Usage(u) => &u.tenant_id,
            FactRow::Members { tenant_id, .. } => tenant_id,
            FactRow::Access(a) => &a.tenant_id,
        }
    }

    fn col(&self, name: &str) -> Val<'a> {
        match self {
            FactRow::Usage(u) => match name {
                "tenant_id" => Val::Text(&u.tenant_id),
                "user_id" => u.user_id.as_deref().map_or(Val::Null, Val::Text),
                "feature" => Val::Text(&u.feature),
                "model" => Val::Text(&u.model),
                "lane" => Val::Text(&u.lane),
                "occurred_at" => Val::Int(u.occurred_at),
                "input_tokens" => Val::Int(u.input_tokens),
                "cache_write_5m_tokens" => Val::Int(u.cache_write_5m_tokens),
                "cache_write_1h_tokens" => Val::Int(u.cache_write_1h_tokens),
                "cache_read_tokens" => Val::Int(u.cache_read_tokens),
                "output_tokens" => Val::Int(u.output_tokens),
                "cost_nanos" => Val::Int(u.cost_nanos),
                "standard_cost_nanos" => Val::Int(u.standard_cost_nanos),
                _ => unreachable!("unknown usage column {name}"),
            },
            FactRow::Members { user_id, tenant_id } => match name {
                "user_id" => Val::Text(user_id),
                "tenant_id" => Val::Text(tenant_id),
                _ => unreachable!("unknown membership column {name}"),
            },
            FactRow::Access(a) => match name {
                "tenant_id" => Val::Text(&a.tenant_id),
                "user_id" => Val::Text(&a.user_id),
                "permission" => Val::Text(&a.permission),
                "depth" => Val::Int(a.depth),
                _ => unreachable!("unknown access column {name}"),
            },
        }
    }
}

fn eval_node<'a>(node: &'a Node, row: &FactRow<'a>) -> Result<Val<'a>> {
    Ok(match node {
        Node::Col(column) => row.col(column.name()),
        Node::Int(v) => Val::Int(*v),
        Node::Text(t) => Val::Text(t),
        Node::Null(_) => Val::Null,
        Node::True => Val::Bool(true),
        Node::Arith(op, a, b) => match (eval_node(a, row)?, eval_node(b, row)?) {
            (Val::Int(x), Val::Int(y)) => match op {
                ArithOp::Add => Val::Int(x.checked_add(y).ok_or(Error::Overflow("+"))?),
                ArithOp::Sub => Val::Int(x.checked_sub(y).ok_or(Error::Overflow("-"))?),
                ArithOp::Mul => Val::Int(x.checked_mul(y).ok_or(Error::Overflow("*"))?),
                ArithOp::SafeDiv if y == 0 => Val::Null,
                ArithOp::SafeDiv => Val::Int(x.checked_div(y).ok_or(Error::Overflow("/"))?),
            },
            _ => Val::Null,
        },
        Node::Cmp(op, a, b) => match (eval_node(a, row)?, eval_node(b, row)?) {
            (Val::Null, _) | (_, Val::Null) => Val::Null,
            (x, y) => Val::Bool(match op {
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                CmpOp::Lt => int(x) < int(y),
                CmpOp::Le => int(x) <= int(y),
                CmpOp::Gt => int(x) > int(y),
                CmpOp::Ge => int(x) >= int(y),
            }),
        },
        Node::And(a, b) => match (eval_node(a, row)?, eval_node(b, row)?) {
            (Val::Bool(false), _) | (_, Val::Bool(false)) => Val::Bool(false),
            (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
            _ => Val::Null,
        },
        Node::Or(a, b) => match (eval_node(a, row)?, eval_node(b, row)?) {
            (Val::Bool(true), _) | (_, Val::Bool(true)) => Val::Bool(true),
            (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
            _ => Val::Null,
        },
        Node::Not(a) => match eval_node(a, row)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Null,
        },
        Node::IsNull(a) => Val::Bool(eval_node(a, row)? == Val::Null),
        Node::Case(c, t, e) => {
            if eval_node(c, row)? == Val::Bool(true) {
                eval_node(t, row)?
            } else {
                eval_node(e, row)?
            }
        }
        Node::Coalesce(a, b) => match eval_node(a, row)? {
            Val::Null => eval_node(b, row)?,
            v => v,
        },
    })
}

/// Ordering comparisons only ever see integers: the typed API has no ordering on text.
fn int(v: Val<'_>) -> i64 {
    match v {
        Val::Int(i) => i,
        _ => unreachable!("ordering comparison on a non-integer"),
    }
}

fn eval_agg(call: &AggCall, rows: &[&FactRow<'_>]) -> Result<Option<i64>> {
    let mut count: i64 = 0;
    let mut distinct: HashSet<Val<'_>> = HashSet::new();
    let mut total: Option<i128> = None;
    let mut extreme: Option<i64> = None;
    for row in rows {
        if let Some(f) = &call.filter
            && eval_node(f, row)? != Val::Bool(true)
        {
            continue;
        }
        let v = match &call.arg {
            None => {
                count += 1;
                continue;
            }
            Some(arg) => eval_node(arg, row)?,
        };
        if v == Val::Null {
            continue;
        }
        match call.func {
            AggFunc::CountRows | AggFunc::Count => count += 1,
            AggFunc::CountDistinct => {
                distinct.insert(v);
            }
            AggFunc::Sum => *total.get_or_insert(0) += i128::from(int(v)),
            AggFunc::Min => extreme = Some(extreme.map_or(int(v), |m| m.min(int(v)))),
            AggFunc::Max => extreme = Some(extreme.map_or(int(v), |m| m.max(int(v)))),
        }
    }
    Ok(match call.func {
        AggFunc::CountRows | AggFunc::Count => Some(count),
        AggFunc::CountDistinct => {
            Some(i64::try_from(distinct.len()).map_err(|_| Error::Overflow("COUNT"))?)
        }
        AggFunc::Sum => match total {
            None => None,
            Some(t) => Some(i64::try_from(t).map_err(|_| Error::Overflow("SUM"))?),
        },
        AggFunc::Min | AggFunc::Max => extreme,
    })
}

pub(crate) fn eval_metric(
    node: &MNode,
    aggs: &HashMap<&AggCall, Option<i64>>,
) -> Result<Option<i64>> {
    let pair = |a: &MNode, b: &MNode| -> Result<Option<(i64, i64)>> {
        Ok(match (eval_metric(a, aggs)?, eval_metric(b, aggs)?) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => None,
        })
    };
    Ok(match node {
        MNode::Agg(call) => *aggs.get(call).unwrap_or(&None),
        MNode::Lit(v) => Some(*v),
        MNode::Add(a, b) => match pair(a, b)? {
            Some((x, y)) => Some(x.checked_add(y).ok_or(Error::Overflow("+"))?),
            None => None,
        },
        MNode::Sub(a, b) => match pair(a, b)? {
            Some((x, y)) => Some(x.checked_sub(y).ok_or(Error::Overflow("-"))?),
            None => None,
        },
        MNode::Mul(a, b) => match pair(a, b)? {
            Some((x, y)) => Some(x.checked_mul(y).ok_or(Error::Overflow("*"))?),
            None => None,
        },
        MNode::Div(a, b) => match pair(a, b)? {
            Some((_, 0)) | None => None,
            Some((x, y)) => Some(x.checked_div(y).ok_or(Error::Overflow("/"))?),
        },
        MNode::Ratio(a, b, scale) => match pair(a, b)? {
            Some((_, 0)) | None => None,
            Some((x, y)) => {
                let scaled = x.checked_mul(*scale).ok_or(Error::Overflow("ratio"))?;
                Some(scaled.checked_div(y).ok_or(Error::Overflow("ratio"))?)
            }
        },
        MNode::Coalesce(a, b) => match eval_metric(a, aggs)? {
            Some(v) => Some(v),
            None => eval_metric(b, aggs)?,
        },
    })
}

pub(crate) fn filter_passes(op: FilterOp, value: Option<i64>, bound: i64) -> bool {
    value.is_some_and(|v| match op {
        FilterOp::Eq => v == bound,
        FilterOp::Lt => v < bound,
        FilterOp::Le => v <= bound,
        FilterOp::Gt => v > bound,
        FilterOp::Ge => v >= bound,
    })
}

/// The tenant tree, indexed for walking up and down.
pub(crate) struct Tree<'a> {
    by_id: HashMap<&'a str, &'a TenantRow>,
    children: HashMap<&'a str, Vec<&'a str>>,
    max_depth: u32,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(tenants: &'a [TenantRow], max_depth: u32) -> Self {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for t in tenants {
            if let Some(p) = &t.parent_id {
                children.entry(p).or_default().push(&t.id);
            }
        }
        Self {
            by_id: tenants.iter().map(|t| (t.id.as_str(), t)).collect(),
            children,
            max_depth,
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&'a TenantRow> {
        self.by_id.get(id).copied()
    }

    /// `root` and every tenant at most `max_depth` levels below it (the recursive CTE with its
    /// depth guard, deduplicated). A cycle is cut by the guard exactly as in SQL.
    pub(crate) fn subtree(&self, root: &'a str) -> HashSet<&'a str> {
        let mut seen = HashSet::from([root]);
        let mut queue = VecDeque::from([(root, 0u32)]);
        while let Some((id, depth)) = queue.pop_front() {
            if depth >= self.max_depth {
                continue;
            }
            for child in self.children.get(id).into_iter().flatten() {
                if seen.insert(child) {
                    queue.push_back((child, depth + 1));
                }
            }
        }
        seen
    }

    /// `(ancestor, distance)` from `id` upwards, `id` itself at distance 0, following
    /// `parent_id` at most `max_depth` times and stopping at a parent that is not a tenant.
    fn ancestors(&self, id: &'a str) -> Vec<(&'a str, i64)> {
        let mut out = vec![(id, 0)];
        let mut cur = id;
        let mut depth = 0;
        while depth < i64::from(self.max_depth) {
            let Some(parent) = self.get(cur).and_then(|t| t.parent_id.as_deref()) else {
                break;
            };
            depth += 1;
            cur = parent;
            out.push((cur, depth));
        }
        out
    }
}

/// The effective-access rows: per (membership tenant, user, permission) the nearest distance.
pub(crate) fn access_rows(data: &Dataset, tree: &Tree<'_>) -> Vec<AccessRow> {
    let mut grants: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for g in &data.grants {
        grants
            .entry(&g.tenant_id)
            .or_default()
            .insert(&g.permission);
    }
    let mut nearest = Nearest::default();
    for m in &data.memberships {
        if tree.get(&m.tenant_id).is_none() {
            continue;
        }
        for (ancestor, depth) in tree.ancestors(&m.tenant_id) {
            nearest.grant(&m.tenant_id, &m.user_id, grants.get(ancestor), depth);
        }
    }
    nearest.into_rows()
}

/// The nearest grant distance per (tenant, user, permission), as access rows are derived.
#[derive(Default)]
struct Nearest<'a>(HashMap<(&'a str, &'a str, &'a str), i64>);

impl<'a> Nearest<'a> {
    /// `permissions` reach `user` of `tenant` from `depth` levels up: keeps the smaller distance.
    fn grant(
        &mut self,
        tenant: &'a str,
        user: &'a str,
        permissions: Option<&BTreeSet<&'a str>>,
        depth: i64,
    ) {
        for permission in permissions.into_iter().flatten() {
            let e = self.0.entry((tenant, user, permission)).or_insert(depth);
            *e = (*e).min(depth);
        }
    }

    fn into_rows(self) -> Vec<AccessRow> {
        self.0
            .into_iter()
            .map(|((t, u, p), depth)| AccessRow {
                tenant_id: t.to_owned(),
                user_id: u.to_owned(),
                permission: p.to_owned(),
                depth,
            })
            .collect()
    }
}

/// `(ancestor, distance)` from `role` upwards, `role` itself at distance 0 (none when `role`
/// is not a role), following `parent_id` at most `max_depth` times and stopping at a parent
/// that is not a role: `mq_role_up` of the SQL. On a cycle the same roles come again at larger
/// distances, as in SQL.
fn role_ancestors<'a>(
    roles: &HashMap<&'a str, &'a RoleRow>,
    role: &'a str,
    max_depth: u32,
) -> Vec<(&'a str, i64)> {
    let Some(mut cur) = roles.get(role).copied() else {
        return Vec::new();
    };
    let mut out = vec![(cur.id.as_str(), 0)];
    let mut depth = 0;
    while depth < i64::from(max_depth) {
        let Some(parent) = cur.parent_id.as_deref() else {
            break;
        };
        depth += 1;
        out.push((parent, depth));
        match roles.get(parent) {
            Some(p) => cur = p,
            None => break,
        }
    }
    out
}

/// The effective-access rows through the role tree: per (assignment tenant, user, permission)
/// the nearest distance from one of the user's roles in that tenant to a role granting it.
pub(crate) fn role_access_rows(data: &Dataset, max_depth: u32) -> Vec<AccessRow> {
    let roles: HashMap<&str, &RoleRow> = data.roles.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut grants: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for g in &data.role_grants {
        grants.entry(&g.role_id).or_default().insert(&g.permission);
    }
    let mut nearest = Nearest::default();
    for a in &data.role_assignments {
        for (ancestor, depth) in role_ancestors(&roles, &a.role_id, max_depth) {
            nearest.grant(&a.tenant_id, &a.user_id, grants.get(ancestor), depth);
        }
    }
    nearest.into_rows()
}

/// The derived access rows a query reads: through the tenant tree and through the role tree
/// (each empty unless an aggregate reads it).
pub(crate) struct DerivedRows {
    pub(crate) access: Vec<AccessRow>,
    pub(crate) role_access: Vec<AccessRow>,
}

/// All fact rows of `source`.
pub(crate) fn fact_rows<'a>(
    data: &'a Dataset,
    derived: &'a DerivedRows,
    source: SourceKind,
) -> Vec<FactRow<'a>> {
    match source {
        SourceKind::Usage => data.usage.iter().map(FactRow::Usage).collect(),
        SourceKind::Members => data
            .memberships
            .iter()
            .map(|m| FactRow::Members {
                user_id: &m.user_id,
                tenant_id: &m.tenant_id,
            })
            .collect(),
        SourceKind::Access => derived.access.iter().map(FactRow::Access).collect(),
        SourceKind::RoleAccess => derived.role_access.iter().map(FactRow::Access).collect(),
    }
}

/// The fact rows of each source whose tenant is in `subtree`.
pub(crate) fn rows_in<'r, 'a>(
    rows_by_source: &'r HashMap<SourceKind, Vec<FactRow<'a>>>,
    subtree: &HashSet<&str>,
) -> Rows<'r, 'a> {
    rows_by_source
        .iter()
        .map(|(source, rows)| {
            let rows = rows
                .iter()
                .filter(|r| subtree.contains(r.tenant()))
                .collect();
            (*source, rows)
        })
        .collect()
}

/// Fact rows by source.
pub(crate) type Rows<'r, 'a> = HashMap<SourceKind, Vec<&'r FactRow<'a>>>;

/// Splits `rows` by the values of `dims` in the ledger rows: one part per combination that
/// occurs, in byte order of the values (`GROUP BY` over the ledger). Without dimensions, `rows`
/// is the one part.
pub(crate) fn partition<'r, 'a>(
    rows: Rows<'r, 'a>,
    dims: &[Dimension],
) -> Vec<(Vec<&'a str>, Rows<'r, 'a>)> {
    if dims.is_empty() {
        return vec![(Vec::new(), rows)];
    }
    let mut parts: BTreeMap<Vec<&'a str>, Vec<&'r FactRow<'a>>> = BTreeMap::new();
    for row in rows.get(&SourceKind::Usage).into_iter().flatten() {
        let key = dims
            .iter()
            .map(|d| match row.col(d.column()) {
                Val::Text(t) => t,
                _ => unreachable!("dimensions are text columns of the ledger"),
            })
            .collect();
        parts.entry(key).or_default().push(row);
    }
    parts
        .into_iter()
        .map(|(key, part)| (key, HashMap::from([(SourceKind::Usage, part)])))
        .collect()
}

/// Evaluates every aggregate in `calls` over `rows`.
pub(crate) fn eval_aggregates<'c>(
    calls: &[&'c AggCall],
    rows: &Rows<'_, '_>,
) -> Result<HashMap<&'c AggCall, Option<i64>>> {
    let mut out = HashMap::new();
    for call in calls {
        let rows = rows.get(&call.source).map_or(&[][..], Vec::as_slice);
        out.insert(*call, eval_agg(call, rows)?);
    }
    Ok(out)
}
