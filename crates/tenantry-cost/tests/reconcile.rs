//! `Ledger::reconcile` on real databases: the ledger summed by UTC day, model, service tier,
//! context window and inference geo matches a provider account built by hand from the
//! published prices; a missing provider row is found; runs are stored and the next run says
//! what changed. Each on PostgreSQL and SQLite.

mod support;

use support::{both, tenant, tokens, usage};
use tenantry_cost::reconcile::{
    AttoUsd, ChangeKind, DifferenceKind, ProviderAccount, ProviderCost, ProviderUsage,
    ReconcileRequest, TokenClass,
};
use tenantry_cost::{Lane, Ledger, TokenBuckets, UnixMicros};
use time::Date;
use time::macros::date;

/// One provider-side line: day, model, tier, window, geo, tokens, and the price per class in
/// micro-USD per million tokens with the tier and geo multipliers in per-mille.
struct Line {
    day: Date,
    model: &'static str,
    tier: &'static str,
    window: &'static str,
    geo: &'static str,
    tokens: TokenBuckets,
    rates: [i128; 5],
    permille: i128,
}

fn account(lines: &[Line]) -> ProviderAccount {
    let mut account = ProviderAccount::default();
    for l in lines {
        account.usage.push(ProviderUsage {
            day: l.day,
            workspace_id: Some("wrkspc_1".into()),
            api_key_id: Some("apikey_1".into()),
            model: l.model.into(),
            service_tier: l.tier.into(),
            context_window: l.window.into(),
            inference_geo: l.geo.into(),
            tokens: l.tokens,
        });
        for (class, rate) in TokenClass::ALL.into_iter().zip(l.rates) {
            let n = i128::from(class.of(&l.tokens));
            if n == 0 {
                continue;
            }
            account.cost.push(ProviderCost {
                day: l.day,
                workspace_id: None,
                model: l.model.into(),
                service_tier: l.tier.into(),
                context_window: l.window.into(),
                inference_geo: l.geo.into(),
                token_class: class,
                // tokens × pico-USD/token × ‰ × ‰ = 10⁻¹⁸ USD.
                amount: AttoUsd(n * rate * l.permille),
            });
        }
    }
    account
}

const HAIKU: [i128; 5] = [1_000_000, 1_250_000, 2_000_000, 100_000, 5_000_000];
const SONNET: [i128; 5] = [3_000_000, 3_750_000, 6_000_000, 300_000, 15_000_000];
const SONNET_LONG: [i128; 5] = [6_000_000, 7_500_000, 12_000_000, 600_000, 22_500_000];

/// The ledger rows and the provider lines that describe the same calls.
async fn month(ledger: &Ledger) -> Vec<Line> {
    let mut a = usage(
        "r1",
        "claude-haiku-4-5",
        Lane::Batch,
        tokens(1_000, 0, 0, 0, 200),
    );
    a.occurred_at = UnixMicros::from_ymd(2026, 3, 10).unwrap();
    let mut b = usage(
        "r2",
        "claude-haiku-4-5-20251001",
        Lane::Batch,
        tokens(500, 40, 0, 60, 100),
    );
    b.occurred_at = UnixMicros(a.occurred_at.0 + 3_600_000_000);
    b.tenant_id = tenant("globex");
    let mut c = usage(
        "r3",
        "claude-sonnet-4-6",
        Lane::Urgent,
        tokens(2_000, 0, 0, 0, 300),
    );
    c.occurred_at = UnixMicros::from_ymd(2026, 3, 11).unwrap();
    c.inference_geo = Some("us".into());
    let mut d = usage(
        "r4",
        "claude-sonnet-4-5-20250929",
        Lane::Urgent,
        tokens(250_000, 0, 0, 0, 100),
    );
    d.occurred_at = UnixMicros::from_ymd(2026, 3, 12).unwrap();
    // The last microsecond of the 12th and the first of the 13th are different days.
    let mut e = usage(
        "r5",
        "claude-haiku-4-5",
        Lane::Urgent,
        tokens(10, 0, 0, 0, 1),
    );
    e.occurred_at = UnixMicros(UnixMicros::from_ymd(2026, 3, 13).unwrap().0 - 1);
    let mut f = usage(
        "r6",
        "claude-haiku-4-5",
        Lane::Urgent,
        tokens(20, 0, 0, 0, 2),
    );
    f.occurred_at = UnixMicros::from_ymd(2026, 3, 13).unwrap();
    // Outside the range: never compared.
    let mut g = usage(
        "r7",
        "claude-haiku-4-5",
        Lane::Urgent,
        tokens(99, 0, 0, 0, 9),
    );
    g.occurred_at = UnixMicros::from_ymd(2026, 4, 1).unwrap();
    for entry in [&a, &b, &c, &d, &e, &f, &g] {
        ledger.record(entry).await.unwrap();
    }
    let line = |day, model, tier, window, geo, tokens, rates, permille| Line {
        day,
        model,
        tier,
        window,
        geo,
        tokens,
        rates,
        permille,
    };
    vec![
        line(
            date!(2026 - 03 - 10),
            "claude-haiku-4-5",
            "batch",
            "0-200k",
            "global",
            tokens(1_500, 40, 0, 60, 300),
            HAIKU,
            500 * 1_000,
        ),
        line(
            date!(2026 - 03 - 11),
            "claude-sonnet-4-6",
            "standard",
            "0-200k",
            "us",
            tokens(2_000, 0, 0, 0, 300),
            SONNET,
            1_000 * 1_100,
        ),
        line(
            date!(2026 - 03 - 12),
            "claude-sonnet-4-5",
            "standard",
            "200k-1M",
            "global",
            tokens(250_000, 0, 0, 0, 100),
            SONNET_LONG,
            1_000 * 1_000,
        ),
        line(
            date!(2026 - 03 - 12),
            "claude-haiku-4-5",
            "standard",
            "0-200k",
            "not_available",
            tokens(10, 0, 0, 0, 1),
            HAIKU,
            1_000 * 1_000,
        ),
        line(
            date!(2026 - 03 - 13),
            "claude-haiku-4-5",
            "standard",
            "0-200k",
            "global",
            tokens(20, 0, 0, 0, 2),
            HAIKU,
            1_000 * 1_000,
        ),
    ]
}

