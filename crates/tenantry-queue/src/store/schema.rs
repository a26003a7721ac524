//! Table and column names, and the versioned migrations that create them.
//!
//! Every table is prefixed `tenantry_queue_` so the queue can share a database with the
//! host's own tables. Times are stored as microseconds since the Unix epoch (`BIGINT`) and
//! JSON as text, so both backends store identical values.

use sea_query::{
    ColumnDef, ConditionalStatement, Expr, ExprTrait, Iden, Index, IntoTableRef,
    PostgresQueryBuilder, SchemaBuilder, SqliteQueryBuilder, Table, TableRef,
};

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

/// The migrations table: which schema versions are applied.
#[derive(Debug, Clone, Copy, Iden)]
#[iden(rename = "tenantry_queue_migrations")]
pub(crate) enum Migrations {
    Table,
    Version,
    Name,
    AppliedAt,
}

/// Which SQL dialect to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    fn render(self, stmt: &impl SchemaStatement) -> String {
        match self {
            Self::Postgres => stmt.render(PostgresQueryBuilder),
            Self::Sqlite => stmt.render(SqliteQueryBuilder),
        }
    }
}

trait SchemaStatement {
    fn render<B: SchemaBuilder>(&self, builder: B) -> String;
}

impl SchemaStatement for sea_query::TableCreateStatement {
    fn render<B: SchemaBuilder>(&self, builder: B) -> String {
        self.to_string(builder)
    }
}

impl SchemaStatement for sea_query::IndexCreateStatement {
    fn render<B: SchemaBuilder>(&self, builder: B) -> String {
        self.to_string(builder)
    }
}

impl SchemaStatement for sea_query::IndexDropStatement {
    fn render<B: SchemaBuilder>(&self, builder: B) -> String {
        self.to_string(builder)
    }
}

/// One schema version: its number, a name, and its statements in order.
#[derive(Debug, Clone)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) statements: Vec<String>,
}

/// The migrations table itself, created before anything else (idempotent).
pub(crate) fn migrations_table(dialect: Dialect) -> String {
    dialect.render(
        Table::create()
            .table(Migrations::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(Migrations::Version)
                    .big_integer()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Migrations::Name).text().not_null())
            .col(
                ColumnDef::new(Migrations::AppliedAt)
                    .big_integer()
                    .not_null(),
            ),
    )
}

