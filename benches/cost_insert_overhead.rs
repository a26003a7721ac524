//! What the generated cost columns cost on insert, measured A/B on local PostgreSQL.
//!
//! Two fresh databases get the same `tenantry_usage` schema, one with the generated
//! `cost_nanos` / `standard_cost_nanos` columns, and one with plain columns into which the
//! ledger writes the same values computed in Rust (same row width). Each round inserts
//! the same 5,000 priced rows (multi-row inserts, one transaction) into both, alternating which
//! goes first, so load changes on a shared machine hit both sides alike. Prints each round and
//! the median throughput and overhead.
//!
//! `cargo bench --bench cost_insert_overhead`
//!
//! With `CI` set it does a small smoke run (2 rounds of 500 rows) so the CI pass over every
//! example stays quick; its figures mean nothing.

use std::time::Instant;

use tenantry_cost::{
    ContextTier, Lane, Ledger, LedgerEntry, PriceBook, RateSnapshot, Rates, TenantId, TokenBuckets,
    UnixMicros,
};

/// Rows per round and rounds: the measurement, or a smoke run under CI.
fn sizes() -> (usize, usize) {
    if std::env::var_os("CI").is_some() {
        (500, 2)
    } else {
        (5_000, 15)
    }
}

fn rows(n: usize, round: usize, side: &str) -> Vec<(LedgerEntry, RateSnapshot)> {
    let snap = RateSnapshot {
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
    };
    (0..i64::try_from(n).expect("fits"))
        .map(|i| {
            let rec = LedgerEntry::new(
                "example",
                format!("{side}-{round}-{i}"),
                TenantId::new(format!("tenant-{}", i % 50)).expect("valid"),
                "summaries",
                "claude-sonnet-4-5",
                Lane::Batch,
                UnixMicros(1_772_000_000_000_000 + i),
            )
            .with_user(format!("user-{}", i % 500))
            .with_batch("msgbatch_example")
            .with_tokens(TokenBuckets {
                input: (i * 7_919) % 250_000,
                cache_write_5m: (i * 104_729) % 4_096,
                cache_write_1h: (i * 31) % 2_048,
                cache_read: (i * 1_299_709) % 150_000,
                output: (i * 15_485_863) % 8_192,
            });
            (rec, snap.clone())
        })
        .collect()
}

async fn timed(ledger: &Ledger, rows: &[(LedgerEntry, RateSnapshot)]) -> f64 {
    let start = Instant::now();
    let added = ledger.record_batch_priced(rows).await.expect("insert");
    assert_eq!(usize::try_from(added).ok(), Some(rows.len()));
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = tenantry_testkit::PgDatabase::create().await;
    let b = tenantry_testkit::PgDatabase::create().await;
    let generated = Ledger::postgres(a.pool().clone(), PriceBook::anthropic_default());
    generated.migrate().await?;
    let plain = Ledger::postgres_without_generated_columns_for_benchmarks(
        b.pool().clone(),
        PriceBook::anthropic_default(),
    );
    plain.migrate().await?;
    let (n, rounds) = sizes();
    // Warm-up round (connections, plans, first pages), not counted.
    timed(&generated, &rows(n, usize::MAX, "gen")).await;
    timed(&plain, &rows(n, usize::MAX, "plain")).await;

    let (mut gen_rates, mut plain_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (g_rows, p_rows) = (rows(n, round, "gen"), rows(n, round, "plain"));
        let (g, p) = if round % 2 == 0 {
            let g = timed(&generated, &g_rows).await;
            (g, timed(&plain, &p_rows).await)
        } else {
            let p = timed(&plain, &p_rows).await;
            (timed(&generated, &g_rows).await, p)
        };
        println!(
            "round {round:2}: generated {g:8.0} rows/s, plain {p:8.0} rows/s, overhead {:+5.1}%",
            (p / g - 1.0) * 100.0
        );
        gen_rates.push(g);
        plain_rates.push(p);
        ratios.push(p / g);
    }
    println!(
        "median over {rounds} rounds of {n} rows: generated {:.0} rows/s, plain {:.0} rows/s, \
         generated-column overhead {:+.1}% (time per row)",
        median(gen_rates),
        median(plain_rates),
        (median(ratios) - 1.0) * 100.0
    );
    Ok(())
}
