//! Table and column names, and the versioned migrations that create them.
//!
//! Every table is prefixed `tenantry_queue_` so the queue can share a database with the
//! host's own tables. Times are stored as microseconds since the Unix epoch (`BIGINT`) and
//! JSON as text, so both backends store identical values.

use sea_query::{
    ColumnDef, ConditionalStatement, Expr, ExprTrait, Iden, Index, IntoTableRef, Table, TableRef,
};
use tenantry_core::db::{Backend, Pool};
use tenantry_core::migrate::{self, Component, Migration};

use crate::error::Result;
use crate::job::JobState;

/// The jobs table: one row per request, the source of truth for its state and result.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_jobs")]
pub(crate) enum Jobs {
    Table,
    Id,
    Tenant,
    Feature,
    UserId,
    Lane,
    State,
    Params,
    RequestBytes,
    Metadata,
    IdempotencyKey,
    MaxWaitMs,
    Deadline,
    OnDeadline,
    Attempts,
    BatchId,
    Result,
    Error,
    Usage,
    CreatedAt,
    UpdatedAt,
    FlushAt,
    FinishedAt,
    LeaseOwner,
    LeaseExpiresAt,
    UsageState,
    /// Why the usage is dead-lettered (`usage_state = 'dead'`); NULL otherwise.
    UsageError,
    /// When the usage was dead-lettered (microseconds since the epoch).
    UsageDeadAt,
    /// The budget hold taken at submit, settled by the job's usage.
    HoldId,
}

/// The events table: an append-only, ordered log of state changes.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_events")]
pub(crate) enum Events {
    Table,
    Seq,
    Tenant,
    JobId,
    State,
    At,
    /// JSON detail of an event that names no job (`job_id = ''`), e.g. a budget alert.
    Detail,
}

/// The batches table: one record per batch, written before and after the create call.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_batches")]
pub(crate) enum Batches {
    Table,
    Id,
    State,
    ApiBatchId,
    Owner,
    LeaseExpiresAt,
    RequestCount,
    RequestBytes,
    CreatedAt,
    UpdatedAt,
    CreateStartedAt,
    SubmittedAt,
    CreateSentApiAt,
}

/// The exact requests a batch record's create sent (or is sending): frozen when the create
/// begins, kept whatever later happens to the jobs (cancel, deadline, urgent promotion), and
/// cleared only when the create certainly did not happen. Reconciliation, duplicate batches
/// and billed results read membership here, never from the jobs' current state.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_batch_jobs")]
pub(crate) enum BatchJobs {
    Table,
    BatchId,
    JobId,
}

/// Billed results that could not be stored on their job row: a duplicate batch, a late
/// urgent call whose job was sent again, or the batch copy of a job that went down the
/// urgent lane after its deadline. One row per billed request (`id`, `batch_id`), with the
/// same outbox columns as the job row so one claim statement serves both tables.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_extra_usage")]
pub(crate) enum ExtraUsage {
    Table,
}

/// Consumer cursors: per consumer of the event log and tenant, the position read up to.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_cursors")]
pub(crate) enum Cursors {
    Table,
    Consumer,
    Tenant,
    Position,
}

