//! Budgets: atomic reservations, settlement, release, expiry, windows and policy changes.

mod support;

use std::sync::Arc;

use support::{at, tenant, tokens, usage};
use tenantry_cost::{BudgetPolicy, Error, HoldRequest, Lane, Ledger, Nanos, UnixMicros, Window};

fn request(feature: &str, when: UnixMicros) -> HoldRequest {
    HoldRequest::new(
        tenant("acme"),
        feature,
        "claude-haiku-4-5",
        Lane::Urgent,
        1_000,
        when,
    )
    .with_input_tokens(1_000)
    .with_ttl_micros(3_600_000_000)
}

/// $0.006 per reservation: 1000 × $1/MTok + 1000 × $5/MTok.
const EACH: Nanos = Nanos(6_000_000);

async fn monthly(ledger: &Ledger, feature: Option<&str>, limit: Nanos, from: UnixMicros) {
    ledger
        .budgets()
        .set(&{
            let mut policy = BudgetPolicy::new(tenant("acme"), Window::Month, limit, from);
            policy.feature = feature.map(str::to_owned);
            policy
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn fifty_concurrent_reservations_admit_exactly_ten_on_postgres() {
    let (ledger, _db) = support::pg_ledger().await;
    let start = at(2026, 3, 1);
    monthly(&ledger, None, Nanos(EACH.0 * 10), start).await;
    let ledger = Arc::new(ledger);
    let when = at(2026, 3, 10);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(
            async move { l.hold(&request("chat", when)).await },
        ));
    }
    let (mut admitted, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => admitted.push(r),
            Err(e) if e.is_budget_exceeded() => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(admitted.len(), 10);
    assert_eq!(refused, 40);
    // Settle half of them at a lower actual cost; held + settled never exceeds the limit.
    for (i, r) in admitted.iter().enumerate().take(5) {
        let u = usage(
            &format!("s{i}"),
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000, 0, 0, 0, 200),
        );
        let mut u = u;
        u.feature = "chat".into();
        ledger.settle(r.id, &u).await.unwrap();
    }
    let status = ledger
        .budgets()
        .status(&tenant("acme"), "chat", when)
        .await
        .unwrap();
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!(s.spent, Nanos(5 * 2_000_000));
    assert_eq!(s.held, Nanos(5 * EACH.0));
    assert!(s.spent.0 + s.held.0 <= s.policy.limit.0);
    // The released headroom admits new work again: $0.02 left → 3 more reservations.
    let mut more = 0;
    while ledger.hold(&request("chat", when)).await.is_ok() {
        more += 1;
    }
    assert_eq!(more, 3);
}

#[tokio::test]
async fn over_budget_error_carries_the_numbers() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, Some("chat"), Nanos(10_000_000), at(2026, 3, 1)).await;
        let when = at(2026, 3, 2);
        ledger.hold(&request("chat", when)).await.unwrap();
        match ledger.hold(&request("chat", when)).await {
            Err(Error::BudgetExceeded {
                limit,
                spent,
                held,
                requested,
                feature,
                window_start,
                window_end,
                ..
            }) => {
                assert_eq!(limit, Nanos(10_000_000), "{name}");
                assert_eq!(spent, Nanos::ZERO);
                assert_eq!(held, EACH);
                assert_eq!(requested, EACH);
                assert_eq!(feature.as_deref(), Some("chat"));
                assert_eq!(window_start, at(2026, 3, 1).0);
                assert_eq!(window_end, at(2026, 4, 1).0);
            }
            other => panic!("{name}: expected BudgetExceeded, got {other:?}"),
        }
        // Another feature has no per-feature budget and no tenant budget: admitted.
        ledger.hold(&request("search", when)).await.unwrap();
    }
}

