//! Deadlines: unfinished jobs past theirs expire or move to the urgent lane, per their policy.

use sea_query::{Expr, ExprTrait, Query, UpdateStatement};

use crate::Lane;
use crate::job::{DeadlinePolicy, JobState};
use crate::store::schema::{Jobs, OPEN_STATES};

fn overdue(update: &mut UpdateStatement, now: i64, policy: DeadlinePolicy) {
    update
        .and_where(Expr::col(Jobs::Deadline).lt(now))
        .and_where(Expr::col(Jobs::OnDeadline).eq(policy.as_str()));
}

/// Unfinished jobs past their deadline with the `expire` policy end as `expired`. A job
/// whose request is already out keeps its batch (or claim token), so a billed result
/// still gets its usage recorded, as after a cancel.
pub(crate) fn expire_overdue(now: i64) -> UpdateStatement {
    let mut u = Query::update();
    u.table(Jobs::Table)
        .values([
            (Jobs::State, Expr::val(JobState::Expired.as_str())),
            (Jobs::LeaseOwner, Expr::null()),
            (Jobs::LeaseExpiresAt, Expr::null()),
            (Jobs::FinishedAt, Expr::val(now)),
            (Jobs::UpdatedAt, Expr::val(now)),
        ])
        .and_where(Expr::col(Jobs::State).is_in(OPEN_STATES.map(JobState::as_str)))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]));
    overdue(&mut u, now, DeadlinePolicy::Expire);
    u
}

/// Batch-lane jobs in one of `states` past their deadline with the `urgent` policy move
/// to the urgent lane, queued and out of any batch: once, since only batch-lane jobs
/// move. For a job already sent in a batch, a billed result of that copy is then kept as
/// extra usage.
pub(crate) fn promote_overdue(now: i64, states: &[JobState]) -> UpdateStatement {
    let mut u = Query::update();
    u.table(Jobs::Table)
        .values([
            (Jobs::Lane, Lane::Urgent.as_str().into()),
            (Jobs::State, JobState::Queued.as_str().into()),
            (Jobs::BatchId, Option::<String>::None.into()),
            (Jobs::FlushAt, now.into()),
            (Jobs::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Jobs::State).is_in(states.iter().map(|s| s.as_str())))
        .and_where(Expr::col(Jobs::Lane).eq(Lane::Batch.as_str()))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]));
    overdue(&mut u, now, DeadlinePolicy::Urgent);
    u
}
