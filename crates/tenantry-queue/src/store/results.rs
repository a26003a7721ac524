//! Storing a chunk of results: one set-based, guarded `UPDATE` for the whole chunk.
//!
//! The results travel as a `VALUES` list (a common table expression named `incoming`)
//! joined to the job rows. The guard in the `WHERE` clause is what makes a result seen
//! twice change nothing: only a job still `submitted` in this batch, or closed in this
//! batch (canceled, expired or failed while its request was out) with no usage stored
//! yet, matches. `RETURNING` names exactly the rows that changed and the state each one
//! is in, so events and counts come from those rows only. The same statement runs on
//! both backends (PostgreSQL and SQLite ≥ 3.33 both take `UPDATE … FROM`).
//!
//! A billed result whose job is no longer in this batch at all is a second billed request
//! for that job; [`store_extra_usage`] keeps it in the extra-usage table, once per job and
//! batch (its primary key), so its cost is recorded while the job stays as it is.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sea_query::{
    CommonTableExpression, Expr, ExprTrait, Func, OnConflict, Query, ValueTuple, WithClause,
    WithQuery,
};

use crate::claim::BatchId;
use crate::error::{Error, Result};
use crate::ingest::{IngestCounts, ItemOutcome, ResultItem};
use crate::job::JobState;
use crate::store::outbox::USAGE_PENDING;
use crate::store::schema::{ExtraUsage, Jobs};
use crate::store::sql::events::NewEvent;

/// The chunk of results, as the statement sees it.
#[derive(Debug, Clone, Copy, sea_query::Iden)]
#[iden(rename = "incoming")]
enum Incoming {
    Table,
    /// The job id (`custom_id`).
    Job,
    /// The Message as JSON text; NULL for an error.
    Message,
    /// The billed usage as JSON text; NULL for an error.
    Billed,
    /// The error as JSON text; NULL for a message.
    Failure,
    /// Whether an error may succeed when sent again.
    Retryable,
}

/// One result, encoded for the statement.
#[derive(Debug, Clone)]
pub(crate) struct IncomingRow {
    job: String,
    message: Option<String>,
    billed: Option<String>,
    failure: Option<String>,
    retryable: bool,
}

impl IncomingRow {
    fn tuple(&self) -> ValueTuple {
        ValueTuple::Many(vec![
            self.job.as_str().into(),
            self.message.clone().into(),
            self.billed.clone().into(),
            self.failure.clone().into(),
            self.retryable.into(),
        ])
    }
}

/// The results of one `ingest` call, encoded, with the later copies of a job's result in
/// the same call left out (they would change nothing: the first one settles the job).
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) rows: Vec<IncomingRow>,
    /// Each job's position in the call, to append events in the order results came.
    order: HashMap<String, usize>,
    items: usize,
}

/// Encodes results for [`store_results`].
pub(crate) fn encode(items: &[ResultItem]) -> Result<Encoded> {
    let mut order = HashMap::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let Entry::Vacant(slot) = order.entry(item.job.as_str().to_owned()) else {
            continue;
        };
        slot.insert(rows.len());
        let row = match &item.outcome {
            ItemOutcome::Succeeded { message } => IncomingRow {
                job: item.job.as_str().to_owned(),
                message: Some(serde_json::to_string(message).map_err(Error::Json)?),
                billed: Some(serde_json::to_string(&message.usage).map_err(Error::Json)?),
                failure: None,
                retryable: false,
            },
            ItemOutcome::Failed { error, retryable } => IncomingRow {
                job: item.job.as_str().to_owned(),
                message: None,
                billed: None,
                failure: Some(serde_json::to_string(error).map_err(Error::Json)?),
                retryable: *retryable,
            },
        };
        rows.push(row);
    }
    Ok(Encoded {
        rows,
        order,
        items: items.len(),
    })
}

fn job(col: Jobs) -> Expr {
    Expr::col((Jobs::Table, col))
}

fn incoming(col: Incoming) -> Expr {
    Expr::col((Incoming::Table, col))
}

/// The `incoming` common table expression over these columns and rows.
fn incoming_cte(columns: &[Incoming], rows: impl IntoIterator<Item = ValueTuple>) -> WithClause {
    let mut source = Query::select();
    source.column(sea_query::Asterisk).from_values(rows, "v");
    let cte = CommonTableExpression::new()
        .query(source)
        .columns(columns.iter().copied())
        .table_name(Incoming::Table)
        .to_owned();
    WithClause::new().cte(cte).to_owned()
}

