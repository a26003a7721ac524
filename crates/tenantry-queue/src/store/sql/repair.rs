//! Repairs: sending a finished job back to `queued`, picking what a purge may delete, and the
//! open-job summary an operator's health check reads.

use sea_query::{
    DeleteStatement, Expr, ExprTrait, LockType, Order, Query, SelectStatement, UpdateStatement,
};
use tenantry_core::db::Backend;

use crate::TenantId;
use crate::claim::BatchState;
use crate::ids::JobId;
use crate::job::JobState;
use crate::store::schema::{BatchJobs, Batches, Events, ExtraUsage, Jobs, OPEN_STATES};

use super::skip_locked::lock_skip;

/// The states a retry starts from ([`JobState::can_be_retried`]).
fn retryable() -> impl Iterator<Item = &'static str> {
    JobState::ALL
        .into_iter()
        .filter(|s| s.can_be_retried())
        .map(JobState::as_str)
}

/// Stored `usage_state` of usage the sink has recorded (see the outbox).
const USAGE_RECORDED: &str = "recorded";

/// Batch record states after which no result of the batch can arrive any more.
const BATCH_DONE: [BatchState; 2] = [BatchState::Ended, BatchState::Released];

/// Whether the row's billed usage is absent or already recorded: a row whose usage still waits
/// for the sink (pending, being handed over, dead-lettered) must keep it.
fn usage_settled(table: impl sea_query::IntoIden + Copy) -> Expr {
    Expr::col((table, Jobs::UsageState))
        .is_null()
        .or(Expr::col((table, Jobs::UsageState)).eq(USAGE_RECORDED))
}

/// What a retry decides on: the job's state, batch and usage state, row-locked on PostgreSQL
/// until the transaction ends.
pub(crate) fn retry_facts(backend: Backend, tenant: &TenantId, id: &JobId) -> SelectStatement {
    let mut select = Query::select();
    select
        .columns([Jobs::State, Jobs::BatchId, Jobs::UsageState])
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).eq(id.as_str()));
    if backend == Backend::Postgres {
        select.lock(LockType::Update);
    }
    select
}

/// A batch record's state, if the id names one (an urgent claim token names none).
pub(crate) fn batch_state(batch: &str) -> SelectStatement {
    Query::select()
        .column(Batches::State)
        .from(Batches::Table)
        .and_where(Expr::col(Batches::Id).eq(batch))
        .to_owned()
}

/// Whether a stored batch record state is one after which no result can arrive.
pub(crate) fn batch_done(state: &str) -> bool {
    BATCH_DONE.iter().any(|s| s.as_str() == state)
}

/// Sends a failed, canceled or expired job whose usage is settled back to `queued`, due at once,
/// for a new attempt: out of its old batch, no lease, its old (recorded) usage and a deadline
/// already passed cleared, carrying `hold` (the budget hold of the new attempt). The attempt
/// itself is counted when its request is about to be sent, as for any job. Returns its id when
/// it changed.
pub(crate) fn retry_job(
    tenant: &TenantId,
    id: &JobId,
    hold: Option<i64>,
    now: i64,
) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, JobState::Queued.as_str().into()),
            (Jobs::BatchId, Option::<String>::None.into()),
            (Jobs::FlushAt, now.into()),
            (Jobs::FinishedAt, Option::<i64>::None.into()),
            (Jobs::UpdatedAt, now.into()),
            (Jobs::LeaseOwner, Option::<String>::None.into()),
            (Jobs::LeaseExpiresAt, Option::<i64>::None.into()),
            (Jobs::Usage, Option::<String>::None.into()),
            (Jobs::UsageState, Option::<String>::None.into()),
            (
                Jobs::Deadline,
                Expr::case(Expr::col(Jobs::Deadline).lte(now), Expr::null())
                    .finally(Expr::col(Jobs::Deadline))
                    .into(),
            ),
            (Jobs::HoldId, hold.into()),
        ])
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).eq(id.as_str()))
        .and_where(Expr::col(Jobs::State).is_in(retryable()))
        .and_where(usage_settled(Jobs::Table))
        .returning_col(Jobs::Id)
        .to_owned()
}

