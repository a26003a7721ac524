//! The usage ledger: idempotent, append-only recording of priced usage lines.

use std::collections::HashMap;
use std::sync::Arc;

use sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;
use tenantry_core::db::{Backend, Pool};

use crate::error::{Error, Result};
use crate::formula::{self, ContextTier, LineCost, RateSnapshot, Rates, TokenBuckets};
use crate::price_book::{PriceBook, PriceQuery};
use crate::schema::{self, MultiplierTable, Usage};
use tenantry_core::Lane;
use tenantry_core::{TenantId, UnixMicros};

/// One usage event to record in the ledger: who, what, when, and the exclusive token buckets.
/// (The queue's `UsageRecord` is the billed usage of one request as the API reported it; an
/// entry is what the ledger charges for it.) Read back, it is a [`LedgerLine`].
///
/// `(source, request_id)` is the idempotency key: recording the same pair twice yields one line.
/// The key names one provider request, which belongs to one tenant: the same pair with another
/// tenant, model or tokens is refused with [`Error::KeyConflict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedgerEntry {
    /// Who reports the usage (e.g. `anthropic-batch`, `anthropic-messages`).
    pub source: String,
    /// The provider's request id (or batch custom id), unique within `source`.
    pub request_id: String,
    /// The tenant charged.
    pub tenant_id: TenantId,
    /// The end user, when known.
    pub user_id: Option<String>,
    /// The product feature that made the call.
    pub feature: String,
    /// The model as the provider reported it (id, alias or dated id).
    pub model: String,
    /// Batch or synchronous.
    pub lane: Lane,
    /// When the usage happened; prices effective then apply.
    pub occurred_at: UnixMicros,
    /// The job that made the call, if any.
    pub job_id: Option<String>,
    /// The provider batch id, for batch usage.
    pub batch_id: Option<String>,
    /// Exclusive token buckets.
    pub tokens: TokenBuckets,
    /// `usage.inference_geo`, if reported.
    pub inference_geo: Option<String>,
    /// Name of the host's feature tier whose multiplier applies (none = 1×).
    pub feature_tier: Option<String>,
    /// Name of the host's region whose multiplier applies (none = 1×).
    pub region: Option<String>,
}

impl LedgerEntry {
    /// An entry with its idempotency key `(source, request_id)`, who is charged, for what and
    /// when; no tokens yet ([`with_tokens`](Self::with_tokens)), no user, job, batch,
    /// residency or multipliers (set the public fields).
    #[must_use]
    pub fn new(
        source: impl Into<String>,
        request_id: impl Into<String>,
        tenant_id: TenantId,
        feature: impl Into<String>,
        model: impl Into<String>,
        lane: Lane,
        occurred_at: UnixMicros,
    ) -> Self {
        Self {
            source: source.into(),
            request_id: request_id.into(),
            tenant_id,
            user_id: None,
            feature: feature.into(),
            model: model.into(),
            lane,
            occurred_at,
            job_id: None,
            batch_id: None,
            tokens: TokenBuckets::default(),
            inference_geo: None,
            feature_tier: None,
            region: None,
        }
    }

    /// Sets the exclusive token buckets charged.
    #[must_use]
    pub fn with_tokens(mut self, tokens: TokenBuckets) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets the end user.
    #[must_use]
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the provider batch id, for batch usage.
    #[must_use]
    pub fn with_batch(mut self, batch_id: impl Into<String>) -> Self {
        self.batch_id = Some(batch_id.into());
        self
    }
}

/// The answer to [`Ledger::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Recorded {
    /// The ledger line (the existing one for a duplicate).
    pub line_id: i64,
    /// `true` when `(source, request_id)` was already recorded; nothing was added.
    pub duplicate: bool,
    /// The line's cost, as stored.
    pub cost: LineCost,
}

/// A ledger line read back, with everything needed to re-derive its cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedgerLine {
    /// Line id.
    pub id: i64,
    /// The usage as recorded (tokens negated on a reversal).
    pub record: LedgerEntry,
    /// The rate snapshot stored on the row.
    pub snapshot: RateSnapshot,
    /// The costs stored by the generated columns.
    pub stored: LineCost,
    /// The line this one corrects, for correction rows.
    pub corrects_id: Option<i64>,
}

