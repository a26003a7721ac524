//! Storing new jobs: the multi-row insert of a `submit_many` call, PostgreSQL's one-statement
//! submit with its events, and the lookup of jobs whose idempotency key was taken.

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, OnConflict, Query, SelectStatement, WithClause,
};
use tenantry_core::db::Backend;

use crate::TenantId;
use crate::job::JobState;
use crate::store::schema::{Events, Jobs};
use crate::validate::NewJob;

use super::bulk::{InsertRecord, multi_row_insert};
use super::events::INSERT_EVENT_COLUMNS;

/// The columns [`insert_jobs`] writes, in the order of [`JobRecord`]'s fields.
pub(super) const INSERT_JOB_COLUMNS: [Jobs; 18] = [
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
    #[iden = "tenants"]
    Tenants,
    #[iden = "tenant"]
    Tenant,
    #[iden = "locked"]
    Locked,
    #[iden = "inserted"]
    Inserted,
    #[iden = "appended"]
    Appended,
}

/// PostgreSQL: the jobs of one or more `submit_many` calls (of any tenants) as one statement,
/// so it commits on its own, in one round trip: the jobs are inserted (keyed duplicates
/// skipped), then each tenant's event lock is taken and its `NOTIFY` queued, in the order of
/// `tenants` (sorted, as every other write takes them), then one `queued` event per inserted
/// job is appended, in input order. Returns the ids inserted.
///
/// The locks come before any event's position is drawn because every event row is joined
/// with a count over all the locks' rows, and a `MATERIALIZED` CTE of a volatile function
/// runs once, when first read, row by row in the order of the `VALUES` list; the statement's
/// own transaction holds the locks until its commit, exactly as the multi-statement path does
/// (see [`super::backend`]).
#[cfg(feature = "postgres")]
pub(crate) fn submit_jobs_postgres(
    tenants: &[&str],
    jobs: &[NewJob],
    event_lock_class: i32,
) -> sea_query::WithQuery {
    let mut names = Query::select();
    names.column(sea_query::Asterisk).from_values(
        tenants
            .iter()
            .map(|t| sea_query::ValueTuple::One((*t).into())),
        "v",
    );
    let tenant = || Expr::col((Submitted::Tenants, Submitted::Tenant));
    let locked = Query::select()
        .expr(
            Func::cust("pg_advisory_xact_lock")
                .arg(event_lock_class)
                .arg(Func::cust("hashtext").arg(tenant())),
        )
        .expr(
            Func::cust("pg_notify")
                .arg(crate::store::postgres::CHANNEL)
                .arg(tenant()),
        )
        .from(Submitted::Tenants)
        .to_owned();
    let all_locked = Query::select()
        .expr(Func::count(Expr::col(sea_query::Asterisk)))
        .from(Submitted::Locked)
        .to_owned();
    let appended = Query::insert()
        .into_table(Events::Table)
        .columns(INSERT_EVENT_COLUMNS)
        .select_from(
            Query::select()
                .column((Submitted::Inserted, Jobs::Tenant))
                .column((Submitted::Inserted, Jobs::Id))
                .expr(Expr::val(JobState::Queued.as_str()))
                .column((Submitted::Inserted, Jobs::CreatedAt))
                .from(Submitted::Inserted)
                .from_subquery(all_locked, "all_locked")
                .to_owned(),
        )
        .expect("the select lists the insert's columns")
        .to_owned();
    let mut insert = insert_jobs(jobs, Backend::Postgres);
    insert.returning(Query::returning().columns([Jobs::Id, Jobs::Tenant, Jobs::CreatedAt]));
    let with = WithClause::new()
        .cte(
            CommonTableExpression::new()
                .query(insert)
                .table_name(Submitted::Inserted)
                .to_owned(),
        )
        .cte(
            CommonTableExpression::new()
                .query(names)
                .columns([Submitted::Tenant])
                .table_name(Submitted::Tenants)
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

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use crate::store::sql::events::{NewEvent, insert_events};

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
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
    fn a_postgres_submit_locks_every_tenant_before_its_events_draw_positions() {
        let jobs = new_jobs(2);
        let (sql, values) =
            submit_jobs_postgres(&["t1", "t2"], &jobs, 7).build(PostgresQueryBuilder);
        assert!(
            sql.starts_with(r#"WITH "inserted" AS (INSERT INTO "tenantry_queue_jobs" ("id", "#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"ON CONFLICT ("tenant", "idempotency_key") WHERE "idempotency_key" IS NOT NULL DO NOTHING RETURNING "id", "tenant", "created_at")"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#""tenants" ("tenant") AS (SELECT * FROM (VALUES ($2), ($3)) AS "v") , "locked" AS  MATERIALIZED (SELECT pg_advisory_xact_lock($4, hashtext("tenants"."tenant")), pg_notify($5, "tenants"."tenant") FROM "tenants")"#),
            "{sql}"
        );
        assert!(
            sql.ends_with(r#""appended" AS (INSERT INTO "tenantry_queue_events" ("tenant", "job_id", "state", "at") SELECT "inserted"."tenant", "inserted"."id", $6, "inserted"."created_at" FROM "inserted", (SELECT COUNT(*) FROM "locked") AS "all_locked") SELECT "id" FROM "inserted""#),
            "{sql}"
        );
        assert_eq!(values.0.len(), 6);
    }
}