/// Up to `limit` of the tenant's jobs a purge may delete, oldest first: finished before
/// `before`, their usage settled (also any billed off their row), and no batch that sent them
/// still running (a result could still name them). Rows another transaction holds are skipped
/// on PostgreSQL and locked until this one ends.
pub(crate) fn purgeable_jobs(
    backend: Backend,
    tenant: &TenantId,
    before: i64,
    limit: u32,
) -> SelectStatement {
    let running_batch = Query::select()
        .expr(Expr::val(1))
        .from(BatchJobs::Table)
        .inner_join(
            Batches::Table,
            Expr::col((Batches::Table, Batches::Id)).equals((BatchJobs::Table, BatchJobs::BatchId)),
        )
        .and_where(Expr::col((BatchJobs::Table, BatchJobs::JobId)).equals((Jobs::Table, Jobs::Id)))
        .and_where(
            Expr::col((Batches::Table, Batches::State))
                .is_not_in(BATCH_DONE.map(BatchState::as_str)),
        )
        .to_owned();
    let unsettled_extra = Query::select()
        .expr(Expr::val(1))
        .from(ExtraUsage::Table)
        .and_where(Expr::col((ExtraUsage::Table, Jobs::Id)).equals((Jobs::Table, Jobs::Id)))
        .and_where(usage_settled(ExtraUsage::Table).not())
        .to_owned();
    let mut select = Query::select();
    select
        .column((Jobs::Table, Jobs::Id))
        .from(Jobs::Table)
        .and_where(Expr::col((Jobs::Table, Jobs::Tenant)).eq(tenant.as_str()))
        .and_where(
            Expr::col((Jobs::Table, Jobs::State)).is_in(
                JobState::ALL
                    .into_iter()
                    .filter(|s| s.is_terminal())
                    .map(JobState::as_str),
            ),
        )
        .and_where(Expr::col((Jobs::Table, Jobs::FinishedAt)).lt(before))
        .and_where(usage_settled(Jobs::Table))
        .and_where(Expr::exists(running_batch).not())
        .and_where(Expr::exists(unsettled_extra).not())
        .order_by((Jobs::Table, Jobs::Id), Order::Asc)
        .limit(u64::from(limit));
    lock_skip(&mut select, backend);
    select
}

/// Deletes these jobs of the tenant; returns the ids deleted.
pub(crate) fn delete_jobs(tenant: &TenantId, ids: Vec<String>) -> DeleteStatement {
    Query::delete()
        .from_table(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).is_in(ids))
        .returning_col(Jobs::Id)
        .to_owned()
}

/// Deletes the batch membership of these (deleted) jobs.
pub(crate) fn delete_members(ids: Vec<String>) -> DeleteStatement {
    Query::delete()
        .from_table(BatchJobs::Table)
        .and_where(Expr::col(BatchJobs::JobId).is_in(ids))
        .to_owned()
}

/// Deletes the recorded usage billed off the rows of these (deleted) jobs of the tenant.
pub(crate) fn delete_extra_usage(tenant: &TenantId, ids: Vec<String>) -> DeleteStatement {
    Query::delete()
        .from_table(ExtraUsage::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::Id).is_in(ids))
        .and_where(Expr::col(Jobs::UsageState).eq(USAGE_RECORDED))
        .to_owned()
}

/// Up to `limit` positions of the tenant's events older than `before`, oldest first, except
/// those of jobs still open (their history stays until they finish).
pub(crate) fn purgeable_events(tenant: &TenantId, before: i64, limit: u32) -> SelectStatement {
    let open_job = Query::select()
        .expr(Expr::val(1))
        .from(Jobs::Table)
        .and_where(Expr::col((Jobs::Table, Jobs::Id)).equals((Events::Table, Events::JobId)))
        .and_where(Expr::col((Jobs::Table, Jobs::State)).is_in(OPEN_STATES.map(JobState::as_str)))
        .to_owned();
    Query::select()
        .column((Events::Table, Events::Seq))
        .from(Events::Table)
        .and_where(Expr::col((Events::Table, Events::Tenant)).eq(tenant.as_str()))
        .and_where(Expr::col((Events::Table, Events::At)).lt(before))
        .and_where(Expr::exists(open_job).not())
        .order_by((Events::Table, Events::Seq), Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// Deletes these events of the tenant.
pub(crate) fn delete_events(tenant: &TenantId, seqs: Vec<i64>) -> DeleteStatement {
    Query::delete()
        .from_table(Events::Table)
        .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Events::Seq).is_in(seqs))
        .to_owned()
}

/// The columns a batch view reads, in [`BatchRow`](crate::store::repair::BatchRow) order.
const BATCH_COLUMNS: [Batches; 9] = [
    Batches::Id,
    Batches::State,
    Batches::ApiBatchId,
    Batches::RequestCount,
    Batches::RequestBytes,
    Batches::CreatedAt,
    Batches::UpdatedAt,
    Batches::SubmittedAt,
    Batches::LeaseExpiresAt,
];

/// The newest `limit` batch records.
pub(crate) fn list_batches(limit: u32) -> SelectStatement {
    Query::select()
        .columns(BATCH_COLUMNS)
        .from(Batches::Table)
        .order_by(Batches::CreatedAt, Order::Desc)
        .order_by(Batches::Id, Order::Desc)
        .limit(u64::from(limit))
        .to_owned()
}

