//! Tenant metrics defined once, evaluated in Rust and rendered as SQL with sea-query, rolled up
//! over the tenant tree in one query.
//!
//! SQLAlchemy's `hybrid_property` has two hand-written halves, a Python getter and a SQL
//! expression, that nobody proves agree. Here a metric is one typed expression tree with two
//! interpreters: [`MetricsQuery::evaluate`] computes it in Rust from rows in memory, and
//! [`MetricsQuery::build`] / [`MetricsQuery::fetch`] render it with sea-query for PostgreSQL and
//! SQLite and run it on a `tenantry_core::db::Pool`. Property tests run both on random tenant
//! forests and require the same integers, row for row. A [`MetricsCache`] keeps rendered SQL by
//! query shape, so a dashboard asked again with other tenants or periods only binds its values
//! ([`MetricsQuery::fetch_cached`]).
//!
//! # Example
//! ```
//! use tenantry_metrics::{builtin, count_distinct, usage, Backend, Metric, MetricsQuery, Period, Scope};
//!
//! let june = Period::new(1_780_272_000_000_000, 1_782_864_000_000_000)?;
//! // A metric of your own: distinct models used in batches.
//! let batch_models: Metric = count_distinct(usage::model())
//!     .filter(june.contains().and(usage::lane().equals("batch")))
//!     .into();
//!
//! let mut q = MetricsQuery::new();
//! q.scope(Scope::Subtree("acme".into())).level(1); // every workspace of acme
//! q.select("cost_per_user", builtin::cost_per_active_user(june))?;
//! q.select("batch_models", batch_models)?;
//! let (sql, values) = q.build(Backend::Sqlite)?;
//! assert!(sql.starts_with("WITH RECURSIVE"));
//! assert!(values.0.len() > 4);
//! # Ok::<(), tenantry_metrics::Error>(())
//! ```
//!
//! # Semantics
//!
//! Values are `Option<i64>`: integer counts, integer nano-USD, ratios scaled to parts per
//! million and truncated toward zero. `NULL` propagates; `SUM`/`MIN`/`MAX` of no rows are `NULL`,
//! `COUNT` of no rows is 0; division is only safe division (`NULL` on a zero divisor); overflow is
//! an error everywhere. The dialect table:
//!
//! | semantics | PostgreSQL | SQLite | decided rule (Rust does the same) |
//! |---|---|---|---|
//! | `x / 0` | error 22012 | `NULL` | only safe division: `x / NULLIF(y, 0)` → `NULL` |
//! | integer division | truncates | truncates | truncates toward zero |
//! | `SUM` over no rows | `NULL` | `NULL` | `NULL` (use [`Metric::or_zero`]) |
//! | `SUM(bigint)` type | `numeric` | integer | `CAST(SUM(..) AS BIGINT)` on PostgreSQL |
//! | `SUM` overflow | cast error | `integer overflow` error | [`Error::Overflow`] |
//! | `AVG` type | `numeric` | float | not used: [`avg`] is `SUM / COUNT`, an integer |
//! | `FILTER (WHERE ..)` | since 9.4 | since 3.30 | rendered natively on both |
//! | `NULLS LAST` | yes | since 3.30 | rendered explicitly; `NULL` metrics sort last |
//! | text order | collation | bytes | text is never ordered; tenant ids tie-break `COLLATE "C"` on PostgreSQL |
//! | recursive `CYCLE` | since 14 | dropped by sea-query | not used: a depth guard on both |
//!
//! # Roll-up
//!
//! Each result group is a tenant; its values are recomputed from the base rows of its whole
//! subtree (never summed from children), so ratios and distinct counts are right at every level.
//! Each fact source is aggregated in its own subquery before joining, so rows never fan out.
//! The recursive walks carry a depth guard ([`MetricsQuery::max_depth`]) that ends them on cyclic
//! data the same way on both backends and in Rust (SQLite has no `CYCLE` clause).
#![deny(missing_docs)]
// With one database driver (or none) compiled in, the other backend's paths are unused by
// design; the default features build and test both.
#![cfg_attr(
    not(all(feature = "postgres", feature = "sqlite")),
    allow(
        dead_code,
        unused_imports,
        unused_macros,
        unused_variables,
        unreachable_code
    )
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!(
    "tenantry-metrics runs its queries on a database: enable its `postgres` or `sqlite` feature"
);

pub mod builtin;
mod cache;
mod check;
mod data;
mod dimension;
mod error;
mod eval;
mod explain;
mod expr;
mod fetch;
#[cfg(feature = "fixture")]
#[cfg_attr(docsrs, doc(cfg(feature = "fixture")))]
pub mod fixture;
mod memo;
mod metric;
mod migrate;
mod query;
mod registry;
mod render;
mod schema;
mod shape;

/// The rendered SQL of every built-in metric, per backend (each example is a test).
pub mod sql_reference {
    #![doc = include_str!("sql_reference.md")]
}

pub use builtin::Period;
pub use cache::MetricsCache;
pub use check::{SchemaMismatch, SchemaProblem};
pub use data::{
    Dataset, GrantRow, MembershipRow, RoleAssignmentRow, RoleGrantRow, RoleRow, TenantRow, UsageRow,
};
pub use dimension::Dimension;
pub use error::{Error, Result};
pub use expr::{
    Access, Bool, Expr, Int, Members, RoleAccess, Source, Text, Usage, ValueType, access,
    case_when, lit, members, null, role_access, text, usage,
};
pub use metric::{
    Aggregate, Metric, MetricFilter, Order, avg, count, count_distinct, count_rows, max, min, sum,
};
pub use migrate::{MIGRATIONS, migrate};
pub use query::{Column, DEFAULT_MAX_DEPTH, MetricRow, MetricsQuery, Scope};
pub use registry::Registry;
pub use render::Backend;
pub use schema::{IdType, Ident, Schema, Table, TimeType};
