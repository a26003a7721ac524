//! A 31-day reconciliation over 1,000,000 ledger rows on local PostgreSQL (goal: under 5 s).
//!
//! One fresh database gets a month of varied usage: 100 tenants, four models (one with
//! long-context prompts), batch and synchronous lanes, US residency on a share of the calls,
//! spread over the 31 days of March 2026. The provider's account of the same calls (usage and
//! cost rows per day, model, tier, context window, geo and token class) is built from the
//! same rows, as the Admin API would report them, so the run must come out clean. The bench
//! then times `Ledger::reconcile` over the month (five runs; each also stores its run and
//! compares with the previous one) and, in the same session, the plain scan every
//! reconciliation has to do at least: `SELECT COUNT(*), SUM(input_tokens)` over the month.
//!
//! `cargo bench --bench reconcile [-- ROWS]`
//!
//! With `CI` set it does a small smoke run (20,000 rows, one run); its figures mean nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use tenantry_cost::reconcile::{
    AttoUsd, ProviderAccount, ProviderCost, ProviderUsage, ReconcileRequest, TokenClass,
};
use tenantry_cost::{Lane, Ledger, LedgerEntry, PriceBook, TenantId, TokenBuckets, UnixMicros};
use time::macros::date;

const MODELS: [&str; 4] = [
    "claude-haiku-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-sonnet-4-5",
];

fn sizes() -> (usize, usize) {
    if std::env::var_os("CI").is_some() {
        return (20_000, 1);
    }
    let rows = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    (rows, 5)
}

fn entry(i: usize) -> LedgerEntry {
    let n = i64::try_from(i).expect("fits");
    let model = MODELS[i % 4];
    let long = model == "claude-sonnet-4-5" && i.is_multiple_of(97);
    let day_start = UnixMicros::from_ymd(2026, 3, 1).expect("date").0;
    let lane = if i.is_multiple_of(3) {
        Lane::Batch
    } else {
        Lane::Urgent
    };
    // Spread over the 31 days, at varied times of day.
    let at = UnixMicros(day_start + (n % 31) * 86_400_000_000 + (n * 7_919) % 86_400_000_000);
    let tenant = TenantId::new(format!("tenant-{}", i % 100)).expect("valid");
    let mut entry = LedgerEntry::new(
        "bench",
        format!("r{i}"),
        tenant,
        "summaries",
        model,
        lane,
        at,
    )
    .with_tokens(TokenBuckets {
        input: if long {
            250_000
        } else {
            100 + (n * 31) % 4_000
        },
        cache_write_5m: (n * 17) % 3 * 512,
        cache_write_1h: 0,
        cache_read: (n * 13) % 5 * 1_024,
        output: 20 + (n * 7) % 800,
    });
    entry.inference_geo =
        (model == "claude-sonnet-4-6" && i.is_multiple_of(5)).then(|| "us".into());
    entry
}

type Cell = (time::Date, String, &'static str, &'static str, String);

/// The provider's account of the same rows: what its reports would say.
fn account(
    ledger: &Ledger,
    rows: &[LedgerEntry],
    into: &mut BTreeMap<Cell, (TokenBuckets, [i128; 5])>,
) {
    for e in rows {
        let snap = ledger.snapshot(e).expect("priced");
        let prompt = e.tokens.prompt_tokens();
        let day = e.occurred_at.to_datetime().expect("date").date();
        let model = ledger
            .price_book()
            .resolve(&e.model)
            .expect("known")
            .to_owned();
        let tier = if e.lane == Lane::Batch {
            "batch"
        } else {
            "standard"
        };
        let window = if prompt > 200_000 {
            "200k-1M"
        } else {
            "0-200k"
        };
        let geo = e.inference_geo.clone().unwrap_or_else(|| "global".into());
        let slot = into.entry((day, model, tier, window, geo)).or_default();
        let t = &mut slot.0;
        t.input += e.tokens.input;
        t.cache_write_5m += e.tokens.cache_write_5m;
        t.cache_write_1h += e.tokens.cache_write_1h;
        t.cache_read += e.tokens.cache_read;
        t.output += e.tokens.output;
        let rates = [
            snap.rates.input,
            snap.rates.cache_write_5m,
            snap.rates.cache_write_1h,
            snap.rates.cache_read,
            snap.rates.output,
        ];
        let mult = i128::from(snap.batch_permille) * i128::from(snap.geo_permille);
        for (k, class) in TokenClass::ALL.into_iter().enumerate() {
            slot.1[k] += i128::from(class.of(&e.tokens)) * i128::from(rates[k]) * mult;
        }
    }
}

