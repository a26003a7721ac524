//! A test database on either backend, with the usage ledger either as the contract's fixture
//! table or as `tenantry-cost` creates it.

use sqlx::AssertSqlSafe;
use tenantry_core::db::Pool;
use tenantry_cost::{
    ContextTier, Lane, Ledger, LedgerEntry, PriceBook, RateSnapshot, Rates, TokenBuckets,
    UnixMicros,
};
use tenantry_metrics::{Dataset, MetricRow, MetricsCache, MetricsQuery, UsageRow, fixture};
use tenantry_testkit::{PgDatabase, SqliteDatabase};

/// Which table holds the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerTable {
    /// `fixture::USAGE_TABLE_*`: plain cost columns, so any cost (extremes, overflow) can be
    /// stored.
    Fixture,
    /// `tenantry-cost`'s own migration: generated cost columns, checks, its indexes.
    Cost,
}

enum Backend {
    Postgres(PgDatabase),
    Sqlite(SqliteDatabase),
}

/// A migrated test database.
pub struct TestDb {
    backend: Backend,
    ledger: LedgerTable,
}

/// The ledger columns the metrics read, in [`UsageRow`] order.
const READ_BACK: &str = "SELECT tenant_id, user_id, feature, model, lane, occurred_at, \
input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, \
cost_nanos, standard_cost_nanos FROM tenantry_usage ORDER BY id";

