//! The SQL plan of a [`MetricsQuery`]: one `SELECT` statement, built with sea-query for
//! PostgreSQL or SQLite, that walks the tenant tree with recursive CTEs and aggregates each fact
//! source in its own subquery before joining.

use std::borrow::Cow;

use sea_query::{
    CommonTableExpression, Cond, Expr as Sql, ExprTrait, JoinType, NullOrdering, Order as SqlOrder,
    PostgresQueryBuilder, Query, SelectStatement, SqliteQueryBuilder, UnionType, Values,
    WithClause,
};

use super::{MetricsQuery, Scope};
use crate::dimension::Dimension;
use crate::error::{Error, Result};
use crate::expr::SourceKind;
use crate::metric::{AggCall, AggFunc, FilterOp, Order};
use crate::render::{self, Backend, Located, Name, col, ident};
use crate::schema::Schema;

/// A common table expression, built without cloning its query.
fn cte(name: &str, columns: &[&str], query: SelectStatement) -> CommonTableExpression {
    let mut cte = CommonTableExpression::new();
    cte.table_name(ident(name))
        .columns(columns.iter().map(|c| ident(c)))
        .query(query);
    cte
}

/// `SELECT descendant_id FROM mq_tree`: the tenants a walk reached.
fn walked_tenants() -> SelectStatement {
    Query::select()
        .column(ident("descendant_id"))
        .from(ident(TREE))
        .take()
}

/// `ARRAY((SELECT descendant_id FROM mq_tree))`, PostgreSQL only.
fn descendants() -> Sql {
    use sea_query::QueryStatementBuilder as _;
    sea_query::Func::cust("ARRAY")
        .arg(Sql::SubQuery(
            None,
            Box::new(walked_tenants().into_sub_query_statement()),
        ))
        .into()
}

/// Up to this many ids, a [`Scope::Ids`] query on PostgreSQL aggregates group by group
/// (`LATERAL`, index lookups); with more, it takes the whole-table plan.
const LATERAL_MAX_IDS: usize = 64;

const GROUPS: &str = "mq_groups";
const SCOPE: &str = "mq_scope";
const TREE: &str = "mq_tree";
const UP: &str = "mq_up";
const ACCESS: &str = "mq_access";
const ROLE_UP: &str = "mq_role_up";
const ROLE_ACCESS: &str = "mq_role_access";
/// The alias of the usage ledger's subquery in the outer query; in a query grouped by
/// dimensions it also carries the dimension values.
const USAGE_ALIAS: &str = "s0";

fn source_alias(source: SourceKind) -> Name {
    render::numbered("s", source as usize)
}

/// The column of the `j`-th grouping dimension in the subqueries and the result.
fn dim_alias(j: usize) -> Name {
    render::numbered("d", j)
}

impl MetricsQuery {
    /// Renders the query as one `SELECT` statement for `dialect`. On SQLite,
    /// [`build`](Self::build) adds `NOT INDEXED` after the ledger in the rendered text (sea-query
    /// has no such clause): build through it, not from this statement.
    ///
    /// # Errors
    /// [`Error::NoMetrics`] when nothing is selected, [`Error::UnsupportedType`] when the
    /// schema's column types do not exist on `dialect`, [`Error::InvalidId`] when a tenant id of
    /// the scope is not of the schema's [`IdType`](crate::IdType).
    pub fn statement(&self, dialect: Backend) -> Result<SelectStatement> {
        self.check(dialect)?;
        self.statement_unchecked(dialect)
    }

    /// Checks what the SQL cannot: the schema's types exist on `dialect`, and the scope's ids
    /// are of the schema's id type (SQLite would turn a malformed integer id into 0).
    pub(crate) fn check(&self, dialect: Backend) -> Result<()> {
        self.schema.check_backend(dialect)?;
        let ids = self.schema.tenant_ids;
        match &self.scope {
            Scope::All => Ok(()),
            Scope::Ids(list) => list.iter().try_for_each(|id| ids.check(id)),
            Scope::Subtree(root) => ids.check(root),
        }
    }

