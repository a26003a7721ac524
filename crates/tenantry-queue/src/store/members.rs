//! Batch membership: which jobs' requests a batch record's create sent.
//!
//! Membership is frozen in the transaction that records `creating`, from the jobs still
//! `batched` in the record at that moment, so a job canceled before it is frozen is never
//! sent and a job canceled after it is known to be out. Whatever happens to a job later, its
//! membership stays: reconciliation matches API batches against it, and a billed result is
//! stored for a job only when the batch it came from sent that job.

use sea_query::{
    DeleteStatement, Expr, ExprTrait, InsertStatement, OnConflict, Query, SelectStatement,
};

use crate::claim::BatchId;
use crate::job::JobState;
use crate::store::schema::{BatchJobs, Jobs};

/// Freezes the members of `batch`: those of `jobs` still `batched` in it. Returns their ids.
pub(crate) fn freeze(batch: &BatchId, jobs: Vec<String>) -> InsertStatement {
    let mut still_batched = Query::select();
    still_batched
        .expr(Expr::val(batch.as_str()))
        .column(Jobs::Id)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Batched.as_str()))
        .and_where(Expr::col(Jobs::Id).is_in(jobs));
    insert_from(still_batched)
}

/// Members for the jobs claimed under an urgent claim token (every job it claimed).
pub(crate) fn freeze_claimed(token: &BatchId) -> InsertStatement {
    let mut claimed = Query::select();
    claimed
        .expr(Expr::val(token.as_str()))
        .column(Jobs::Id)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::BatchId).eq(token.as_str()));
    insert_from(claimed)
}

/// Gives the record of a duplicate API batch the members of the record it duplicates: both
/// creates sent the same body.
pub(crate) fn copy(from: &BatchId, to: &BatchId) -> InsertStatement {
    let mut source = Query::select();
    source
        .expr(Expr::val(to.as_str()))
        .column(BatchJobs::JobId)
        .from(BatchJobs::Table)
        .and_where(Expr::col(BatchJobs::BatchId).eq(from.as_str()));
    insert_from(source)
}

fn insert_from(select: SelectStatement) -> InsertStatement {
    Query::insert()
        .into_table(BatchJobs::Table)
        .columns([BatchJobs::BatchId, BatchJobs::JobId])
        .select_from(select)
        .expect("two columns selected for two columns inserted")
        .on_conflict(
            OnConflict::columns([BatchJobs::BatchId, BatchJobs::JobId])
                .do_nothing()
                .to_owned(),
        )
        .returning_col(BatchJobs::JobId)
        .to_owned()
}

/// The members of `batch`, in id order.
pub(crate) fn of(batch: &BatchId) -> SelectStatement {
    Query::select()
        .column(BatchJobs::JobId)
        .from(BatchJobs::Table)
        .and_where(Expr::col(BatchJobs::BatchId).eq(batch.as_str()))
        .order_by(BatchJobs::JobId, sea_query::Order::Asc)
        .to_owned()
}

/// Counts (`delta` 1) or uncounts (`delta` -1) an attempt for every member of `batch`.
///
/// An attempt is counted when a request may reach the API: when the create's members are
/// frozen (whatever becomes of each job afterwards: canceled, expired or sent again on the
/// urgent lane, its request is out), and again for a duplicate create of the same members.
/// It is uncounted when the create is found never to have happened.
pub(crate) fn count_attempt(batch: &BatchId, delta: i64) -> sea_query::UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .value(Jobs::Attempts, Expr::col(Jobs::Attempts).add(delta))
        .and_where(sent_by(batch, Expr::col((Jobs::Table, Jobs::Id))))
        .to_owned()
}

/// Forgets the members of a create that certainly did not happen.
pub(crate) fn clear(batch: &BatchId) -> DeleteStatement {
    Query::delete()
        .from_table(BatchJobs::Table)
        .and_where(Expr::col(BatchJobs::BatchId).eq(batch.as_str()))
        .to_owned()
}

/// `job_column` names a member of `batch` (for guards of other statements).
pub(crate) fn sent_by(batch: &BatchId, job_column: Expr) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(BatchJobs::Table)
            .and_where(Expr::col((BatchJobs::Table, BatchJobs::BatchId)).eq(batch.as_str()))
            .and_where(Expr::col((BatchJobs::Table, BatchJobs::JobId)).eq(job_column))
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use super::*;

    #[test]
    fn freezing_takes_only_jobs_still_batched_in_the_record() {
        let batch = BatchId::record("qb_1".to_owned());
        let sql = freeze(&batch, vec!["job_a".to_owned()]).to_string(SqliteQueryBuilder);
        assert_eq!(
            sql,
            r#"INSERT INTO "tenantry_queue_batch_jobs" ("batch_id", "job_id") SELECT 'qb_1', "id" FROM "tenantry_queue_jobs" WHERE "batch_id" = 'qb_1' AND "state" = 'batched' AND "id" IN ('job_a') ON CONFLICT ("batch_id", "job_id") DO NOTHING RETURNING "job_id""#
        );
    }

    #[test]
    fn a_member_guard_is_a_correlated_exists() {
        let batch = BatchId::record("qb_1".to_owned());
        let guard = sent_by(&batch, Expr::col((Jobs::Table, Jobs::Id)));
        let sql = Query::select()
            .expr(Expr::val(1))
            .and_where(guard)
            .to_owned()
            .to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT 1 WHERE EXISTS(SELECT 1 FROM "tenantry_queue_batch_jobs" WHERE "tenantry_queue_batch_jobs"."batch_id" = 'qb_1' AND "tenantry_queue_batch_jobs"."job_id" = "tenantry_queue_jobs"."id")"#
        );
    }
}