type UsageTuple = (
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

fn usage_row(t: UsageTuple) -> UsageRow {
    {
        let mut row = UsageRow::new(t.0, t.2, t.3, t.4, t.5);
        row.user_id = t.1;
        row.input_tokens = t.6;
        row.cache_write_5m_tokens = t.7;
        row.cache_write_1h_tokens = t.8;
        row.cache_read_tokens = t.9;
        row.output_tokens = t.10;
        row.cost_nanos = t.11;
        row.standard_cost_nanos = t.12;
        row
    }
}

/// A priced ledger line for `row`: its attribution and tokens (clamped to the ledger's
/// range), rates derived from its generated cost values so they vary from row to row.
fn priced(i: usize, row: &UsageRow) -> (LedgerEntry, RateSnapshot) {
    let clamp = |t: i64| {
        t.clamp(
            -tenantry_cost::formula::MAX_TOKENS,
            tenantry_cost::formula::MAX_TOKENS,
        )
    };
    let rate =
        |seed: i64, salt: i64| (seed ^ salt).rem_euclid(tenantry_cost::formula::MAX_RATE + 1);
    let lane = if row.lane == "batch" {
        Lane::Batch
    } else {
        Lane::Urgent
    };
    let record = {
        let mut entry = LedgerEntry::new(
            "metrics-test",
            format!("req-{i}"),
            tenantry_cost::TenantId::new(row.tenant_id.as_str()).unwrap(),
            row.feature.clone(),
            row.model.clone(),
            lane,
            UnixMicros(row.occurred_at),
        )
        .with_tokens(TokenBuckets {
            input: clamp(row.input_tokens),
            cache_write_5m: clamp(row.cache_write_5m_tokens),
            cache_write_1h: clamp(row.cache_write_1h_tokens),
            cache_read: clamp(row.cache_read_tokens),
            output: clamp(row.output_tokens),
        });
        entry.user_id = row.user_id.clone();
        entry
    };
    let snapshot = RateSnapshot {
        price_id: format!("{}@test", row.model),
        context_tier: ContextTier::Standard,
        rates: Rates {
            input: rate(row.cost_nanos, 0),
            cache_write_5m: rate(row.cost_nanos, 5),
            cache_write_1h: rate(row.standard_cost_nanos, 1),
            cache_read: rate(row.standard_cost_nanos, 0),
            output: rate(row.cost_nanos, 7) / 1000,
        },
        batch_permille: if lane == Lane::Batch { 500 } else { 1000 },
        geo_permille: 1000,
        tier_bp: 10_000,
        region_bp: 10_000,
    };
    (record, snapshot)
}

impl TestDb {
    /// A fresh PostgreSQL database with the metrics tables and `ledger`.
    pub async fn postgres(ledger: LedgerTable) -> Self {
        let db = PgDatabase::create().await;
        tenantry_metrics::migrate(&Pool::from(db.pool().clone()))
            .await
            .expect("migrate");
        match ledger {
            LedgerTable::Fixture => fixture::setup_postgres(db.pool()).await.expect("ledger"),
            LedgerTable::Cost => {
                Ledger::postgres(db.pool().clone(), PriceBook::anthropic_default())
                    .migrate()
                    .await
                    .expect("tenantry-cost migration")
            }
        }
        Self {
            backend: Backend::Postgres(db),
            ledger,
        }
    }

    /// A fresh SQLite database with the metrics tables and `ledger`.
    pub async fn sqlite(ledger: LedgerTable) -> Self {
        let db = SqliteDatabase::create().await;
        tenantry_metrics::migrate(&Pool::from(db.pool().clone()))
            .await
            .expect("migrate");
        match ledger {
            LedgerTable::Fixture => fixture::setup_sqlite(db.pool()).await.expect("ledger"),
            LedgerTable::Cost => Ledger::sqlite(db.pool().clone(), PriceBook::anthropic_default())
                .migrate()
                .await
                .expect("tenantry-cost migration"),
        }
        Self {
            backend: Backend::Sqlite(db),
            ledger,
        }
    }

    /// Replaces the database's rows with `data` and returns the data as stored: on the cost
    /// ledger the costs are the generated columns' values, read back.
    pub async fn load(&self, data: &Dataset) -> Result<Dataset, Box<dyn std::error::Error>> {
        let mut stored = data.clone();
        if self.ledger == LedgerTable::Fixture {
            match &self.backend {
                Backend::Postgres(db) => fixture::load_postgres(db.pool(), data).await?,
                Backend::Sqlite(db) => fixture::load_sqlite(db.pool(), data).await?,
            }
            return Ok(stored);
        }
        let mut without_usage = data.clone();
        without_usage.usage.clear();
        let lines: Vec<_> = data
            .usage
            .iter()
            .enumerate()
            .map(|(i, row)| priced(i, row))
            .collect();
        let rows: Vec<UsageTuple> = match &self.backend {
            Backend::Postgres(db) => {
                fixture::load_postgres(db.pool(), &without_usage).await?;
                Ledger::postgres(db.pool().clone(), PriceBook::anthropic_default())
                    .record_batch_priced(&lines)
                    .await?;
                sqlx::query_as(AssertSqlSafe(READ_BACK))
                    .fetch_all(db.pool())
                    .await?
            }
            Backend::Sqlite(db) => {
                fixture::load_sqlite(db.pool(), &without_usage).await?;
                Ledger::sqlite(db.pool().clone(), PriceBook::anthropic_default())
                    .record_batch_priced(&lines)
                    .await?;
                sqlx::query_as(AssertSqlSafe(READ_BACK))
                    .fetch_all(db.pool())
                    .await?
            }
        };
        stored.usage = rows.into_iter().map(usage_row).collect();
        Ok(stored)
    }

    /// Runs `q` on the database.
    pub async fn fetch(&self, q: &MetricsQuery) -> tenantry_metrics::Result<Vec<MetricRow>> {
        q.fetch(&self.pool()).await
    }

    /// Runs `q` on the database with its SQL from `cache`.
    pub async fn fetch_cached(
        &self,
        q: &MetricsQuery,
        cache: &MetricsCache,
    ) -> tenantry_metrics::Result<Vec<MetricRow>> {
        q.fetch_cached(cache, &self.pool()).await
    }

    /// The database's pool.
    fn pool(&self) -> Pool {
        match &self.backend {
            Backend::Postgres(db) => Pool::from(db.pool().clone()),
            Backend::Sqlite(db) => Pool::from(db.pool().clone()),
        }
    }

    /// The PostgreSQL database; panics on SQLite.
    pub fn pg(&self) -> &PgDatabase {
        match &self.backend {
            Backend::Postgres(db) => db,
            Backend::Sqlite(_) => panic!("not PostgreSQL"),
        }
    }
}
