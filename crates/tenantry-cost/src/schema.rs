//! The ledger schema, built with sea-query, and the versioned migrations that create it.

use sea_query::{ColumnDef, Expr, ExprTrait, Iden, Index, Table};
use tenantry_core::Lane;
use tenantry_core::db::Backend;
use tenantry_core::migrate::{Component, Migration};

use crate::formula::{
    self, MAX_BATCH_PERMILLE, MAX_GEO_PERMILLE, MAX_RATE, MAX_TENANT_BP, MAX_TOKENS,
};

/// The ledger's schema as a component of the one migration runner: the usage ledger, the
/// multiplier tables, budgets and holds, named `"cost"` in `tenantry_migrations`.
///
/// [`Ledger::migrate`](crate::Ledger::migrate) runs it alone; a host that runs every
/// component's migrations in one call passes it to [`tenantry_core::migrate::migrate`] with
/// the others. A database migrated by an earlier version (which kept its versions in
/// `tenantry_cost_migrations`) is adopted as it is.
pub const MIGRATIONS: Component =
    Component::new("cost", migrations).legacy_table(LEGACY_MIGRATIONS_TABLE);

/// Benchmark baseline only: [`MIGRATIONS`] with plain cost columns, for
/// [`Ledger::postgres_without_generated_columns_for_benchmarks`](crate::Ledger).
pub(crate) const PLAIN_COST_MIGRATIONS: Component =
    Component::new("cost", plain_cost_migrations).legacy_table(LEGACY_MIGRATIONS_TABLE);

/// Where the ledger's own runner recorded its versions before the shared runner existed.
const LEGACY_MIGRATIONS_TABLE: &str = "tenantry_cost_migrations";

fn migrations(backend: Backend) -> Vec<Migration> {
    versions(backend, true)
}

fn plain_cost_migrations(backend: Backend) -> Vec<Migration> {
    versions(backend, false)
}

/// Every migration, oldest first. Released migrations never change: a test pins their
/// checksums.
fn versions(backend: Backend, generated: bool) -> Vec<Migration> {
    vec![
        Migration::new(
            1,
            "usage ledger, multipliers, budgets, reservations",
            migration_1(backend, generated),
        ),
        Migration::new(
            2,
            "reconciliation runs and their differences",
            migration_2(backend),
        ),
        Migration::new(
            3,
            "budget alert thresholds, soft limits and the alerts sent",
            migration_3(backend),
        ),
    ]
}

/// `tenantry_budget_alerts`: one row per threshold a budget crossed in one of its windows. Its
/// key is what makes an alert fire once per threshold per window.
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum BudgetAlert {
    #[iden = "tenantry_budget_alerts"]
    Table,
    BudgetId,
    WindowStart,
    Permille,
    TenantId,
    Feature,
    WindowEnd,
    LimitNanos,
    SpentNanos,
    HeldNanos,
    CrossedAt,
}

/// The statements of migration 3, in order: the budgets' alert thresholds and soft limit
/// (one column per `ALTER TABLE`, as SQLite wants), and the alerts table.
fn migration_3(backend: Backend) -> Vec<String> {
    let add = |column: ColumnDef| {
        backend.render_schema(
            &Table::alter()
                .table(Budget::Table)
                .add_column(column)
                .to_owned(),
        )
    };
    let big = |col: BudgetAlert| ColumnDef::new(col).big_integer().not_null().to_owned();
    let alerts = Table::create()
        .table(BudgetAlert::Table)
        .if_not_exists()
        .col(big(BudgetAlert::BudgetId))
        .col(big(BudgetAlert::WindowStart))
        .col(big(BudgetAlert::Permille))
        .col(ColumnDef::new(BudgetAlert::TenantId).text().not_null())
        .col(ColumnDef::new(BudgetAlert::Feature).text().null())
        .col(big(BudgetAlert::WindowEnd))
        .col(big(BudgetAlert::LimitNanos))
        .col(big(BudgetAlert::SpentNanos))
        .col(big(BudgetAlert::HeldNanos))
        .col(big(BudgetAlert::CrossedAt))
        .primary_key(
            Index::create()
                .col(BudgetAlert::BudgetId)
                .col(BudgetAlert::WindowStart)
                .col(BudgetAlert::Permille),
        )
        .to_owned();
    let by_tenant = Index::create()
        .if_not_exists()
        .name("tenantry_budget_alerts_tenant_idx")
        .table(BudgetAlert::Table)
        .col(BudgetAlert::TenantId)
        .col(BudgetAlert::CrossedAt)
        .to_owned();
    vec![
        add(ColumnDef::new(Budget::AlertPermille)
            .text()
            .null()
            .to_owned()),
        add(ColumnDef::new(Budget::SoftPermille)
            .big_integer()
            .null()
            .to_owned()),
        backend.render_schema(&alerts),
        backend.render_schema(&by_tenant),
    ]
}