fn text(col: impl sea_query::IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn big(col: impl sea_query::IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn v1_jobs_and_events(dialect: Dialect) -> Vec<String> {
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
    let seq = match dialect {
        // SQLite only auto-increments an `INTEGER PRIMARY KEY` (a 64-bit rowid).
        Dialect::Sqlite => ColumnDef::new(Events::Seq)
            .integer()
            .not_null()
            .primary_key()
            .auto_increment()
            .to_owned(),
        Dialect::Postgres => ColumnDef::new(Events::Seq)
            .big_integer()
            .not_null()
            .primary_key()
            .auto_increment()
            .to_owned(),
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
        dialect.render(&jobs),
        dialect.render(&idempotency),
        dialect.render(&by_tenant),
        dialect.render(&claimable),
        dialect.render(&by_batch),
        dialect.render(&events),
        dialect.render(&events_by_tenant),
    ]
}

fn v2_batches(dialect: Dialect) -> Vec<String> {
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
    vec![dialect.render(&batches), dialect.render(&by_state)]
}

fn v3_usage_outbox(dialect: Dialect) -> Vec<String> {
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
    let column = match dialect {
        Dialect::Postgres => column.to_string(PostgresQueryBuilder),
        Dialect::Sqlite => column.to_string(SqliteQueryBuilder),
    };
    vec![column, dialect.render(&pending)]
}

fn v4_extra_usage(dialect: Dialect) -> Vec<String> {
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
    vec![dialect.render(&table), dialect.render(&pending)]
}

fn drop_job_index(dialect: Dialect, name: &str) -> String {
    dialect.render(
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
fn v5_partial_indexes(dialect: Dialect) -> Vec<String> {
    if dialect == Dialect::Sqlite {
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
        dialect.render(&open),
        dialect.render(&keyed),
        drop_job_index(dialect, "tenantry_queue_jobs_claim"),
        drop_job_index(dialect, "tenantry_queue_jobs_idempotency"),
    ]
}

/// Partial indexes of batched jobs and of jobs with usage to record, on PostgreSQL. A new job
/// has neither a batch nor usage, so `submit` used to write a `NULL` entry into both indexes
/// for every job; only jobs that have one are ever looked up by it (every lookup compares with
/// `=`, which PostgreSQL proves implies `IS NOT NULL`, even for a bound value). SQLite keeps its
/// full indexes, as in migration 5.
fn v6_partial_batch_and_usage_indexes(dialect: Dialect) -> Vec<String> {
    if dialect == Dialect::Sqlite {
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
        dialect.render(&batched),
        dialect.render(&usage),
        drop_job_index(dialect, "tenantry_queue_jobs_batch"),
        drop_job_index(dialect, "tenantry_queue_jobs_usage_state"),
    ]
}

/// The membership of each batch record, one record per API batch, and the send time in the
/// API's clock: a reconciliation can then neither adopt an API batch that is already recorded
/// or older than the send, nor lose track of a request whose job moved on after it was sent.
fn v7_batch_membership(dialect: Dialect) -> Vec<String> {
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
    let sent_api_at = match dialect {
        Dialect::Postgres => sent_api_at.to_string(PostgresQueryBuilder),
        Dialect::Sqlite => sent_api_at.to_string(SqliteQueryBuilder),
    };
    vec![
        dialect.render(&members),
        dialect.render(&one_record_per_api_batch),
        sent_api_at,
    ]
}

/// Typed columns for what used to travel as text elsewhere, and the usage dead letter:
/// the budget hold taken at submit (on the job, and copied onto usage billed off the job
/// row, so the usage settles it without reading the job), and why and when usage that
/// cannot be priced was dead-lettered (`usage_state = 'dead'`). One column per statement:
/// SQLite adds one column per `ALTER TABLE`.
fn v8_hold_and_dead_usage(dialect: Dialect) -> Vec<String> {
    let add = |table: TableRef, column: ColumnDef| {
        let alter = Table::alter().table(table).add_column(column).to_owned();
        match dialect {
            Dialect::Postgres => alter.to_string(PostgresQueryBuilder),
            Dialect::Sqlite => alter.to_string(SqliteQueryBuilder),
        }
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

/// Every migration this version of the crate ships, in order.
pub(crate) fn migrations(dialect: Dialect) -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "jobs and events",
            statements: v1_jobs_and_events(dialect),
        },
        Migration {
            version: 2,
            name: "batch records",
            statements: v2_batches(dialect),
        },
        Migration {
            version: 3,
            name: "usage outbox",
            statements: v3_usage_outbox(dialect),
        },
        Migration {
            version: 4,
            name: "usage billed off its job row",
            statements: v4_extra_usage(dialect),
        },
        Migration {
            version: 5,
            name: "partial indexes of open and keyed jobs",
            statements: v5_partial_indexes(dialect),
        },
        Migration {
            version: 6,
            name: "partial indexes of batched jobs and of jobs with usage",
            statements: v6_partial_batch_and_usage_indexes(dialect),
        },
        Migration {
            version: 7,
            name: "batch membership and one record per API batch",
            statements: v7_batch_membership(dialect),
        },
        Migration {
            version: 8,
            name: "hold id column and usage dead letters",
            statements: v8_hold_and_dead_usage(dialect),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_and_unkeyed_jobs_stay_out_of_the_partial_indexes() {
        assert!(v5_partial_indexes(Dialect::Sqlite).is_empty());
        {
            let sql = v5_partial_indexes(Dialect::Postgres).join(";\n");
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
        let pg = v1_jobs_and_events(Dialect::Postgres).join(";\n");
        let lite = v1_jobs_and_events(Dialect::Sqlite).join(";\n");
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
        let versions: Vec<_> = migrations(Dialect::Sqlite)
            .iter()
            .map(|m| m.version)
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.first(), Some(&1));
    }
}
