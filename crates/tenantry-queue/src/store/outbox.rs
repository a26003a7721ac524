//! The usage outbox: billed usage waiting for the [`UsageSink`](crate::UsageSink).
//!
//! Usage normally waits on its job row. A request billed off its job row (a duplicate
//! batch, a late urgent call whose job was sent again, the batch copy of a job that went
//! down the urgent lane) waits in the extra-usage table instead. Both tables use the same
//! outbox column names, so each statement here is built once for either.
//!
//! Usage the sink cannot price (it answers [`SinkError::Unpriceable`](crate::SinkError)) is
//! not retried: it moves to `dead` with the reason and the time, announced by a
//! [`JobState::UsageUnpriced`] event in the same transaction, and stays there, listed and
//! counted, until [`reprice`] makes it `pending` again for the sink.

use time::OffsetDateTime;

use sea_query::{
    CommonTableExpression, Cond, Expr, ExprTrait, IntoTableRef, Order, Query, SelectStatement,
    TableRef, UpdateStatement, WithClause, WithQuery,
};

use tenantry_core::db::Backend;

use crate::Lane;
use crate::TenantId;
use crate::claim::WorkerId;
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::ingest::{DeadUsage, UsageRecord};
use crate::job::{HoldId, JobState};
use crate::store::backend::Store;
use crate::store::row::parse_job_id;
use crate::store::schema::{ExtraUsage, Jobs};
use crate::store::sql::events::NewEvent;
use crate::store::sql::skip_locked::{Picked, lock_skip};
use crate::validate::{from_micros, micros};

/// Stored `usage_state` of usage not yet handed to the sink.
pub(crate) const USAGE_PENDING: &str = "pending";
const USAGE_SENDING: &str = "sending";
const USAGE_RECORDED: &str = "recorded";
/// Stored `usage_state` of usage the sink could not price: a dead letter.
const USAGE_DEAD: &str = "dead";

/// What a [`UsageRow`] reads.
const RECORD_COLUMNS: [Jobs; 9] = [
    Jobs::Id,
    Jobs::Tenant,
    Jobs::Feature,
    Jobs::UserId,
    Jobs::Lane,
    Jobs::Params,
    Jobs::BatchId,
    Jobs::Usage,
    Jobs::HoldId,
];

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
    backend: Backend,
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
    lock_skip(&mut pick, backend);
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
        .returning(Query::returning().columns(RECORD_COLUMNS))
        .to_owned()
        .with(WithClause::new().cte(cte).to_owned())
}

/// The row of one outbox named by `(job, batch)` (the batch only matters for extra usage).
fn row_of(outbox: Outbox, job: &str, batch: &str) -> Expr {
    match outbox {
        Outbox::Jobs => Expr::col(Jobs::Id).eq(job),
        Outbox::Extra => Expr::col(Jobs::Id)
            .eq(job)
            .and(Expr::col(Jobs::BatchId).eq(batch)),
    }
}

/// Marks rows of one outbox, named by `(job, batch)` (the batch only matters for extra
/// usage), as handed to the sink.
pub(crate) fn mark_recorded(outbox: Outbox, keys: &[(&str, &str)]) -> UpdateStatement {
    let mut rows = Cond::any();
    for &(job, batch) in keys {
        rows = rows.add(row_of(outbox, job, batch));
    }
    Query::update()
        .table(outbox.table())
        .value(Jobs::UsageState, USAGE_RECORDED)
        .cond_where(rows)
        .and_where(Expr::col(Jobs::UsageState).is_in([USAGE_PENDING, USAGE_SENDING]))
        .to_owned()
}

/// Moves one row, named by `(job, batch)`, to the dead-letter state with `reason`, unless it
/// was recorded (or dead-lettered) meanwhile; returns `(id, tenant)` when it moved.
pub(crate) fn mark_dead(
    outbox: Outbox,
    (job, batch): (&str, &str),
    reason: &str,
    now: i64,
) -> UpdateStatement {
    Query::update()
        .table(outbox.table())
        .values([
            (Jobs::UsageState, USAGE_DEAD.into()),
            (Jobs::UsageError, reason.into()),
            (Jobs::UsageDeadAt, now.into()),
        ])
        .and_where(row_of(outbox, job, batch))
        .and_where(Expr::col(Jobs::UsageState).is_in([USAGE_PENDING, USAGE_SENDING]))
        .returning(Query::returning().columns([Jobs::Id, Jobs::Tenant]))
        .to_owned()
}

