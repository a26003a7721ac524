//! The urgent lane: claiming a wave of Messages API calls, renewing its lease, and the calls
//! whose worker vanished (sent again, or failed after too many attempts).

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, Order, Query, UpdateStatement, WithClause,
};
use tenantry_core::db::Backend;

use crate::Lane;
use crate::claim::{BatchId, WorkerId};
use crate::job::JobState;
use crate::store::schema::Jobs;

use super::skip_locked::{Picked, lock_skip};

/// Extends a worker's lease on the urgent calls of one claim token still in flight.
pub(crate) fn renew_urgent(
    token: &BatchId,
    worker: &WorkerId,
    lease_until: i64,
    now: i64,
) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::LeaseExpiresAt, lease_until.into()),
            (Jobs::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Jobs::BatchId).eq(token.as_str()))
        .and_where(Expr::col(Jobs::LeaseOwner).eq(worker.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Submitted.as_str()))
        .to_owned()
}

/// Claims up to `limit` queued urgent jobs for one wave of Messages API calls, under a
/// claim token that fences their results; locked rows are skipped inside this statement.
pub(crate) fn claim_urgent(
    backend: Backend,
    worker: &WorkerId,
    token: &BatchId,
    limit: usize,
    lease_until: i64,
    now: i64,
) -> sea_query::WithQuery {
    let mut pick = Query::select();
    pick.column(Jobs::Id)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::State).eq(JobState::Queued.as_str()))
        .and_where(Expr::col(Jobs::Lane).eq(Lane::Urgent.as_str()))
        .order_by(Jobs::Id, Order::Asc)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX));
    lock_skip(&mut pick, backend);
    let cte = CommonTableExpression::new()
        .query(pick)
        .column(Jobs::Id)
        .table_name(Picked)
        .materialized(true)
        .to_owned();
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, Expr::val(JobState::Submitted.as_str())),
            (Jobs::BatchId, Expr::val(token.as_str())),
            (Jobs::Attempts, Expr::col(Jobs::Attempts).add(1)),
            (Jobs::LeaseOwner, Expr::val(worker.as_str())),
            (Jobs::LeaseExpiresAt, Expr::val(lease_until)),
            (Jobs::UpdatedAt, Expr::val(now)),
        ])
        .and_where(
            Expr::col(Jobs::Id)
                .in_subquery(Query::select().column(Jobs::Id).from(Picked).to_owned()),
        )
        .and_where(Expr::col(Jobs::State).eq(JobState::Queued.as_str()))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant, Jobs::Params]))
        .to_owned()
        .with(WithClause::new().cte(cte).to_owned())
}

/// Urgent calls whose worker's lease expired and that have attempts left go back to
/// `queued` (the call may or may not have happened; the attempt stays counted).
pub(crate) fn requeue_stale_urgent(now: i64, max_attempts: u32) -> UpdateStatement {
    let mut u = Query::update();
    u.table(Jobs::Table).values([
        (Jobs::State, JobState::Queued.as_str().into()),
        (Jobs::BatchId, Option::<String>::None.into()),
        (Jobs::LeaseOwner, Option::<String>::None.into()),
        (Jobs::LeaseExpiresAt, Option::<i64>::None.into()),
        (Jobs::UpdatedAt, now.into()),
    ]);
    stale_urgent(&mut u, now);
    u.and_where(Expr::col(Jobs::Attempts).lt(i64::from(max_attempts)));
    u
}

/// Urgent calls whose worker's lease expired with no attempt left fail with the last
/// error stored on the job, or `lost` when there is none. The claim token stays on the
/// job, so a late result of the call still gets its usage recorded.
pub(crate) fn fail_stale_urgent(now: i64, max_attempts: u32, lost: String) -> UpdateStatement {
    let mut u = Query::update();
    u.table(Jobs::Table).values([
        (Jobs::State, Expr::val(JobState::Failed.as_str())),
        (
            Jobs::Error,
            Func::coalesce([Expr::col(Jobs::Error), Expr::val(lost)]).into(),
        ),
        (Jobs::LeaseOwner, Expr::null()),
        (Jobs::LeaseExpiresAt, Expr::null()),
        (Jobs::FinishedAt, Expr::val(now)),
        (Jobs::UpdatedAt, Expr::val(now)),
    ]);
    stale_urgent(&mut u, now);
    u.and_where(Expr::col(Jobs::Attempts).gte(i64::from(max_attempts)));
    u
}

fn stale_urgent(update: &mut UpdateStatement, now: i64) {
    update
        .and_where(Expr::col(Jobs::Lane).eq(Lane::Urgent.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Submitted.as_str()))
        .and_where(Expr::col(Jobs::LeaseExpiresAt).lt(now))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]));
}