fn march() -> ReconcileRequest {
    ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 03 - 31))
}

#[tokio::test]
async fn the_ledger_matches_an_account_of_the_same_calls() {
    for (name, ledger, _db) in both().await {
        let lines = month(&ledger).await;
        let run = ledger.reconcile(&march(), &account(&lines)).await.unwrap();
        assert!(run.is_clean(), "{name}: {:#?}", run.differences);
        assert_eq!(run.ledger_cost, run.provider_cost, "{name}");
        // Haiku batch: input, cache write, cache read, output; then 2 + 2 + 2 + 2 classes.
        assert_eq!(run.compared, 4 + 2 + 2 + 2 + 2, "{name}");
        assert_eq!(run.previous_run, None);
    }
}

#[tokio::test]
async fn a_lost_provider_row_is_found_and_the_next_runs_say_what_changed() {
    for (name, ledger, _db) in both().await {
        let lines = month(&ledger).await;
        let full = account(&lines);
        let mut lost = full.clone();
        // The provider lost Sonnet 4.6's output on the 11th, in both reports.
        lost.usage[1].tokens.output = 0;
        lost.cost
            .retain(|c| !(c.model == "claude-sonnet-4-6" && c.token_class == TokenClass::Output));
        let first = ledger.reconcile(&march(), &lost).await.unwrap();
        assert_eq!(
            first.differences.len(),
            1,
            "{name}: {:#?}",
            first.differences
        );
        let d = &first.differences[0];
        assert_eq!(d.kind, DifferenceKind::DuplicateUsage);
        assert_eq!(
            (d.cell.day, d.class),
            (date!(2026 - 03 - 11), TokenClass::Output)
        );
        assert_eq!((d.ledger_tokens, d.provider_tokens), (300, 0));
        assert_eq!(d.ledger_cost, AttoUsd(300 * 15_000_000 * 1_000 * 1_100));
        assert_eq!(d.cell.inference_geo, "us");
        assert_eq!(first.changes, vec![]);

        let second = ledger.reconcile(&march(), &lost).await.unwrap();
        assert_eq!(second.previous_run, Some(first.run_id));
        assert!(
            second.changes.is_empty(),
            "{name}: same differences, no change"
        );

        let third = ledger.reconcile(&march(), &full).await.unwrap();
        assert!(third.is_clean());
        assert_eq!(third.changes.len(), 1);
        assert_eq!(third.changes[0].kind, ChangeKind::Resolved);
        assert_eq!(third.changes[0].before.as_ref(), Some(d));
    }
}

#[tokio::test]
async fn a_range_that_ends_before_it_starts_is_refused() {
    for (name, ledger, _db) in both().await {
        let err = ledger
            .reconcile(
                &ReconcileRequest::new(date!(2026 - 03 - 02), date!(2026 - 03 - 01)),
                &ProviderAccount::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_reconciliation", "{name}");
    }
}