/// `tenantry_reconciliation_runs`: one row per reconciliation with the provider's reports.
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum ReconRun {
    #[iden = "tenantry_reconciliation_runs"]
    Table,
    Id,
    RanAt,
    FromDay,
    ToDay,
    Tolerance,
    Differences,
}

/// `tenantry_reconciliation_diffs`: every difference a run found. Amounts are exact decimal
/// strings of 10⁻¹⁸ USD (a month of an organization's spend does not fit an `i64` there).
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum ReconDiff {
    #[iden = "tenantry_reconciliation_diffs"]
    Table,
    RunId,
    Day,
    Scope,
    Model,
    ServiceTier,
    ContextWindow,
    InferenceGeo,
    TokenClass,
    Kind,
    LedgerTokens,
    ProviderTokens,
    LedgerCost,
    ProviderCost,
    LedgerRate,
    ImpliedRate,
}

/// The statements of migration 2, in order.
fn migration_2(backend: Backend) -> Vec<String> {
    let runs = Table::create()
        .table(ReconRun::Table)
        .if_not_exists()
        .col(id_column(backend, ReconRun::Id))
        .col(ColumnDef::new(ReconRun::RanAt).big_integer().not_null())
        .col(ColumnDef::new(ReconRun::FromDay).text().not_null())
        .col(ColumnDef::new(ReconRun::ToDay).text().not_null())
        .col(ColumnDef::new(ReconRun::Tolerance).text().not_null())
        .col(
            ColumnDef::new(ReconRun::Differences)
                .big_integer()
                .not_null(),
        )
        .to_owned();
    let text = |col: ReconDiff| ColumnDef::new(col).text().not_null().to_owned();
    let diffs = Table::create()
        .table(ReconDiff::Table)
        .if_not_exists()
        .col(ColumnDef::new(ReconDiff::RunId).big_integer().not_null())
        .col(text(ReconDiff::Day))
        .col(ColumnDef::new(ReconDiff::Scope).text().null())
        .col(text(ReconDiff::Model))
        .col(text(ReconDiff::ServiceTier))
        .col(text(ReconDiff::ContextWindow))
        .col(text(ReconDiff::InferenceGeo))
        .col(text(ReconDiff::TokenClass))
        .col(text(ReconDiff::Kind))
        .col(
            ColumnDef::new(ReconDiff::LedgerTokens)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(ReconDiff::ProviderTokens)
                .big_integer()
                .not_null(),
        )
        .col(text(ReconDiff::LedgerCost))
        .col(text(ReconDiff::ProviderCost))
        .col(ColumnDef::new(ReconDiff::LedgerRate).big_integer().null())
        .col(ColumnDef::new(ReconDiff::ImpliedRate).big_integer().null())
        .to_owned();
    let index = Index::create()
        .if_not_exists()
        .name("tenantry_reconciliation_diffs_run_idx")
        .table(ReconDiff::Table)
        .col(ReconDiff::RunId)
        .col(ReconDiff::Day)
        .to_owned();
    vec![
        backend.render_schema(&runs),
        backend.render_schema(&diffs),
        backend.render_schema(&index),
    ]
}

