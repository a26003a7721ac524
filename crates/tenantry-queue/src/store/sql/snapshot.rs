//! The aggregate reads of a [`QueueSnapshot`](crate::QueueSnapshot): a few `count`/`min`
//! statements over the state columns, never a row per job.

use sea_query::{Expr, ExprTrait, Query, SelectStatement};

use crate::snapshot::{IN_FLIGHT_STATES, OPEN_STATES};
use crate::store::schema::{Batches, Jobs};

/// `state, [tenant,] count` of the open jobs.
pub(crate) fn depth(per_tenant: bool) -> SelectStatement {
    let mut q = Query::select();
    q.column(Jobs::State);
    if per_tenant {
        q.column(Jobs::Tenant);
    }
    q.expr(Expr::col(Jobs::Id).count())
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::State).is_in(OPEN_STATES.map(|s| s.as_str())))
        .group_by_col(Jobs::State);
    if per_tenant {
        q.group_by_col(Jobs::Tenant);
    }
    q
}

/// When the oldest queued job was stored (`NULL` when none is).
pub(crate) fn oldest_queued() -> SelectStatement {
    Query::select()
        .expr(Expr::col(Jobs::CreatedAt).min())
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::State).eq(crate::JobState::Queued.as_str()))
        .to_owned()
}

/// `state, count` of the batch records in flight.
pub(crate) fn batches_in_flight() -> SelectStatement {
    Query::select()
        .column(Batches::State)
        .expr(Expr::col(Batches::Id).count())
        .from(Batches::Table)
        .and_where(Expr::col(Batches::State).is_in(IN_FLIGHT_STATES.map(|s| s.as_str())))
        .group_by_col(Batches::State)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    #[test]
    fn depth_groups_by_state_and_only_by_tenant_when_asked() {
        assert_eq!(
            depth(false).to_string(PostgresQueryBuilder),
            r#"SELECT "state", COUNT("id") FROM "tenantry_queue_jobs" WHERE "state" IN ('queued', 'batched', 'submitted') GROUP BY "state""#
        );
        assert_eq!(
            depth(true).to_string(SqliteQueryBuilder),
            r#"SELECT "state", "tenant", COUNT("id") FROM "tenantry_queue_jobs" WHERE "state" IN ('queued', 'batched', 'submitted') GROUP BY "state", "tenant""#
        );
    }

    #[test]
    fn in_flight_batches_are_planned_creating_or_submitted() {
        assert_eq!(
            batches_in_flight().to_string(PostgresQueryBuilder),
            r#"SELECT "state", COUNT("id") FROM "tenantry_queue_batches" WHERE "state" IN ('planned', 'creating', 'submitted') GROUP BY "state""#
        );
    }
}
