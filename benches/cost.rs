//! tenantry-cost hot paths: pricing one usage record in Rust, and batched ledger inserts on
//! PostgreSQL with the generated cost columns against the same table without them.
//!
//! `cargo bench -p tenantry-benches --bench cost`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tenantry_cost::formula::line_cost;
use tenantry_cost::{
    ContextTier, Lane, Ledger, LedgerEntry, PriceBook, PriceQuery, RateSnapshot, Rates, TenantId,
    TokenBuckets, UnixMicros,
};

const RECORDS: usize = 10_000;

fn records() -> Vec<TokenBuckets> {
    // Deterministic spread of sizes, including zeros and large prompts.
    (0..i64::try_from(RECORDS).expect("fits"))
        .map(|i| TokenBuckets {
            input: (i * 7_919) % 250_000,
            cache_write_5m: (i * 104_729) % 4_096,
            cache_write_1h: if i % 5 == 0 { (i * 31) % 2_048 } else { 0 },
            cache_read: (i * 1_299_709) % 150_000,
            output: (i * 15_485_863) % 8_192,
        })
        .collect()
}

fn snapshot() -> RateSnapshot {
    RateSnapshot {
        price_id: "claude-sonnet-4-5@2025-09-29".into(),
        context_tier: ContextTier::Standard,
        rates: Rates {
            input: 3_000_000,
            cache_write_5m: 3_750_000,
            cache_write_1h: 6_000_000,
            cache_read: 300_000,
            output: 15_000_000,
        },
        batch_permille: 500,
        geo_permille: 1_100,
        tier_bp: 12_500,
        region_bp: 10_000,
    }
}

fn cost_in_rust(c: &mut Criterion) {
    let tokens = records();
    let snap = snapshot();
    let book = PriceBook::anthropic_default();
    let at = UnixMicros::from_ymd(2026, 3, 1).unwrap();
    let mut g = c.benchmark_group("cost/rust");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("line_cost (snapshot given, ranges checked)", |b| {
        b.iter(|| {
            let mut total = 0_i64;
            for t in &tokens {
                total = total.wrapping_add(line_cost(black_box(t), &snap).unwrap().cost.get());
            }
            black_box(total)
        });
    });
    g.bench_function("price_book.price (lookup + rate row + cost)", |b| {
        b.iter(|| {
            let mut total = 0_i64;
            for t in &tokens {
                let q = PriceQuery::new("claude-sonnet-4-5-20250929", at, Lane::Batch)
                    .with_prompt_tokens(t.prompt_tokens());
                total = total.wrapping_add(book.price(&q, black_box(t)).unwrap().cost.get());
            }
            black_box(total)
        });
    });
    g.finish();
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn rows(n: usize) -> Vec<(LedgerEntry, RateSnapshot)> {
    let snap = snapshot();
    let base = NEXT.fetch_add(n as u64, Ordering::Relaxed);
    records()
        .into_iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, tokens)| {
            let rec = LedgerEntry::new(
                "bench",
                format!("req-{base}-{i}"),
                TenantId::new(format!("tenant-{}", i % 50)).expect("valid"),
                "summaries",
                "claude-sonnet-4-5",
                Lane::Batch,
                UnixMicros(1_772_000_000_000_000 + i64::try_from(i).expect("fits")),
            )
            .with_user(format!("user-{}", i % 500))
            .with_batch("msgbatch_bench")
            .with_tokens(tokens);
            (rec, snap.clone())
        })
        .collect()
}

fn ledger_inserts(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (generated, plain, _dbs) = rt.block_on(async {
        let a = tenantry_testkit::PgDatabase::create().await;
        let b = tenantry_testkit::PgDatabase::create().await;
        let generated = Ledger::postgres(a.pool().clone(), PriceBook::anthropic_default());
        generated.migrate().await.unwrap();
        let plain = Ledger::postgres_without_generated_columns_for_benchmarks(
            b.pool().clone(),
            PriceBook::anthropic_default(),
        );
        plain.migrate().await.unwrap();
        (generated, plain, (a, b))
    });
    const BATCH: usize = 5_000;
    let mut g = c.benchmark_group("cost/postgres_insert");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    for (name, ledger) in [("generated_columns", &generated), ("plain_columns", &plain)] {
        g.bench_with_input(
            BenchmarkId::new("record_batch_priced", name),
            &BATCH,
            |b, &n| {
                b.iter_batched(
                    || rows(n),
                    |rows| rt.block_on(async { ledger.record_batch_priced(&rows).await.unwrap() }),
                    criterion::BatchSize::PerIteration,
                );
            },
        );
    }
    g.finish();
}

criterion_group!(benches, cost_in_rust, ledger_inserts);
criterion_main!(benches);