/// The value of the `lane` column for `lane`: `'batch'`, or `'sync'` for the urgent lane.
///
/// The ledger stored the urgent lane as `'sync'` before the lanes got one name across the
/// crates, and stored values are data: the column's `CHECK`, the rows already written, spend
/// reports grouped by lane and the metrics that read the column all know `'sync'`. Rewriting
/// them would need a table rebuild on SQLite (a `CHECK` cannot be altered), so this function
/// and [`lane_from_column`] are the one place the two spellings meet. A lane this version does
/// not know is stored under its own name, which the `CHECK` refuses.
pub(crate) fn lane_column(lane: Lane) -> &'static str {
    match lane {
        Lane::Urgent => "sync",
        other => other.as_str(),
    }
}

/// The lane of a stored `lane` value (see [`lane_column`]); `None` for a value this version
/// does not know.
pub(crate) fn lane_from_column(value: &str) -> Option<Lane> {
    match value {
        "sync" => Some(Lane::Urgent),
        "batch" => Some(Lane::Batch),
        _ => None,
    }
}

/// `tenantry_usage`, the append-only ledger (its contract with the metrics crate is in the
/// crate docs).
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum Usage {
    #[iden = "tenantry_usage"]
    Table,
    Id,
    TenantId,
    UserId,
    Feature,
    Model,
    Lane,
    OccurredAt,
    InputTokens,
    #[iden = "cache_write_5m_tokens"]
    CacheWrite5mTokens,
    #[iden = "cache_write_1h_tokens"]
    CacheWrite1hTokens,
    CacheReadTokens,
    OutputTokens,
    CostNanos,
    StandardCostNanos,
    Source,
    RequestId,
    JobId,
    BatchId,
    CorrectsId,
    PriceId,
    ContextTier,
    InputRate,
    #[iden = "cache_write_5m_rate"]
    CacheWrite5mRate,
    #[iden = "cache_write_1h_rate"]
    CacheWrite1hRate,
    CacheReadRate,
    OutputRate,
    BatchPermille,
    GeoPermille,
    TierBp,
    RegionBp,
    InferenceGeo,
    FeatureTier,
    Region,
    RecordedAt,
}

/// `tenantry_feature_tiers` and `tenantry_regions`: effective-dated multipliers by name.
#[derive(Debug, Clone, Copy, Iden)]
#[allow(clippy::enum_variant_names)] // the column is named `multiplier_bp`
pub(crate) enum Multiplier {
    Name,
    EffectiveFrom,
    MultiplierBp,
}

/// The two multiplier tables.
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum MultiplierTable {
    #[iden = "tenantry_feature_tiers"]
    FeatureTiers,
    #[iden = "tenantry_regions"]
    Regions,
}

/// `tenantry_budgets`: effective-dated budget policies.
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum Budget {
    #[iden = "tenantry_budgets"]
    Table,
    Id,
    TenantId,
    Feature,
    Period,
    PeriodMicros,
    LimitNanos,
    EffectiveFrom,
    /// The alert thresholds, per mille of the limit, as a JSON array (NULL: none).
    AlertPermille,
    /// The soft limit, per mille of the limit (NULL: none).
    SoftPermille,
}

/// `tenantry_reservations`: the holds, money held for requests in flight (the table keeps the
/// name it was released with).
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum Reservation {
    #[iden = "tenantry_reservations"]
    Table,
    Id,
    TenantId,
    Feature,
    AmountNanos,
    CreatedAt,
    ExpiresAt,
    State,
    LineId,
}

/// The identity column: `BIGINT GENERATED ALWAYS AS IDENTITY` on PostgreSQL (sea-query's
/// `auto_increment` renders `BY DEFAULT`, so the clause is spelled out), and SQLite's
/// `INTEGER PRIMARY KEY` (the rowid alias; `BIGINT PRIMARY KEY` would not be one).
fn id_column<T: Iden + 'static>(backend: Backend, col: T) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    if backend == Backend::Postgres {
        def.big_integer()
            .not_null()
            .extra("GENERATED ALWAYS AS IDENTITY")
            .primary_key();
    } else {
        def.integer().not_null().primary_key();
    }
    def
}

fn bounded(col: Usage, min: i64, max: i64) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .check(Expr::col(col).between(min, max))
        .to_owned()
}