    /// [`statement`](Self::statement) without [`check`](Self::check): the cache renders a copy
    /// whose ids are sentinels.
    pub(crate) fn statement_unchecked(&self, dialect: Backend) -> Result<SelectStatement> {
        if self.metrics.is_empty() {
            return Err(Error::NoMetrics);
        }
        let schema = &self.schema;
        // A scope's ids arrive as text and are cast to the host's id type.
        let id_cast = schema.tenant_ids.cast(dialect);
        let bind_id = |id: &String| -> Sql {
            match id_cast {
                Some(ty) => Sql::val(id.clone()).cast_as(ident(ty)),
                None => Sql::val(id.clone()),
            }
        };
        let tenants = schema.tenants.name.as_str();
        let t_id = schema.tenants.col("id").as_str();
        let t_parent = schema.tenants.col("parent_id").as_str();
        let t_level = schema.tenants.col("level").as_str();
        let depth_guard = i64::from(self.max_depth);
        let mut with = WithClause::new();
        with.recursive(true);

        // Groups: the tenants in scope (at the chosen level).
        let mut groups = Query::select();
        groups
            .expr_as(col("t", t_id), ident("id"))
            .from_as(ident(tenants), ident("t"));
        match &self.scope {
            Scope::All => {}
            Scope::Ids(ids) => {
                groups.and_where(col("t", t_id).is_in(ids.iter().map(bind_id)));
            }
            Scope::Subtree(root) => {
                let mut anchor = Query::select();
                anchor
                    .expr(col("t", t_id))
                    .expr(Sql::val(0i64))
                    .from_as(ident(tenants), ident("t"))
                    .and_where(col("t", t_id).eq(bind_id(root)));
                let mut step = Query::select();
                step.expr(col("t", t_id))
                    .expr(col("s", "depth").add(Sql::val(1i64)))
                    .from_as(ident(SCOPE), ident("s"))
                    .join_as(
                        JoinType::InnerJoin,
                        ident(tenants),
                        ident("t"),
                        col("t", t_parent).equals((ident("s"), ident("id"))),
                    )
                    .and_where(col("t", t_id).ne(bind_id(root)))
                    .and_where(col("s", "depth").lt(Sql::val(depth_guard)));
                anchor.union(UnionType::All, step);
                with.cte(cte(SCOPE, &["id", "depth"], anchor));
                // Start from the walked subtree (small, and estimated small) and look tenants
                // up by key.
                groups
                    .from_clear()
                    .from_as(ident(SCOPE), ident("s"))
                    .join_as(
                        JoinType::InnerJoin,
                        ident(tenants),
                        ident("t"),
                        col("t", t_id).equals((ident("s"), ident("id"))),
                    );
            }
        }
        if let Some(level) = self.level {
            groups.and_where(col("t", t_level).eq(level));
        }
        with.cte(cte(GROUPS, &["id"], groups));

        let aggs = self.aggregates()?;
        let mut sources: Vec<SourceKind> = aggs.calls.iter().map(|a| a.source).collect();
        if !self.dimensions.is_empty() {
            // The ledger's subquery is where each group's dimension values come from, also
            // when no metric aggregates it.
            sources.push(SourceKind::Usage);
        }
        sources.sort();
        sources.dedup();

        // Shape of the per-source aggregation. Scoped queries (a subtree, or at most
        // `LATERAL_MAX_IDS` ids) on PostgreSQL aggregate each group in a LATERAL subquery with
        // its own walk down from the group, so the planner sees a handful of tenants per group
        // and probes the indexes; whole-table dashboards (and SQLite, which has no LATERAL) walk
        // all groups once and aggregate them in one GROUP BY, which reads the ledger once. Both
        // shapes compute the same values (a group without rows gets COUNT 0, SUM NULL).
        let lateral = dialect == Backend::Postgres
            && match &self.scope {
                Scope::All => false,
                Scope::Ids(ids) => ids.len() <= LATERAL_MAX_IDS,
                Scope::Subtree(_) => true,
            };
        if !sources.is_empty() && !lateral {
            let mut anchor = Query::select();
            anchor
                .expr(col("g", "id"))
                .expr(col("g", "id"))
                .expr(Sql::val(0i64))
                .from_as(ident(GROUPS), ident("g"));
            with.cte(self.tree_cte(anchor, depth_guard));
            if sources.contains(&SourceKind::Access) {
                self.access_ctes(&mut with, depth_guard);
            }
            if sources.contains(&SourceKind::RoleAccess) {
                self.role_access_ctes(&mut with, depth_guard);
            }
        }

        // Results carry ids in their text form, whatever the host's id type.
        let group_id = || match id_cast {
            Some(_) => sea_query::Func::cast_as(col("g", "id"), ident("TEXT")).into(),
            None => col("g", "id"),
        };
        let mut outer = Query::select();
        outer
            .expr_as(group_id(), ident("tenant_id"))
            .from_as(ident(GROUPS), ident("g"));
        for j in 0..self.dimensions.len() {
            let d = dim_alias(j);
            outer.expr_as(col(USAGE_ALIAS, &d), ident(&d));
        }
        // Where each aggregate ends up: (subquery alias, column), by its index in `aggs.calls`.
        let mut located: Vec<Located> =
            vec![(Cow::Borrowed(""), Cow::Borrowed("")); aggs.calls.len()];
        for source in &sources {
            let alias = source_alias(*source);
            let (table, tenant_col) = match source {
                SourceKind::Usage => (
                    schema.usage.name.as_str(),
                    schema.usage.col("tenant_id").as_str(),
                ),
                SourceKind::Members => (
                    schema.memberships.name.as_str(),
                    schema.memberships.col("tenant_id").as_str(),
                ),
                SourceKind::Access => (ACCESS, "tenant_id"),
                SourceKind::RoleAccess => (ROLE_ACCESS, "tenant_id"),
            };
            let calls: Vec<(usize, &AggCall)> = aggs
                .calls
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, c)| c.source == *source)
                .collect();
            if lateral {
                self.lateral_source(
                    &mut outer,
                    &calls,
                    (table, tenant_col),
                    &alias,
                    dialect,
                    depth_guard,
                    &mut located,
                );
            } else {
                rollup_source(
                    &mut outer,
                    &calls,
                    (table, tenant_col),
                    &alias,
                    (schema, &self.dimensions),
                    dialect,
                    &mut located,
                );
            }
        }
        let locate = |call: &AggCall| located[aggs.of(call)].clone();
        for (i, m) in self.metrics.iter().enumerate() {
            outer.expr_as(
                render::metric(&m.node, &locate),
                ident(&render::numbered("m", i)),
            );
        }
        for f in &self.filters {
            let m = render::metric(&f.metric.node, &locate);
            let v = Sql::val(f.value);
            outer.and_where(match f.op {
                FilterOp::Eq => m.eq(v),
                FilterOp::Lt => m.lt(v),
                FilterOp::Le => m.lte(v),
                FilterOp::Gt => m.gt(v),
                FilterOp::Ge => m.gte(v),
            });
        }
        for (m, order) in &self.order {
            let dir = match order {
                Order::Asc => SqlOrder::Asc,
                Order::Desc => SqlOrder::Desc,
            };
            outer.order_by_expr_with_nulls(
                render::metric(&m.node, &locate),
                dir,
                NullOrdering::Last,
            );
        }
        let tie = match (dialect, id_cast) {
            (Backend::Postgres, None) => Sql::cust(r#""g"."id" COLLATE "C""#),
            (Backend::Postgres, Some(_)) => Sql::cust(r#"CAST("g"."id" AS TEXT) COLLATE "C""#),
            (Backend::Sqlite, _) => group_id(),
        };
        outer.order_by_expr(tie, SqlOrder::Asc);
        for j in 0..self.dimensions.len() {
            let d = dim_alias(j);
            let tie = match dialect {
                Backend::Postgres => Sql::cust(format!(r#""{USAGE_ALIAS}"."{d}" COLLATE "C""#)),
                Backend::Sqlite => col(USAGE_ALIAS, &d),
            };
            outer.order_by_expr(tie, SqlOrder::Asc);
        }
        if let Some(limit) = self.limit {
            outer.limit(limit);
        }
        outer.with_cte(with);
        Ok(outer)
    }

    /// Ancestor/descendant pairs of each group's subtree, walking down from `anchor`
    /// (`ancestor_id, descendant_id, 0` rows). Each tenant has one parent, so a downward walk
    /// can only come back to where it started (when the group sits on a cycle): stopping there
    /// keeps every pair unique without DISTINCT, which would hide the walk's size from the
    /// planner. The depth guard bounds the walk as well.
    fn tree_cte(&self, mut anchor: SelectStatement, depth_guard: i64) -> CommonTableExpression {
        let tenants = self.schema.tenants.name.as_str();
        let t_id = self.schema.tenants.col("id").as_str();
        let t_parent = self.schema.tenants.col("parent_id").as_str();
        let mut step = Query::select();
        step.expr(col("tr", "ancestor_id"))
            .expr(col("t", t_id))
            .expr(col("tr", "depth").add(Sql::val(1i64)))
            .from_as(ident(TREE), ident("tr"))
            .join_as(
                JoinType::InnerJoin,
                ident(tenants),
                ident("t"),
                col("t", t_parent).equals((ident("tr"), ident("descendant_id"))),
            )
            .and_where(col("t", t_id).ne(col("tr", "ancestor_id")))
            .and_where(col("tr", "depth").lt(Sql::val(depth_guard)));
        anchor.union(UnionType::All, step);
        cte(TREE, &["ancestor_id", "descendant_id", "depth"], anchor)
    }

    /// One group per LATERAL subquery: walk down from the group, then aggregate the facts whose
    /// tenant is in the walk. `= ANY(ARRAY(..))` makes the tenant list an index condition
    /// instead of a join the planner would size from a guess.
    #[allow(clippy::too_many_arguments)]
    fn lateral_source(
        &self,
        outer: &mut SelectStatement,
        calls: &[(usize, &AggCall)],
        (table, tenant_col): (&str, &str),
        alias: &Name,
        dialect: Backend,
        depth_guard: i64,
        located: &mut [Located],
    ) {
        let mut sub = Query::select();
        for (i, call) in calls {
            let name = render::numbered("a", *i);
            sub.expr_as(
                render::aggregate(call, &self.schema, Some(dialect), "f"),
                ident(&name),
            );
            located[*i] = (alias.clone(), name);
        }
        for (j, d) in self.dimensions.iter().enumerate() {
            let column = self.schema.usage.col(d.column()).as_str();
            sub.expr_as(col("f", column), ident(&dim_alias(j)))
                .group_by_col((ident("f"), ident(column)));
        }
        sub.from_as(ident(table), ident("f"))
            .and_where(col("f", tenant_col).eq(sea_query::PgFunc::any(descendants())));
        let mut inner = WithClause::new();
        inner.recursive(true);
        let mut anchor = Query::select();
        anchor
            .expr(col("g", "id"))
            .expr(col("g", "id"))
            .expr(Sql::val(0i64));
        inner.cte(self.tree_cte(anchor, depth_guard));
        if calls.iter().any(|(_, c)| c.source == SourceKind::Access) {
            self.access_ctes(&mut inner, depth_guard);
        }
        if calls
            .iter()
            .any(|(_, c)| c.source == SourceKind::RoleAccess)
        {
            self.role_access_ctes(&mut inner, depth_guard);
        }
        sub.with_cte(inner);
        // Grouped by dimensions, a tenant without ledger rows has no row (as in the whole-table
        // shape); otherwise every group has one, with counts of 0.
        let join = if self.dimensions.is_empty() {
            JoinType::LeftJoin
        } else {
            JoinType::InnerJoin
        };
        outer.join_lateral(join, sub, ident(alias), Sql::cust("TRUE"));
    }

    fn access_ctes(&self, with: &mut WithClause, depth_guard: i64) {
        let schema = &self.schema;
        let tenants = schema.tenants.name.as_str();
        let t_id = schema.tenants.col("id").as_str();
        let t_parent = schema.tenants.col("parent_id").as_str();
        let mut anchor = Query::select();
        anchor
            .expr(col("t", t_id))
            .expr(col("t", t_id))
            .expr(Sql::val(0i64))
            .from_as(ident(tenants), ident("t"))
            .and_where(col("t", t_id).in_subquery(walked_tenants()));
        let mut step = Query::select();
        step.expr(col("u", "node_id"))
            .expr(col("t", t_parent))
            .expr(col("u", "depth").add(Sql::val(1i64)))
            .from_as(ident(UP), ident("u"))
            .join_as(
                JoinType::InnerJoin,
                ident(tenants),
                ident("t"),
                col("t", t_id).equals((ident("u"), ident("ancestor_id"))),
            )
            .and_where(col("t", t_parent).is_not_null())
            .and_where(col("u", "depth").lt(Sql::val(depth_guard)));
        anchor.union(UnionType::All, step);
        with.cte(cte(UP, &["node_id", "ancestor_id", "depth"], anchor));
        let m_table = schema.memberships.name.as_str();
        let m_user = schema.memberships.col("user_id").as_str();
        let m_tenant = schema.memberships.col("tenant_id").as_str();
        let g_table = schema.grants.name.as_str();
        let g_tenant = schema.grants.col("tenant_id").as_str();
        let g_perm = schema.grants.col("permission").as_str();
        let mut access = Query::select();
        access
            .expr(col("m", m_tenant))
            .expr(col("m", m_user))
            .expr(col("gr", g_perm))
            .expr(sea_query::Func::min(col("u", "depth")))
            .from_as(ident(m_table), ident("m"))
            .join_as(
                JoinType::InnerJoin,
                ident(UP),
                ident("u"),
                col("u", "node_id").equals((ident("m"), ident(m_tenant))),
            )
            .join_as(
                JoinType::InnerJoin,
                ident(g_table),
                ident("gr"),
                col("gr", g_tenant).equals((ident("u"), ident("ancestor_id"))),
            )
            .group_by_col((ident("m"), ident(m_tenant)))
            .group_by_col((ident("m"), ident(m_user)))
            .group_by_col((ident("gr"), ident(g_perm)));
        with.cte(cte(
            ACCESS,
            &["tenant_id", "user_id", "permission", "depth"],
            access,
        ));
    }

    /// Effective access through the role tree: from each role assigned in a walked tenant up
    /// its ancestors (`mq_role_up`: role, ancestor, distance), then per assignment and
    /// permission the nearest ancestor granting it (`mq_role_access`). Roles may form cycles
    /// (SQLite has no `CYCLE` clause): the depth guard ends the walk, and a role met again
    /// only adds a larger distance, which `MIN` ignores.
    fn role_access_ctes(&self, with: &mut WithClause, depth_guard: i64) {
        let schema = &self.schema;
        let roles = schema.roles.name.as_str();
        let r_id = schema.roles.col("id").as_str();
        let r_parent = schema.roles.col("parent_id").as_str();
        let ra_table = schema.role_assignments.name.as_str();
        let ra_user = schema.role_assignments.col("user_id").as_str();
        let ra_tenant = schema.role_assignments.col("tenant_id").as_str();
        let ra_role = schema.role_assignments.col("role_id").as_str();
        let rg_table = schema.role_grants.name.as_str();
        let rg_role = schema.role_grants.col("role_id").as_str();
        let rg_perm = schema.role_grants.col("permission").as_str();
        let mut assigned = Query::select();
        assigned
            .expr(col("ra", ra_role))
            .from_as(ident(ra_table), ident("ra"))
            .and_where(col("ra", ra_tenant).in_subquery(walked_tenants()));
        let mut anchor = Query::select();
        anchor
            .expr(col("r", r_id))
            .expr(col("r", r_id))
            .expr(Sql::val(0i64))
            .from_as(ident(roles), ident("r"))
            .and_where(col("r", r_id).in_subquery(assigned));
        let mut step = Query::select();
        step.expr(col("u", "node_id"))
            .expr(col("r", r_parent))
            .expr(col("u", "depth").add(Sql::val(1i64)))
            .from_as(ident(ROLE_UP), ident("u"))
            .join_as(
                JoinType::InnerJoin,
                ident(roles),
                ident("r"),
                col("r", r_id).equals((ident("u"), ident("ancestor_id"))),
            )
            .and_where(col("r", r_parent).is_not_null())
            .and_where(col("u", "depth").lt(Sql::val(depth_guard)));
        anchor.union(UnionType::All, step);
        with.cte(cte(ROLE_UP, &["node_id", "ancestor_id", "depth"], anchor));
        let mut access = Query::select();
        access
            .expr(col("ra", ra_tenant))
            .expr(col("ra", ra_user))
            .expr(col("rg", rg_perm))
            .expr(sea_query::Func::min(col("u", "depth")))
            .from_as(ident(ra_table), ident("ra"))
            .join_as(
                JoinType::InnerJoin,
                ident(ROLE_UP),
                ident("u"),
                col("u", "node_id").equals((ident("ra"), ident(ra_role))),
            )
            .join_as(
                JoinType::InnerJoin,
                ident(rg_table),
                ident("rg"),
                col("rg", rg_role).equals((ident("u"), ident("ancestor_id"))),
            )
            // Roles are shared across tenants: without this, a query over some tenants would
            // group the assignments of their roles in every tenant, only to keep its own (the
            // LATERAL shape gets the filter pushed down by PostgreSQL, the single walk does not).
            .and_where(col("ra", ra_tenant).in_subquery(walked_tenants()))
            .group_by_col((ident("ra"), ident(ra_tenant)))
            .group_by_col((ident("ra"), ident(ra_user)))
            .group_by_col((ident("rg"), ident(rg_perm)));
        with.cte(cte(
            ROLE_ACCESS,
            &["tenant_id", "user_id", "permission", "depth"],
            access,
        ));
    }

    /// Renders the query for `dialect`: SQL text with placeholders and the values to bind.
    ///
    /// # Errors
    /// As [`statement`](Self::statement).
    pub fn build(&self, dialect: Backend) -> Result<(String, Values)> {
        self.check(dialect)?;
        self.build_unchecked(dialect)
    }

    /// [`build`](Self::build) without [`check`](Self::check).
    pub(crate) fn build_unchecked(&self, dialect: Backend) -> Result<(String, Values)> {
        let stmt = self.statement_unchecked(dialect)?;
        Ok(match dialect {
            Backend::Postgres => stmt.build(PostgresQueryBuilder),
            Backend::Sqlite => {
                let (sql, values) = stmt.build(SqliteQueryBuilder);
                (self.ledger_not_indexed(sql), values)
            }
        })
    }

    /// SQLite reads the whole ledger once per subquery (its subqueries are never restricted
    /// to the groups' tenants), and its planner does that through the `(tenant_id, ..)` index
    /// to skip the sort of the `GROUP BY` / `DISTINCT`: one table lookup per row, 3.4–5.8×
    /// slower than scanning the table and sorting (`docs/benchmarks.md`, issue 17). `NOT
    /// INDEXED` on the ledger makes it scan. sea-query has no SQLite index hint, so the clause
    /// is added to the rendered text, after the only place the ledger is named with the fact
    /// alias `f` (identifiers are validated, so the pattern cannot occur anywhere else).
    fn ledger_not_indexed(&self, sql: String) -> String {
        let usage = self.schema.usage.name.as_str();
        let from = format!(r#""{usage}" AS "f""#);
        if sql.contains(&from) {
            sql.replace(&from, &format!("{from} NOT INDEXED"))
        } else {
            sql
        }
    }
}

/// All groups at once: facts are first reduced per tenant (partial `COUNT`/`SUM`/`MIN`/`MAX`,
/// or the distinct `(tenant, value)` pairs of a `COUNT(DISTINCT ..)`), then combined over each
/// group's subtree. The ledger is read once per subquery and never multiplied by the tree's
/// depth; distinct counts are still recomputed from values, never summed from children.
fn rollup_source(
    outer: &mut SelectStatement,
    calls: &[(usize, &AggCall)],
    (table, tenant_col): (&str, &str),
    alias: &Name,
    (schema, dims): (&Schema, &[Dimension]),
    dialect: Backend,
    located: &mut [Located],
) {
    let dim_cols: Vec<&str> = dims
        .iter()
        .map(|d| schema.usage.col(d.column()).as_str())
        .collect();
    // Joined on the group and, grouped by dimensions, on the dimension values of the ledger's
    // partial subquery (`alias`, joined first: its rows are the result rows then).
    let on = |sub_alias: &str| {
        let mut on = Cond::all().add(col(sub_alias, "group_id").equals((ident("g"), ident("id"))));
        if sub_alias != alias {
            for j in 0..dims.len() {
                let d = dim_alias(j);
                on = on.add(col(sub_alias, &d).equals((ident(alias), ident(&d))));
            }
        }
        on
    };
    let partial: Vec<&(usize, &AggCall)> = calls
        .iter()
        .filter(|(_, c)| c.func != AggFunc::CountDistinct)
        .collect();
    if !partial.is_empty() || !dims.is_empty() {
        let mut pre = Query::select();
        pre.expr_as(col("f", tenant_col), ident("tenant_id"));
        let mut sub = Query::select();
        sub.expr_as(col("p", "ancestor_id"), ident("group_id"));
        for (j, column) in dim_cols.iter().enumerate() {
            let d = dim_alias(j);
            pre.expr_as(col("f", column), ident(&d));
            sub.expr_as(col("pre", &d), ident(&d));
        }
        for (i, call) in partial {
            pre.expr_as(
                render::aggregate(call, schema, None, "f"),
                ident(&render::numbered("c", *i)),
            );
            let name = render::numbered("a", *i);
            sub.expr_as(
                render::combine(call.func, dialect, "pre", &render::numbered("c", *i)),
                ident(&name),
            );
            located[*i] = (alias.clone(), name);
        }
        pre.from_as(ident(table), ident("f"))
            .group_by_col((ident("f"), ident(tenant_col)));
        for column in &dim_cols {
            pre.group_by_col((ident("f"), ident(column)));
        }
        sub.from_as(ident(TREE), ident("p"))
            .join_subquery(
                JoinType::InnerJoin,
                pre,
                ident("pre"),
                col("pre", "tenant_id").equals((ident("p"), ident("descendant_id"))),
            )
            .group_by_col((ident("p"), ident("ancestor_id")));
        for j in 0..dims.len() {
            sub.group_by_col((ident("pre"), ident(&dim_alias(j))));
        }
        let join = if dims.is_empty() {
            JoinType::LeftJoin
        } else {
            JoinType::InnerJoin
        };
        outer.join_subquery(join, sub, ident(alias), on(alias));
    }
    for (i, call) in calls
        .iter()
        .filter(|(_, c)| c.func == AggFunc::CountDistinct)
    {
        let mut pairs = Query::select();
        pairs
            .distinct()
            .expr_as(col("f", tenant_col), ident("tenant_id"))
            .from_as(ident(table), ident("f"));
        for (j, column) in dim_cols.iter().enumerate() {
            pairs.expr_as(col("f", column), ident(&dim_alias(j)));
        }
        if let Some(arg) = render::aggregate_arg(call, schema, "f") {
            pairs.expr_as(arg, ident("v"));
        }
        if let Some(filter) = &call.filter {
            pairs.and_where(render::node(filter, schema, "f"));
        }
        let name = render::numbered("a", *i);
        let sub_alias = match alias.as_ref() {
            "s0" => render::numbered("s0_", *i),
            "s1" => render::numbered("s1_", *i),
            _ => Cow::Owned(format!("{alias}_{i}")),
        };
        let mut sub = Query::select();
        sub.expr_as(col("p", "ancestor_id"), ident("group_id"));
        for j in 0..dims.len() {
            let d = dim_alias(j);
            sub.expr_as(col("d", &d), ident(&d));
        }
        sub.expr_as(sea_query::Func::count_distinct(col("d", "v")), ident(&name))
            .from_as(ident(TREE), ident("p"))
            .join_subquery(
                JoinType::InnerJoin,
                pairs,
                ident("d"),
                col("d", "tenant_id").equals((ident("p"), ident("descendant_id"))),
            )
            .group_by_col((ident("p"), ident("ancestor_id")));
        for j in 0..dims.len() {
            sub.group_by_col((ident("d"), ident(&dim_alias(j))));
        }
        outer.join_subquery(JoinType::LeftJoin, sub, ident(&sub_alias), on(&sub_alias));
        located[*i] = (sub_alias, name);
    }
}
