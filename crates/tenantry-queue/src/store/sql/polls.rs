//! Polling submitted batches: claiming the most overdue one, deferring it, and telling which
//! API batches are already recorded.

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Order, Query, SelectStatement, UpdateStatement,
    WithClause,
};
use tenantry_core::db::Backend;

use crate::claim::{BatchId, BatchState, WorkerId};
use crate::store::schema::Batches;

use super::skip_locked::{Picked, lock_skip};

/// Claims the most overdue submitted batch for polling; a batch another worker is claiming
/// right now is skipped inside this statement.
pub(crate) fn claim_poll(
    backend: Backend,
    worker: &WorkerId,
    lease_until: i64,
    now: i64,
) -> sea_query::WithQuery {
    let mut pick = Query::select();
    pick.column(Batches::Id)
        .from(Batches::Table)
        .and_where(Expr::col(Batches::State).eq(BatchState::Submitted.as_str()))
        .and_where(Expr::col(Batches::LeaseExpiresAt).lt(now))
        .order_by(Batches::LeaseExpiresAt, Order::Asc)
        .limit(1);
    lock_skip(&mut pick, backend);
    let cte = CommonTableExpression::new()
        .query(pick)
        .column(Batches::Id)
        .table_name(Picked)
        .materialized(true)
        .to_owned();
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::Owner, worker.as_str().into()),
            (Batches::LeaseExpiresAt, lease_until.into()),
        ])
        .and_where(
            Expr::col(Batches::Id)
                .in_subquery(Query::select().column(Batches::Id).from(Picked).to_owned()),
        )
        .and_where(Expr::col(Batches::LeaseExpiresAt).lt(now))
        .returning(Query::returning().columns([
            Batches::Id,
            Batches::ApiBatchId,
            Batches::SubmittedAt,
        ]))
        .to_owned()
        .with(WithClause::new().cte(cte).to_owned())
}

/// Hands a polled batch back until its next poll, fenced by the poller.
pub(crate) fn defer_poll(
    batch: &BatchId,
    worker: &WorkerId,
    next_at: i64,
    now: i64,
) -> UpdateStatement {
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::Owner, Option::<String>::None.into()),
            (Batches::LeaseExpiresAt, next_at.into()),
            (Batches::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Batches::Id).eq(batch.as_str()))
        .and_where(Expr::col(Batches::Owner).eq(worker.as_str()))
        .and_where(Expr::col(Batches::State).eq(BatchState::Submitted.as_str()))
        .returning_col(Batches::Id)
        .to_owned()
}

/// The recorded batches among these API ids.
pub(crate) fn known_api_batches(api_ids: Vec<String>) -> SelectStatement {
    Query::select()
        .column(Batches::ApiBatchId)
        .from(Batches::Table)
        .and_where(Expr::col(Batches::ApiBatchId).is_in(api_ids))
        .to_owned()
}
