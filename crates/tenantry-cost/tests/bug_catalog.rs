//! Known wrong-spend bugs of popular tools (research/cost.md §1.7), one test each.

mod support;

use support::{at, tenant, tokens, usage};
use tenantry_cost::{
    BudgetPolicy, Error, Lane, Nanos, PriceBook, PriceQuery, TokenBuckets, UnixMicros, Usage,
    Window, served_lane,
};

fn query<'a>(model: &'a str, lane: Lane, t: &TokenBuckets) -> PriceQuery<'a> {
    PriceQuery::new(model, at(2026, 3, 1), lane).with_prompt_tokens(t.prompt_tokens())
}

fn anthropic(json: &str) -> Usage {
    serde_json::from_str(json).unwrap()
}

/// LiteLLM #5443: cache tokens neither counted nor priced at their own rates.
#[test]
fn each_cache_class_is_priced_at_its_own_rate() {
    let book = PriceBook::anthropic_default();
    let one = |t: TokenBuckets| {
        book.price(&query("claude-sonnet-4-5", Lane::Urgent, &t), &t)
            .unwrap()
            .cost
    };
    assert_eq!(one(tokens(0, 100_000, 0, 0, 0)), Nanos(375_000_000));
    assert_eq!(one(tokens(0, 0, 100_000, 0, 0)), Nanos(600_000_000));
    assert_eq!(one(tokens(0, 0, 0, 100_000, 0)), Nanos(30_000_000));
    // Cache tokens count toward the long-context threshold: 300K cache reads switch the tier.
    assert_eq!(one(tokens(0, 0, 0, 300_000, 0)), Nanos(180_000_000));
}

/// LiteLLM PR #6576 / #6575 and #9812: cache writes charged as input *and* as writes (≈ 2×).
/// Golden value computed by hand from the published rates.
#[test]
fn cache_writes_are_not_also_input() {
    let u = anthropic(
        r#"{"input_tokens": 10, "cache_creation_input_tokens": 5000,
            "cache_read_input_tokens": 20000, "output_tokens": 500}"#,
    );
    let b = TokenBuckets::from_usage(&u).unwrap();
    assert_eq!(b.input, 10, "input_tokens already excludes cache tokens");
    let book = PriceBook::anthropic_default();
    let cost = book
        .price(&query("claude-sonnet-4-5", Lane::Urgent, &b), &b)
        .unwrap()
        .cost;
    // 10×$3 + 5000×$3.75 + 20000×$0.30 + 500×$15 per MTok = $0.03233
    assert_eq!(cost, Nanos(32_280_000));
}

/// LiteLLM #11364: dated ids and aliases (and a host's route aliases) price identically.
#[test]
fn every_name_of_a_model_prices_the_same() {
    let mut book = PriceBook::anthropic_default();
    book.add_alias("anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5")
        .unwrap();
    let t = tokens(1_234, 567, 89, 10_111, 213);
    let cost = |m| book.price(&query(m, Lane::Batch, &t), &t).unwrap();
    let base = cost("claude-opus-4-5");
    assert_eq!(cost("claude-opus-4-5-20251101"), base);
    assert_eq!(cost("anthropic.claude-opus-4-5-20251101-v1:0"), base);
}

/// LiteLLM PR #40016 / #40006 and #27191: a custom price book must price every rate class,
/// with the same normalization as the default one.
#[test]
fn custom_books_price_every_class() {
    let custom = PriceBook::from_toml(
        r#"
        name = "contract"
        [[models]]
        model = "claude-sonnet-4-5"
        [[models.rates]]
        effective_from = "2026-01-01"
        input = "2.5"
        cache_write_5m = "3.125"
        cache_write_1h = "5"
        cache_read = "0.025"
        output = "12.5"
        "#,
    )
    .unwrap();
    let t = tokens(0, 0, 0, 1_000_000, 0);
    assert_eq!(
        custom
            .price(&query("claude-sonnet-4-5", Lane::Urgent, &t), &t)
            .unwrap()
            .cost,
        Nanos(25_000_000)
    );
    // A row missing a rate class is rejected, not priced at zero.
    let missing = r#"{"models": [{"model": "m", "rates": [{"effective_from": "2026-01-01",
        "input": "1", "cache_write_5m": "1", "cache_write_1h": "1", "output": "1"}]}]}"#;
    assert!(matches!(
        PriceBook::from_json(missing),
        Err(Error::PriceBookJson(_))
    ));
}

/// LiteLLM PR #26919: overlapping buckets exported downstream. The ledger stores exclusive
/// buckets whose sum is the provider's prompt + output total.
#[tokio::test]
async fn the_ledger_stores_exclusive_buckets() {
    let u = anthropic(
        r#"{"input_tokens": 7, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 100,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
            "output_tokens": 3, "service_tier": "batch"}"#,
    );
    let (ledger, _db) = support::sqlite_ledger().await;
    let rec = usage(
        "x",
        "claude-haiku-4-5",
        served_lane(&u),
        TokenBuckets::from_usage(&u).unwrap(),
    );
    let line = ledger
        .line(ledger.record(&rec).await.unwrap().line_id)
        .await
        .unwrap();
    let t = line.record.tokens;
    assert_eq!(
        t.input + t.cache_write_5m + t.cache_write_1h + t.cache_read,
        7 + 30 + 100
    );
    assert_eq!((t.cache_write_5m, t.cache_write_1h, t.output), (10, 20, 3));
    assert_eq!(line.record.lane, Lane::Batch);
}

