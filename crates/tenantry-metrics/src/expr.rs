//! Typed row-level expressions over one fact source: columns, literals, arithmetic, comparisons,
//! CASE and COALESCE.
//!
//! An [`Expr<T, S>`] carries its SQL type `T` ([`Int`], [`Text`] or [`Bool`]) and its fact source
//! `S` ([`Usage`], [`Members`], [`Access`] or [`RoleAccess`]) as type parameters, so mixing sources in one
//! aggregate, summing text or filtering by an integer does not compile:
//!
//! ```compile_fail
//! use tenantry_metrics::{sum, usage};
//! let m = sum(usage::feature()); // text cannot be summed
//! ```
//!
//! ```compile_fail
//! use tenantry_metrics::{count, members, usage};
//! // a filter over the ledger cannot apply to memberships
//! let m = count(members::user_id()).filter(usage::lane().equals("batch"));
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

/// SQL/Rust type marker: 64-bit integer (`BIGINT`, `i64`). Integers are the only numbers: money
/// is integer nano-USD, ratios are scaled integers.
#[derive(Debug)]
pub enum Int {}
/// SQL/Rust type marker: text. Text can be compared for equality only, never ordered, because
/// PostgreSQL collations and SQLite's byte order disagree.
#[derive(Debug)]
pub enum Text {}
/// SQL/Rust type marker: a three-valued (`TRUE` / `FALSE` / `NULL`) condition.
#[derive(Debug)]
pub enum Bool {}

/// Fact source marker: the usage ledger (`tenantry_usage`), one row per charged request.
#[derive(Debug)]
pub enum Usage {}
/// Fact source marker: memberships, one row per (user, tenant).
#[derive(Debug)]
pub enum Members {}
/// Fact source marker: effective access, one row per (membership tenant, user, permission) with
/// the distance to the nearest ancestor tenant (or the tenant itself) that grants the permission.
#[derive(Debug)]
pub enum Access {}
/// Fact source marker: effective access through the role tree, one row per (assignment tenant,
/// user, permission) with the distance from an assigned role up to the nearest role (the role
/// itself or an ancestor) that holds the permission.
#[derive(Debug)]
pub enum RoleAccess {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Int {}
    impl Sealed for super::Text {}
    impl Sealed for super::Bool {}
    impl Sealed for super::Usage {}
    impl Sealed for super::Members {}
    impl Sealed for super::Access {}
    impl Sealed for super::RoleAccess {}
}

/// A value type a metric can aggregate or compare for equality: [`Int`] or [`Text`]. Sealed.
pub trait ValueType: sealed::Sealed {
    #[doc(hidden)]
    const KIND: ValueKind;
}
impl ValueType for Int {
    const KIND: ValueKind = ValueKind::Int;
}
impl ValueType for Text {
    const KIND: ValueKind = ValueKind::Text;
}

/// A fact source: [`Usage`], [`Members`], [`Access`] or [`RoleAccess`]. Sealed.
pub trait Source: sealed::Sealed {
    #[doc(hidden)]
    const KIND: SourceKind;
}
impl Source for Usage {
    const KIND: SourceKind = SourceKind::Usage;
}
impl Source for Members {
    const KIND: SourceKind = SourceKind::Members;
}
impl Source for Access {
    const KIND: SourceKind = SourceKind::Access;
}
impl Source for RoleAccess {
    const KIND: SourceKind = SourceKind::RoleAccess;
}

#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Int,
    Text,
}

#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Usage,
    Members,
    Access,
    RoleAccess,
}

/// Arithmetic operators of the expression tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    /// Truncating division; `NULL` when the divisor is zero (rendered `a / NULLIF(b, 0)`).
    SafeDiv,
}

