//! The queue's statements, built once with sea-query for both dialects.

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, LockBehavior, LockType, OnConflict, Order, Query,
    SelectStatement, UpdateStatement, WithClause,
};
use tenantry_core::db::Backend;

use crate::Lane;
use crate::TenantId;
use crate::claim::{BatchId, BatchState, WorkerId};
use crate::event::Position;
use crate::ids::JobId;
use crate::job::{DeadlinePolicy, JobFilter, JobState};
use crate::store::schema::{Batches, Events, Jobs};
use crate::validate::NewJob;

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

/// The columns [`insert_jobs`] writes, in the order of [`JobRecord`]'s fields.
const INSERT_JOB_COLUMNS: [Jobs; 18] = [
    Jobs::Id,
    Jobs::Tenant,
    Jobs::Feature,
    Jobs::UserId,
    Jobs::Lane,
    Jobs::State,
    Jobs::Params,
    Jobs::RequestBytes,
    Jobs::Metadata,
    Jobs::IdempotencyKey,
    Jobs::MaxWaitMs,
    Jobs::Deadline,
    Jobs::OnDeadline,
    Jobs::Attempts,
    Jobs::CreatedAt,
    Jobs::UpdatedAt,
    Jobs::FlushAt,
    Jobs::HoldId,
];

/// A new job row as PostgreSQL's `json_populate_recordset` reads it: keys are column names.
#[derive(serde::Serialize)]
struct JobRecord<'a> {
    id: &'a str,
    tenant: &'a str,
    feature: &'a str,
    user_id: &'a str,
    lane: &'a str,
    state: &'a str,
    params: &'a str,
    request_bytes: i64,
    metadata: &'a str,
    idempotency_key: Option<&'a str>,
    max_wait_ms: i64,
    deadline: Option<i64>,
    on_deadline: &'a str,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    flush_at: i64,
    hold_id: Option<i64>,
}

impl<'a> From<&'a NewJob> for JobRecord<'a> {
    fn from(job: &'a NewJob) -> Self {
        Self {
            id: job.id.as_str(),
            tenant: job.tenant.as_str(),
            feature: &job.feature,
            user_id: &job.user,
            lane: job.lane,
            state: JobState::Queued.as_str(),
            params: &job.params,
            request_bytes: job.request_bytes,
            metadata: &job.metadata,
            idempotency_key: job.idempotency_key.as_deref(),
            max_wait_ms: job.max_wait_ms,
            deadline: job.deadline,
            on_deadline: job.on_deadline,
            attempts: 0,
            created_at: job.created_at,
            updated_at: job.created_at,
            flush_at: job.flush_at,
            hold_id: job.hold,
        }
    }
}

/// A row of a multi-row insert: serialised with its column names as keys for PostgreSQL, or
/// as one value per column for SQLite.
trait InsertRecord: serde::Serialize {
    /// The values, in the order of the insert's columns.
    fn values(&self) -> Vec<Expr>;
}

/// One multi-row insert of `records` into `columns` of `table`.
///
/// PostgreSQL reads the rows as one JSON array bound as a single value and expanded by
/// `json_populate_recordset` into the table's own row type, instead of one bind per cell
/// (17,000 for 1,000 jobs). The statement text is then the same whatever the row count, so a
/// call of a new size prepares nothing; that made `submit_many` of varied sizes 1.4–1.6×
/// faster (docs/benchmarks.md). SQLite binds in process, where per-cell values cost little,
/// so it keeps `VALUES`.
fn multi_row_insert<R: InsertRecord>(
    table: impl sea_query::IntoIden + Copy,
    columns: &[impl sea_query::IntoIden + Copy],
    records: &[R],
    backend: Backend,
) -> sea_query::InsertStatement {
    let mut insert = Query::insert();
    insert.into_table(table).columns(columns.iter().copied());
    if backend == Backend::Postgres {
        // Serialising borrowed fields into a string cannot fail: no maps, no non-string keys.
        let json = serde_json::to_string(records).expect("rows serialise to JSON");
        let source = Func::cust("json_populate_recordset")
            .arg(Func::cast_as_quoted(Expr::cust("NULL"), table.into_iden()))
            .arg(Expr::val(json).cast_as("json"));
        let rows = Query::select()
            .columns(columns.iter().copied())
            .from_function(source, "rows")
            .to_owned();
        insert
            .select_from(rows)
            .expect("the select lists the insert's columns");
    } else {
        for r in records {
            insert.values_panic(r.values());
        }
    }
    insert
}