impl LedgerLine {
    /// Recomputes the cost from the row alone, with [`formula::line_cost`].
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] only if the row breaks the ranges the database's `CHECK`s enforce.
    pub fn rederive(&self) -> Result<LineCost> {
        formula::line_cost(&self.record.tokens, &self.snapshot)
    }
}

/// The usage ledger on PostgreSQL or SQLite.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_cost::{Lane, Ledger, PriceBook, TokenBuckets, UnixMicros, LedgerEntry};
/// // One connection: every connection to `sqlite::memory:` is its own database.
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
///     .connect("sqlite::memory:").await?;
/// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
/// ledger.migrate().await?;
/// let at = UnixMicros::from_ymd(2026, 3, 1)?;
/// let usage = LedgerEntry::new("anthropic-batch", "msgbatch_01:req-1", "acme".parse()?,
///         "summaries", "claude-haiku-4-5", Lane::Batch, at)
///     .with_batch("msgbatch_01")
///     .with_tokens(TokenBuckets { input: 2_000, output: 500, ..Default::default() });
/// let first = ledger.record(&usage).await?;
/// assert_eq!(first.cost.cost.get(), 2_250_000); // (2000 × $1 + 500 × $5) / 1M × 0.5
/// let again = ledger.record(&usage).await?;
/// assert!(again.duplicate && again.line_id == first.line_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Ledger {
    pub(crate) pool: Pool,
    pub(crate) book: Arc<PriceBook>,
    /// Benchmark baseline only: the cost columns are plain and the ledger writes Rust's values.
    plain_cost_columns: bool,
    /// Where fired budget alerts are written besides the ledger's own table.
    pub(crate) alerts: Option<Arc<dyn crate::alert::AlertSink>>,
}

impl Ledger {
    /// A ledger on PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[must_use]
    pub fn postgres(pool: PgPool, book: PriceBook) -> Self {
        Self {
            pool: Pool::from(pool),
            book: Arc::new(book),
            plain_cost_columns: false,
            alerts: None,
        }
    }

    /// A ledger on SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    #[must_use]
    pub fn sqlite(pool: SqlitePool, book: PriceBook) -> Self {
        Self {
            pool: Pool::from(pool),
            book: Arc::new(book),
            plain_cost_columns: false,
            alerts: None,
        }
    }

    /// The price book used to price new lines.
    #[must_use]
    pub fn price_book(&self) -> &PriceBook {
        &self.book
    }

    /// Creates or upgrades the schema: the ledger's [`MIGRATIONS`](crate::MIGRATIONS) through
    /// the shared migration runner. Idempotent, and safe to run from several processes at once
    /// (PostgreSQL: an advisory lock; SQLite: `BEGIN IMMEDIATE`). Applied versions are kept in
    /// `tenantry_migrations` under the component `cost`.
    ///
    /// # Errors
    ///
    /// [`Error::Migrate`] for a database migrated by a newer version or a shipped migration
    /// that differs from the applied one (nothing is changed), [`Error::Database`] when a
    /// statement fails.
    pub async fn migrate(&self) -> Result<()> {
        let component = if self.plain_cost_columns {
            &schema::PLAIN_COST_MIGRATIONS
        } else {
            &schema::MIGRATIONS
        };
        tenantry_core::migrate::migrate(&self.pool, &[component]).await?;
        Ok(())
    }

    /// Benchmark baseline only: a ledger whose `migrate` creates `cost_nanos` and
    /// `standard_cost_nanos` as plain columns, and whose inserts write the values computed in
    /// Rust, so a benchmark can compare the generated columns with an application-computed
    /// cost of the same row width. Never use it for a real ledger.
    #[doc(hidden)]
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres_without_generated_columns_for_benchmarks(
        pool: PgPool,
        book: PriceBook,
    ) -> Self {
        Self {
            plain_cost_columns: true,
            ..Self::postgres(pool, book)
        }
    }

