//! The SQL interpreter: renders expression trees and metrics as sea-query expressions for one
//! dialect. Every literal becomes a bound value.

use std::borrow::Cow;
use std::sync::LazyLock;

use sea_query::{Asterisk, Cond, DynIden, Expr as Sql, ExprTrait, Func, Value};

use crate::expr::{ArithOp, CmpOp, Node, SourceKind, ValueKind};
use crate::metric::{AggCall, AggFunc, MNode};
use crate::schema::{IdType, Schema, TimeType};
pub use tenantry_core::db::Backend;

/// The names a query is built from (aliases, CTE and generated column names, and the default
/// table and column names): as `&'static str` they become identifiers without an allocation.
macro_rules! static_names {
    ($($name:literal),* $(,)?) => {
        fn static_name(name: &str) -> Option<&'static str> {
            match name {
                $($name => Some($name),)*
                _ => None,
            }
        }
    };
}

static_names!(
    "g",
    "t",
    "s",
    "f",
    "p",
    "d",
    "u",
    "m",
    "v",
    "tr",
    "gr",
    "pre",
    "id",
    "depth",
    "group_id",
    "ancestor_id",
    "descendant_id",
    "node_id",
    "mq_groups",
    "mq_scope",
    "mq_tree",
    "mq_up",
    "mq_access",
    "mq_role_up",
    "mq_role_access",
    "r",
    "ra",
    "rg",
    "tenantry_roles",
    "tenantry_role_assignments",
    "tenantry_role_grants",
    "role_id",
    "tenantry_tenants",
    "tenantry_memberships",
    "tenantry_grants",
    "tenantry_usage",
    "tenant_id",
    "parent_id",
    "level",
    "user_id",
    "permission",
    "feature",
    "model",
    "lane",
    "occurred_at",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "cost_nanos",
    "standard_cost_nanos",
    "s0",
    "s1",
    "s2",
    "s3",
    "d0",
    "d1",
    "d2",
);

/// An identifier for sea-query. Building a dashboard makes hundreds of them, and allocation was
/// most of the build time: the query's own names are borrowed, others cost one allocation
/// (`Alias` costs two: its own and the quoted copy).
pub(crate) fn ident(name: &str) -> DynIden {
    match static_name(name).or_else(|| numbered_name(name)) {
        Some(name) => DynIden::from(name),
        None => DynIden::from(name.to_owned()),
    }
}

/// A name made by the query: borrowed when it is one of the query's own names.
pub(crate) type Name = Cow<'static, str>;
/// Where an aggregate's value is: (subquery alias, column).
pub(crate) type Located = (Name, Name);

/// The prefixes of generated names: aggregate (`a`) and partial (`c`) columns, metric outputs
/// (`m`), dimensions (`d`), fact subqueries (`s`) and their distinct-count subqueries (`s0_`…).
const PREFIXES: [&str; 7] = ["a", "c", "m", "d", "s", "s0_", "s1_"];
/// Generated names up to this number are made once and borrowed.
const NUMBERED_MAX: usize = 64;
static NUMBERED: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    PREFIXES
        .iter()
        .map(|p| (0..NUMBERED_MAX).map(|i| format!("{p}{i}")).collect())
        .collect()
});

/// A generated name: `prefix` (one of [`PREFIXES`]) followed by `i`.
pub(crate) fn numbered(prefix: &'static str, i: usize) -> Name {
    match PREFIXES.iter().position(|p| *p == prefix) {
        Some(k) if i < NUMBERED_MAX => Cow::Borrowed(NUMBERED[k][i].as_str()),
        _ => Cow::Owned(format!("{prefix}{i}")),
    }
}

fn numbered_name(name: &str) -> Option<&'static str> {
    let digits = name.find(|c: char| c.is_ascii_digit())?;
    let (prefix, number) = name.split_at(digits);
    let k = PREFIXES.iter().position(|p| *p == prefix)?;
    let i: usize = number.parse().ok()?;
    NUMBERED[k]
        .get(i)
        .map(String::as_str)
        .filter(|n| *n == name)
}

pub(crate) fn col(table: &str, column: &str) -> Sql {
    Sql::col((ident(table), ident(column)))
}