/// The `CREATE TABLE tenantry_usage` statement. With `generated = false` the two cost
/// columns are plain nullable `BIGINT`s: only the benchmark uses that, to measure what the
/// generated columns cost.
pub(crate) fn usage_table(backend: Backend, generated: bool) -> String {
    let cost_col = |col: Usage, standard: bool| {
        let mut def = ColumnDef::new(col);
        def.big_integer();
        if generated {
            let expr = if backend == Backend::Postgres {
                formula::postgres_expr(standard)
            } else {
                formula::sqlite_expr(standard)
            };
            def.generated(expr, true);
        }
        def
    };
    let text = |col: Usage| ColumnDef::new(col).text().not_null().to_owned();
    let text_null = |col: Usage| ColumnDef::new(col).text().null().to_owned();
    let stmt = Table::create()
        .table(Usage::Table)
        .if_not_exists()
        .col(id_column(backend, Usage::Id))
        .col(text(Usage::TenantId))
        .col(text_null(Usage::UserId))
        .col(text(Usage::Feature))
        .col(text(Usage::Model))
        .col(ColumnDef::new(Usage::Lane).text().not_null().check(
            Expr::col(Usage::Lane).is_in([lane_column(Lane::Batch), lane_column(Lane::Urgent)]),
        ))
        .col(ColumnDef::new(Usage::OccurredAt).big_integer().not_null())
        .col(bounded(Usage::InputTokens, -MAX_TOKENS, MAX_TOKENS))
        .col(bounded(Usage::CacheWrite5mTokens, -MAX_TOKENS, MAX_TOKENS))
        .col(bounded(Usage::CacheWrite1hTokens, -MAX_TOKENS, MAX_TOKENS))
        .col(bounded(Usage::CacheReadTokens, -MAX_TOKENS, MAX_TOKENS))
        .col(bounded(Usage::OutputTokens, -MAX_TOKENS, MAX_TOKENS))
        .col(cost_col(Usage::CostNanos, false))
        .col(cost_col(Usage::StandardCostNanos, true))
        .col(text(Usage::Source))
        .col(text(Usage::RequestId))
        .col(text_null(Usage::JobId))
        .col(text_null(Usage::BatchId))
        .col(ColumnDef::new(Usage::CorrectsId).big_integer().null())
        .col(text(Usage::PriceId))
        .col(text(Usage::ContextTier))
        .col(bounded(Usage::InputRate, 0, MAX_RATE))
        .col(bounded(Usage::CacheWrite5mRate, 0, MAX_RATE))
        .col(bounded(Usage::CacheWrite1hRate, 0, MAX_RATE))
        .col(bounded(Usage::CacheReadRate, 0, MAX_RATE))
        .col(bounded(Usage::OutputRate, 0, MAX_RATE))
        .col(bounded(Usage::BatchPermille, 0, MAX_BATCH_PERMILLE))
        .col(bounded(Usage::GeoPermille, 0, MAX_GEO_PERMILLE))
        .col(bounded(Usage::TierBp, 0, MAX_TENANT_BP))
        .col(bounded(Usage::RegionBp, 0, MAX_TENANT_BP))
        .col(text_null(Usage::InferenceGeo))
        .col(text_null(Usage::FeatureTier))
        .col(text_null(Usage::Region))
        .col(ColumnDef::new(Usage::RecordedAt).big_integer().not_null())
        .to_owned();
    backend.render_schema(&stmt)
}

fn multiplier_table(backend: Backend, table: MultiplierTable) -> String {
    let stmt = Table::create()
        .table(table)
        .if_not_exists()
        .col(ColumnDef::new(Multiplier::Name).text().not_null())
        .col(
            ColumnDef::new(Multiplier::EffectiveFrom)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Multiplier::MultiplierBp)
                .big_integer()
                .not_null()
                .check(Expr::col(Multiplier::MultiplierBp).between(0, MAX_TENANT_BP)),
        )
        .primary_key(
            Index::create()
                .col(Multiplier::Name)
                .col(Multiplier::EffectiveFrom),
        )
        .to_owned();
    backend.render_schema(&stmt)
}

