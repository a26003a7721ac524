//! The events table: appending state changes and reading a tenant's log in order.

use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use tenantry_core::db::Backend;

use crate::TenantId;
use crate::event::Position;
use crate::job::JobState;
use crate::store::schema::Events;

use super::bulk::{InsertRecord, multi_row_insert};

/// An event row to append.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) tenant: String,
    pub(crate) job_id: String,
    pub(crate) state: JobState,
    pub(crate) at: i64,
}

/// The columns [`insert_events`] writes, in the order of [`EventRecord`]'s fields.
pub(super) const INSERT_EVENT_COLUMNS: [Events; 4] =
    [Events::Tenant, Events::JobId, Events::State, Events::At];

/// An event row as PostgreSQL's `json_populate_recordset` reads it.
#[derive(serde::Serialize)]
struct EventRecord<'a> {
    tenant: &'a str,
    job_id: &'a str,
    state: &'a str,
    at: i64,
}

impl<'a> From<&'a NewEvent> for EventRecord<'a> {
    fn from(e: &'a NewEvent) -> Self {
        Self {
            tenant: &e.tenant,
            job_id: &e.job_id,
            state: e.state.as_str(),
            at: e.at,
        }
    }
}

impl InsertRecord for EventRecord<'_> {
    fn values(&self) -> Vec<Expr> {
        vec![
            self.tenant.into(),
            self.job_id.into(),
            self.state.into(),
            self.at.into(),
        ]
    }
}

/// One multi-row insert of events, in the given order (a function scan returns the array's
/// elements in order, so positions follow it on PostgreSQL too).
pub(crate) fn insert_events(events: &[NewEvent], backend: Backend) -> sea_query::InsertStatement {
    let records: Vec<EventRecord<'_>> = events.iter().map(EventRecord::from).collect();
    multi_row_insert(Events::Table, &INSERT_EVENT_COLUMNS, &records, backend)
}

/// A tenant's job events after a position, in order (the feed's other events, which name no
/// job, are left out: see `store::feed`).
pub(crate) fn events_after(tenant: &TenantId, after: Position, limit: u32) -> SelectStatement {
    Query::select()
        .columns([Events::Seq, Events::JobId, Events::State, Events::At])
        .from(Events::Table)
        .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Events::Seq).gt(after.get()))
        .and_where(Expr::col(Events::JobId).ne(""))
        .order_by(Events::Seq, Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// The position of a tenant's latest event (NULL when none).
pub(crate) fn latest_position(tenant: &TenantId) -> SelectStatement {
    Query::select()
        .expr(Expr::col(Events::Seq).max())
        .from(Events::Table)
        .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    #[test]
    fn events_are_read_in_order_after_a_position() {
        let sql = events_after(&tenant(), Position(41), 500).to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "seq", "job_id", "state", "at" FROM "tenantry_queue_events" WHERE "tenant" = 't1' AND "seq" > 41 AND "job_id" <> '' ORDER BY "seq" ASC LIMIT 500"#
        );
    }
}