/// One batch record by its id or by the API's id for it.
pub(crate) fn select_batch(id: &str) -> SelectStatement {
    Query::select()
        .columns(BATCH_COLUMNS)
        .from(Batches::Table)
        .and_where(
            Expr::col(Batches::Id)
                .eq(id)
                .or(Expr::col(Batches::ApiBatchId).eq(id)),
        )
        .to_owned()
}

/// Makes a submitted batch that no engine is polling due at `now` (the database's clock): a
/// deferred batch has no owner and its next poll time in `lease_expires_at`.
pub(crate) fn poll_now(id: &str, now: i64) -> UpdateStatement {
    Query::update()
        .table(Batches::Table)
        .value(Batches::LeaseExpiresAt, now)
        .and_where(Expr::col(Batches::Id).eq(id))
        .and_where(Expr::col(Batches::State).eq(BatchState::Submitted.as_str()))
        .and_where(Expr::col(Batches::Owner).is_null())
        .and_where(Expr::col(Batches::LeaseExpiresAt).gt(now))
        .to_owned()
}

/// The jobs of a batch record: those it sent (its frozen membership) and those planned into it
/// and not yet sent, with their tenant and state, in id order.
pub(crate) fn batch_jobs(batch: &str) -> SelectStatement {
    let members = Query::select()
        .column(BatchJobs::JobId)
        .from(BatchJobs::Table)
        .and_where(Expr::col(BatchJobs::BatchId).eq(batch))
        .to_owned();
    Query::select()
        .columns([Jobs::Id, Jobs::Tenant, Jobs::State])
        .from(Jobs::Table)
        .cond_where(
            Expr::col(Jobs::BatchId)
                .eq(batch)
                .or(Expr::col(Jobs::Id).in_subquery(members)),
        )
        .order_by(Jobs::Id, Order::Asc)
        .to_owned()
}

/// Per open state, across tenants, the jobs that have not changed since `before`: how many and
/// when the oldest last changed.
pub(crate) fn stale_open_jobs(before: i64) -> SelectStatement {
    Query::select()
        .column(Jobs::State)
        .expr(Expr::col(Jobs::Id).count())
        .expr(Expr::col(Jobs::UpdatedAt).min())
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::State).is_in(OPEN_STATES.map(JobState::as_str)))
        .and_where(Expr::col(Jobs::UpdatedAt).lt(before))
        .group_by_col(Jobs::State)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    fn id() -> JobId {
        "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap()
    }

    #[test]
    fn a_retry_only_touches_a_closed_job_of_the_tenant_whose_usage_is_settled() {
        let sql = retry_job(&tenant(), &id(), Some(9), 7).to_string(SqliteQueryBuilder);
        assert!(
            sql.starts_with(r#"UPDATE "tenantry_queue_jobs" SET "state" = 'queued', "batch_id" = NULL, "flush_at" = 7, "finished_at" = NULL"#),
            "{sql}"
        );
        assert!(sql.contains(r#""hold_id" = 9"#), "{sql}");
        assert!(
            sql.contains(r#"WHERE "tenant" = 't1' AND "id" = 'job_0190b2c3d4e5f60718293a4b5c6d7e8f' AND "state" IN ('failed', 'canceled', 'expired') AND ("tenantry_queue_jobs"."usage_state" IS NULL OR "tenantry_queue_jobs"."usage_state" = 'recorded') RETURNING "id""#),
            "{sql}"
        );
    }

    #[test]
    fn a_purge_picks_a_bounded_page_of_settled_finished_jobs_and_skips_locked_rows() {
        let sql =
            purgeable_jobs(Backend::Postgres, &tenant(), 100, 500).to_string(PostgresQueryBuilder);
        assert!(
            sql.contains(r#""state" IN ('succeeded', 'failed', 'canceled', 'expired')"#),
            "{sql}"
        );
        assert!(sql.contains(r#""finished_at" < 100"#), "{sql}");
        assert!(
            sql.contains(r#"NOT EXISTS(SELECT 1 FROM "tenantry_queue_batch_jobs""#),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT 500 FOR UPDATE SKIP LOCKED"), "{sql}");
        let lite =
            purgeable_jobs(Backend::Sqlite, &tenant(), 100, 500).to_string(SqliteQueryBuilder);
        assert!(!lite.contains("FOR UPDATE"), "{lite}");
    }

    #[test]
    fn events_of_open_jobs_are_kept() {
        let sql = purgeable_events(&tenant(), 100, 50).to_string(PostgresQueryBuilder);
        assert!(
            sql.contains(r#"NOT EXISTS(SELECT 1 FROM "tenantry_queue_jobs" WHERE "tenantry_queue_jobs"."id" = "tenantry_queue_events"."job_id" AND "tenantry_queue_jobs"."state" IN ('queued', 'batched', 'submitted'))"#),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT 50"), "{sql}");
    }
}