/// Comparison operators of the expression tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The untyped tree behind [`Expr`]; both interpreters walk it.
///
/// Children are shared (`Arc`), so cloning a tree, or a metric built from it, copies its root
/// only: [`crate::builtin`] hands out clones of trees it built once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Col(Column),
    Int(i64),
    Text(Arc<str>),
    Null(ValueKind),
    Arith(ArithOp, Arc<Node>, Arc<Node>),
    Cmp(CmpOp, Arc<Node>, Arc<Node>),
    And(Arc<Node>, Arc<Node>),
    Or(Arc<Node>, Arc<Node>),
    Not(Arc<Node>),
    IsNull(Arc<Node>),
    Case(Arc<Node>, Arc<Node>, Arc<Node>),
    Coalesce(Arc<Node>, Arc<Node>),
    /// The condition that always holds: what an unbounded period compares. `AND` and `OR`
    /// fold it away and an aggregate filtered by it has no filter, so it only reaches SQL
    /// under `NOT` or inside `CASE`.
    True,
}

/// A typed expression over one row of fact source `S`, of SQL type `T`.
///
/// Build one from the column functions of [`usage`](crate::usage), [`members`](crate::members)
/// and [`access`](crate::access), literals ([`lit`], [`text`], `i64` and `&str` convert), and the
/// methods below. `+`, `-` and `*` work on integer expressions; `!` negates a condition.
///
/// # Example
/// ```
/// use tenantry_metrics::{lit, usage, Expr, Int, Usage};
/// let tokens: Expr<Int, Usage> = usage::input_tokens() + usage::output_tokens();
/// let big = tokens.clone().gt(1_000).and(usage::lane().equals("batch"));
/// let per_input = usage::cost_nanos().safe_div(usage::input_tokens());
/// let capped = usage::cost_nanos().coalesce(lit(0));
/// # let _ = (big, per_input, capped);
/// ```
pub struct Expr<T, S> {
    pub(crate) node: Node,
    _types: PhantomData<fn() -> (T, S)>,
}

impl<T, S> Clone for Expr<T, S> {
    fn clone(&self) -> Self {
        Self::from_node(self.node.clone())
    }
}

impl<T, S> std::fmt::Debug for Expr<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.node).finish()
    }
}

impl<T, S> Expr<T, S> {
    pub(crate) fn from_node(node: Node) -> Self {
        Self {
            node,
            _types: PhantomData,
        }
    }

    fn shared(self) -> Arc<Node> {
        Arc::new(self.node)
    }

    /// `self IS NULL`.
    #[must_use]
    pub fn is_null(self) -> Expr<Bool, S> {
        Expr::from_node(Node::IsNull(self.shared()))
    }

    /// `self IS NOT NULL`.
    #[must_use]
    pub fn is_not_null(self) -> Expr<Bool, S> {
        Expr::from_node(Node::Not(Arc::new(Node::IsNull(self.shared()))))
    }
}

impl<T: ValueType, S> Expr<T, S> {
    /// `self = other`; `NULL` when either side is `NULL`.
    #[must_use]
    pub fn equals(self, other: impl Into<Expr<T, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Eq, other.into())
    }

    /// `self <> other`; `NULL` when either side is `NULL`.
    #[must_use]
    pub fn not_equals(self, other: impl Into<Expr<T, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Ne, other.into())
    }

    /// `COALESCE(self, other)`: the first non-`NULL` of the two.
    #[must_use]
    pub fn coalesce(self, other: impl Into<Expr<T, S>>) -> Expr<T, S> {
        Expr::from_node(Node::Coalesce(self.shared(), other.into().shared()))
    }

    fn cmp_with(self, op: CmpOp, other: Expr<T, S>) -> Expr<Bool, S> {
        Expr::from_node(Node::Cmp(op, self.shared(), other.shared()))
    }
}