/// A guard the planner cannot answer from an index.
///
/// The job rows are found by primary key from the `incoming` list. Written as plain
/// conditions, the batch and state guards invite PostgreSQL (whose statistics lag right
/// after a batch was claimed) to read every row of the batch through the `batch_id` or
/// `state` index and hash-join them, once per chunk: 100,000 rows read to store 500. As a
/// `CASE` the guard is only checked on the rows found by key.
fn unindexed(guard: sea_query::CaseStatement) -> Expr {
    guard.into()
}

/// States in which a job's request may still be billed although the job is closed.
const CLOSED: [JobState; 3] = [JobState::Canceled, JobState::Expired, JobState::Failed];

/// Stores a chunk of results (non-empty) of `batch`; returns `(id, tenant, state,
/// usage_state)` of every job it changed, as they are now.
///
/// Per matched job: a message makes a `submitted` job `succeeded` with its result and
/// pending usage; a canceled job keeps its state and gets its billed usage once; a
/// retryable error with attempts left sends the job back to `queued`, due at once; any
/// other error fails it.
pub(crate) fn store_results(
    rows: &[IncomingRow],
    batch: &BatchId,
    max_attempts: u32,
    now: i64,
) -> WithQuery {
    let in_batch = || job(Jobs::BatchId).eq(batch.as_str());
    // `batched`: a request refused before the create (invalid), or one the batch ended
    // without sending; every other open job of the batch is `submitted`.
    let submitted =
        || job(Jobs::State).is_in([JobState::Submitted.as_str(), JobState::Batched.as_str()]);
    let closed = || job(Jobs::State).is_in(CLOSED.map(JobState::as_str));
    let is_message = || incoming(Incoming::Message).is_not_null();
    let retry = || {
        incoming(Incoming::Message)
            .is_null()
            .and(incoming(Incoming::Retryable))
            .and(job(Jobs::Attempts).lt(i64::from(max_attempts)))
    };
    let cte = incoming_cte(
        &[
            Incoming::Job,
            Incoming::Message,
            Incoming::Billed,
            Incoming::Failure,
            Incoming::Retryable,
        ],
        rows.iter().map(IncomingRow::tuple),
    );
    Query::update()
        .table(Jobs::Table)
        .values([
            (
                Jobs::State,
                Expr::case(closed(), job(Jobs::State))
                    .case(is_message(), JobState::Succeeded.as_str())
                    .case(retry(), JobState::Queued.as_str())
                    .finally(JobState::Failed.as_str())
                    .into(),
            ),
            (
                Jobs::Result,
                Expr::case(submitted().and(is_message()), incoming(Incoming::Message))
                    .finally(job(Jobs::Result))
                    .into(),
            ),
            (
                Jobs::Usage,
                Func::coalesce([incoming(Incoming::Billed), job(Jobs::Usage)]).into(),
            ),
            (
                Jobs::UsageState,
                Expr::case(incoming(Incoming::Billed).is_not_null(), USAGE_PENDING)
                    .finally(job(Jobs::UsageState))
                    .into(),
            ),
            (
                Jobs::Error,
                Func::coalesce([incoming(Incoming::Failure), job(Jobs::Error)]).into(),
            ),
            (
                Jobs::BatchId,
                Expr::case(retry(), Expr::null())
                    .finally(job(Jobs::BatchId))
                    .into(),
            ),
            (
                Jobs::FlushAt,
                Expr::case(retry(), now).finally(job(Jobs::FlushAt)).into(),
            ),
            (
                Jobs::FinishedAt,
                Expr::case(submitted().and(retry().not()), now)
                    .finally(job(Jobs::FinishedAt))
                    .into(),
            ),
            (Jobs::UpdatedAt, now.into()),
        ])
        .from(Incoming::Table)
        .and_where(job(Jobs::Id).equals((Incoming::Table, Incoming::Job)))
        .and_where(unindexed(
            Expr::case(in_batch().and(submitted()), true)
                .case(
                    in_batch()
                        .and(closed())
                        .and(incoming(Incoming::Billed).is_not_null())
                        .and(job(Jobs::Usage).is_null()),
                    true,
                )
                .finally(false),
        ))
        .returning(Query::returning().columns([
            Jobs::Id,
            Jobs::Tenant,
            Jobs::State,
            Jobs::UsageState,
        ]))
        .to_owned()
        .with(cte)
}

