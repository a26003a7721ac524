//! Rust and the generated columns agree on every row: ≥ 10,000 random rows per backend.

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use tenantry_cost::formula::{
    MAX_BATCH_PERMILLE, MAX_GEO_PERMILLE, MAX_RATE, MAX_TENANT_BP, MAX_TOKENS, line_cost,
};
use tenantry_cost::{ContextTier, Lane, Ledger, LedgerEntry, RateSnapshot, Rates, TokenBuckets};

// The random inputs come from proptest (`any::<[u64; 16]>()` per row, deterministic runner);
// each draw is mapped to a value class — zeros, bounds, ±1, rounding-prone small values,
// published rates, anything in range — by the pure functions below. Composite `prop_oneof!`
// trees are far too slow to build 10,000 times in a debug test.

fn pick(seed: u64, classes: &[(u64, &dyn Fn(u64) -> i64)]) -> i64 {
    let total: u64 = classes.iter().map(|(w, _)| w).sum();
    let mut roll = seed % total;
    let rest = seed / total;
    for (w, f) in classes {
        if roll < *w {
            return f(rest);
        }
        roll -= w;
    }
    unreachable!("weights cover the roll")
}

/// `lo..=hi` from a seed (`hi - lo < 2^62`).
fn in_range(seed: u64, lo: i64, hi: i64) -> i64 {
    let span = u64::try_from(hi - lo).unwrap() + 1;
    lo + i64::try_from(seed % span).unwrap()
}

fn token(seed: u64) -> i64 {
    pick(
        seed,
        &[
            (2, &|_| 0),
            (1, &|_| MAX_TOKENS),
            (1, &|_| -MAX_TOKENS),
            (1, &|_| 1),
            (1, &|_| -1),
            (3, &|s| in_range(s, 0, 999_999)),
            (2, &|s| in_range(s, -MAX_TOKENS, MAX_TOKENS)),
        ],
    )
}

const PUBLISHED: [i64; 13] = [
    25_000, 30_000, 80_000, 100_000, 250_000, 300_000, 1_250_000, 3_000_000, 3_750_000, 6_000_000,
    15_000_000, 22_500_000, 75_000_000,
];

fn rate(seed: u64) -> i64 {
    pick(
        seed,
        &[
            (1, &|_| 0),
            (1, &|_| MAX_RATE),
            (2, &|s| PUBLISHED[usize::try_from(s % 13).unwrap()]),
            (3, &|s| in_range(s, 0, MAX_RATE)),
            (1, &|s| in_range(s, 0, 99)),
        ],
    )
}

fn multiplier(seed: u64, max: i64, one: i64, common: i64) -> i64 {
    pick(
        seed,
        &[
            (2, &|_| one),
            (1, &|_| common),
            (1, &|_| 0),
            (1, &|_| max),
            (3, &|s| in_range(s, 0, max)),
        ],
    )
}

fn row(seeds: [u64; 16]) -> (TokenBuckets, RateSnapshot) {
    let t = TokenBuckets {
        input: token(seeds[0]),
        cache_write_5m: token(seeds[1]),
        cache_write_1h: token(seeds[2]),
        cache_read: token(seeds[3]),
        output: token(seeds[4]),
    };
    let snapshot = RateSnapshot {
        price_id: "prop@2026-01-01".into(),
        context_tier: if seeds[5].is_multiple_of(2) {
            ContextTier::Long
        } else {
            ContextTier::Standard
        },
        rates: Rates {
            input: rate(seeds[6]),
            cache_write_5m: rate(seeds[7]),
            cache_write_1h: rate(seeds[8]),
            cache_read: rate(seeds[9]),
            output: rate(seeds[10]),
        },
        batch_permille: multiplier(seeds[11], MAX_BATCH_PERMILLE, 1_000, 500),
        geo_permille: multiplier(seeds[12], MAX_GEO_PERMILLE, 1_000, 1_100),
        tier_bp: multiplier(seeds[13], MAX_TENANT_BP, 10_000, 12_500),
        region_bp: multiplier(seeds[14], MAX_TENANT_BP, 10_000, 11_000),
    };
    (t, snapshot)
}

const CHUNKS: usize = 5;
const CHUNK: usize = 2_000;