/// Hands the tenant's dead-lettered rows (of one job, with `job`) back to the sink: `pending`
/// again, reason cleared; returns the job id of each row handed back. The line is not lost
/// meanwhile: the usage never left its row.
pub(crate) fn reprice(outbox: Outbox, tenant: &TenantId, job: Option<&JobId>) -> UpdateStatement {
    let mut update = Query::update();
    update
        .table(outbox.table())
        .values([
            (Jobs::UsageState, USAGE_PENDING.into()),
            (Jobs::UsageError, Option::<String>::None.into()),
            (Jobs::UsageDeadAt, Option::<i64>::None.into()),
        ])
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::UsageState).eq(USAGE_DEAD));
    if let Some(job) = job {
        update.and_where(Expr::col(Jobs::Id).eq(job.as_str()));
    }
    update.returning_col(Jobs::Id).to_owned()
}

/// The tenant's dead-lettered rows, oldest dead letter first, at most `limit`.
pub(crate) fn dead(outbox: Outbox, tenant: &TenantId, limit: u32) -> SelectStatement {
    Query::select()
        .columns(RECORD_COLUMNS)
        .columns([Jobs::UsageError, Jobs::UsageDeadAt])
        .from(outbox.table())
        .and_where(Expr::col(Jobs::Tenant).eq(tenant.as_str()))
        .and_where(Expr::col(Jobs::UsageState).eq(USAGE_DEAD))
        .order_by(Jobs::UsageDeadAt, Order::Asc)
        .order_by(Jobs::Id, Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// How many rows of one outbox are dead letters, every tenant together (for operators).
pub(crate) fn count_dead(outbox: Outbox) -> SelectStatement {
    Query::select()
        .expr(Expr::col(Jobs::Id).count())
        .from(outbox.table())
        .and_where(Expr::col(Jobs::UsageState).eq(USAGE_DEAD))
        .to_owned()
}

/// Usage not yet recorded by the sink (pending, or claimed and being handed over).
fn count_backlog(outbox: Outbox) -> SelectStatement {
    Query::select()
        .expr(Expr::col(Jobs::Id).count())
        .from(outbox.table())
        .and_where(Expr::col(Jobs::UsageState).is_in([USAGE_PENDING, USAGE_SENDING]))
        .to_owned()
}

/// Usage waiting for the sink, every tenant and both outboxes together.
pub(crate) async fn backlog_count<S: Store>(store: &S) -> Result<u64> {
    let mut total = 0;
    for outbox in Outbox::ALL {
        let rows: Vec<(i64,)> = store.pool().fetch_all(&count_backlog(outbox)).await?;
        total += rows
            .first()
            .map_or(0, |(n,)| u64::try_from(*n).unwrap_or(0));
    }
    Ok(total)
}

/// Moves these records, as returned by [`claim_usage`], to the dead-letter state with their
/// reasons and appends a [`JobState::UsageUnpriced`] event for each one that moved, in one
/// transaction; returns how many moved.
pub(crate) async fn dead_letter<S: Store>(
    store: &S,
    dead: &[(UsageRecord, String)],
) -> Result<u64> {
    if dead.is_empty() {
        return Ok(0);
    }
    let now = micros(OffsetDateTime::now_utc());
    let mut tx = store.begin().await?;
    let mut events = Vec::with_capacity(dead.len());
    for (record, reason) in dead {
        let outbox = if record.extra {
            Outbox::Extra
        } else {
            Outbox::Jobs
        };
        let key = (
            record.job.as_str(),
            record.batch.as_deref().unwrap_or_default(),
        );
        let moved: Option<(String, String)> = tx
            .fetch_optional(&mark_dead(outbox, key, reason, now))
            .await?;
        if let Some((job_id, tenant)) = moved {
            events.push(NewEvent {
                tenant,
                job_id,
                state: JobState::UsageUnpriced,
                at: now,
            });
        }
    }
    let moved = u64::try_from(events.len()).unwrap_or(u64::MAX);
    store.commit(tx, &events).await?;
    Ok(moved)
}

/// Makes the tenant's dead letters of both outboxes (of one job, with `job`) `pending` again,
/// and appends one [`JobState::UsageRepriced`] event per job handed back, in one transaction;
/// returns how many records.
pub(crate) async fn reprice_all<S: Store>(
    store: &S,
    tenant: &TenantId,
    job: Option<&JobId>,
) -> Result<u64> {
    let now = store.clock_now();
    let mut tx = store.begin().await?;
    let mut jobs = Vec::new();
    for outbox in Outbox::ALL {
        let rows: Vec<(String,)> = tx.fetch_all(&reprice(outbox, tenant, job)).await?;
        jobs.extend(rows.into_iter().map(|(id,)| id));
    }
    let repriced = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
    jobs.sort_unstable();
    jobs.dedup();
    let events: Vec<NewEvent> = jobs
        .into_iter()
        .map(|job_id| NewEvent {
            tenant: tenant.as_str().to_owned(),
            job_id,
            state: JobState::UsageRepriced,
            at: now,
        })
        .collect();
    store.commit(tx, &events).await?;
    Ok(repriced)
}

/// The tenant's dead letters of both outboxes, oldest first, at most `limit`.
pub(crate) async fn dead_of<S: Store>(
    store: &S,
    tenant: &TenantId,
    limit: u32,
) -> Result<Vec<DeadUsage>> {
    let mut all = Vec::new();
    for outbox in Outbox::ALL {
        let rows: Vec<DeadRow> = store.pool().fetch_all(&dead(outbox, tenant, limit)).await?;
        all.extend(dead_letters(rows, outbox)?);
    }
    all.sort_by(|a, b| (a.dead_at, a.record.job.as_str()).cmp(&(b.dead_at, b.record.job.as_str())));
    all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(all)
}

/// Dead letters of every tenant, both outboxes together.
pub(crate) async fn dead_count<S: Store>(store: &S) -> Result<u64> {
    let mut total = 0;
    for outbox in Outbox::ALL {
        let rows: Vec<(i64,)> = store.pool().fetch_all(&count_dead(outbox)).await?;
        total += rows
            .first()
            .map_or(0, |(n,)| u64::try_from(*n).unwrap_or(0));
    }
    Ok(total)
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
    hold_id: Option<i64>,
}

/// A row returned by [`dead`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeadRow {
    #[sqlx(flatten)]
    row: UsageRow,
    usage_error: Option<String>,
    usage_dead_at: Option<i64>,
}

/// Rows of [`dead`] as dead letters.
pub(crate) fn dead_letters(rows: Vec<DeadRow>, outbox: Outbox) -> Result<Vec<DeadUsage>> {
    rows.into_iter()
        .map(|dead| {
            Ok(DeadUsage {
                record: usage_record(dead.row, outbox)?,
                reason: dead.usage_error.unwrap_or_default(),
                dead_at: from_micros(dead.usage_dead_at.unwrap_or(0)),
            })
        })
        .collect()
}

/// Rows of [`claim_usage`] as records for the sink.
pub(crate) fn usage_records(rows: Vec<UsageRow>, outbox: Outbox) -> Result<Vec<UsageRecord>> {
    rows.into_iter()
        .map(|row| usage_record(row, outbox))
        .collect()
}

fn usage_record(row: UsageRow, outbox: Outbox) -> Result<UsageRecord> {
    let params: serde_json::Value = serde_json::from_str(&row.params).map_err(Error::Json)?;
    Ok(UsageRecord {
        job: parse_job_id(&row.id)?,
        tenant: TenantId::new(row.tenant).map_err(|e| Error::Corrupt {
            what: "tenant",
            detail: e.to_string(),
        })?,
        feature: row.feature,
        user: row.user_id,
        lane: row.lane.parse::<Lane>().map_err(|_| Error::Corrupt {
            what: "lane",
            detail: row.lane.clone(),
        })?,
        model: params["model"].as_str().unwrap_or_default().to_owned(),
        batch: row.batch_id,
        // Only billed rows enter the outbox: a row without usage is damaged, and
        // handing it over as "no usage" would charge nothing for a billed request.
        usage: serde_json::from_str(row.usage.as_deref().ok_or_else(|| Error::Corrupt {
            what: "usage",
            detail: format!("job {} is in the usage outbox without usage", row.id),
        })?)
        .map_err(Error::Json)?,
        hold: row.hold_id.map(HoldId::new),
        extra: outbox == Outbox::Extra,
    })
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;

    fn row(usage: Option<&str>) -> UsageRow {
        UsageRow {
            id: crate::ids::JobId::generate().to_string(),
            tenant: "acme".to_owned(),
            feature: "f".to_owned(),
            user_id: "u".to_owned(),
            lane: "urgent".to_owned(),
            params: r#"{"model": "claude-haiku-4-5"}"#.to_owned(),
            batch_id: Some("qu_1".to_owned()),
            usage: usage.map(str::to_owned),
            hold_id: Some(3),
        }
    }

    /// A damaged usage is an error, never a record that charges nothing.
    #[test]
    fn case_08_usage_that_does_not_decode_is_an_error_not_a_null() {
        let ok = usage_records(
            vec![row(Some(r#"{"input_tokens": 4, "output_tokens": 2}"#))],
            Outbox::Jobs,
        )
        .unwrap();
        assert_eq!(
            (ok[0].usage.input_tokens, ok[0].usage.output_tokens),
            (4, 2)
        );
        assert_eq!(
            (ok[0].lane, ok[0].hold, ok[0].model.as_str()),
            (Lane::Urgent, Some(HoldId::new(3)), "claude-haiku-4-5")
        );
        for damaged in [
            None,
            Some("null"),
            Some("{}"),
            Some(r#"{"input_tokens": -1}"#),
        ] {
            assert!(
                usage_records(vec![row(damaged)], Outbox::Jobs).is_err(),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn extra_usage_is_claimed_by_job_and_batch() {
        let sql = claim_usage(
            Outbox::Extra,
            Backend::Postgres,
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
