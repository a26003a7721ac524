//! The command line: every command, flag and its help text.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse;

/// Inspect and repair a tenantry database: migrations, jobs, dead letters, spend, budgets and a
/// health check.
///
/// Exit codes: 0 ok; 1 unexpected error; 2 usage error (bad flag or value); 3 not found;
/// 4 database unavailable; 5 problems found (doctor) or schema not current; 6 refused (the
/// job's state or a budget does not allow it).
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The database: `sqlite:PATH`, `sqlite://PATH` or `postgres://…`.
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL")]
    pub(crate) database: Option<String>,
    /// Print JSON for scripts instead of human tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply the pending migrations of every component (queue, ledger, metrics).
    Migrate(MigrateArgs),
    /// Check the database: schema versions and pending migrations, stuck jobs, dead-lettered
    /// usage, event listeners and the clock offset between this host and the database.
    Doctor(DoctorArgs),
    /// List, show, retry, cancel and purge jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Failed jobs and usage the ledger could not price: list, retry, re-price.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// Spend from the ledger over a period, grouped.
    Spend(SpendArgs),
    /// Show and set budgets.
    #[command(subcommand)]
    Budgets(BudgetsCommand),
    /// Batch records: the batches the queue planned and created at the API.
    #[command(subcommand)]
    Batches(BatchesCommand),
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Show what would be applied without applying it.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Queued or batched jobs unchanged for this long are stuck (`90s`, `15m`, `2h`, `1d`).
    #[arg(long, default_value = "15m", value_parser = parse::duration)]
    pub(crate) stuck_after: Duration,
    /// Submitted jobs unchanged for this long are stuck (the API ends a batch within 24 h).
    #[arg(long, default_value = "25h", value_parser = parse::duration)]
    pub(crate) submitted_stuck_after: Duration,
    /// A clock offset above this between host and database is a problem.
    #[arg(long, default_value = "1s", value_parser = parse::duration)]
    pub(crate) max_clock_offset: Duration,
}

/// A tenant, required by every tenant-scoped command.
#[derive(Debug, Args)]
pub(crate) struct TenantArg {
    /// The tenant.
    #[arg(long, short)]
    pub(crate) tenant: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List a tenant's jobs, newest first.
    List(JobsListArgs),
    /// Show one job.
    Show(JobArgs),
    /// Run failed, canceled or expired jobs again (same job, new attempt, new budget hold).
    Retry(JobsArgs),
    /// Cancel jobs that have not finished.
    Cancel(JobsArgs),
    /// Delete a tenant's jobs finished longer ago than the retention, and older events.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JobsListArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// Only jobs in these states (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub(crate) state: Vec<String>,
    /// Only jobs of this feature.
    #[arg(long)]
    pub(crate) feature: Option<String>,
    /// Only jobs of this user.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Page size (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// The cursor a previous page printed, for the next page.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// The job id.
    pub(crate) id: String,
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// The job ids.
    #[arg(required = true)]
    pub(crate) ids: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// Keep what finished (and events written) within this period (`30d`, `12h`).
    #[arg(long, value_parser = parse::duration)]
    pub(crate) older_than: Duration,
    /// Rows deleted per transaction (1 to 10000).
    #[arg(long, default_value_t = 500)]
    pub(crate) batch_size: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// A tenant's failed jobs and its usage the ledger could not price.
    List(DeadListArgs),
    /// Run failed jobs again: the ids given, or with `--all` every failed job of the tenant.
    Retry(DeadRetryArgs),
    /// Hand unpriced usage back to the engine after the price book was fixed: one job's, or
    /// all of the tenant's.
    Reprice(DeadRepriceArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DeadListArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// How many of each kind.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct DeadRetryArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// The failed jobs to retry.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub(crate) ids: Vec<String>,
    /// Every failed job of the tenant.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeadRepriceArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// Only this job's usage (default: all of the tenant's).
    pub(crate) id: Option<String>,
}

/// How `spend` groups lines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum By {
    Tenant,
    Feature,
    User,
    Model,
    Lane,
}

/// How `spend` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct SpendArgs {
    /// Period start, inclusive (`2026-12-01` or RFC 3339).
    #[arg(long, value_parser = parse::instant)]
    pub(crate) from: time::OffsetDateTime,
    /// Period end, exclusive (`2027-01-01` or RFC 3339).
    #[arg(long, value_parser = parse::instant)]
    pub(crate) to: time::OffsetDateTime,
    /// The grouping.
    #[arg(long, value_enum, default_value_t = By::Tenant)]
    pub(crate) by: By,
    /// Only this tenant's lines.
    #[arg(long, short)]
    pub(crate) tenant: Option<String>,
    /// The output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetsCommand {
    /// The budgets in force for a tenant (and a feature), with this window's spend.
    Show(BudgetShowArgs),
    /// Add a budget policy, in force from now (or `--from`).
    Set(BudgetSetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BudgetShowArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// Also the budget of this feature.
    #[arg(long)]
    pub(crate) feature: Option<String>,
}

/// A budget's window.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BudgetWindow {
    Month,
    Day,
}

#[derive(Debug, Args)]
pub(crate) struct BudgetSetArgs {
    #[command(flatten)]
    pub(crate) tenant: TenantArg,
    /// Limit one feature instead of the whole tenant.
    #[arg(long)]
    pub(crate) feature: Option<String>,
    /// The recurring window the limit applies to.
    #[arg(long, value_enum, default_value_t = BudgetWindow::Month)]
    pub(crate) window: BudgetWindow,
    /// The limit per window in US dollars (`50`, `12.5`, up to nine decimals).
    #[arg(long, value_parser = parse::usd_nanos)]
    pub(crate) limit_usd: i64,
    /// When the policy starts (default: now).
    #[arg(long, value_parser = parse::instant)]
    pub(crate) from: Option<time::OffsetDateTime>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BatchesCommand {
    /// The newest batch records, every tenant's.
    List(BatchListArgs),
    /// One batch record (by the queue's id or the API's) and its jobs.
    Show(BatchArgs),
    /// Makes a submitted batch due now: the next engine step asks the API for its status and
    /// ingests its results if it has ended. Any other state exits 6 with the reason.
    Reconcile(BatchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BatchListArgs {
    /// How many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct BatchArgs {
    /// The queue's batch id (`qb_…`) or the API's (`msgbatch_…`).
    pub(crate) id: String,
}