impl<S> Expr<Int, S> {
    /// `self < other`.
    #[must_use]
    pub fn lt(self, other: impl Into<Expr<Int, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Lt, other.into())
    }
    /// `self <= other`.
    #[must_use]
    pub fn le(self, other: impl Into<Expr<Int, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Le, other.into())
    }
    /// `self > other`.
    #[must_use]
    pub fn gt(self, other: impl Into<Expr<Int, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Gt, other.into())
    }
    /// `self >= other`.
    #[must_use]
    pub fn ge(self, other: impl Into<Expr<Int, S>>) -> Expr<Bool, S> {
        self.cmp_with(CmpOp::Ge, other.into())
    }
    /// `self >= start AND self < end`: a half-open range, the way periods are compared.
    #[must_use]
    pub fn in_range(self, start: i64, end: i64) -> Expr<Bool, S> {
        self.clone().ge(start).and(self.lt(end))
    }

    /// Integer division truncating toward zero, `NULL` when `other` is zero or `NULL`
    /// (rendered `self / NULLIF(other, 0)`; PostgreSQL would raise an error, SQLite return
    /// `NULL`, Rust panic: safe division makes all three agree).
    #[must_use]
    pub fn safe_div(self, other: impl Into<Expr<Int, S>>) -> Expr<Int, S> {
        Expr::from_node(Node::Arith(
            ArithOp::SafeDiv,
            self.shared(),
            other.into().shared(),
        ))
    }
}

impl<S> Expr<Bool, S> {
    /// `self AND other` (three-valued: `FALSE AND NULL` is `FALSE`).
    #[must_use]
    pub fn and(self, other: Expr<Bool, S>) -> Expr<Bool, S> {
        match (&self.node, &other.node) {
            (Node::True, _) => other,
            (_, Node::True) => self,
            _ => Expr::from_node(Node::And(self.shared(), other.shared())),
        }
    }
    /// `self OR other` (three-valued: `TRUE OR NULL` is `TRUE`).
    #[must_use]
    pub fn or(self, other: Expr<Bool, S>) -> Expr<Bool, S> {
        if self.node == Node::True || other.node == Node::True {
            return Expr::from_node(Node::True);
        }
        Expr::from_node(Node::Or(self.shared(), other.shared()))
    }
}

impl<S> std::ops::Not for Expr<Bool, S> {
    type Output = Expr<Bool, S>;
    fn not(self) -> Self::Output {
        Expr::from_node(Node::Not(self.shared()))
    }
}

macro_rules! arith {
    ($tr:ident, $f:ident, $op:ident) => {
        impl<S, R: Into<Expr<Int, S>>> std::ops::$tr<R> for Expr<Int, S> {
            type Output = Expr<Int, S>;
            fn $f(self, rhs: R) -> Self::Output {
                Expr::from_node(Node::Arith(
                    ArithOp::$op,
                    self.shared(),
                    rhs.into().shared(),
                ))
            }
        }
    };
}
arith!(Add, add, Add);
arith!(Sub, sub, Sub);
arith!(Mul, mul, Mul);

impl<S> From<i64> for Expr<Int, S> {
    fn from(v: i64) -> Self {
        lit(v)
    }
}

impl<S> From<&str> for Expr<Text, S> {
    fn from(v: &str) -> Self {
        text(v)
    }
}

/// An integer literal, always sent as a bound parameter.
#[must_use]
pub fn lit<S>(value: i64) -> Expr<Int, S> {
    Expr::from_node(Node::Int(value))
}

/// A text literal, always sent as a bound parameter.
#[must_use]
pub fn text<S>(value: &str) -> Expr<Text, S> {
    Expr::from_node(Node::Text(value.into()))
}

/// A typed `NULL`.
#[must_use]
pub fn null<T: ValueType, S>() -> Expr<T, S> {
    Expr::from_node(Node::Null(T::KIND))
}

/// `CASE WHEN condition THEN then ELSE otherwise END`. A `NULL` condition takes the `ELSE` branch.
#[must_use]
pub fn case_when<T: ValueType, S>(
    condition: Expr<Bool, S>,
    then: impl Into<Expr<T, S>>,
    otherwise: impl Into<Expr<T, S>>,
) -> Expr<T, S> {
    Expr::from_node(Node::Case(
        condition.shared(),
        then.into().shared(),
        otherwise.into().shared(),
    ))
}