fn nullif_zero(e: Sql) -> Sql {
    Func::cust("NULLIF").arg(e).arg(Sql::val(0i64)).into()
}

/// The host's name of a fact column, and the type it is stored in when that is not how
/// metrics see it.
fn column(column: crate::expr::Column, schema: &Schema) -> (&str, Stored) {
    let name = column.name();
    let host = match column.source {
        SourceKind::Usage => schema.usage.col(name).as_str(),
        SourceKind::Members => schema.memberships.col(name).as_str(),
        SourceKind::Access | SourceKind::RoleAccess => name,
    };
    let stored = match name {
        "tenant_id" if schema.tenant_ids != IdType::Text => Stored::Id,
        "user_id" if schema.user_ids != IdType::Text => Stored::Id,
        "occurred_at" if column.source == SourceKind::Usage => Stored::Time(schema.time),
        _ => Stored::AsSeen,
    };
    (host, stored)
}

/// How a fact column is stored, seen from the metrics.
enum Stored {
    /// As metrics see it.
    AsSeen,
    /// An id of another type than text: metrics see its text form.
    Id,
    /// The ledger's time: metrics see Unix microseconds.
    Time(TimeType),
}

/// `stored` (a column of type `time`) as Unix microseconds, exactly.
fn micros(stored: Sql, time: TimeType) -> Sql {
    match time {
        TimeType::EpochMicros => stored,
        TimeType::UnixSeconds => stored.mul(Sql::cust("1000000")),
        // `EXTRACT` returns `numeric` (exact) since PostgreSQL 14.
        TimeType::Timestamptz => {
            Sql::cust_with_expr("CAST(EXTRACT(EPOCH FROM $1) * 1000000 AS BIGINT)", stored)
        }
        // Whole seconds from SQLite's date functions (floored, also before 1970), then the
        // fraction's digits, right-padded to six; character 20 is the fraction's dot.
        TimeType::IsoText => Sql::cust_with_exprs(
            "(CAST(strftime('%s', ?) AS INTEGER) * 1000000 \
             + CAST(substr(substr(?, 21) || '000000', 1, 6) AS INTEGER))",
            [stored.clone(), stored],
        ),
    }
}

/// Renders a row-level expression; columns are read from the table aliased `alias`.
pub(crate) fn node(n: &Node, schema: &Schema, alias: &str) -> Sql {
    let r = |x: &Node| node(x, schema, alias);
    match n {
        Node::Col(c) => {
            let (name, stored) = column(*c, schema);
            let c = col(alias, name);
            match stored {
                Stored::AsSeen => c,
                Stored::Id => Func::cast_as(c, ident("TEXT")).into(),
                Stored::Time(time) => micros(c, time),
            }
        }
        Node::Int(v) => Sql::val(*v),
        Node::Text(t) => Sql::val(t.as_ref()),
        Node::Null(ValueKind::Int) => Sql::val(Value::BigInt(None)),
        Node::Null(ValueKind::Text) => Sql::val(Value::String(None)),
        // `1 = 1` rather than `TRUE`: the same literal-free condition on every SQLite version.
        Node::True => Sql::cust("1 = 1"),
        Node::Arith(op, a, b) => match op {
            ArithOp::Add => r(a).add(r(b)),
            ArithOp::Sub => r(a).sub(r(b)),
            ArithOp::Mul => r(a).mul(r(b)),
            ArithOp::SafeDiv => r(a).div(nullif_zero(r(b))),
        },
        Node::Cmp(op, a, b) => match op {
            CmpOp::Eq => r(a).eq(r(b)),
            CmpOp::Ne => r(a).ne(r(b)),
            CmpOp::Lt => r(a).lt(r(b)),
            CmpOp::Le => r(a).lte(r(b)),
            CmpOp::Gt => r(a).gt(r(b)),
            CmpOp::Ge => r(a).gte(r(b)),
        },
        Node::And(a, b) => r(a).and(r(b)),
        Node::Or(a, b) => r(a).or(r(b)),
        Node::Not(a) => r(a).not(),
        Node::IsNull(a) => r(a).is_null(),
        Node::Case(c, t, e) => Sql::case(r(c), r(t)).finally(r(e)).into(),
        Node::Coalesce(a, b) => Func::coalesce([r(a), r(b)]).into(),
    }
}