fn provider(cells: BTreeMap<Cell, (TokenBuckets, [i128; 5])>) -> ProviderAccount {
    let mut account = ProviderAccount::default();
    for ((day, model, tier, window, geo), (tokens, costs)) in cells {
        account.usage.push(ProviderUsage {
            day,
            workspace_id: None,
            api_key_id: None,
            model: model.clone(),
            service_tier: tier.into(),
            context_window: window.into(),
            inference_geo: geo.clone(),
            tokens,
        });
        for (k, class) in TokenClass::ALL.into_iter().enumerate() {
            if costs[k] != 0 {
                account.cost.push(ProviderCost {
                    day,
                    workspace_id: None,
                    model: model.clone(),
                    service_tier: tier.into(),
                    context_window: window.into(),
                    inference_geo: geo.clone(),
                    token_class: class,
                    amount: AttoUsd(costs[k]),
                });
            }
        }
    }
    account
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, runs) = sizes();
    let db = tenantry_testkit::PgDatabase::create().await;
    let ledger = Ledger::postgres(db.pool().clone(), PriceBook::anthropic_default());
    ledger.migrate().await?;

    let load = Instant::now();
    let mut cells = BTreeMap::new();
    const CHUNK: usize = 10_000;
    for start in (0..n).step_by(CHUNK) {
        let rows: Vec<LedgerEntry> = (start..(start + CHUNK).min(n)).map(entry).collect();
        account(&ledger, &rows, &mut cells);
        let priced: Vec<_> = rows
            .into_iter()
            .map(|e| {
                let snap = ledger.snapshot(&e).expect("priced");
                (e, snap)
            })
            .collect();
        ledger.record_batch_priced(&priced).await?;
    }
    sqlx::query("ANALYZE tenantry_usage")
        .execute(db.pool())
        .await?;
    println!(
        "loaded {n} ledger rows in {:.1} s ({} provider cells)",
        load.elapsed().as_secs_f64(),
        cells.len()
    );
    let account = provider(cells);
    let month = ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 03 - 31));

    let (mut full, mut scan) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let start = Instant::now();
        let outcome = ledger.reconcile(&month, &account).await?;
        let seconds = start.elapsed().as_secs_f64();
        assert!(
            outcome.is_clean(),
            "{:?}",
            &outcome.differences[..outcome.differences.len().min(5)]
        );
        let start = Instant::now();
        let (count, _sum): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(input_tokens) AS bigint) FROM tenantry_usage \
             WHERE occurred_at >= $1 AND occurred_at < $2",
        )
        .bind(UnixMicros::from_ymd(2026, 3, 1)?.0)
        .bind(UnixMicros::from_ymd(2026, 4, 1)?.0)
        .fetch_one(db.pool())
        .await?;
        let scanned = start.elapsed().as_secs_f64();
        assert_eq!(usize::try_from(count)?, n);
        println!(
            "run {run}: reconcile {seconds:.3} s ({} cells compared, {} differences, {} changes); plain scan {scanned:.3} s",
            outcome.compared,
            outcome.differences.len(),
            outcome.changes.len()
        );
        full.push(seconds);
        scan.push(scanned);
    }
    println!(
        "median: reconcile {:.3} s, plain scan of the same rows {:.3} s (goal: reconcile < 5 s)",
        median(full),
        median(scan)
    );
    Ok(())
}
