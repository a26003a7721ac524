//! Claiming queued batch-lane jobs into a batch: the backlog the planner reads, the claim
//! and its give-back.

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Order, Query, SelectStatement, UpdateStatement,
    WithClause,
};
use tenantry_core::db::Backend;

use crate::claim::BatchId;
use crate::job::JobState;
use crate::store::schema::Jobs;
use crate::{Lane, TenantId};

use super::skip_locked::{Picked, lock_skip};

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

#[cfg(test)]
mod tests {
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    use crate::TenantId;
    use crate::claim::{BatchId, WorkerId};

    use crate::store::sql::batches::take_over_batches;

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
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
    fn backlog_sums_as_bigint_on_both_backends() {
        let sql = backlog().to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "tenant", COUNT("id"), CAST(SUM("request_bytes") AS BIGINT), MIN("flush_at") FROM "tenantry_queue_jobs" WHERE "state" = 'queued' AND "lane" = 'batch' GROUP BY "tenant""#
        );
    }
}
