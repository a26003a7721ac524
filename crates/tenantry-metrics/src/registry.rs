//! [`Registry`]: writes the rows the metrics read about tenants and users (the tenant tree, the
//! users, their memberships), in the tables and columns the host's [`Schema`] names.

use sea_query::{Alias, Expr, ExprTrait, InsertStatement, OnConflict, Query};
use tenantry_core::TenantId;
use tenantry_core::db::Pool;

use crate::schema::{Ident, Schema};

/// Adds tenants to the tenant tree and users to tenants, in the tables of a [`Schema`].
///
/// Every write leaves an existing row as it is (`ON CONFLICT DO NOTHING`), so registering the
/// same tenant or member again is harmless and a tenant keeps the place it was first given. Each
/// call runs in one transaction; the statements are also available to run inside a transaction
/// of the caller's ([`add_tenant_statement`](Self::add_tenant_statement),
/// [`add_member_statements`](Self::add_member_statements)). Writing can only fail in the
/// database, so its error is the driver's, as `tenantry_core::db`'s.
///
/// # Example
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantry_core::{TenantId, db::Pool};
/// use tenantry_metrics::{builtin, MetricsQuery, Registry, Schema, Scope};
///
/// let pool = Pool::from(sqlx::SqlitePool::connect("sqlite::memory:").await?);
/// tenantry_metrics::migrate(&pool).await?;
/// let registry = Registry::new(Schema::default());
/// let (acme, docs) = (TenantId::new("acme")?, TenantId::new("acme-docs")?);
/// registry.add_tenant(&pool, &acme, None).await?;
/// registry.add_tenant(&pool, &docs, Some(&acme)).await?;
/// registry.add_member(&pool, &docs, "ana").await?;
///
/// let mut q = MetricsQuery::new();
/// q.scope(Scope::Ids(vec!["acme".into()]));
/// let users = q.select("users", builtin::users())?;
/// assert_eq!(q.fetch(&pool).await?[0].get(users), Some(1)); // ana, in acme's subtree
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    schema: Schema,
}

impl Registry {
    /// A registry writing to the tables `schema` names.
    #[must_use]
    pub fn new(schema: Schema) -> Self {
        Self { schema }
    }

    /// Adds `tenant` to the tenant tree under `parent`, one level below it (level 0 without a
    /// parent). A tenant already in the tree is left where it is.
    ///
    /// # Errors
    /// The driver's error when the database fails, also when `parent` is not in the tree (the
    /// reference to it is refused).
    pub async fn add_tenant(
        &self,
        pool: &Pool,
        tenant: &TenantId,
        parent: Option<&TenantId>,
    ) -> Result<(), sqlx::Error> {
        self.run(pool, &[self.add_tenant_statement(tenant, parent)])
            .await
    }

    /// Records `user` as a member of `tenant`: the tenant (at the top level, if it is not in the
    /// tree yet), the user and the membership. Rows already there are left as they are.
    ///
    /// # Errors
    /// The driver's error when the database fails.
    pub async fn add_member(
        &self,
        pool: &Pool,
        tenant: &TenantId,
        user: &str,
    ) -> Result<(), sqlx::Error> {
        self.run(pool, &self.add_member_statements(tenant, user))
            .await
    }