/// The billed results of `rows` whose job [`store_results`] did not change.
pub(crate) fn unmatched(rows: &[IncomingRow], changed: &[Changed]) -> Vec<IncomingRow> {
    let changed: std::collections::HashSet<&str> =
        changed.iter().map(|(id, ..)| id.as_str()).collect();
    rows.iter()
        .filter(|r| r.billed.is_some() && !changed.contains(r.job.as_str()))
        .cloned()
        .collect()
}

/// Keeps the billed results among `rows` whose job is no longer in `batch` in the
/// extra-usage table, once per job and batch; returns the ids it stored. Run in the same
/// transaction as [`store_results`] (which never touches such a job).
pub(crate) fn store_extra_usage(
    rows: &[IncomingRow],
    batch: &BatchId,
    now: i64,
) -> Option<WithQuery> {
    let billed: Vec<ValueTuple> = rows
        .iter()
        .filter_map(|r| {
            r.billed
                .as_ref()
                .map(|b| ValueTuple::Two(r.job.as_str().into(), b.as_str().into()))
        })
        .collect();
    if billed.is_empty() {
        return None;
    }
    // The lane that billed it is the lane of the calls this id fences, whatever lane the
    // job is on now (a batch copy of a job promoted to the urgent lane is a batch request).
    let lane = batch.lane();
    let mut select = Query::select();
    select
        .expr(job(Jobs::Id))
        .expr(Expr::val(batch.as_str()))
        .expr(job(Jobs::Tenant))
        .expr(job(Jobs::Feature))
        .expr(job(Jobs::UserId))
        .expr(Expr::val(lane.as_str()))
        .expr(job(Jobs::Params))
        .expr(incoming(Incoming::Billed))
        .expr(Expr::val(USAGE_PENDING))
        .expr(Expr::val(now))
        .expr(job(Jobs::HoldId))
        .from(Incoming::Table)
        .inner_join(
            Jobs::Table,
            job(Jobs::Id).equals((Incoming::Table, Incoming::Job)),
        )
        // Only a request this batch sent is billed to its job: a result naming any other
        // job (a foreign batch, a forged `custom_id`) charges nothing.
        .and_where(super::members::sent_by(batch, incoming(Incoming::Job)))
        .and_where(unindexed(
            Expr::case(job(Jobs::BatchId).eq(batch.as_str()), false).finally(true),
        ));
    let mut insert = Query::insert();
    insert
        .into_table(ExtraUsage::Table)
        .columns([
            Jobs::Id,
            Jobs::BatchId,
            Jobs::Tenant,
            Jobs::Feature,
            Jobs::UserId,
            Jobs::Lane,
            Jobs::Params,
            Jobs::Usage,
            Jobs::UsageState,
            Jobs::CreatedAt,
            Jobs::HoldId,
        ])
        .select_from(select)
        .ok()?
        .on_conflict(
            OnConflict::columns([Jobs::Id, Jobs::BatchId])
                .do_nothing()
                .to_owned(),
        )
        .returning_col(Jobs::Id);
    Some(insert.with(incoming_cte(&[Incoming::Job, Incoming::Billed], billed)))
}

/// A job row [`store_results`] changed: `(id, tenant, state, usage_state)`.
pub(crate) type Changed = (String, String, String, Option<String>);