#[tokio::test]
async fn release_and_expiry_free_the_hold() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, None, EACH, at(2026, 3, 1)).await;
        let when = at(2026, 3, 2);
        let r = ledger.hold(&request("chat", when)).await.unwrap();
        assert!(ledger.hold(&request("chat", when)).await.is_err(), "{name}");
        assert!(ledger.release(r.id).await.unwrap());
        assert!(!ledger.release(r.id).await.unwrap());
        let r2 = ledger.hold(&request("chat", when)).await.unwrap();
        // After its TTL the hold stops counting, even before any cleanup runs.
        let later = UnixMicros(r2.expires_at.0 + 1);
        ledger.hold(&request("chat", later)).await.unwrap();
        assert_eq!(
            ledger
                .release_expired(UnixMicros(later.0 + 3_600_000_000))
                .await
                .unwrap(),
            2
        ); // r2 and the last one; r was released by hand
    }
}

#[tokio::test]
async fn windows_come_from_the_ledger_and_policies_are_effective_dated() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, None, Nanos(1_000_000_000), at(2026, 1, 1)).await;
        // $0.995 spent in March (usage recorded without a hold counts too).
        let mut u = usage(
            "m1",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(995_000, 0, 0, 0, 0),
        );
        u.occurred_at = at(2026, 3, 5);
        ledger.record(&u).await.unwrap();
        assert!(
            ledger
                .hold(&request("chat", at(2026, 3, 20)))
                .await
                .is_err(),
            "{name}"
        );
        // April is a new window: no reset job, the sum simply starts again.
        ledger.hold(&request("chat", at(2026, 4, 1))).await.unwrap();
        // A policy change mid-month starts a new window at its effective date (no old spend).
        monthly(&ledger, None, Nanos(1_000_000_000), at(2026, 3, 21)).await;
        let status = ledger
            .budgets()
            .status(&tenant("acme"), "chat", at(2026, 3, 22))
            .await
            .unwrap();
        assert_eq!(status[0].window_start, at(2026, 3, 21));
        assert_eq!(status[0].spent, Nanos::ZERO);
        ledger
            .hold(&request("chat", at(2026, 3, 22)))
            .await
            .unwrap();
        // Asking about the earlier part of March still sees the old policy and its spend.
        let before = ledger
            .budgets()
            .status(&tenant("acme"), "chat", at(2026, 3, 20))
            .await
            .unwrap();
        assert_eq!(before[0].spent, Nanos(995_000_000));
    }
}

#[tokio::test]
async fn settling_a_duplicate_releases_instead_of_charging_twice() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, None, Nanos(100_000_000), at(2026, 3, 1)).await;
        let when = at(2026, 3, 10);
        let u = usage(
            "dup",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000, 0, 0, 0, 1_000),
        );
        let r1 = ledger.hold(&request("summaries", when)).await.unwrap();
        let first = ledger.settle(r1.id, &u).await.unwrap();
        let r2 = ledger.hold(&request("summaries", when)).await.unwrap();
        let again = ledger.settle(r2.id, &u).await.unwrap();
        assert!(again.duplicate, "{name}");
        assert_eq!(again.line_id, first.line_id);
        let s = &ledger
            .budgets()
            .status(&tenant("acme"), "summaries", when)
            .await
            .unwrap()[0];
        assert_eq!(s.spent, EACH);
        assert_eq!(s.held, Nanos::ZERO);
    }
}

#[tokio::test]
async fn unpriceable_requests_fail_closed() {
    for (name, ledger, _db) in support::both().await {
        let mut req = request("chat", at(2026, 3, 1));
        req.model = "not-a-model".into();
        assert!(
            matches!(ledger.hold(&req).await, Err(Error::UnknownModel { .. })),
            "{name}"
        );
    }
}

#[tokio::test]
async fn custom_and_daily_periods() {
    for (name, ledger, _db) in support::both().await {
        ledger
            .budgets()
            .set(
                &BudgetPolicy::new(tenant("acme"), Window::Day, EACH, at(2026, 3, 1))
                    .for_feature("chat"),
            )
            .await
            .unwrap();
        ledger.hold(&request("chat", at(2026, 3, 2))).await.unwrap();
        assert!(
            ledger
                .hold(&request("chat", UnixMicros(at(2026, 3, 2).0 + 1)))
                .await
                .is_err(),
            "{name}"
        );
        assert!(
            ledger
                .budgets()
                .set(&BudgetPolicy::new(
                    tenant("acme"),
                    Window::Custom { length_micros: 0 },
                    EACH,
                    at(2026, 3, 1)
                ))
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn concurrent_reservations_on_sqlite_admit_exactly_what_fits() {
    let (ledger, _db) = support::sqlite_ledger().await;
    monthly(&ledger, None, Nanos(EACH.0 * 5), at(2026, 3, 1)).await;
    let ledger = Arc::new(ledger);
    let when = at(2026, 3, 10);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(
            async move { l.hold(&request("chat", when)).await },
        ));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(e) => assert!(e.is_budget_exceeded(), "unexpected error: {e}"),
        }
    }
    assert_eq!(admitted, 5);
}

