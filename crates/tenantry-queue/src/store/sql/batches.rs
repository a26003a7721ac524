//! Batch records: written before and after the create call, moved on fenced by owner and
//! state, leased, taken over, requeued, and the records of duplicate API batches.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement, UpdateStatement};
use tenantry_core::db::Backend;

use crate::claim::{BatchId, BatchState, WorkerId};
use crate::job::JobState;
use crate::store::schema::{Batches, Jobs};

use super::skip_locked::lock_skip;

/// A batch record as first stored.
#[derive(Debug, Clone, Copy)]
struct NewBatch<'a> {
    id: &'a BatchId,
    state: BatchState,
    owner: Option<&'a WorkerId>,
    api_batch_id: Option<&'a str>,
    lease_until: i64,
    count: usize,
    bytes: u64,
    now: i64,
}

impl NewBatch<'_> {
    fn insert(self) -> sea_query::InsertStatement {
        let submitted_at = self.api_batch_id.map(|_| self.now);
        Query::insert()
            .into_table(Batches::Table)
            .columns([
                Batches::Id,
                Batches::State,
                Batches::Owner,
                Batches::ApiBatchId,
                Batches::LeaseExpiresAt,
                Batches::RequestCount,
                Batches::RequestBytes,
                Batches::CreatedAt,
                Batches::UpdatedAt,
                Batches::SubmittedAt,
            ])
            .values_panic([
                self.id.as_str().into(),
                self.state.as_str().into(),
                self.owner.map(WorkerId::as_str).into(),
                self.api_batch_id.into(),
                self.lease_until.into(),
                i64::try_from(self.count).unwrap_or(i64::MAX).into(),
                i64::try_from(self.bytes).unwrap_or(i64::MAX).into(),
                self.now.into(),
                self.now.into(),
                submitted_at.into(),
            ])
            .to_owned()
    }
}

/// The new batch record, leased to its claimer.
pub(crate) fn insert_batch(
    batch: &BatchId,
    worker: &WorkerId,
    lease_until: i64,
    count: usize,
    bytes: u64,
    now: i64,
) -> sea_query::InsertStatement {
    NewBatch {
        id: batch,
        state: BatchState::Planned,
        owner: Some(worker),
        api_batch_id: None,
        lease_until,
        count,
        bytes,
        now,
    }
    .insert()
}

/// The requests of a batch: its jobs still `batched`.
pub(crate) fn batch_requests(batch: &BatchId) -> SelectStatement {
    Query::select()
        .columns([Jobs::Id, Jobs::Tenant, Jobs::Params])
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Batched.as_str()))
        .order_by(Jobs::Id, Order::Asc)
        .to_owned()
}

/// Moves a batch record from one state to another, fenced by owner and state.
pub(crate) fn advance_batch(
    batch: &BatchId,
    worker: &WorkerId,
    from: BatchState,
    to: BatchState,
    extra: Vec<(Batches, sea_query::Expr)>,
    now: i64,
) -> UpdateStatement {
    let mut values: Vec<(Batches, sea_query::Expr)> = vec![
        (Batches::State, Expr::val(to.as_str())),
        (Batches::UpdatedAt, Expr::val(now)),
    ];
    values.extend(extra);
    Query::update()
        .table(Batches::Table)
        .values(values)
        .and_where(Expr::col(Batches::Id).eq(batch.as_str()))
        .and_where(Expr::col(Batches::Owner).eq(worker.as_str()))
        .and_where(Expr::col(Batches::State).eq(from.as_str()))
        .returning_col(Batches::Id)
        .to_owned()
}

/// Moves the batch's members still `batched` to `submitted` (their attempt was counted when
/// they were frozen, [`members::count_attempt`](super::members::count_attempt)).
pub(crate) fn submit_batch_jobs(batch: &BatchId, now: i64) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, Expr::val(JobState::Submitted.as_str())),
            (Jobs::UpdatedAt, Expr::val(now)),
        ])
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Batched.as_str()))
        .and_where(crate::store::members::sent_by(
            batch,
            Expr::col((Jobs::Table, Jobs::Id)),
        ))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]))
        .to_owned()
}

/// The jobs of a batch that have no result yet (`submitted`, or `batched` and never sent).
pub(crate) fn open_jobs_of(batch: &BatchId) -> SelectStatement {
    Query::select()
        .column(Jobs::Id)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(
            Expr::col(Jobs::State)
                .is_in([JobState::Submitted.as_str(), JobState::Batched.as_str()]),
        )
        .order_by(Jobs::Id, Order::Asc)
        .to_owned()
}

/// After a create that certainly did not happen: its canceled and expired members' requests
/// never went out, so they leave the batch (nothing can bill them; their holds may go back).
pub(crate) fn unsent_closed_members(batch: &BatchId, now: i64) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::BatchId, Option::<String>::None.into()),
            (Jobs::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(
            Expr::col(Jobs::State).is_in([JobState::Canceled.as_str(), JobState::Expired.as_str()]),
        )
        .to_owned()
}