    /// Prices a record with the price book alone (tier and region at 1×).
    ///
    /// # Errors
    ///
    /// As [`PriceBook::snapshot`] and [`formula::line_cost`].
    pub fn snapshot(&self, record: &LedgerEntry) -> Result<RateSnapshot> {
        record.tokens.validate()?;
        self.book.snapshot(&PriceQuery {
            model: &record.model,
            at: record.occurred_at,
            lane: record.lane,
            inference_geo: record.inference_geo.as_deref(),
            prompt_tokens: record.tokens.prompt_tokens(),
        })
    }

    /// Records one usage line, idempotently on `(source, request_id)`: the same usage again
    /// (same tenant, model and tokens) answers the existing line with `duplicate: true`.
    ///
    /// The rate snapshot (price-book row, rates, batch and data-residency multipliers, and the
    /// feature-tier and region multipliers effective at `occurred_at`) is copied into the row;
    /// the generated columns compute the cost from it.
    ///
    /// # Errors
    ///
    /// [`Error::KeyConflict`] when the key is already recorded for another tenant or with
    /// other usage (nothing is recorded), [`Error::UnknownModel`], [`Error::NoRateAt`],
    /// [`Error::UnsupportedModifier`], [`Error::UnknownMultiplier`], [`Error::OutOfRange`],
    /// [`Error::Database`].
    pub async fn record(&self, record: &LedgerEntry) -> Result<Recorded> {
        self.record_inner(record, None, None).await
    }

    /// Records a reversal of `line_id`: a new row with every token negated, the original's rate
    /// snapshot and `corrects_id = line_id`, so it cancels the original exactly. Idempotent on
    /// `(source, request_id)` like [`Ledger::record`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown line, [`Error::Database`].
    pub async fn reverse(&self, line_id: i64, source: &str, request_id: &str) -> Result<Recorded> {
        let original = self.line(line_id).await?;
        let mut rec = original.record.clone();
        rec.source = source.to_owned();
        rec.request_id = request_id.to_owned();
        rec.tokens = rec.tokens.negated();
        self.record_inner(&rec, Some(original.snapshot), Some(line_id))
            .await
    }

    pub(crate) async fn record_inner(
        &self,
        record: &LedgerEntry,
        fixed_snapshot: Option<RateSnapshot>,
        corrects: Option<i64>,
    ) -> Result<Recorded> {
        let snapshot = match fixed_snapshot {
            Some(s) => s,
            None => self.full_snapshot(record, &mut HashMap::new()).await?,
        };
        self.insert_one(record, &snapshot, corrects, None).await
    }