async fn check(ledger: &Ledger, backend: &str) {
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(any::<[u64; 16]>(), CHUNK);
    let mut n = 0;
    for chunk in 0..CHUNKS {
        let rows = strategy.new_tree(&mut runner).unwrap().current();
        let records: Vec<(LedgerEntry, RateSnapshot)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, seeds)| {
                let (t, s) = row(seeds);
                let mut r = support::usage(&format!("{chunk}-{i}"), "prop", Lane::Batch, t);
                r.tenant_id = support::tenant("parity");
                (r, s)
            })
            .collect();
        assert_eq!(
            ledger.record_batch_priced(&records).await.unwrap(),
            CHUNK as u64
        );
        n += records.len();
    }
    let lines = ledger.lines(&support::tenant("parity")).await.unwrap();
    assert_eq!(lines.len(), n);
    assert!(n >= 10_000);
    for line in &lines {
        let rust = line_cost(&line.record.tokens, &line.snapshot).unwrap();
        assert_eq!(
            line.stored, rust,
            "{backend}: row {} disagrees: {line:?}",
            line.id
        );
        assert_eq!(line.rederive().unwrap(), line.stored);
    }
}

#[tokio::test]
async fn postgres_generated_columns_match_rust() {
    let (ledger, _db) = support::pg_ledger().await;
    check(&ledger, "postgres").await;
}

#[tokio::test]
async fn sqlite_generated_columns_match_rust() {
    let (ledger, _db) = support::sqlite_ledger().await;
    check(&ledger, "sqlite").await;
}

/// Handpicked edges in both engines: midpoints, sign, extremes.
#[tokio::test]
async fn edges_match_in_both_engines() {
    let max = TokenBuckets {
        input: MAX_TOKENS,
        cache_write_5m: MAX_TOKENS,
        cache_write_1h: MAX_TOKENS,
        cache_read: MAX_TOKENS,
        output: MAX_TOKENS,
    };
    let max_rates = Rates {
        input: MAX_RATE,
        cache_write_5m: MAX_RATE,
        cache_write_1h: MAX_RATE,
        cache_read: MAX_RATE,
        output: MAX_RATE,
    };
    let snap = |r: Rates, b, g, f, rg| RateSnapshot {
        price_id: "edge@2026-01-01".into(),
        context_tier: ContextTier::Standard,
        rates: r,
        batch_permille: b,
        geo_permille: g,
        tier_bp: f,
        region_bp: rg,
    };
    let one = |input: i64| TokenBuckets {
        input,
        ..TokenBuckets::default()
    };
    let rate = |input: i64| Rates {
        input,
        ..Rates::default()
    };
    let cases = vec![
        (
            max,
            snap(
                max_rates,
                MAX_BATCH_PERMILLE,
                MAX_GEO_PERMILLE,
                MAX_TENANT_BP,
                MAX_TENANT_BP,
            ),
        ),
        (
            max.negated(),
            snap(
                max_rates,
                MAX_BATCH_PERMILLE,
                MAX_GEO_PERMILLE,
                MAX_TENANT_BP,
                MAX_TENANT_BP,
            ),
        ),
        (one(1), snap(rate(1_500), 1_000, 1_000, 10_000, 10_000)), // 1.5 → 2
        (one(-1), snap(rate(1_500), 1_000, 1_000, 10_000, 10_000)), // −1.5 → −2
        (one(1), snap(rate(2_500), 1_000, 1_000, 10_000, 10_000)), // 2.5 → 3
        (one(1), snap(rate(1_499), 1_000, 1_000, 10_000, 10_000)), // 1.499 → 1
        (one(1), snap(rate(25_000), 500, 1_100, 10_000, 10_000)),  // 13.75 → 14
        (one(3), snap(rate(1), 500, 1_000, 10_000, 10_000)),       // 0.0015 → 0
        (
            max,
            snap(max_rates, 0, MAX_GEO_PERMILLE, MAX_TENANT_BP, MAX_TENANT_BP),
        ),
    ];
    for (name, ledger, _db) in support::both().await {
        for (i, (t, s)) in cases.iter().enumerate() {
            let mut r = support::usage(&format!("edge-{i}"), "edge", Lane::Batch, *t);
            r.tenant_id = support::tenant("edges");
            let rec = ledger.record_priced(&r, s).await.unwrap();
            let stored = ledger.line(rec.line_id).await.unwrap().stored;
            assert_eq!(stored, line_cost(t, s).unwrap(), "{name} case {i}");
        }
    }
}