#[tokio::test]
async fn reserve_many_checks_the_sum_and_holds_all_or_nothing() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, None, Nanos(EACH.0 * 3), at(2026, 3, 1)).await;
        monthly(&ledger, Some("chat"), Nanos(EACH.0 * 2), at(2026, 3, 1)).await;
        let when = at(2026, 3, 2);
        // Three chat holds each fit the tenant budget alone, but not the feature budget together.
        let three = vec![request("chat", when); 3];
        match ledger.hold_many(&three).await {
            Err(Error::BudgetExceeded {
                feature, requested, ..
            }) => {
                assert_eq!(feature.as_deref(), Some("chat"), "{name}");
                assert_eq!(requested, Nanos(EACH.0 * 3), "{name}");
            }
            other => panic!("{name}: expected BudgetExceeded, got {other:?}"),
        }
        let status = ledger
            .budgets()
            .status(&tenant("acme"), "chat", when)
            .await
            .unwrap();
        assert!(status.iter().all(|s| s.held == Nanos::ZERO), "{name}");
        // Two chat and one search fit both budgets exactly; ids come back in request order.
        let batch = vec![
            request("chat", when),
            request("search", when),
            request("chat", when),
        ];
        let held = ledger.hold_many(&batch).await.unwrap();
        assert_eq!(held.len(), 3, "{name}");
        assert!(held.windows(2).all(|w| w[0].id < w[1].id), "{name}");
        assert!(held.iter().all(|r| r.amount == EACH), "{name}");
        let status = ledger
            .budgets()
            .status(&tenant("acme"), "chat", when)
            .await
            .unwrap();
        let tenant = status.iter().find(|s| s.policy.feature.is_none()).unwrap();
        assert_eq!(tenant.held, Nanos(EACH.0 * 3), "{name}");
        // Full now: one more is refused, and releasing one hold by its id frees room for one.
        assert!(
            ledger
                .hold_many(&[request("search", when)])
                .await
                .unwrap_err()
                .is_budget_exceeded()
        );
        assert_eq!(
            ledger.held_tenants(when).await.unwrap(),
            [support::tenant("acme")],
            "{name}"
        );
        let after_ttl = UnixMicros(held[0].expires_at.0 + 1);
        assert!(ledger.held_tenants(after_ttl).await.unwrap().is_empty());
        assert!(ledger.release(held[1].id).await.unwrap(), "{name}");
        ledger.hold_many(&[request("search", when)]).await.unwrap();
        assert!(ledger.hold_many(&[]).await.unwrap().is_empty());
        // An unpriceable request fails the whole batch closed.
        let mut bad = request("search", when);
        bad.model = "no-such-model".into();
        ledger.release(held[0].id).await.unwrap();
        let before = ledger
            .budgets()
            .status(&support::tenant("acme"), "search", when)
            .await
            .unwrap();
        assert!(
            ledger
                .hold_many(&[request("search", when), bad])
                .await
                .is_err()
        );
        assert_eq!(
            ledger
                .budgets()
                .status(&support::tenant("acme"), "search", when)
                .await
                .unwrap(),
            before,
            "{name}"
        );
    }
}