/// Renders one aggregate over the fact table aliased `alias`. With `final_sum`, a `SUM` on
/// PostgreSQL is cast back to `BIGINT` (it is `numeric` there); partial sums stay exact.
pub(crate) fn aggregate(
    call: &AggCall,
    schema: &Schema,
    final_sum: Option<Backend>,
    alias: &str,
) -> Sql {
    let arg = || aggregate_arg(call, schema, alias).unwrap_or_else(|| Sql::col(Asterisk));
    let mut f = match call.func {
        AggFunc::CountRows => Func::count(Sql::col(Asterisk)),
        AggFunc::Count => Func::count(arg()),
        AggFunc::CountDistinct => Func::count_distinct(arg()),
        AggFunc::Sum => Func::sum(arg()),
        AggFunc::Min => Func::min(arg()),
        AggFunc::Max => Func::max(arg()),
    };
    if let Some(filter) = &call.filter {
        f = f.filter(Cond::all().add(node(filter, schema, alias)));
    }
    if call.func == AggFunc::Sum && final_sum == Some(Backend::Postgres) {
        Func::cast_as(f, "BIGINT").into()
    } else {
        f.into()
    }
}

/// The argument of an aggregate. An id counted (distinct or not) is read as stored: its text
/// form has as many distinct values and `NULL`s, and the cast would cost a conversion per row.
pub(crate) fn aggregate_arg(call: &AggCall, schema: &Schema, alias: &str) -> Option<Sql> {
    let arg = call.arg.as_ref()?;
    if let Node::Col(c) = arg
        && matches!(call.func, AggFunc::Count | AggFunc::CountDistinct)
        && let (name, Stored::Id) = column(*c, schema)
    {
        return Some(col(alias, name));
    }
    Some(node(arg, schema, alias))
}

/// Combines per-tenant partial aggregates (column `column` of `table`) over a subtree:
/// counts and sums add up, minima and maxima take theirs. On PostgreSQL the result is cast back
/// to `BIGINT` (`SUM` of `bigint` is `numeric` there), which fails exactly when the total leaves
/// the `i64` range.
pub(crate) fn combine(func: AggFunc, dialect: Backend, table: &str, column: &str) -> Sql {
    let c = col(table, column);
    match func {
        AggFunc::CountRows | AggFunc::Count | AggFunc::Sum | AggFunc::CountDistinct => {
            let f = Func::sum(c);
            if dialect == Backend::Postgres {
                Func::cast_as(f, "BIGINT").into()
            } else {
                f.into()
            }
        }
        AggFunc::Min => Func::min(c).into(),
        AggFunc::Max => Func::max(c).into(),
    }
}

/// Renders a metric in the outer query, where aggregate `i` of source `s` is column `a{i}` of
/// the joined subquery `s{s}`. Counts of groups with no rows come back `NULL` from the outer
/// join and are turned into 0, as a `COUNT` over no rows is.
pub(crate) fn metric(n: &MNode, locate: &dyn Fn(&AggCall) -> Located) -> Sql {
    let r = |x: &MNode| metric(x, locate);
    match n {
        MNode::Agg(call) => {
            let (table, column) = locate(call);
            let c = col(&table, &column);
            match call.func {
                AggFunc::CountRows | AggFunc::Count | AggFunc::CountDistinct => {
                    Func::coalesce([c, Sql::val(0i64)]).into()
                }
                AggFunc::Sum | AggFunc::Min | AggFunc::Max => c,
            }
        }
        MNode::Lit(v) => Sql::val(*v),
        MNode::Add(a, b) => r(a).add(r(b)),
        MNode::Sub(a, b) => r(a).sub(r(b)),
        MNode::Mul(a, b) => r(a).mul(r(b)),
        MNode::Div(a, b) => r(a).div(nullif_zero(r(b))),
        MNode::Ratio(a, b, scale) => r(a).mul(Sql::val(*scale)).div(nullif_zero(r(b))),
        MNode::Coalesce(a, b) => Func::coalesce([r(a), r(b)]).into(),
    }
}
