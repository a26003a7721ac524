//! The facade's own statements, built once with sea-query and rendered for either backend: the
//! metrics registry rows it keeps in step with submits, and the hold releaser's cursors.

use sea_query::{
    ColumnDef, Expr, ExprTrait, Iden, InsertStatement, OnConflict, Query, SelectStatement, Table,
    TableCreateStatement,
};
use tenantry_queue::Position;

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

/// `tenantry_hold_cursors`: per tenant, the event-log position up to which the holds of
/// unbilled jobs have been given back, so a restarted engine goes on from there.
#[derive(Debug, Clone, Copy, Iden)]
enum HoldCursors {
    #[iden = "tenantry_hold_cursors"]
    Table,
    TenantId,
    Position,
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

pub(crate) fn create_hold_cursors() -> TableCreateStatement {
    Table::create()
        .table(HoldCursors::Table)
        .if_not_exists()
        .col(
            ColumnDef::new(HoldCursors::TenantId)
                .text()
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(HoldCursors::Position)
                .big_integer()
                .not_null(),
        )
        .to_owned()
}

pub(crate) fn hold_cursor(tenant: &str) -> SelectStatement {
    Query::select()
        .column(HoldCursors::Position)
        .from(HoldCursors::Table)
        .and_where(Expr::col(HoldCursors::TenantId).eq(tenant))
        .to_owned()
}

/// Stores a cursor; it only ever moves forward, whichever instance writes last.
pub(crate) fn save_hold_cursor(tenant: &str, position: Position) -> InsertStatement {
    Query::insert()
        .into_table(HoldCursors::Table)
        .columns([HoldCursors::TenantId, HoldCursors::Position])
        .values_panic([tenant.into(), position.get().into()])
        .on_conflict(
            OnConflict::column(HoldCursors::TenantId)
                .update_column(HoldCursors::Position)
                .action_and_where(
                    Expr::col((HoldCursors::Table, HoldCursors::Position)).lt(position.get()),
                )
                .to_owned(),
        )
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::SqliteQueryBuilder;

    use super::*;

    #[cfg(feature = "metrics")]
    #[test]
    fn a_child_tenant_is_one_level_below_its_parent() {
        assert_eq!(
            add_tenant("team", Some("org")).to_string(sea_query::PostgresQueryBuilder),
            r#"INSERT INTO "tenantry_tenants" ("id", "parent_id", "level") VALUES ('team', 'org', COALESCE((SELECT "level" + 1 FROM "tenantry_tenants" WHERE "id" = 'org'), 0)) ON CONFLICT  DO NOTHING"#
        );
    }

    #[test]
    fn a_cursor_never_moves_back() {
        assert_eq!(
            save_hold_cursor("acme", Position::from_i64(7)).to_string(SqliteQueryBuilder),
            r#"INSERT INTO "tenantry_hold_cursors" ("tenant_id", "position") VALUES ('acme', 7) ON CONFLICT ("tenant_id") DO UPDATE SET "position" = "excluded"."position" WHERE "tenantry_hold_cursors"."position" < 7"#
        );
    }
}
