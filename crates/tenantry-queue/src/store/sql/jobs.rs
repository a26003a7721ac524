//! Reading, listing and canceling one tenant's jobs, and the holds its jobs still need.

use sea_query::{Expr, ExprTrait, LockType, Order, Query, SelectStatement, UpdateStatement};
use tenantry_core::db::Backend;

use crate::TenantId;
use crate::ids::JobId;
use crate::job::{JobFilter, JobState};
use crate::store::schema::{Batches, Jobs};

/// The columns a [`JobRow`](super::row::JobRow) reads.
pub(crate) const JOB_COLUMNS: [Jobs; 23] = [
    Jobs::Id,
    Jobs::Tenant,
    Jobs::Feature,
    Jobs::UserId,
    Jobs::Lane,
    Jobs::State,
    Jobs::Params,
    Jobs::Metadata,
    Jobs::IdempotencyKey,
    Jobs::MaxWaitMs,
    Jobs::Deadline,
    Jobs::OnDeadline,
    Jobs::Attempts,
    Jobs::BatchId,
    Jobs::Result,
    Jobs::Error,
    Jobs::Usage,
    Jobs::CreatedAt,
    Jobs::UpdatedAt,
    Jobs::FinishedAt,
    Jobs::RequestBytes,
    Jobs::FlushAt,
    Jobs::HoldId,
];

/// One job of a tenant.
pub(crate) fn select_job(tenant: &TenantId, id: &JobId) -> SelectStatement {
    Query::select()
        .columns(JOB_COLUMNS)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).eq(id.as_str()))
        .to_owned()
}

/// One page of a tenant's jobs older than `before`, newest first; one row more than the page
/// size tells whether there is a next page.
pub(crate) fn list_jobs(
    tenant: &TenantId,
    filter: &JobFilter,
    before: Option<&JobId>,
) -> SelectStatement {
    let mut q = Query::select();
    q.columns(JOB_COLUMNS)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()));
    if !filter.states.is_empty() {
        q.and_where(Expr::col(Jobs::State).is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(feature) = &filter.feature {
        q.and_where(Expr::col(Jobs::Feature).eq(feature.as_str()));
    }
    if let Some(user) = &filter.user {
        q.and_where(Expr::col(Jobs::UserId).eq(user.as_str()));
    }
    if let Some(before) = before {
        q.and_where(Expr::col(Jobs::Id).lt(before.as_str()));
    }
    q.order_by(Jobs::Id, Order::Desc)
        .limit(u64::from(filter.page_size()) + 1);
    q
}

/// Marks a not-yet-finished job canceled; returns its id when it changed. A job whose
/// request is not out (`request_out` false) leaves its batch, so nothing bills it and its
/// hold can be given back; one whose request is out keeps it, so a billed result still
/// reaches the ledger.
pub(crate) fn cancel_job(
    tenant: &TenantId,
    id: &JobId,
    now: i64,
    request_out: bool,
) -> UpdateStatement {
    let mut values = vec![
        (Jobs::State, JobState::Canceled.as_str().into()),
        (Jobs::UpdatedAt, now.into()),
        (Jobs::FinishedAt, now.into()),
        (Jobs::LeaseOwner, Option::<String>::None.into()),
        (Jobs::LeaseExpiresAt, Option::<i64>::None.into()),
    ];
    if !request_out {
        values.push((Jobs::BatchId, Option::<String>::None.into()));
    }
    Query::update()
        .table(Jobs::Table)
        .values(values)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).eq(id.as_str()))
        .and_where(Expr::col(Jobs::State).is_in([
            JobState::Queued.as_str(),
            JobState::Batched.as_str(),
            JobState::Submitted.as_str(),
        ]))
        .returning_col(Jobs::Id)
        .to_owned()
}

/// Of a tenant's hold ids, those held by a job that may still be billed: open, or canceled or
/// expired while its request may be out (it keeps its batch). A failed job's last request came
/// back unbilled.
pub(crate) fn holds_in_use(tenant: &TenantId, holds: Vec<i64>) -> SelectStatement {
    let closed_unbilled = Expr::col(Jobs::State)
        .eq(JobState::Failed.as_str())
        .or(Expr::col(Jobs::State)
            .is_in([JobState::Canceled.as_str(), JobState::Expired.as_str()])
            .and(Expr::col(Jobs::BatchId).is_null()));
    Query::select()
        .column(Jobs::HoldId)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::HoldId).is_in(holds))
        .and_where(closed_unbilled.not())
        .to_owned()
}

/// A job's state and batch (or claim token).
pub(crate) fn job_state_and_batch(tenant: &TenantId, id: &JobId) -> SelectStatement {
    Query::select()
        .columns([Jobs::State, Jobs::BatchId])
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).eq(id.as_str()))
        .to_owned()
}

/// A batch record's state, share-locked on PostgreSQL until the transaction ends, so a
/// create cannot begin (or has committed its beginning) while the caller decides.
pub(crate) fn lock_batch_state(backend: Backend, batch: &str) -> SelectStatement {
    let mut select = Query::select();
    select
        .column(Batches::State)
        .from(Batches::Table)
        .and_where(Expr::col(Batches::Id).eq(batch));
    if backend == Backend::Postgres {
        select.lock(LockType::Share);
    }
    select
}

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    #[test]
    fn list_renders_tenant_scope_cursor_and_limit() {
        let before: JobId = "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap();
        let filter = JobFilter::new().states([JobState::Queued]).limit(10);
        let sql = list_jobs(&tenant(), &filter, Some(&before)).to_string(PostgresQueryBuilder);
        assert!(sql.contains(r#"WHERE "tenant" = 't1' AND "state" IN ('queued') AND "id" < 'job_0190b2c3d4e5f60718293a4b5c6d7e8f' ORDER BY "id" DESC LIMIT 11"#), "{sql}");
    }

    #[test]
    fn cancel_only_touches_open_jobs_of_the_tenant() {
        let id: JobId = "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap();
        let sql = cancel_job(&tenant(), &id, 7, true).to_string(SqliteQueryBuilder);
        assert!(
            sql.starts_with(r#"UPDATE "tenantry_queue_jobs" SET "state" = 'canceled'"#),
            "{sql}"
        );
        assert!(sql.contains(r#"WHERE "tenant" = 't1' AND "id" = 'job_0190b2c3d4e5f60718293a4b5c6d7e8f' AND "state" IN ('queued', 'batched', 'submitted') RETURNING "id""#), "{sql}");
    }
}