/// allenai/agent-eval PR #11: negative derived buckets. Nothing is subtracted, and a split that
/// does not add up is an error.
#[test]
fn buckets_are_never_negative() {
    let u = anthropic(
        r#"{"input_tokens": 0, "cache_creation_input_tokens": 5, "output_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 0}}"#,
    );
    assert!(matches!(
        TokenBuckets::from_usage(&u),
        Err(Error::InconsistentUsage(_))
    ));
    assert!(serde_json::from_str::<Usage>(r#"{"input_tokens": -1, "output_tokens": 0}"#).is_err());
}

/// LiteLLM #8867: float artefacts. No `f32`/`f64` anywhere in the crate's sources.
#[test]
fn no_floats_in_the_crate() {
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut files = Vec::new();
    // Every source file, in `src/` and its module folders (`src/reconcile/`).
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words = code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for w in words {
                assert!(
                    w != "f32" && w != "f64",
                    "{}:{}: `{w}` in the crate",
                    path.display(),
                    i + 1
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10);
    assert_eq!(Nanos(1_615_000).to_string(), "$0.001615000");
}

/// LiteLLM #37077: batches priced at $0 when the model is unknown.
#[tokio::test]
async fn unknown_models_are_errors_never_zero() {
    let (ledger, _db) = support::sqlite_ledger().await;
    let rec = usage("b", "", Lane::Batch, tokens(1, 0, 0, 0, 1));
    assert!(matches!(
        ledger.record(&rec).await,
        Err(Error::UnknownModel { .. })
    ));
    assert!(ledger.lines(&tenant("acme")).await.unwrap().is_empty());
}

/// The batch discount applies to cache writes and reads too, not only to input and output.
#[test]
fn batch_discount_applies_to_every_class() {
    let book = PriceBook::anthropic_default();
    let t = tokens(1_000, 2_000, 3_000, 4_000, 5_000);
    let sync = book
        .price(&query("claude-haiku-4-5", Lane::Urgent, &t), &t)
        .unwrap();
    let batch = book
        .price(&query("claude-haiku-4-5", Lane::Batch, &t), &t)
        .unwrap();
    assert_eq!(batch.cost.0 * 2, sync.cost.0);
    assert_eq!(batch.standard_cost, sync.cost);
}

/// LiteLLM #35524 (reservation skipped when the cost cannot be estimated), #34732 / #40095 /
/// #26672 (concurrent admissions; see `budget.rs` for the 50-way PostgreSQL race), #36926
/// (counters drifting from the ledger), #36940 / #34733 / #20532 (reset jobs), #22013 (NULL
/// windows) and #34270 (a policy change keeping old spend).
#[tokio::test]
async fn budgets_derive_from_the_ledger_and_fail_closed() {
    let (ledger, _db) = support::pg_ledger().await;
    ledger
        .budgets()
        .set(&BudgetPolicy::new(
            tenant("acme"),
            Window::Month,
            Nanos(1_000_000_000),
            at(2026, 3, 1),
        ))
        .await
        .unwrap();
    let mut req = tenantry_cost::HoldRequest::new(
        tenant("acme"),
        "summaries",
        "who-knows",
        Lane::Batch,
        10,
        at(2026, 3, 2),
    )
    .with_input_tokens(10)
    .with_ttl_micros(60_000_000);
    assert!(ledger.hold(&req).await.is_err(), "#35524: fail closed");
    req.model = "claude-haiku-4-5".into();
    // Spend is the ledger's sum, whatever wrote it: #36926.
    for i in 0..3 {
        ledger
            .record(&usage(
                &format!("l{i}"),
                "claude-haiku-4-5",
                Lane::Urgent,
                tokens(100_000, 0, 0, 0, 0),
            ))
            .await
            .unwrap();
    }
    let s = &ledger
        .budgets()
        .status(&tenant("acme"), "summaries", at(2026, 3, 20))
        .await
        .unwrap()[0];
    let lines: Nanos = ledger
        .lines(&tenant("acme"))
        .await
        .unwrap()
        .iter()
        .map(|l| l.stored.cost)
        .sum();
    assert_eq!(s.spent, lines);
    // No policy is in force before its start (#22013), and windows roll with the calendar (#20532).
    assert!(
        ledger
            .budgets()
            .status(&tenant("acme"), "summaries", at(2026, 2, 28))
            .await
            .unwrap()
            .is_empty()
    );
    let april = &ledger
        .budgets()
        .status(&tenant("acme"), "summaries", at(2026, 4, 3))
        .await
        .unwrap()[0];
    assert_eq!(
        (april.spent, april.window_start),
        (Nanos::ZERO, at(2026, 4, 1))
    );
    let _ = UnixMicros::now();
}