fn text(col: impl sea_query::IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn big(col: impl sea_query::IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn v1_jobs_and_events(backend: Backend) -> Vec<String> {
    let jobs = Table::create()
        .table(Jobs::Table)
        .if_not_exists()
        .col(text(Jobs::Id).primary_key())
        .col(text(Jobs::Tenant))
        .col(text(Jobs::Feature))
        .col(text(Jobs::UserId))
        .col(text(Jobs::Lane))
        .col(text(Jobs::State))
        .col(text(Jobs::Params))
        .col(big(Jobs::RequestBytes))
        .col(text(Jobs::Metadata))
        .col(ColumnDef::new(Jobs::IdempotencyKey).text().null())
        .col(big(Jobs::MaxWaitMs))
        .col(ColumnDef::new(Jobs::Deadline).big_integer().null())
        .col(text(Jobs::OnDeadline))
        .col(big(Jobs::Attempts).default(0))
        .col(ColumnDef::new(Jobs::BatchId).text().null())
        .col(ColumnDef::new(Jobs::Result).text().null())
        .col(ColumnDef::new(Jobs::Error).text().null())
        .col(ColumnDef::new(Jobs::Usage).text().null())
        .col(big(Jobs::CreatedAt))
        .col(big(Jobs::UpdatedAt))
        .col(big(Jobs::FlushAt))
        .col(ColumnDef::new(Jobs::FinishedAt).big_integer().null())
        .col(ColumnDef::new(Jobs::LeaseOwner).text().null())
        .col(ColumnDef::new(Jobs::LeaseExpiresAt).big_integer().null())
        .to_owned();
    // NULL keys are distinct in both backends, so only keyed jobs are deduplicated.
    let idempotency = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_idempotency")
        .table(Jobs::Table)
        .col(Jobs::Tenant)
        .col(Jobs::IdempotencyKey)
        .unique()
        .to_owned();
    let by_tenant = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_tenant_id")
        .table(Jobs::Table)
        .col(Jobs::Tenant)
        .col(Jobs::Id)
        .to_owned();
    // The planner's scan: open jobs of a lane in flush order.
    let claimable = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_claim")
        .table(Jobs::Table)
        .col(Jobs::State)
        .col(Jobs::Lane)
        .col(Jobs::FlushAt)
        .to_owned();
    let by_batch = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_batch")
        .table(Jobs::Table)
        .col(Jobs::BatchId)
        .to_owned();
    let seq = if backend == Backend::Sqlite {
        // SQLite only auto-increments an `INTEGER PRIMARY KEY` (a 64-bit rowid).
        ColumnDef::new(Events::Seq)
            .integer()
            .not_null()
            .primary_key()
            .auto_increment()
            .to_owned()
    } else {
        ColumnDef::new(Events::Seq)
            .big_integer()
            .not_null()
            .primary_key()
            .auto_increment()
            .to_owned()
    };
    let events = Table::create()
        .table(Events::Table)
        .if_not_exists()
        .col(seq)
        .col(text(Events::Tenant))
        .col(text(Events::JobId))
        .col(text(Events::State))
        .col(big(Events::At))
        .to_owned();
    let events_by_tenant = Index::create()
        .if_not_exists()
        .name("tenantry_queue_events_tenant_seq")
        .table(Events::Table)
        .col(Events::Tenant)
        .col(Events::Seq)
        .to_owned();
    vec![
        backend.render_schema(&jobs),
        backend.render_schema(&idempotency),
        backend.render_schema(&by_tenant),
        backend.render_schema(&claimable),
        backend.render_schema(&by_batch),
        backend.render_schema(&events),
        backend.render_schema(&events_by_tenant),
    ]
}

fn v2_batches(backend: Backend) -> Vec<String> {
    let batches = Table::create()
        .table(Batches::Table)
        .if_not_exists()
        .col(text(Batches::Id).primary_key())
        .col(text(Batches::State))
        .col(ColumnDef::new(Batches::ApiBatchId).text().null())
        .col(ColumnDef::new(Batches::Owner).text().null())
        .col(ColumnDef::new(Batches::LeaseExpiresAt).big_integer().null())
        .col(big(Batches::RequestCount))
        .col(big(Batches::RequestBytes))
        .col(big(Batches::CreatedAt))
        .col(big(Batches::UpdatedAt))
        .col(
            ColumnDef::new(Batches::CreateStartedAt)
                .big_integer()
                .null(),
        )
        .col(ColumnDef::new(Batches::SubmittedAt).big_integer().null())
        .to_owned();
    let by_state = Index::create()
        .if_not_exists()
        .name("tenantry_queue_batches_state_lease")
        .table(Batches::Table)
        .col(Batches::State)
        .col(Batches::LeaseExpiresAt)
        .to_owned();
    vec![
        backend.render_schema(&batches),
        backend.render_schema(&by_state),
    ]
}

fn v3_usage_outbox(backend: Backend) -> Vec<String> {
    let column = Table::alter()
        .table(Jobs::Table)
        .add_column(ColumnDef::new(Jobs::UsageState).text().null())
        .to_owned();
    let pending = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_usage_state")
        .table(Jobs::Table)
        .col(Jobs::UsageState)
        .to_owned();
    vec![
        backend.render_schema(&column),
        backend.render_schema(&pending),
    ]
}

fn v4_extra_usage(backend: Backend) -> Vec<String> {
    let table = Table::create()
        .table(ExtraUsage::Table)
        .if_not_exists()
        .col(text(Jobs::Id))
        .col(text(Jobs::BatchId))
        .col(text(Jobs::Tenant))
        .col(text(Jobs::Feature))
        .col(text(Jobs::UserId))
        .col(text(Jobs::Lane))
        .col(text(Jobs::Params))
        .col(text(Jobs::Usage))
        .col(ColumnDef::new(Jobs::UsageState).text().null())
        .col(ColumnDef::new(Jobs::LeaseOwner).text().null())
        .col(ColumnDef::new(Jobs::LeaseExpiresAt).big_integer().null())
        .col(big(Jobs::CreatedAt))
        .primary_key(Index::create().col(Jobs::Id).col(Jobs::BatchId))
        .to_owned();
    let pending = Index::create()
        .if_not_exists()
        .name("tenantry_queue_extra_usage_state")
        .table(ExtraUsage::Table)
        .col(Jobs::UsageState)
        .to_owned();
    vec![
        backend.render_schema(&table),
        backend.render_schema(&pending),
    ]
}

fn drop_job_index(backend: Backend, name: &str) -> String {
    backend.render_schema(
        &Index::drop()
            .if_exists()
            .name(name)
            .table(Jobs::Table)
            .to_owned(),
    )
}

/// The states of a job that is not finished: the only rows the planner and the sweeps look for.
pub(crate) const OPEN_STATES: [JobState; 3] =
    [JobState::Queued, JobState::Batched, JobState::Submitted];

/// Partial indexes on PostgreSQL: a finished job leaves the claim index, and an unkeyed job
/// never enters the idempotency index. Every state change rewrites a job row with an entry in
/// each index whose predicate it meets, so storing a result (the ingest's bulk of work) writes
/// two index entries fewer per job. SQLite keeps its full indexes: it uses a partial index only
/// when the query repeats the index's own condition, and the claims bind their state as a
/// value.
fn v5_partial_indexes(backend: Backend) -> Vec<String> {
    if backend == Backend::Sqlite {
        return Vec::new();
    }
    let open = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_open")
        .table(Jobs::Table)
        .col(Jobs::State)
        .col(Jobs::Lane)
        .col(Jobs::FlushAt)
        .and_where(Expr::col(Jobs::State).is_in(OPEN_STATES.map(JobState::as_str)))
        .to_owned();
    let keyed = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_keyed")
        .table(Jobs::Table)
        .col(Jobs::Tenant)
        .col(Jobs::IdempotencyKey)
        .unique()
        .and_where(Expr::col(Jobs::IdempotencyKey).is_not_null())
        .to_owned();
    vec![
        backend.render_schema(&open),
        backend.render_schema(&keyed),
        drop_job_index(backend, "tenantry_queue_jobs_claim"),
        drop_job_index(backend, "tenantry_queue_jobs_idempotency"),
    ]
}

/// Partial indexes of batched jobs and of jobs with usage to record, on PostgreSQL. A new job
/// has neither a batch nor usage, so `submit` used to write a `NULL` entry into both indexes
/// for every job; only jobs that have one are ever looked up by it (every lookup compares with
/// `=`, which PostgreSQL proves implies `IS NOT NULL`, even for a bound value). SQLite keeps its
/// full indexes, as in migration 5.
fn v6_partial_batch_and_usage_indexes(backend: Backend) -> Vec<String> {
    if backend == Backend::Sqlite {
        return Vec::new();
    }
    let batched = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_batched")
        .table(Jobs::Table)
        .col(Jobs::BatchId)
        .and_where(Expr::col(Jobs::BatchId).is_not_null())
        .to_owned();
    let usage = Index::create()
        .if_not_exists()
        .name("tenantry_queue_jobs_with_usage")
        .table(Jobs::Table)
        .col(Jobs::UsageState)
        .and_where(Expr::col(Jobs::UsageState).is_not_null())
        .to_owned();
    vec![
        backend.render_schema(&batched),
        backend.render_schema(&usage),
        drop_job_index(backend, "tenantry_queue_jobs_batch"),
        drop_job_index(backend, "tenantry_queue_jobs_usage_state"),
    ]
}

/// The membership of each batch record, one record per API batch, and the send time in the
/// API's clock: a reconciliation can then neither adopt an API batch that is already recorded
/// or older than the send, nor lose track of a request whose job moved on after it was sent.
fn v7_batch_membership(backend: Backend) -> Vec<String> {
    let members = Table::create()
        .table(BatchJobs::Table)
        .if_not_exists()
        .col(text(BatchJobs::BatchId))
        .col(text(BatchJobs::JobId))
        .primary_key(
            Index::create()
                .col(BatchJobs::BatchId)
                .col(BatchJobs::JobId),
        )
        .to_owned();
    // NULL ids (batches not created yet) are distinct in both backends.
    let one_record_per_api_batch = Index::create()
        .if_not_exists()
        .name("tenantry_queue_batches_api_batch_id")
        .table(Batches::Table)
        .col(Batches::ApiBatchId)
        .unique()
        .to_owned();
    let sent_api_at = Table::alter()
        .table(Batches::Table)
        .add_column(
            ColumnDef::new(Batches::CreateSentApiAt)
                .big_integer()
                .null(),
        )
        .to_owned();
    vec![
        backend.render_schema(&members),
        backend.render_schema(&one_record_per_api_batch),
        backend.render_schema(&sent_api_at),
    ]
}

/// Typed columns for what used to travel as text elsewhere, and the usage dead letter:
/// the budget hold taken at submit (on the job, and copied onto usage billed off the job
/// row, so the usage settles it without reading the job), and why and when usage that
/// cannot be priced was dead-lettered (`usage_state = 'dead'`). One column per statement:
/// SQLite adds one column per `ALTER TABLE`.
fn v8_hold_and_dead_usage(backend: Backend) -> Vec<String> {
    let add = |table: TableRef, column: ColumnDef| {
        backend.render_schema(&Table::alter().table(table).add_column(column).to_owned())
    };
    let mut statements = Vec::new();
    for table in [
        Jobs::Table.into_table_ref(),
        ExtraUsage::Table.into_table_ref(),
    ] {
        statements.push(add(
            table.clone(),
            ColumnDef::new(Jobs::HoldId).big_integer().null().to_owned(),
        ));
        statements.push(add(
            table.clone(),
            ColumnDef::new(Jobs::UsageError).text().null().to_owned(),
        ));
        statements.push(add(
            table,
            ColumnDef::new(Jobs::UsageDeadAt)
                .big_integer()
                .null()
                .to_owned(),
        ));
    }
    statements
}

/// Durable consumer cursors, so a consumer of the event log (the facade's hold releaser) goes
/// on after a restart, or on another instance, from where any instance stopped.
fn v9_consumer_cursors(backend: Backend) -> Vec<String> {
    let cursors = Table::create()
        .table(Cursors::Table)
        .if_not_exists()
        .col(text(Cursors::Consumer))
        .col(text(Cursors::Tenant))
        .col(big(Cursors::Position))
        .primary_key(Index::create().col(Cursors::Consumer).col(Cursors::Tenant))
        .to_owned();
    vec![backend.render_schema(&cursors)]
}

/// Batch membership by job: a purge deletes a finished job's membership, and checks that no
/// running batch still names it, by job id, which the table's key `(batch_id, job_id)` does
/// not lead with.
fn v10_members_by_job(backend: Backend) -> Vec<String> {
    let by_job = Index::create()
        .if_not_exists()
        .name("tenantry_queue_batch_jobs_job")
        .table(BatchJobs::Table)
        .col(BatchJobs::JobId)
        .to_owned();
    vec![backend.render_schema(&by_job)]
}

/// The detail column of events that are not a job's: other components (the cost ledger's
/// budget alerts) append to a tenant's stream in their own transactions, through
/// [`Feed`](crate::Feed).
fn v11_event_detail(backend: Backend) -> Vec<String> {
    let detail = Table::alter()
        .table(Events::Table)
        .add_column(ColumnDef::new(Events::Detail).text().null())
        .to_owned();
    vec![backend.render_schema(&detail)]
}

/// The queue's tables as a migration component, named `queue` in `tenantry_migrations`.
///
/// [`SqliteStore::open`](crate::SqliteStore::open) and [`PgStore::open`](crate::PgStore::open)
/// apply it; a host that owns its start-up can run it with the other crates' components in
/// one call of [`tenantry_core::migrate::migrate`]. A database migrated by an earlier version
/// of this crate (versions recorded in `tenantry_queue_migrations`) is adopted as it is.
pub const MIGRATIONS: Component =
    Component::new("queue", migrations).legacy_table("tenantry_queue_migrations");

/// Every migration this version of the crate ships, in order.
fn migrations(backend: Backend) -> Vec<Migration> {
    vec![
        Migration::new(1, "jobs and events", v1_jobs_and_events(backend)),
        Migration::new(2, "batch records", v2_batches(backend)),
        Migration::new(3, "usage outbox", v3_usage_outbox(backend)),
        Migration::new(4, "usage billed off its job row", v4_extra_usage(backend)),
        Migration::new(
            5,
            "partial indexes of open and keyed jobs",
            v5_partial_indexes(backend),
        ),
        Migration::new(
            6,
            "partial indexes of batched jobs and of jobs with usage",
            v6_partial_batch_and_usage_indexes(backend),
        ),
        Migration::new(
            7,
            "batch membership and one record per API batch",
            v7_batch_membership(backend),
        ),
        Migration::new(
            8,
            "hold id column and usage dead letters",
            v8_hold_and_dead_usage(backend),
        ),
        Migration::new(9, "consumer cursors", v9_consumer_cursors(backend)),
        Migration::new(10, "batch membership by job", v10_members_by_job(backend)),
        Migration::new(
            11,
            "detail of events that name no job",
            v11_event_detail(backend),
        ),
    ]
}

/// Applies the queue's pending migrations.
pub(crate) async fn migrate(pool: &Pool) -> Result<()> {
    migrate::migrate(pool, &[&MIGRATIONS]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_and_unkeyed_jobs_stay_out_of_the_partial_indexes() {
        assert!(v5_partial_indexes(Backend::Sqlite).is_empty());
        {
            let sql = v5_partial_indexes(Backend::Postgres).join(";\n");
            assert!(
                sql.contains(r#"WHERE "state" IN ('queued', 'batched', 'submitted')"#),
                "{sql}"
            );
            assert!(
                sql.contains(r#"WHERE "idempotency_key" IS NOT NULL"#),
                "{sql}"
            );
            assert!(
                sql.contains(r#"DROP INDEX IF EXISTS "tenantry_queue_jobs_claim""#),
                "{sql}"
            );
        }
    }

    #[test]
    fn sequences_are_rendered_per_dialect() {
        let pg = v1_jobs_and_events(Backend::Postgres).join(";\n");
        let lite = v1_jobs_and_events(Backend::Sqlite).join(";\n");
        assert!(
            pg.contains(r#""seq" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL PRIMARY KEY"#),
            "{pg}"
        );
        assert!(
            lite.contains(r#""seq" integer NOT NULL PRIMARY KEY AUTOINCREMENT"#),
            "{lite}"
        );
        assert!(pg.contains(
            r#"CREATE UNIQUE INDEX IF NOT EXISTS "tenantry_queue_jobs_idempotency" ON "tenantry_queue_jobs" ("tenant", "idempotency_key")"#
        ), "{pg}");
    }

    #[test]
    fn versions_are_increasing() {
        let versions: Vec<_> = migrations(Backend::Sqlite)
            .iter()
            .map(Migration::version)
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.first(), Some(&1));
    }

    /// The checksum of every released migration, per backend. The DDL is rendered by sea-query
    /// at run time, so a sea-query upgrade that changes its text changes a checksum, and every
    /// database migrated before would refuse to start (`MigrateError::Edited`). This list
    /// fails first. A new migration appends its line; a released line never changes.
    const RELEASED_POSTGRES: &[&str] = &[
        "05e19517cd6c858a65b96e3dfa5e424b3d5dddc5f8d0df7a3653365634ec59b6", // 1
        "328b2905eef62e3fea9dd6ea5b1f968c1b0bc3239e36c47316757eab9ff87931", // 2
        "bb1a88de02a3755822c2cea3738b71d479827e378c0832f5c66fdf2d79266ab4", // 3
        "c1f01e97badfc77747a69c4d6de2a9b6b394d70864d2d9faf08133a18d6f7493", // 4
        "a357e3e8b919412b4fe864fe770d729252b24d0cd672d7067033a821f29eddc1", // 5
        "906d2945f76f68ed25791dfbbf50008c05628687b5f702b9b2ca76b31e551798", // 6
        "0e74910a29e5cb98601280d5edfff4554c0c7eee2cbd049d40275133e622dd11", // 7
        "1eaf48f99ad424b563fec1a9a20a016ea57b01e6c5eaca84cbfd393808009a43", // 8
        "a950d746a84088230fbf238ff5172074bb56372743ea09cc6aae92773e4e1cab", // 9
        "9d942f6b5c8112f7ca568431e87f217abf854880a6be27780d3b3f4fd622ab1f", // 10
        "86fb2c3ea59cd8e3fa00061fb1a84a8b4c5ae36c8ac93b11995a723629d57c4c", // 11
    ];

    /// As [`RELEASED_POSTGRES`], for SQLite.
    const RELEASED_SQLITE: &[&str] = &[
        "dc7aa3414335539204d73aef7c90d5e5a0d68653bbb596334977a5c30e4e9c29", // 1
        "063f716f9d28399a3dc7353e198a2f0d66153b35f0e5d4fdbc8eeae7d17fc5cb", // 2
        "bb1a88de02a3755822c2cea3738b71d479827e378c0832f5c66fdf2d79266ab4", // 3
        "33b54736ea7a9fe72cca226b87855a4efad5bbec487ad5b747224f3264564805", // 4
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // 5
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // 6
        "374a4745dc6ad20b1ed595932cb0d91d889449a9a3445c1a6b9fe80946b58f3e", // 7
        "654f37043e70e568150ce5f9fef089d5e4823613e233575dabbc01d603012093", // 8
        "b8b5e65f754be1c11971a66ee5d0b2ef442826e9ce15293abf9912128f920517", // 9
        "9d942f6b5c8112f7ca568431e87f217abf854880a6be27780d3b3f4fd622ab1f", // 10
        "86fb2c3ea59cd8e3fa00061fb1a84a8b4c5ae36c8ac93b11995a723629d57c4c", // 11
    ];

    #[test]
    fn released_migrations_keep_their_checksums() {
        for (backend, released) in [
            (Backend::Postgres, RELEASED_POSTGRES),
            (Backend::Sqlite, RELEASED_SQLITE),
        ] {
            let shipped: Vec<(i64, String)> = MIGRATIONS
                .migrations(backend)
                .iter()
                .map(|m| (m.version(), m.checksum()))
                .collect();
            let released: Vec<(i64, String)> = (1..)
                .zip(released.iter().map(|sum| (*sum).to_owned()))
                .collect();
            assert_eq!(shipped, released, "{}", backend.as_str());
        }
    }
}