    /// The price-book snapshot plus the feature-tier and region multipliers effective at
    /// `occurred_at` (looked up once per name and time in `cache`).
    pub(crate) async fn full_snapshot(
        &self,
        record: &LedgerEntry,
        cache: &mut HashMap<(&'static str, String, UnixMicros), i64>,
    ) -> Result<RateSnapshot> {
        let mut snapshot = self.snapshot(record)?;
        for (kind, table, name) in [
            (
                "feature tier",
                MultiplierTable::FeatureTiers,
                &record.feature_tier,
            ),
            ("region", MultiplierTable::Regions, &record.region),
        ] {
            let Some(name) = name else { continue };
            let key = (kind, name.clone(), record.occurred_at);
            let bp = match cache.get(&key) {
                Some(bp) => *bp,
                None => {
                    let sel = crate::multiplier::effective_select(table, name, record.occurred_at);
                    let found: Option<(i64,)> = self.pool.fetch_optional(&sel).await?;
                    let bp = found
                        .map(|(bp,)| bp)
                        .ok_or_else(|| Error::UnknownMultiplier {
                            kind,
                            name: name.clone(),
                            at_micros: record.occurred_at.0,
                        })?;
                    cache.insert(key, bp);
                    bp
                }
            };
            match kind {
                "region" => snapshot.region_bp = bp,
                _ => snapshot.tier_bp = bp,
            }
        }
        Ok(snapshot)
    }

    /// Records a line priced with a snapshot the caller supplies (imported lines, contract
    /// prices, audits), idempotently like [`Ledger::record`].
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for tokens, rates or multipliers outside the formula's ranges;
    /// [`Error::Database`].
    pub async fn record_priced(
        &self,
        record: &LedgerEntry,
        snapshot: &RateSnapshot,
    ) -> Result<Recorded> {
        self.insert_one(record, snapshot, None, None).await
    }

    /// Inserts one priced line (and, when `settle` is given, settles that hold in the
    /// same transaction, under the tenant's budget lock).
    pub(crate) async fn insert_one(
        &self,
        record: &LedgerEntry,
        snapshot: &RateSnapshot,
        corrects: Option<i64>,
        settle: Option<i64>,
    ) -> Result<Recorded> {
        let cost = formula::line_cost(&record.tokens, snapshot)?;
        let mut insert = insert_usage(
            &[(record, snapshot, corrects)],
            UnixMicros::now(),
            self.plain_cost_columns,
        )?;
        insert.returning_col(Usage::Id);
        let existing = Query::select()
            .columns([Usage::Id, Usage::CostNanos, Usage::StandardCostNanos])
            .columns(KEY_OWNER_COLUMNS)
            .from(Usage::Table)
            .and_where(Expr::col(Usage::Source).eq(record.source.as_str()))
            .and_where(Expr::col(Usage::RequestId).eq(record.request_id.as_str()))
            .to_owned();
        let mut tx = self.pool.begin().await?;
        if settle.is_some() && tx.backend() == Backend::Postgres {
            // The rows are only locked, not read: running the `FOR UPDATE` is the point.
            tx.execute(&crate::budget::lock_budgets(record.tenant_id.as_str()))
                .await?;
        }
        let inserted: Option<(i64,)> = tx.fetch_optional(&insert).await?;
        let recorded = match inserted {
            Some((line_id,)) => Recorded {
                line_id,
                duplicate: false,
                cost,
            },
            None => {
                let row: ExistingLine = tx.fetch_one(&existing).await?;
                // The key is taken: it is this usage again only if it is the same tenant's
                // same tokens; anything else is refused, never answered with another line
                // (possibly another tenant's).
                if !row.owner.matches(record) {
                    return Err(Error::KeyConflict {
                        key_source: record.source.clone(),
                        request_id: record.request_id.clone(),
                    });
                }
                Recorded {
                    line_id: row.id,
                    duplicate: true,
                    cost: LineCost {
                        cost: crate::Nanos(row.cost_nanos),
                        standard_cost: crate::Nanos(row.standard_cost_nanos),
                    },
                }
            }
        };
        if let Some(hold) = settle {
            let close = crate::hold::close_hold(
                hold,
                if recorded.duplicate {
                    "released"
                } else {
                    "settled"
                },
                Some(recorded.line_id),
                Some(record.tenant_id.as_str()),
            );
            tx.execute(&close).await?;
        }
        let mut alerts = Vec::new();
        if !recorded.duplicate {
            // Settled spend counts as much as holds: the line may take a budget to a threshold
            // (usage above its hold's estimate, or recorded without a hold).
            let at = record.occurred_at;
            let statuses =
                crate::budget::load_alerting(&mut tx, &record.tenant_id, &record.feature, at)
                    .await?;
            if !statuses.is_empty() {
                let used: Vec<_> = statuses
                    .into_iter()
                    .map(|s| {
                        let total = s.spent.0.saturating_add(s.held.0);
                        (s, total)
                    })
                    .collect();
                alerts = crate::alert::fire(&mut tx, self.alert_sink(), &used, at).await?;
            }
        }
        self.commit_alerts(tx, &alerts).await?;
        Ok(recorded)
    }

    /// Records many lines in one transaction with multi-row inserts, skipping duplicates.
    /// Returns how many lines were added. For bulk ingestion (e.g. a batch's results); use
    /// [`Ledger::record`] to learn each line's id.
    ///
    /// Budget alert thresholds are not checked here (it reads no budget, so it also writes to a
    /// ledger whose budgets a later migration has not reached yet): spend recorded in bulk
    /// counts toward the next [`Ledger::hold`], [`Ledger::record`] or [`Ledger::settle`], which
    /// fire the thresholds it reached.
    ///
    /// # Errors
    ///
    /// As [`Ledger::record`]; nothing is recorded when any record fails to price or any key
    /// conflicts.
    pub async fn record_batch(&self, records: &[LedgerEntry]) -> Result<u64> {
        let mut cache = HashMap::new();
        let mut priced = Vec::with_capacity(records.len());
        for r in records {
            priced.push((r.clone(), self.full_snapshot(r, &mut cache).await?));
        }
        self.record_batch_priced(&priced).await
    }

    /// [`Ledger::record_batch`] with snapshots the caller supplies, as [`Ledger::record_priced`].
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] or [`Error::KeyConflict`] (nothing is recorded),
    /// [`Error::Database`].
    pub async fn record_batch_priced(&self, rows: &[(LedgerEntry, RateSnapshot)]) -> Result<u64> {
        for (r, s) in rows {
            r.tokens.validate()?;
            s.validate()?;
        }
        let now = UnixMicros::now();
        // 31 bound values per row; 1,000 rows stay far below PostgreSQL's 65,535 limit.
        const CHUNK: usize = 1_000;
        let refs: Vec<_> = rows.iter().map(|(r, s)| (r, s, None)).collect();
        let mut inserts = Vec::new();
        for chunk in refs.chunks(CHUNK) {
            inserts.push(insert_usage(chunk, now, self.plain_cost_columns)?);
        }
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for (insert, chunk) in inserts.iter().zip(rows.chunks(CHUNK)) {
            let inserted = tx.execute(insert).await?;
            added += inserted;
            if usize::try_from(inserted).is_ok_and(|n| n == chunk.len()) {
                continue;
            }
            // Some keys were taken (earlier, or twice in this chunk): each must be the same
            // tenant's same usage, or the whole call is refused and rolled back.
            let keys: Vec<&str> = chunk.iter().map(|(r, _)| r.request_id.as_str()).collect();
            let owners = Query::select()
                .columns([Usage::Source, Usage::RequestId])
                .columns(KEY_OWNER_COLUMNS)
                .from(Usage::Table)
                .and_where(Expr::col(Usage::RequestId).is_in(keys))
                .to_owned();
            let found: Vec<KeyHolder> = tx.fetch_all(&owners).await?;
            let by_key: HashMap<(String, String), KeyOwner> = found
                .into_iter()
                .map(|row| ((row.source, row.request_id), row.owner))
                .collect();
            for (r, _) in chunk {
                let key = (r.source.clone(), r.request_id.clone());
                if !by_key.get(&key).is_some_and(|owner| owner.matches(r)) {
                    return Err(Error::KeyConflict {
                        key_source: r.source.clone(),
                        request_id: r.request_id.clone(),
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Reads one line back.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Database`].
    pub async fn line(&self, line_id: i64) -> Result<LedgerLine> {
        let sel = Query::select()
            .columns(LINE_COLUMNS)
            .from(Usage::Table)
            .and_where(Expr::col(Usage::Id).eq(line_id))
            .to_owned();
        let row: Option<LineRow> = self.pool.fetch_optional(&sel).await?;
        row.ok_or(Error::NotFound {
            kind: "line",
            id: line_id,
        })?
        .into_line()
    }

    /// Reads every line of a tenant, oldest first (for audits and tests).
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; [`Error::InvalidRow`] for a stored row this version cannot read.
    pub async fn lines(&self, tenant_id: &TenantId) -> Result<Vec<LedgerLine>> {
        let sel = Query::select()
            .columns(LINE_COLUMNS)
            .from(Usage::Table)
            .and_where(Expr::col(Usage::TenantId).eq(tenant_id.as_str()))
            .order_by(Usage::Id, Order::Asc)
            .to_owned();
        let rows: Vec<LineRow> = self.pool.fetch_all(&sel).await?;
        rows.into_iter().map(LineRow::into_line).collect()
    }
}

/// What a line's idempotency key is checked against when it comes back: the tenant charged,
/// the model and the token buckets. The time and the tier or region of a second delivery are
/// read when it is delivered and may differ, so they are not compared.
const KEY_OWNER_COLUMNS: [Usage; 7] = [
    Usage::TenantId,
    Usage::Model,
    Usage::InputTokens,
    Usage::CacheWrite5mTokens,
    Usage::CacheWrite1hTokens,
    Usage::CacheReadTokens,
    Usage::OutputTokens,
];

/// The stored line that holds a key, as far as [`KEY_OWNER_COLUMNS`] tell.
#[derive(sqlx::FromRow)]
struct KeyOwner {
    tenant_id: String,
    model: String,
    input_tokens: i64,
    cache_write_5m_tokens: i64,
    cache_write_1h_tokens: i64,
    cache_read_tokens: i64,
    output_tokens: i64,
}

/// The line already recorded under a key, with its stored cost.
#[derive(sqlx::FromRow)]
struct ExistingLine {
    id: i64,
    cost_nanos: i64,
    standard_cost_nanos: i64,
    #[sqlx(flatten)]
    owner: KeyOwner,
}

/// A key and the line that holds it.
#[derive(sqlx::FromRow)]
struct KeyHolder {
    source: String,
    request_id: String,
    #[sqlx(flatten)]
    owner: KeyOwner,
}

impl KeyOwner {
    /// Whether `record` is the usage this line already charged.
    fn matches(&self, record: &LedgerEntry) -> bool {
        let tokens = TokenBuckets {
            input: self.input_tokens,
            cache_write_5m: self.cache_write_5m_tokens,
            cache_write_1h: self.cache_write_1h_tokens,
            cache_read: self.cache_read_tokens,
            output: self.output_tokens,
        };
        self.tenant_id == record.tenant_id.as_str()
            && self.model == record.model
            && tokens == record.tokens
    }
}

const LINE_COLUMNS: [Usage; 34] = [
    Usage::Id,
    Usage::TenantId,
    Usage::UserId,
    Usage::Feature,
    Usage::Model,
    Usage::Lane,
    Usage::OccurredAt,
    Usage::InputTokens,
    Usage::CacheWrite5mTokens,
    Usage::CacheWrite1hTokens,
    Usage::CacheReadTokens,
    Usage::OutputTokens,
    Usage::CostNanos,
    Usage::StandardCostNanos,
    Usage::Source,
    Usage::RequestId,
    Usage::JobId,
    Usage::BatchId,
    Usage::CorrectsId,
    Usage::PriceId,
    Usage::ContextTier,
    Usage::InputRate,
    Usage::CacheWrite5mRate,
    Usage::CacheWrite1hRate,
    Usage::CacheReadRate,
    Usage::OutputRate,
    Usage::BatchPermille,
    Usage::GeoPermille,
    Usage::TierBp,
    Usage::RegionBp,
    Usage::InferenceGeo,
    Usage::FeatureTier,
    Usage::Region,
    Usage::RecordedAt,
];

/// A row of [`LINE_COLUMNS`], as stored.
#[derive(sqlx::FromRow)]
struct LineRow {
    id: i64,
    tenant_id: String,
    user_id: Option<String>,
    feature: String,
    model: String,
    lane: String,
    occurred_at: i64,
    input_tokens: i64,
    cache_write_5m_tokens: i64,
    cache_write_1h_tokens: i64,
    cache_read_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
    standard_cost_nanos: i64,
    source: String,
    request_id: String,
    job_id: Option<String>,
    batch_id: Option<String>,
    corrects_id: Option<i64>,
    price_id: String,
    context_tier: String,
    input_rate: i64,
    cache_write_5m_rate: i64,
    cache_write_1h_rate: i64,
    cache_read_rate: i64,
    output_rate: i64,
    batch_permille: i64,
    geo_permille: i64,
    tier_bp: i64,
    region_bp: i64,
    inference_geo: Option<String>,
    feature_tier: Option<String>,
    region: Option<String>,
}

impl LineRow {
    fn into_line(self) -> Result<LedgerLine> {
        let lane = schema::lane_from_column(&self.lane)
            .ok_or_else(|| Error::InvalidRow(format!("unknown lane `{}`", self.lane)))?;
        Ok(LedgerLine {
            id: self.id,
            record: LedgerEntry {
                tenant_id: stored_tenant(self.tenant_id)?,
                user_id: self.user_id,
                feature: self.feature,
                model: self.model,
                lane,
                occurred_at: UnixMicros(self.occurred_at),
                tokens: TokenBuckets {
                    input: self.input_tokens,
                    cache_write_5m: self.cache_write_5m_tokens,
                    cache_write_1h: self.cache_write_1h_tokens,
                    cache_read: self.cache_read_tokens,
                    output: self.output_tokens,
                },
                source: self.source,
                request_id: self.request_id,
                job_id: self.job_id,
                batch_id: self.batch_id,
                inference_geo: self.inference_geo,
                feature_tier: self.feature_tier,
                region: self.region,
            },
            stored: LineCost {
                cost: crate::Nanos(self.cost_nanos),
                standard_cost: crate::Nanos(self.standard_cost_nanos),
            },
            corrects_id: self.corrects_id,
            snapshot: RateSnapshot {
                price_id: self.price_id,
                context_tier: ContextTier::parse(&self.context_tier)?,
                rates: Rates {
                    input: self.input_rate,
                    cache_write_5m: self.cache_write_5m_rate,
                    cache_write_1h: self.cache_write_1h_rate,
                    cache_read: self.cache_read_rate,
                    output: self.output_rate,
                },
                batch_permille: self.batch_permille,
                geo_permille: self.geo_permille,
                tier_bp: self.tier_bp,
                region_bp: self.region_bp,
            },
        })
    }
}

/// A tenant id read back from the database: every writer checked it, so one that no longer
/// passes is a damaged row, reported as such rather than trusted. The value is left out of
/// the message, which may reach a caller who is not that tenant.
pub(crate) fn stored_tenant(id: String) -> Result<TenantId> {
    TenantId::new(id).map_err(|e| Error::InvalidRow(format!("stored tenant id: {e}")))
}

/// The insert of priced rows, skipping any `(source, request_id)` already present.
pub(crate) fn insert_usage(
    rows: &[(&LedgerEntry, &RateSnapshot, Option<i64>)],
    recorded_at: UnixMicros,
    write_costs: bool,
) -> Result<InsertStatement> {
    // The line's own columns in the same order, less the ones the database fills in.
    let mut columns: Vec<Usage> = LINE_COLUMNS
        .into_iter()
        .filter(|c| !matches!(c, Usage::Id | Usage::CostNanos | Usage::StandardCostNanos))
        .collect();
    if write_costs {
        columns.extend([Usage::CostNanos, Usage::StandardCostNanos]);
    }
    let mut insert = Query::insert();
    insert.into_table(Usage::Table).columns(columns);
    for (r, s, corrects) in rows {
        let t = &r.tokens;
        let mut values: Vec<Expr> = vec![
            r.tenant_id.as_str().into(),
            r.user_id.clone().into(),
            r.feature.as_str().into(),
            r.model.as_str().into(),
            schema::lane_column(r.lane).into(),
            r.occurred_at.0.into(),
            t.input.into(),
            t.cache_write_5m.into(),
            t.cache_write_1h.into(),
            t.cache_read.into(),
            t.output.into(),
            r.source.as_str().into(),
            r.request_id.as_str().into(),
            r.job_id.clone().into(),
            r.batch_id.clone().into(),
            (*corrects).into(),
            s.price_id.as_str().into(),
            s.context_tier.as_str().into(),
            s.rates.input.into(),
            s.rates.cache_write_5m.into(),
            s.rates.cache_write_1h.into(),
            s.rates.cache_read.into(),
            s.rates.output.into(),
            s.batch_permille.into(),
            s.geo_permille.into(),
            s.tier_bp.into(),
            s.region_bp.into(),
            r.inference_geo.clone().into(),
            r.feature_tier.clone().into(),
            r.region.clone().into(),
            recorded_at.0.into(),
        ];
        if write_costs {
            let cost = formula::line_cost(&r.tokens, s)?;
            values.push(cost.cost.get().into());
            values.push(cost.standard_cost.get().into());
        }
        insert.values(values)?;
    }
    insert.on_conflict(
        OnConflict::columns([Usage::Source, Usage::RequestId])
            .do_nothing()
            .to_owned(),
    );
    Ok(insert)
}
