//! The queue's statements, built once with sea-query for both dialects.

use sea_query::{
    Expr, ExprTrait, OnConflict, Order, PostgresQueryBuilder, Query, SelectStatement,
    SqliteQueryBuilder, UpdateStatement,
};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use sqlx::AssertSqlSafe;

use crate::event::Position;
use crate::ids::{JobId, TenantId};
use crate::job::{Cursor, JobFilter, JobState};
use crate::store::schema::{Dialect, Events, Jobs};
use crate::validate::NewJob;

/// Renders a statement with bound values: the single hand-off of SQL text to sqlx. Every
/// value is a bind parameter, so the text only ever holds identifiers and placeholders.
pub(crate) fn render(
    stmt: &impl SqlxBinder,
    dialect: Dialect,
) -> (AssertSqlSafe<String>, SqlxValues) {
    let (sql, values) = match dialect {
        Dialect::Postgres => stmt.build_sqlx(PostgresQueryBuilder),
        Dialect::Sqlite => stmt.build_sqlx(SqliteQueryBuilder),
    };
    (AssertSqlSafe(sql), values)
}

/// The columns a [`JobRow`](super::row::JobRow) reads.
pub(crate) const JOB_COLUMNS: [Jobs; 22] = [
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
];

/// One multi-row insert of new jobs; keyed duplicates are skipped and the ids actually
/// inserted come back.
pub(crate) fn insert_jobs(jobs: &[NewJob]) -> sea_query::InsertStatement {
    let mut insert = Query::insert();
    insert.into_table(Jobs::Table).columns([
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
    ]);
    for job in jobs {
        insert.values_panic([
            job.id.as_str().into(),
            job.tenant.as_str().into(),
            job.feature.as_str().into(),
            job.user.as_str().into(),
            job.lane.into(),
            JobState::Queued.as_str().into(),
            job.params.as_str().into(),
            job.request_bytes.into(),
            job.metadata.as_str().into(),
            job.idempotency_key.clone().into(),
            job.max_wait_ms.into(),
            job.deadline.into(),
            job.on_deadline.into(),
            0_i64.into(),
            job.created_at.into(),
            job.created_at.into(),
            job.flush_at.into(),
        ]);
    }
    insert
        .on_conflict(
            OnConflict::columns([Jobs::Tenant, Jobs::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .returning_col(Jobs::Id);
    insert
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

/// One multi-row insert of events, in the given order.
pub(crate) fn insert_events(events: &[NewEvent]) -> sea_query::InsertStatement {
    let mut insert = Query::insert();
    insert.into_table(Events::Table).columns([
        Events::Tenant,
        Events::JobId,
        Events::State,
        Events::At,
    ]);
    for e in events {
        insert.values_panic([
            e.tenant.as_str().into(),
            e.job_id.as_str().into(),
            e.state.as_str().into(),
            e.at.into(),
        ]);
    }
    insert
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

/// One page of a tenant's jobs, newest first; one row more than the page size tells
/// whether there is a next page.
pub(crate) fn list_jobs(
    tenant: &TenantId,
    filter: &JobFilter,
    cursor: Option<&Cursor>,
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
    if let Some(cursor) = cursor {
        q.and_where(Expr::col(Jobs::Id).lt(cursor.0.as_str()));
    }
    q.order_by(Jobs::Id, Order::Desc)
        .limit(u64::from(filter.page_size()) + 1);
    q
}

/// Marks a not-yet-finished job canceled; returns its id when it changed.
pub(crate) fn cancel_job(tenant: &TenantId, id: &JobId, now: i64) -> UpdateStatement {
    Query::update()
        .table(Jobs::Table)
        .values([
            (Jobs::State, JobState::Canceled.as_str().into()),
            (Jobs::UpdatedAt, now.into()),
            (Jobs::FinishedAt, now.into()),
            (Jobs::LeaseOwner, Option::<String>::None.into()),
            (Jobs::LeaseExpiresAt, Option::<i64>::None.into()),
        ])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    #[test]
    fn list_renders_tenant_scope_cursor_and_limit() {
        let cursor: Cursor = "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap();
        let filter = JobFilter::new().states([JobState::Queued]).limit(10);
        let sql = list_jobs(&tenant(), &filter, Some(&cursor)).to_string(PostgresQueryBuilder);
        assert!(sql.contains(r#"WHERE "tenant" = 't1' AND "state" IN ('queued') AND "id" < 'job_0190b2c3d4e5f60718293a4b5c6d7e8f' ORDER BY "id" DESC LIMIT 11"#), "{sql}");
    }

    #[test]
    fn cancel_only_touches_open_jobs_of_the_tenant() {
        let id: JobId = "job_0190b2c3d4e5f60718293a4b5c6d7e8f".parse().unwrap();
        let sql = cancel_job(&tenant(), &id, 7).to_string(SqliteQueryBuilder);
        assert!(
            sql.starts_with(r#"UPDATE "tenantry_queue_jobs" SET "state" = 'canceled'"#),
            "{sql}"
        );
        assert!(sql.contains(r#"WHERE "tenant" = 't1' AND "id" = 'job_0190b2c3d4e5f60718293a4b5c6d7e8f' AND "state" IN ('queued', 'batched', 'submitted') RETURNING "id""#), "{sql}");
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