/// The statements of migration 1, in order.
fn migration_1(backend: Backend, generated: bool) -> Vec<String> {
    let budgets = Table::create()
        .table(Budget::Table)
        .if_not_exists()
        .col(id_column(backend, Budget::Id))
        .col(ColumnDef::new(Budget::TenantId).text().not_null())
        .col(ColumnDef::new(Budget::Feature).text().null())
        .col(
            ColumnDef::new(Budget::Period)
                .text()
                .not_null()
                .check(Expr::col(Budget::Period).is_in(["month", "day", "custom"])),
        )
        .col(ColumnDef::new(Budget::PeriodMicros).big_integer().null())
        .col(
            ColumnDef::new(Budget::LimitNanos)
                .big_integer()
                .not_null()
                .check(Expr::col(Budget::LimitNanos).gte(0)),
        )
        .col(
            ColumnDef::new(Budget::EffectiveFrom)
                .big_integer()
                .not_null(),
        )
        .to_owned();
    let reservations = Table::create()
        .table(Reservation::Table)
        .if_not_exists()
        .col(id_column(backend, Reservation::Id))
        .col(ColumnDef::new(Reservation::TenantId).text().not_null())
        .col(ColumnDef::new(Reservation::Feature).text().not_null())
        .col(
            ColumnDef::new(Reservation::AmountNanos)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Reservation::CreatedAt)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Reservation::ExpiresAt)
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Reservation::State)
                .text()
                .not_null()
                .check(Expr::col(Reservation::State).is_in(["held", "settled", "released"])),
        )
        .col(ColumnDef::new(Reservation::LineId).big_integer().null())
        .to_owned();
    let indexes = [
        Index::create()
            .if_not_exists()
            .name("tenantry_usage_source_request_key")
            .table(Usage::Table)
            .col(Usage::Source)
            .col(Usage::RequestId)
            .unique()
            .to_owned(),
        Index::create()
            .if_not_exists()
            .name("tenantry_usage_tenant_time_idx")
            .table(Usage::Table)
            .col(Usage::TenantId)
            .col(Usage::OccurredAt)
            .to_owned(),
        Index::create()
            .if_not_exists()
            .name("tenantry_budgets_tenant_idx")
            .table(Budget::Table)
            .col(Budget::TenantId)
            .col(Budget::EffectiveFrom)
            .to_owned(),
        Index::create()
            .if_not_exists()
            .name("tenantry_reservations_tenant_idx")
            .table(Reservation::Table)
            .col(Reservation::TenantId)
            .col(Reservation::State)
            .to_owned(),
    ];
    let mut out = vec![
        usage_table(backend, generated),
        multiplier_table(backend, MultiplierTable::FeatureTiers),
        multiplier_table(backend, MultiplierTable::Regions),
        backend.render_schema(&budgets),
        backend.render_schema(&reservations),
    ];
    out.extend(indexes.iter().map(|i| backend.render_schema(i)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lane_has_one_stored_value_that_reads_back() {
        assert_eq!(lane_column(Lane::Batch), "batch");
        assert_eq!(lane_column(Lane::Urgent), "sync");
        for lane in Lane::ALL {
            assert_eq!(lane_from_column(lane_column(lane)), Some(lane));
        }
        assert_eq!(lane_from_column("urgent"), None);
    }

    #[test]
    fn usage_table_renders_contract_columns() {
        let pg = usage_table(Backend::Postgres, true);
        assert!(
            pg.contains(r#""id" bigint NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY"#)
                || pg.contains("GENERATED ALWAYS AS IDENTITY"),
            "{pg}"
        );
        assert!(
            pg.contains(r#""cost_nanos" bigint GENERATED ALWAYS AS (CAST(ROUND("#),
            "{pg}"
        );
        assert!(pg.contains("STORED"));
        let lite = usage_table(Backend::Sqlite, true);
        assert!(
            lite.contains(r#""id" integer NOT NULL PRIMARY KEY"#),
            "{lite}"
        );
        assert!(
            lite.contains(r#""standard_cost_nanos" integer GENERATED ALWAYS AS ("#),
            "{lite}"
        );
        println!("{pg}");
    }
}