/// A column of a fact source, by its number among the source's columns: one byte to compare,
/// hash and record in a query's shape, instead of its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Column {
    pub(crate) source: SourceKind,
    pub(crate) number: u8,
}

impl Column {
    /// The column's default name (the schema maps it to the host's name).
    pub(crate) fn name(self) -> &'static str {
        let names = match self.source {
            SourceKind::Usage => usage::NAMES,
            SourceKind::Members => members::NAMES,
            SourceKind::Access => access::NAMES,
            SourceKind::RoleAccess => role_access::NAMES,
        };
        names[usize::from(self.number)]
    }
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}.{}", self.source, self.name())
    }
}

macro_rules! columns {
    ($(#[$m:meta])* $module:ident, $src:ident, $kind:ident: $($(#[$d:meta])* $name:ident : $ty:ident),* $(,)?) => {
        $(#[$m])*
        pub mod $module {
            #[allow(unused_imports)]
            use super::{Bool, Column, Expr, Int, Node, SourceKind, Text, $src};
            /// The columns' numbers, in declaration order.
            #[allow(non_camel_case_types)]
            #[repr(u8)]
            enum Number { $($name),* }
            /// The columns' default names, by number.
            pub(super) const NAMES: &[&str] = &[$(stringify!($name)),*];
            $(
                $(#[$d])*
                #[must_use]
                pub fn $name() -> Expr<$ty, $src> {
                    Expr::from_node(Node::Col(Column {
                        source: SourceKind::$kind,
                        number: Number::$name as u8,
                    }))
                }
            )*
        }
    };
}

columns!(
    /// Columns of the usage ledger (`tenantry_usage`, the contract shared with `tenantry-cost`).
    usage, Usage, Usage:
    /// The tenant that was charged.
    tenant_id: Text,
    /// The user who made the request; `NULL` for system work.
    user_id: Text,
    /// The product feature that made the request.
    feature: Text,
    /// The model that served it.
    model: Text,
    /// `'batch'` (Message Batches, discounted) or `'sync'` (Messages API).
    lane: Text,
    /// When it happened: Unix time in microseconds, UTC.
    occurred_at: Int,
    /// Uncached input tokens.
    input_tokens: Int,
    /// Tokens written to the 5-minute cache.
    cache_write_5m_tokens: Int,
    /// Tokens written to the 1-hour cache.
    cache_write_1h_tokens: Int,
    /// Tokens read from the cache.
    cache_read_tokens: Int,
    /// Output tokens.
    output_tokens: Int,
    /// The charged cost, integer nano-USD.
    cost_nanos: Int,
    /// The same usage priced without the batch discount, integer nano-USD.
    standard_cost_nanos: Int,
);

columns!(
    /// Columns of the memberships table.
    members, Members, Members:
    /// The member.
    user_id: Text,
    /// The tenant the user belongs to.
    tenant_id: Text,
);

columns!(
    /// Columns of the effective-access rows derived from memberships, the tenant tree and grants.
    access, Access, Access:
    /// The tenant of the membership.
    tenant_id: Text,
    /// The member.
    user_id: Text,
    /// The permission granted.
    permission: Text,
    /// Levels between the membership tenant and the nearest tenant granting the permission
    /// (0: granted on the membership tenant itself).
    depth: Int,
);

columns!(
    /// Columns of the effective-access rows derived from role assignments, the role tree and
    /// grants to roles.
    role_access, RoleAccess, RoleAccess:
    /// The tenant the role is assigned in.
    tenant_id: Text,
    /// The user holding the role.
    user_id: Text,
    /// The permission granted.
    permission: Text,
    /// Levels between an assigned role and the nearest role holding the permission, the
    /// smallest over the user's roles in the tenant (0: the assigned role holds it itself).
    depth: Int,
);
