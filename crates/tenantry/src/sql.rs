//! The facade's own statements, built once with sea-query and rendered for either backend: the
//! hold releaser's cursors.

use sea_query::{
    ColumnDef, Expr, ExprTrait, Iden, InsertStatement, OnConflict, Query, SelectStatement, Table,
    TableCreateStatement,
};
use tenantry_queue::Position;

/// `tenantry_hold_cursors`: per tenant, the event-log position up to which the holds of
/// unbilled jobs have been given back, so a restarted engine goes on from there.
#[derive(Debug, Clone, Copy, Iden)]
enum HoldCursors {
    #[iden = "tenantry_hold_cursors"]
    Table,
    TenantId,
    Position,
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

    #[test]
    fn a_cursor_never_moves_back() {
        assert_eq!(
            save_hold_cursor("acme", Position::from_i64(7)).to_string(SqliteQueryBuilder),
            r#"INSERT INTO "tenantry_hold_cursors" ("tenant_id", "position") VALUES ('acme', 7) ON CONFLICT ("tenant_id") DO UPDATE SET "position" = "excluded"."position" WHERE "tenantry_hold_cursors"."position" < 7"#
        );
    }
}
