//! The usage outbox: billed usage waiting for the [`UsageSink`](crate::UsageSink).
//!
//! Usage normally waits on its job row. A request billed off its job row (a duplicate
//! batch, a late urgent call whose job was sent again, the batch copy of a job that went
//! down the urgent lane) waits in the extra-usage table instead. Both tables use the same
//! outbox column names, so each statement here is built once for either.

use sea_query::{
    CommonTableExpression, Cond, Expr, ExprTrait, IntoTableRef, Order, Query, TableRef,
    UpdateStatement, WithClause, WithQuery,
};

use crate::claim::WorkerId;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::ingest::UsageRecord;
use crate::job::Lane;
use crate::store::row::parse_job_id;
use crate::store::schema::{Dialect, ExtraUsage, Jobs};
use crate::store::sql::{Picked, lock_skip};

/// Stored `usage_state` of usage not yet handed to the sink.
pub(crate) const USAGE_PENDING: &str = "pending";
const USAGE_SENDING: &str = "sending";
const USAGE_RECORDED: &str = "recorded";

/// Where a usage record waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outbox {
    /// On its job row, one per job.
    Jobs,
    /// In the extra-usage table, one per job and batch.
    Extra,
}

impl Outbox {
    /// Both outboxes, in the order they are drained.
    pub(crate) const ALL: [Self; 2] = [Self::Jobs, Self::Extra];

    fn table(self) -> TableRef {
        match self {
            Self::Jobs => Jobs::Table.into_table_ref(),
            Self::Extra => ExtraUsage::Table.into_table_ref(),
        }
    }

    /// The columns that name one row.
    fn key(self) -> Vec<Jobs> {
        match self {
            Self::Jobs => vec![Jobs::Id],
            Self::Extra => vec![Jobs::Id, Jobs::BatchId],
        }
    }

    fn key_expr(self) -> Expr {
        Expr::tuple(self.key().into_iter().map(Expr::col))
    }
}

/// Claims usage waiting for the sink (or claimed by a worker whose lease expired), with
/// what the ledger needs; rows another worker is claiming are skipped in this statement.
pub(crate) fn claim_usage(
    outbox: Outbox,
    dialect: Dialect,
    worker: &WorkerId,
    limit: u32,
    lease_until: i64,
    now: i64,
) -> WithQuery {
    let mut pick = Query::select();
    pick.columns(outbox.key())
        .from(outbox.table())
        .cond_where(
            Cond::any()
                .add(Expr::col(Jobs::UsageState).eq(USAGE_PENDING))
                .add(
                    Expr::col(Jobs::UsageState)
                        .eq(USAGE_SENDING)
                        .and(Expr::col(Jobs::LeaseExpiresAt).lt(now)),
                ),
        )
        .order_by(Jobs::Id, Order::Asc)
        .limit(u64::from(limit));
    lock_skip(&mut pick, dialect);
    let cte = CommonTableExpression::new()
        .query(pick)
        .columns(outbox.key())
        .table_name(Picked)
        .materialized(true)
        .to_owned();
    Query::update()
        .table(outbox.table())
        .values([
            (Jobs::UsageState, USAGE_SENDING.into()),
            (Jobs::LeaseOwner, worker.as_str().into()),
            (Jobs::LeaseExpiresAt, lease_until.into()),
        ])
        .and_where(
            outbox.key_expr().in_subquery(
                Query::select()
                    .columns(outbox.key())
                    .from(Picked)
                    .to_owned(),
            ),
        )
        .returning(Query::returning().columns([
            Jobs::Id,
            Jobs::Tenant,
            Jobs::Feature,
            Jobs::UserId,
            Jobs::Lane,
            Jobs::Params,
            Jobs::BatchId,
            Jobs::Usage,
        ]))
        .to_owned()
        .with(WithClause::new().cte(cte).to_owned())
}

/// Marks rows of one outbox, named by `(job, batch)` (the batch only matters for extra
/// usage), as handed to the sink.
pub(crate) fn mark_recorded(outbox: Outbox, keys: &[(&str, &str)]) -> UpdateStatement {
    let mut rows = Cond::any();
    for &(job, batch) in keys {
        rows = rows.add(match outbox {
            Outbox::Jobs => Expr::col(Jobs::Id).eq(job),
            Outbox::Extra => Expr::col(Jobs::Id)
                .eq(job)
                .and(Expr::col(Jobs::BatchId).eq(batch)),
        });
    }
    Query::update()
        .table(outbox.table())
        .value(Jobs::UsageState, USAGE_RECORDED)
        .cond_where(rows)
        .and_where(Expr::col(Jobs::UsageState).is_in([USAGE_PENDING, USAGE_SENDING]))
        .to_owned()
}

/// A row returned by [`claim_usage`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UsageRow {
    id: String,
    tenant: String,
    feature: String,
    user_id: String,
    lane: String,
    params: String,
    batch_id: Option<String>,
    usage: Option<String>,
}

/// Rows of [`claim_usage`] as records for the sink.
pub(crate) fn usage_records(rows: Vec<UsageRow>, outbox: Outbox) -> Result<Vec<UsageRecord>> {
    rows.into_iter()
        .map(|row| {
            let params: serde_json::Value =
                serde_json::from_str(&row.params).map_err(Error::Json)?;
            Ok(UsageRecord {
                job: parse_job_id(&row.id)?,
                tenant: TenantId::new(row.tenant).map_err(|e| Error::Corrupt {
                    what: "tenant",
                    detail: e.to_string(),
                })?,
                feature: row.feature,
                user: row.user_id,
                lane: Lane::parse(&row.lane).ok_or_else(|| Error::Corrupt {
                    what: "lane",
                    detail: row.lane.clone(),
                })?,
                model: params["model"].as_str().unwrap_or_default().to_owned(),
                batch: row.batch_id,
                usage: row
                    .usage
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(Error::Json)?
                    .unwrap_or(serde_json::Value::Null),
                extra: outbox == Outbox::Extra,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;

    #[test]
    fn extra_usage_is_claimed_by_job_and_batch() {
        let sql = claim_usage(
            Outbox::Extra,
            Dialect::Postgres,
            &WorkerId("w_1".to_owned()),
            10,
            9,
            5,
        )
        .to_string(PostgresQueryBuilder);
        assert!(
            sql.contains(r#"UPDATE "tenantry_queue_extra_usage" SET "usage_state" = 'sending', "lease_owner" = 'w_1', "lease_expires_at" = 9 WHERE ("id", "batch_id") IN (SELECT "id", "batch_id" FROM "picked")"#),
            "{sql}"
        );
        assert!(sql.contains("FOR UPDATE SKIP LOCKED"), "{sql}");
    }
}