/// Takes over `planned`/`creating` batches whose lease expired; rows another worker is
/// taking over right now are skipped inside this statement.
pub(crate) fn take_over_batches(
    backend: Backend,
    worker: &WorkerId,
    lease_until: i64,
    now: i64,
) -> UpdateStatement {
    let mut pick = Query::select();
    pick.column(Batches::Id)
        .from(Batches::Table)
        .and_where(
            Expr::col(Batches::State)
                .is_in([BatchState::Planned.as_str(), BatchState::Creating.as_str()]),
        )
        .and_where(Expr::col(Batches::LeaseExpiresAt).lt(now));
    lock_skip(&mut pick, backend);
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::Owner, worker.as_str().into()),
            (Batches::LeaseExpiresAt, lease_until.into()),
            (Batches::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Batches::Id).in_subquery(pick))
        .and_where(Expr::col(Batches::LeaseExpiresAt).lt(now))
        .returning(Query::returning().columns([
            Batches::Id,
            Batches::State,
            Batches::CreateStartedAt,
            Batches::CreateSentApiAt,
        ]))
        .to_owned()
}

/// Extends a worker's lease on a batch it holds while a call for it is in flight.
pub(crate) fn renew_batch(
    batch: &BatchId,
    worker: &WorkerId,
    lease_until: i64,
    now: i64,
) -> UpdateStatement {
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::LeaseExpiresAt, lease_until.into()),
            (Batches::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Batches::Id).eq(batch.as_str()))
        .and_where(Expr::col(Batches::Owner).eq(worker.as_str()))
        .and_where(Expr::col(Batches::State).is_in([
            BatchState::Planned.as_str(),
            BatchState::Creating.as_str(),
            BatchState::Submitted.as_str(),
        ]))
        .returning_col(Batches::Id)
        .to_owned()
}

/// Releases a worker's `planned` batches (graceful shutdown).
pub(crate) fn release_planned(worker: &WorkerId, now: i64) -> UpdateStatement {
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::State, BatchState::Released.as_str().into()),
            (Batches::Owner, Option::<String>::None.into()),
            (Batches::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Batches::Owner).eq(worker.as_str()))
        .and_where(Expr::col(Batches::State).eq(BatchState::Planned.as_str()))
        .returning_col(Batches::Id)
        .to_owned()
}

/// Sends released batches' jobs back to `queued`.
pub(crate) fn requeue_batches(batches: Vec<String>, now: i64) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, JobState::Queued.as_str().into()),
            (Jobs::BatchId, Option::<String>::None.into()),
            (Jobs::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Jobs::BatchId).is_in(batches))
        .and_where(Expr::col(Jobs::State).eq(JobState::Batched.as_str()))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]))
        .to_owned()
}

/// Expires the lease of a worker's `creating` batches so another worker reconciles them.
pub(crate) fn expire_creating(worker: &WorkerId, now: i64) -> UpdateStatement {
    Query::update()
        .table(Batches::Table)
        .values([
            (Batches::LeaseExpiresAt, 0_i64.into()),
            (Batches::UpdatedAt, now.into()),
        ])
        .and_where(Expr::col(Batches::Owner).eq(worker.as_str()))
        .and_where(Expr::col(Batches::State).eq(BatchState::Creating.as_str()))
        .returning_col(Batches::Id)
        .to_owned()
}

/// Records an API batch that no queue batch points to as a duplicate, due for polling at
/// once, so its results are read and what it billed is recorded. Its id is derived from
/// the API's, so recording it twice stores it once.
pub(crate) fn insert_duplicate(
    batch: &BatchId,
    api_batch_id: &str,
    now: i64,
) -> sea_query::InsertStatement {
    NewBatch {
        id: batch,
        state: BatchState::Submitted,
        owner: None,
        api_batch_id: Some(api_batch_id),
        lease_until: now,
        count: 0,
        bytes: 0,
        now,
    }
    .insert()
    .on_conflict(OnConflict::column(Batches::Id).do_nothing().to_owned())
    .returning_col(Batches::Id)
    .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;

    #[test]
    fn batch_steps_are_fenced_by_owner_and_state() {
        let sql = advance_batch(
            &BatchId::record("qb_1".to_owned()),
            &WorkerId("w_1".to_owned()),
            BatchState::Planned,
            BatchState::Creating,
            vec![],
            5,
        )
        .to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "tenantry_queue_batches" SET "state" = 'creating', "updated_at" = 5 WHERE "id" = 'qb_1' AND "owner" = 'w_1' AND "state" = 'planned' RETURNING "id""#
        );
    }
}
