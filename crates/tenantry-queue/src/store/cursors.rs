//! Durable consumer cursors: how far a consumer of the event log (the facade's hold releaser,
//! a webhook sender, …) has read each tenant's events, shared by every instance.

use sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query, SelectStatement};

use crate::TenantId;
use crate::event::Position;
use crate::store::schema::Cursors;

/// The stored position of `consumer` in `tenant`'s event log.
pub(crate) fn position(consumer: &str, tenant: &TenantId) -> SelectStatement {
    Query::select()
        .column(Cursors::Position)
        .from(Cursors::Table)
        .and_where(Expr::col(Cursors::Consumer).eq(consumer))
        .and_where(Expr::col(Cursors::Tenant).eq(tenant.as_str()))
        .to_owned()
}

/// Stores `position` for `consumer` in `tenant`'s log unless a further one is stored: a cursor
/// only moves forward, whichever instance writes last.
pub(crate) fn advance(consumer: &str, tenant: &TenantId, position: Position) -> InsertStatement {
    Query::insert()
        .into_table(Cursors::Table)
        .columns([Cursors::Consumer, Cursors::Tenant, Cursors::Position])
        .values_panic([
            consumer.into(),
            tenant.as_str().into(),
            position.get().into(),
        ])
        .on_conflict(
            OnConflict::columns([Cursors::Consumer, Cursors::Tenant])
                .update_column(Cursors::Position)
                .action_and_where(Expr::col((Cursors::Table, Cursors::Position)).lt(position.get()))
                .to_owned(),
        )
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    #[test]
    fn a_cursor_never_moves_back() {
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(
            advance("holds", &acme, Position::from_i64(7)).to_string(SqliteQueryBuilder),
            r#"INSERT INTO "tenantry_queue_cursors" ("consumer", "tenant", "position") VALUES ('holds', 'acme', 7) ON CONFLICT ("consumer", "tenant") DO UPDATE SET "position" = "excluded"."position" WHERE "tenantry_queue_cursors"."position" < 7"#
        );
        assert_eq!(
            position("holds", &acme).to_string(PostgresQueryBuilder),
            r#"SELECT "position" FROM "tenantry_queue_cursors" WHERE "consumer" = 'holds' AND "tenant" = 'acme'"#
        );
    }
}
