//! The facade's own statements, built once with sea-query and rendered for either backend: the
//! metrics registry rows it keeps in step with submits.

use sea_query::{Expr, ExprTrait, Iden, InsertStatement, OnConflict, Query};

/// `tenantry_tenants` (created by the metrics migrations).
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy, Iden)]
enum Tenants {
    #[iden = "tenantry_tenants"]
    Table,
    Id,
    ParentId,
    Level,
}

/// `tenantry_users` (created by the metrics migrations).
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy, Iden)]
enum Users {
    #[iden = "tenantry_users"]
    Table,
    Id,
}

/// `tenantry_memberships` (created by the metrics migrations).
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy, Iden)]
enum Memberships {
    #[iden = "tenantry_memberships"]
    Table,
    UserId,
    TenantId,
}

/// An insert that leaves an existing row as it is.
#[cfg(feature = "metrics")]
fn insert_new(stmt: &mut InsertStatement) -> InsertStatement {
    stmt.on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned()
}

/// Adds a tenant under `parent`, one level below it (level 0 without a parent).
#[cfg(feature = "metrics")]
pub(crate) fn add_tenant(tenant: &str, parent: Option<&str>) -> InsertStatement {
    let parent_level = Query::select()
        .expr(Expr::col(Tenants::Level).add(1))
        .from(Tenants::Table)
        .and_where(Expr::col(Tenants::Id).eq(parent))
        .to_owned();
    insert_new(
        Query::insert()
            .into_table(Tenants::Table)
            .columns([Tenants::Id, Tenants::ParentId, Tenants::Level])
            .values_panic([
                tenant.into(),
                parent.into(),
                Expr::expr(Expr::SubQuery(None, Box::new(parent_level.into()))).if_null(0),
            ]),
    )
}

/// Records a tenant, a user and the user's membership of the tenant.
#[cfg(feature = "metrics")]
pub(crate) fn register(tenant: &str, user: &str) -> [InsertStatement; 3] {
    [
        insert_new(
            Query::insert()
                .into_table(Tenants::Table)
                .columns([Tenants::Id])
                .values_panic([tenant.into()]),
        ),
        insert_new(
            Query::insert()
                .into_table(Users::Table)
                .columns([Users::Id])
                .values_panic([user.into()]),
        ),
        insert_new(
            Query::insert()
                .into_table(Memberships::Table)
                .columns([Memberships::UserId, Memberships::TenantId])
                .values_panic([user.into(), tenant.into()]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "metrics")]
    #[test]
    fn a_child_tenant_is_one_level_below_its_parent() {
        assert_eq!(
            add_tenant("team", Some("org")).to_string(sea_query::PostgresQueryBuilder),
            r#"INSERT INTO "tenantry_tenants" ("id", "parent_id", "level") VALUES ('team', 'org', COALESCE((SELECT "level" + 1 FROM "tenantry_tenants" WHERE "id" = 'org'), 0)) ON CONFLICT  DO NOTHING"#
        );
    }
}