/// Counts what the changed rows did and builds their events, in the order the results
/// came; `extra` results were stored off their job row; every other result changed
/// nothing.
pub(crate) fn settle(
    encoded: &Encoded,
    changed: Vec<Changed>,
    extra: usize,
    at: i64,
) -> Result<(IngestCounts, Vec<NewEvent>)> {
    let mut counts = IngestCounts {
        billed_elsewhere: u64::try_from(extra).unwrap_or(u64::MAX),
        ..IngestCounts::default()
    };
    let mut events = Vec::with_capacity(changed.len());
    let changed_rows = changed.len();
    for (job_id, tenant, state, usage_state) in changed {
        let state: JobState = state.parse().map_err(|_| Error::Corrupt {
            what: "job state",
            detail: state.clone(),
        })?;
        // A job failed by this very result has no usage; one billed after it closed has.
        let billed_now = usage_state.is_some();
        match state {
            JobState::Succeeded => counts.succeeded += 1,
            JobState::Queued => counts.retried += 1,
            JobState::Failed if !billed_now => counts.failed += 1,
            // Billed after it closed: usage stored, no state change, so no event.
            JobState::Canceled | JobState::Expired | JobState::Failed => {
                counts.billed_after_cancel += 1;
                continue;
            }
            other => {
                return Err(Error::Corrupt {
                    what: "ingested job state",
                    detail: other.as_str().to_owned(),
                });
            }
        }
        events.push(NewEvent {
            tenant,
            job_id,
            state,
            at,
        });
    }
    events.sort_by_key(|e| encoded.order.get(&e.job_id).copied().unwrap_or(usize::MAX));
    counts.unchanged =
        u64::try_from(encoded.items.saturating_sub(changed_rows + extra)).unwrap_or(u64::MAX);
    Ok((counts, events))
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;

    use super::*;
    use crate::ids::JobId;
    use crate::job::JobError;

    fn item(job: &JobId, outcome: ItemOutcome) -> ResultItem {
        ResultItem {
            job: job.clone(),
            outcome,
        }
    }

    #[test]
    fn a_job_repeated_in_one_call_is_stored_once_and_counted_unchanged() {
        let a = JobId::generate();
        let b = JobId::generate();
        let ok = ItemOutcome::Succeeded {
            message: Box::new(
                serde_json::from_value(serde_json::json!({"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "m", "content": [],
                    "usage": {"input_tokens": 3, "output_tokens": 0}}))
                .unwrap(),
            ),
        };
        let failed = ItemOutcome::Failed {
            error: JobError {
                kind: "overloaded_error".to_owned(),
                message: "busy".to_owned(),
            },
            retryable: true,
        };
        let enc = encode(&[item(&a, ok.clone()), item(&b, failed), item(&a, ok)]).unwrap();
        assert_eq!(enc.rows.len(), 2);
        assert_eq!(
            enc.rows[1].failure.as_deref().map(|f| f.contains("busy")),
            Some(true)
        );
        let changed = vec![
            (b.to_string(), "t1".to_owned(), "queued".to_owned(), None),
            (
                a.to_string(),
                "t1".to_owned(),
                "succeeded".to_owned(),
                Some("pending".to_owned()),
            ),
        ];
        let (counts, events) = settle(&enc, changed, 0, 9).unwrap();
        assert_eq!(
            counts,
            IngestCounts {
                succeeded: 1,
                retried: 1,
                unchanged: 1,
                ..IngestCounts::default()
            }
        );
        // Events follow the order the results came in, not the order rows came back.
        let order: Vec<_> = events.iter().map(|e| (e.job_id.clone(), e.state)).collect();
        assert_eq!(
            order,
            vec![
                (a.to_string(), JobState::Succeeded),
                (b.to_string(), JobState::Queued)
            ]
        );
    }

    #[test]
    fn the_statement_is_guarded_by_batch_and_state_and_returns_the_new_state() {
        let enc = encode(&[item(
            &JobId::generate(),
            ItemOutcome::Failed {
                error: JobError {
                    kind: "invalid_request_error".to_owned(),
                    message: "bad".to_owned(),
                },
                retryable: false,
            },
        )])
        .unwrap();
        let sql = store_results(&enc.rows, &BatchId::record("qb_1".to_owned()), 3, 7)
            .to_string(PostgresQueryBuilder);
        assert!(
            sql.starts_with(
                r#"WITH "incoming" ("job", "message", "billed", "failure", "retryable") AS (SELECT * FROM (VALUES ("#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#"WHERE "tenantry_queue_jobs"."id" = "incoming"."job" AND (CASE WHEN ("tenantry_queue_jobs"."batch_id" = 'qb_1' AND "tenantry_queue_jobs"."state" IN ('submitted', 'batched')) THEN TRUE WHEN ("tenantry_queue_jobs"."batch_id" = 'qb_1' AND "tenantry_queue_jobs"."state" IN ('canceled', 'expired', 'failed') AND "incoming"."billed" IS NOT NULL AND "tenantry_queue_jobs"."usage" IS NULL) THEN TRUE ELSE FALSE END) RETURNING "id", "tenant", "state", "usage_state""#),
            "{sql}"
        );
    }
}