impl InsertRecord for JobRecord<'_> {
    fn values(&self) -> Vec<Expr> {
        vec![
            self.id.into(),
            self.tenant.into(),
            self.feature.into(),
            self.user_id.into(),
            self.lane.into(),
            self.state.into(),
            self.params.into(),
            self.request_bytes.into(),
            self.metadata.into(),
            self.idempotency_key.into(),
            self.max_wait_ms.into(),
            self.deadline.into(),
            self.on_deadline.into(),
            self.attempts.into(),
            self.created_at.into(),
            self.updated_at.into(),
            self.flush_at.into(),
            self.hold_id.into(),
        ]
    }
}

/// One multi-row insert of new jobs; keyed duplicates are skipped and the ids actually
/// inserted come back.
pub(crate) fn insert_jobs(jobs: &[NewJob], backend: Backend) -> sea_query::InsertStatement {
    let records: Vec<JobRecord<'_>> = jobs.iter().map(JobRecord::from).collect();
    let mut insert = multi_row_insert(Jobs::Table, &INSERT_JOB_COLUMNS, &records, backend);
    insert
        .on_conflict(
            // The condition matches the partial unique index of keyed jobs on PostgreSQL; on
            // SQLite, where the index is whole, it changes nothing (NULL keys never conflict).
            OnConflict::columns([Jobs::Tenant, Jobs::IdempotencyKey])
                .target_and_where(Expr::col(Jobs::IdempotencyKey).is_not_null())
                .do_nothing()
                .to_owned(),
        )
        .returning_col(Jobs::Id);
    insert
}

/// The names of [`submit_jobs_postgres`]' common table expressions.
#[derive(Debug, Clone, Copy, sea_query::Iden)]
enum Submitted {
    #[iden = "locked"]
    Locked,
    #[iden = "inserted"]
    Inserted,
    #[iden = "appended"]
    Appended,
}

/// PostgreSQL: a whole `submit_many` call as one statement, so it commits on its own, in one
/// round trip: the jobs are inserted (keyed duplicates skipped), then the tenant's event lock is
/// taken and its `NOTIFY` queued, then one `queued` event per inserted job is appended. Returns
/// the ids inserted.
///
/// The lock comes before any event's position is drawn because each event row is a join of an
/// inserted job with the lock's one row, and a `MATERIALIZED` CTE of a volatile function runs
/// once, when first read; the statement's own transaction holds the lock until its commit,
/// exactly as the multi-statement path does (see [`super::backend`]).
#[cfg(feature = "postgres")]
pub(crate) fn submit_jobs_postgres(
    tenant: &TenantId,
    jobs: &[NewJob],
    event_lock_class: i32,
    at: i64,
) -> sea_query::WithQuery {
    let locked = Query::select()
        .expr(
            Func::cust("pg_advisory_xact_lock")
                .arg(event_lock_class)
                .arg(Func::cust("hashtext").arg(Expr::val(tenant.as_str()))),
        )
        .expr(
            Func::cust("pg_notify")
                .arg(super::postgres::CHANNEL)
                .arg(tenant.as_str()),
        )
        .to_owned();
    let appended = Query::insert()
        .into_table(Events::Table)
        .columns(INSERT_EVENT_COLUMNS)
        .select_from(
            Query::select()
                .expr(Expr::val(tenant.as_str()))
                .column(Jobs::Id)
                .expr(Expr::val(JobState::Queued.as_str()))
                .expr(Expr::val(at))
                .from(Submitted::Inserted)
                .from(Submitted::Locked)
                .to_owned(),
        )
        .expect("the select lists the insert's columns")
        .to_owned();
    let with = WithClause::new()
        .cte(
            CommonTableExpression::new()
                .query(insert_jobs(jobs, Backend::Postgres))
                .table_name(Submitted::Inserted)
                .to_owned(),
        )
        .cte(
            CommonTableExpression::new()
                .query(locked)
                .table_name(Submitted::Locked)
                .materialized(true)
                .to_owned(),
        )
        .cte(
            CommonTableExpression::new()
                .query(appended)
                .table_name(Submitted::Appended)
                .to_owned(),
        )
        .to_owned();
    Query::select()
        .column(Jobs::Id)
        .from(Submitted::Inserted)
        .to_owned()
        .with(with)
}