async fn concurrent_batches_never_exceed(ledger: Ledger, batches: usize, fit: usize) {
    monthly(&ledger, None, Nanos(EACH.0 * 10), at(2026, 3, 1)).await;
    let ledger = Arc::new(ledger);
    let when = at(2026, 3, 10);
    let mut tasks = Vec::new();
    for _ in 0..batches {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.hold_many(&vec![request("chat", when); 3]).await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(held) => admitted += held.len(),
            Err(e) => assert!(e.is_budget_exceeded(), "unexpected error: {e}"),
        }
    }
    // Batches of 3 against room for 10: exactly three batches fit, never a fourth.
    assert_eq!(admitted, fit);
    let status = ledger
        .budgets()
        .status(&tenant("acme"), "chat", when)
        .await
        .unwrap();
    assert_eq!(status[0].held, Nanos(EACH.0 * 9));
    assert!(status[0].spent.0 + status[0].held.0 <= status[0].policy.limit.0);
}

#[tokio::test]
async fn concurrent_reserve_many_never_exceeds_the_budget_on_postgres() {
    let (ledger, _db) = support::pg_ledger().await;
    concurrent_batches_never_exceed(ledger, 20, 9).await;
}

#[tokio::test]
async fn concurrent_reserve_many_never_exceeds_the_budget_on_sqlite() {
    let (ledger, _db) = support::sqlite_ledger().await;
    concurrent_batches_never_exceed(ledger, 10, 9).await;
}

#[tokio::test]
async fn a_released_hold_settled_late_is_charged_once_and_closed_once() {
    for (name, ledger, _db) in support::both().await {
        monthly(&ledger, None, Nanos(100_000_000), at(2026, 3, 1)).await;
        let when = at(2026, 3, 10);
        let u = usage(
            "late",
            "claude-haiku-4-5",
            Lane::Urgent,
            tokens(1_000, 0, 0, 0, 1_000),
        );
        let held = ledger
            .hold_many(&[request("summaries", when)])
            .await
            .unwrap();
        assert!(ledger.release(held[0].id).await.unwrap(), "{name}");
        // Usage reported after the release (twice): one line, and the hold stays released.
        let first = ledger.settle(held[0].id, &u).await.unwrap();
        let again = ledger.settle(held[0].id, &u).await.unwrap();
        assert!(!first.duplicate && again.duplicate, "{name}");
        assert_eq!(again.line_id, first.line_id);
        assert!(!ledger.release(held[0].id).await.unwrap(), "{name}");
        let s = &ledger
            .budgets()
            .status(&tenant("acme"), "summaries", when)
            .await
            .unwrap()[0];
        assert_eq!(s.spent, EACH, "{name}");
        assert_eq!(s.held, Nanos::ZERO, "{name}");
    }
}

/// Issue 13, case 9: more holds than one statement's bound values allow (6 per hold: SQLite
/// takes 32,766, PostgreSQL 65,535) are taken in one transaction, in order.
#[tokio::test]
async fn reserve_many_above_bind_limits() {
    for (name, ledger, _db) in support::both().await {
        let when = at(2026, 3, 10);
        monthly(&ledger, None, Nanos(EACH.0 * 12_000), when).await;
        let reqs = vec![request("summaries", when); 12_000];
        let held = ledger.hold_many(&reqs).await.unwrap();
        assert_eq!(held.len(), 12_000, "{name}");
        assert!(held.windows(2).all(|w| w[0].id < w[1].id), "{name}");
        let status = ledger
            .budgets()
            .status(&tenant("acme"), "summaries", when)
            .await
            .unwrap();
        assert_eq!(status[0].held, Nanos(EACH.0 * 12_000), "{name}");
        // One more does not fit, and nothing of the refused call is held.
        let err = ledger.hold_many(&reqs[..2]).await.unwrap_err();
        assert!(err.is_budget_exceeded(), "{name}");
    }
}

/// Issue 13, case 9: a `max_tokens` beyond what one line can hold is a range error naming the
/// field, never an overflow.
#[tokio::test]
async fn oversized_max_tokens_is_named() {
    for (name, ledger, _db) in support::both().await {
        let mut req = request("summaries", at(2026, 3, 10));
        req.max_tokens = 2_000_000_000;
        let err = ledger.hold(&req).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfRange {
                    field: "max_tokens",
                    value: 2_000_000_000,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        req.max_tokens = i64::MAX;
        let err = ledger.hold_many(&[req]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfRange {
                    field: "max_tokens",
                    ..
                }
            ),
            "{name}: {err:?}"
        );
    }
}
