//! Rust and the generated columns agree on every row: ≥ 10,000 random rows per backend.

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use tenantry_cost::formula::{
    MAX_BATCH_PERMILLE, MAX_GEO_PERMILLE, MAX_RATE, MAX_TENANT_BP, MAX_TOKENS, line_cost,
};
use tenantry_cost::{ContextTier, Lane, Ledger, RateSnapshot, Rates, TokenBuckets, UsageRecord};

/// Token counts: zeros, the bounds, ±1, rounding-prone small values and anything in range.
fn token() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(0_i64),
        1 => Just(MAX_TOKENS),
        1 => Just(-MAX_TOKENS),
        1 => Just(1_i64),
        1 => Just(-1_i64),
        3 => 0..1_000_000_i64,
        2 => -MAX_TOKENS..=MAX_TOKENS,
    ]
}

fn rate() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(0_i64),
        1 => Just(MAX_RATE),
        2 => prop::sample::select(vec![25_000_i64, 30_000, 80_000, 100_000, 250_000, 300_000,
            1_250_000, 3_000_000, 3_750_000, 6_000_000, 15_000_000, 22_500_000, 75_000_000]),
        3 => 0..=MAX_RATE,
        1 => 0..100_i64,
    ]
}

fn multiplier(max: i64, one: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(one),
        1 => Just(0_i64),
        1 => Just(max),
        3 => 0..=max,
    ]
}

fn row() -> impl Strategy<Value = (TokenBuckets, RateSnapshot)> {
    let tokens =
        (token(), token(), token(), token(), token()).prop_map(|(a, b, c, d, e)| TokenBuckets {
            input: a,
            cache_write_5m: b,
            cache_write_1h: c,
            cache_read: d,
            output: e,
        });
    let rates = (rate(), rate(), rate(), rate(), rate()).prop_map(|(a, b, c, d, e)| Rates {
        input: a,
        cache_write_5m: b,
        cache_write_1h: c,
        cache_read: d,
        output: e,
    });
    let mults = (
        prop_oneof![Just(500_i64), Just(1_000_i64), 0..=MAX_BATCH_PERMILLE],
        prop_oneof![
            Just(1_000_i64),
            Just(1_100_i64),
            multiplier(MAX_GEO_PERMILLE, 1_000)
        ],
        multiplier(MAX_TENANT_BP, 10_000),
        multiplier(MAX_TENANT_BP, 10_000),
    );
    (tokens, rates, mults, any::<bool>()).prop_map(|(t, r, (b, g, f, rg), long)| {
        (
            t,
            RateSnapshot {
                price_id: "prop@2026-01-01".into(),
                context_tier: if long {
                    ContextTier::Long
                } else {
                    ContextTier::Standard
                },
                rates: r,
                batch_permille: b,
                geo_permille: g,
                tier_bp: f,
                region_bp: rg,
            },
        )
    })
}

const CHUNKS: usize = 5;
const CHUNK: usize = 2_000;

async fn check(ledger: &Ledger, backend: &str) {
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(row(), CHUNK);
    let mut n = 0;
    for chunk in 0..CHUNKS {
        let rows = strategy.new_tree(&mut runner).unwrap().current();
        let records: Vec<(UsageRecord, RateSnapshot)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (t, s))| {
                let mut r = support::usage(&format!("{chunk}-{i}"), "prop", Lane::Batch, t);
                r.tenant_id = "parity".into();
                (r, s)
            })
            .collect();
        assert_eq!(
            ledger.record_batch_priced(&records).await.unwrap(),
            CHUNK as u64
        );
        n += records.len();
    }
    let lines = ledger.lines("parity").await.unwrap();
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
            r.tenant_id = "edges".into();
            let rec = ledger.record_priced(&r, s).await.unwrap();
            let stored = ledger.line(rec.line_id).await.unwrap().stored;
            assert_eq!(stored, line_cost(t, s).unwrap(), "{name} case {i}");
        }
    }
}