/// The existing jobs of a tenant with these idempotency keys.
pub(crate) fn jobs_by_keys(tenant: &TenantId, keys: Vec<String>) -> SelectStatement {
    Query::select()
        .columns([Jobs::Id, Jobs::IdempotencyKey])
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::IdempotencyKey).is_in(keys))
        .to_owned()
}

/// An event row to append.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) tenant: String,
    pub(crate) job_id: String,
    pub(crate) state: JobState,
    pub(crate) at: i64,
}

/// The columns [`insert_events`] writes, in the order of [`EventRecord`]'s fields.
const INSERT_EVENT_COLUMNS: [Events; 4] =
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

/// A tenant's events after a position, in order.
pub(crate) fn events_after(tenant: &TenantId, after: Position, limit: u32) -> SelectStatement {
    Query::select()
        .columns([Events::Seq, Events::JobId, Events::State, Events::At])
        .from(Events::Table)
        .and_where(Expr::col(Events::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Events::Seq).gt(after.get()))
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

// ---------------------------------------------------------------------------------------
// Claims and batch records.

pub(crate) fn lock_skip(select: &mut SelectStatement, backend: Backend) {
    // SQLite has a single writer (`BEGIN IMMEDIATE`), so there is nothing to skip.
    if backend == Backend::Postgres {
        select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
}

/// The open batch-lane backlog per tenant: jobs, params bytes, oldest flush time.
pub(crate) fn backlog() -> SelectStatement {
    Query::select()
        .column(Jobs::Tenant)
        .expr(Expr::col(Jobs::Id).count())
        .expr(Expr::col(Jobs::RequestBytes).sum().cast_as("BIGINT"))
        .expr(Expr::col(Jobs::FlushAt).min())
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::State).eq(JobState::Queued.as_str()))
        .and_where(Expr::col(Jobs::Lane).eq(Lane::Batch.as_str()))
        .group_by_col(Jobs::Tenant)
        .to_owned()
}

/// The name of the claim's common table expression.
#[derive(Debug, Clone, Copy, sea_query::Iden)]
#[iden(rename = "picked")]
pub(crate) struct Picked;

/// Claims up to `limit` of a tenant's oldest queued batch-lane jobs into a batch; rows
/// locked by another claimer are skipped inside this very statement.
///
/// The pick is a `MATERIALIZED` CTE: as a plain `IN (SELECT … LIMIT n FOR UPDATE)` the
/// planner may re-run the subquery per row, and rows this statement already changed then
/// drop out of it, so the limit would not hold.
pub(crate) fn claim_jobs(
    backend: Backend,
    tenant: &TenantId,
    limit: usize,
    batch: &BatchId,
    now: i64,
) -> sea_query::WithQuery {
    let mut pick = Query::select();
    pick.column(Jobs::Id)
        .from(Jobs::Table)
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::State).eq(JobState::Queued.as_str()))
        .and_where(Expr::col(Jobs::Lane).eq(Lane::Batch.as_str()))
        .order_by(Jobs::FlushAt, Order::Asc)
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
            (Jobs::State, JobState::Batched.as_str().into()),
            (Jobs::BatchId, batch.as_str().into()),
            (Jobs::UpdatedAt, now.into()),
        ])
        .and_where(
            Expr::col(Jobs::Id)
                .in_subquery(Query::select().column(Jobs::Id).from(Picked).to_owned()),
        )
        .and_where(Expr::col(Jobs::State).eq(JobState::Queued.as_str()))
        .returning(Query::returning().columns([Jobs::Id, Jobs::RequestBytes, Jobs::FlushAt]))
        .to_owned()
        .with(WithClause::new().cte(cte).to_owned())
}