    /// The statement of [`add_tenant`](Self::add_tenant), for a transaction of the caller's.
    ///
    /// ```
    /// use sea_query::PostgresQueryBuilder;
    /// use tenantry_core::TenantId;
    /// use tenantry_metrics::{Registry, Schema, Table};
    ///
    /// let schema = Schema::default()
    ///     .with_table(Table::Tenants, "orgs")?
    ///     .with_column(Table::Tenants, "id", "org_id")?;
    /// let team = TenantId::new("team")?;
    /// let org = TenantId::new("org")?;
    /// let stmt = Registry::new(schema).add_tenant_statement(&team, Some(&org));
    /// assert_eq!(
    ///     stmt.to_string(PostgresQueryBuilder),
    ///     r#"INSERT INTO "orgs" ("org_id", "parent_id", "level") VALUES ('team', 'org', COALESCE((SELECT "level" + 1 FROM "orgs" WHERE "org_id" = 'org'), 0)) ON CONFLICT  DO NOTHING"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn add_tenant_statement(
        &self,
        tenant: &TenantId,
        parent: Option<&TenantId>,
    ) -> InsertStatement {
        let tenants = &self.schema.tenants;
        let (id, level) = (name(tenants.col("id")), name(tenants.col("level")));
        let parent = parent.map(TenantId::as_str);
        let parent_level = Query::select()
            .expr(Expr::col(level.clone()).add(1))
            .from(name(&tenants.name))
            .and_where(Expr::col(id.clone()).eq(parent))
            .to_owned();
        insert_new(
            Query::insert()
                .into_table(name(&tenants.name))
                .columns([id, name(tenants.col("parent_id")), level])
                .values_panic([
                    tenant.as_str().into(),
                    parent.into(),
                    Expr::expr(Expr::SubQuery(None, Box::new(parent_level.into()))).if_null(0),
                ]),
        )
    }

    /// The statements of [`add_member`](Self::add_member), in order, for a transaction of the
    /// caller's.
    #[must_use]
    pub fn add_member_statements(&self, tenant: &TenantId, user: &str) -> [InsertStatement; 3] {
        let (tenants, users, memberships) = (
            &self.schema.tenants,
            &self.schema.users,
            &self.schema.memberships,
        );
        [
            insert_new(
                Query::insert()
                    .into_table(name(&tenants.name))
                    .columns([name(tenants.col("id"))])
                    .values_panic([tenant.as_str().into()]),
            ),
            insert_new(
                Query::insert()
                    .into_table(name(&users.name))
                    .columns([name(users.col("id"))])
                    .values_panic([user.into()]),
            ),
            insert_new(
                Query::insert()
                    .into_table(name(&memberships.name))
                    .columns([
                        name(memberships.col("user_id")),
                        name(memberships.col("tenant_id")),
                    ])
                    .values_panic([user.into(), tenant.as_str().into()]),
            ),
        ]
    }

    /// Runs `statements` in one transaction.
    async fn run(&self, pool: &Pool, statements: &[InsertStatement]) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        for stmt in statements {
            tx.execute(stmt).await?;
        }
        tx.commit().await
    }
}

fn name(ident: &Ident) -> Alias {
    Alias::new(ident.as_str())
}

/// An insert that leaves an existing row as it is.
fn insert_new(stmt: &mut InsertStatement) -> InsertStatement {
    stmt.on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;

    #[test]
    fn a_child_tenant_is_one_level_below_its_parent() -> Result<(), Box<dyn std::error::Error>> {
        let (team, org) = (TenantId::new("team")?, TenantId::new("org")?);
        assert_eq!(
            Registry::default()
                .add_tenant_statement(&team, Some(&org))
                .to_string(PostgresQueryBuilder),
            r#"INSERT INTO "tenantry_tenants" ("id", "parent_id", "level") VALUES ('team', 'org', COALESCE((SELECT "level" + 1 FROM "tenantry_tenants" WHERE "id" = 'org'), 0)) ON CONFLICT  DO NOTHING"#
        );
        Ok(())
    }

    #[test]
    fn a_member_is_a_tenant_a_user_and_a_membership() -> Result<(), Box<dyn std::error::Error>> {
        let acme = TenantId::new("acme")?;
        let sql: Vec<_> = Registry::default()
            .add_member_statements(&acme, "ana")
            .iter()
            .map(|s| s.to_string(PostgresQueryBuilder))
            .collect();
        assert_eq!(
            sql,
            [
                r#"INSERT INTO "tenantry_tenants" ("id") VALUES ('acme') ON CONFLICT  DO NOTHING"#,
                r#"INSERT INTO "tenantry_users" ("id") VALUES ('ana') ON CONFLICT  DO NOTHING"#,
                r#"INSERT INTO "tenantry_memberships" ("user_id", "tenant_id") VALUES ('ana', 'acme') ON CONFLICT  DO NOTHING"#,
            ]
        );
        Ok(())
    }
}