/// Puts claimed jobs that did not fit back to `queued`, inside the claiming transaction.
pub(crate) fn unclaim_jobs(batch: &BatchId, ids: Vec<String>) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, JobState::Queued.as_str().into()),
            (Jobs::BatchId, Option::<String>::None.into()),
        ])
        .and_where(Expr::col(Jobs::BatchId).eq(batch.as_str()))
        .and_where(Expr::col(Jobs::Id).is_in(ids))
        .to_owned()
}

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
        .and_where(super::members::sent_by(
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

// ---------------------------------------------------------------------------------------
// Polling, results and usage.

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

// ---------------------------------------------------------------------------------------
// Urgent lane and deadlines.

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

/// Unfinished states a deadline applies to.
const UNFINISHED: [JobState; 3] = [JobState::Queued, JobState::Batched, JobState::Submitted];

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
        .and_where(Expr::col(Jobs::State).is_in(UNFINISHED.map(JobState::as_str)))
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

    #[test]
    fn postgres_claims_skip_locked_rows_in_the_updating_statement() {
        let batch = BatchId::record("qb_1".to_owned());
        let pg =
            claim_jobs(Backend::Postgres, &tenant(), 10, &batch, 5).to_string(PostgresQueryBuilder);
        assert_eq!(
            pg,
            r#"WITH "picked" ("id") AS  MATERIALIZED (SELECT "id" FROM "tenantry_queue_jobs" WHERE "tenant" = 't1' AND "state" = 'queued' AND "lane" = 'batch' ORDER BY "flush_at" ASC, "id" ASC LIMIT 10 FOR UPDATE SKIP LOCKED) UPDATE "tenantry_queue_jobs" SET "state" = 'batched', "batch_id" = 'qb_1', "updated_at" = 5 WHERE "id" IN (SELECT "id" FROM "picked") AND "state" = 'queued' RETURNING "id", "request_bytes", "flush_at""#
        );
        let lite =
            claim_jobs(Backend::Sqlite, &tenant(), 10, &batch, 5).to_string(SqliteQueryBuilder);
        assert!(!lite.contains("FOR UPDATE"), "{lite}");
        let take = take_over_batches(Backend::Postgres, &WorkerId("w_1".to_owned()), 9, 5)
            .to_string(PostgresQueryBuilder);
        assert!(take.contains(r#"WHERE "state" IN ('planned', 'creating') AND "lease_expires_at" < 5 FOR UPDATE SKIP LOCKED)"#), "{take}");
    }

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

    #[test]
    fn backlog_sums_as_bigint_on_both_backends() {
        let sql = backlog().to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "tenant", COUNT("id"), CAST(SUM("request_bytes") AS BIGINT), MIN("flush_at") FROM "tenantry_queue_jobs" WHERE "state" = 'queued' AND "lane" = 'batch' GROUP BY "tenant""#
        );
    }

    fn new_jobs(n: usize) -> Vec<NewJob> {
        let submission = crate::job::Submission::new(
            "summaries",
            "u1",
            serde_json::json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}]
            }),
        );
        let now = time::OffsetDateTime::now_utc();
        (0..n)
            .map(|_| crate::validate::prepare(&tenant(), &submission, now).unwrap())
            .collect()
    }

    #[test]
    fn postgres_bulk_inserts_bind_one_json_array_whatever_the_row_count() {
        let jobs = new_jobs(3);
        let (sql, values) = insert_jobs(&jobs, Backend::Postgres).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"INSERT INTO "tenantry_queue_jobs" ("id", "tenant", "feature", "user_id", "lane", "state", "params", "request_bytes", "metadata", "idempotency_key", "max_wait_ms", "deadline", "on_deadline", "attempts", "created_at", "updated_at", "flush_at", "hold_id") SELECT "id", "tenant", "feature", "user_id", "lane", "state", "params", "request_bytes", "metadata", "idempotency_key", "max_wait_ms", "deadline", "on_deadline", "attempts", "created_at", "updated_at", "flush_at", "hold_id" FROM json_populate_recordset(CAST((NULL) AS "tenantry_queue_jobs"), CAST($1 AS json)) AS "rows" ON CONFLICT ("tenant", "idempotency_key") WHERE "idempotency_key" IS NOT NULL DO NOTHING RETURNING "id""#
        );
        assert_eq!(values.0.len(), 1);
        let sea_query::Value::String(Some(json)) = &values.0[0] else {
            panic!("{values:?}");
        };
        let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1]["id"], jobs[1].id.as_str());
        assert_eq!(rows[1]["idempotency_key"], serde_json::Value::Null);
        let (_, lite) = insert_jobs(&jobs, Backend::Sqlite).build(SqliteQueryBuilder);
        assert_eq!(lite.0.len(), 3 * INSERT_JOB_COLUMNS.len());

        let events: Vec<NewEvent> = jobs
            .iter()
            .map(|j| NewEvent {
                tenant: "t1".to_owned(),
                job_id: j.id.as_str().to_owned(),
                state: JobState::Queued,
                at: 1,
            })
            .collect();
        let (sql, values) = insert_events(&events, Backend::Postgres).build(PostgresQueryBuilder);
        assert!(
            sql.ends_with(r#"FROM json_populate_recordset(CAST((NULL) AS "tenantry_queue_events"), CAST($1 AS json)) AS "rows""#),
            "{sql}"
        );
        assert_eq!(values.0.len(), 1);
    }

    #[test]
    fn a_postgres_submit_locks_before_its_events_draw_positions() {
        let jobs = new_jobs(2);
        let (sql, values) =
            submit_jobs_postgres(&tenant(), &jobs, 7, 9).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"WITH "inserted" AS (INSERT INTO "tenantry_queue_jobs" ("id", "tenant", "feature", "user_id", "lane", "state", "params", "request_bytes", "metadata", "idempotency_key", "max_wait_ms", "deadline", "on_deadline", "attempts", "created_at", "updated_at", "flush_at", "hold_id") SELECT "id", "tenant", "feature", "user_id", "lane", "state", "params", "request_bytes", "metadata", "idempotency_key", "max_wait_ms", "deadline", "on_deadline", "attempts", "created_at", "updated_at", "flush_at", "hold_id" FROM json_populate_recordset(CAST((NULL) AS "tenantry_queue_jobs"), CAST($1 AS json)) AS "rows" ON CONFLICT ("tenant", "idempotency_key") WHERE "idempotency_key" IS NOT NULL DO NOTHING RETURNING "id") , "locked" AS  MATERIALIZED (SELECT pg_advisory_xact_lock($2, hashtext($3)), pg_notify($4, $5)) , "appended" AS (INSERT INTO "tenantry_queue_events" ("tenant", "job_id", "state", "at") SELECT $6, "id", $7, $8 FROM "inserted", "locked") SELECT "id" FROM "inserted""#
        );
        assert_eq!(values.0.len(), 8);
    }

    #[test]
    fn events_are_read_in_order_after_a_position() {
        let sql = events_after(&tenant(), Position(41), 500).to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "seq", "job_id", "state", "at" FROM "tenantry_queue_events" WHERE "tenant" = 't1' AND "seq" > 41 ORDER BY "seq" ASC LIMIT 500"#
        );
    }
}
