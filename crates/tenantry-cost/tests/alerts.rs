//! Budget alerts: each threshold fires once per window, holds and settled spend both count,
//! the sink writes in the crossing's transaction, and the soft limit turns urgent holds away.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::{at, tenant, tokens};
use tenantry_core::db::Tx;
use tenantry_cost::alert::SinkError;
use tenantry_cost::{
    AlertSink, BudgetAlert, BudgetPolicy, Error, HoldRequest, Lane, Ledger, LedgerEntry, Nanos,
    UnixMicros, Window,
};

/// $0.006 per urgent hold: 1000 × $1/MTok + 1000 × $5/MTok.
const EACH: Nanos = Nanos(6_000_000);

fn request(lane: Lane, when: UnixMicros) -> HoldRequest {
    HoldRequest::new(
        tenant("acme"),
        "chat",
        "claude-haiku-4-5",
        lane,
        1_000,
        when,
    )
    .with_input_tokens(1_000)
    .with_ttl_micros(3_600_000_000)
}

async fn policy(ledger: &Ledger, policy: BudgetPolicy) {
    ledger.budgets().set(&policy).await.unwrap();
}

fn levels(alerts: &[BudgetAlert]) -> Vec<u16> {
    alerts.iter().map(|a| a.threshold_permille).collect()
}

/// Records what it is handed in the transaction, and can be told to fail.
#[derive(Debug, Default)]
struct Recorder {
    appended: Mutex<Vec<BudgetAlert>>,
    committed: AtomicUsize,
    fail: AtomicBool,
}

#[async_trait::async_trait]
impl AlertSink for Recorder {
    async fn append(&self, _tx: &mut Tx, alerts: &[BudgetAlert]) -> Result<(), SinkError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err("event stream unavailable".into());
        }
        self.appended.lock().unwrap().extend_from_slice(alerts);
        Ok(())
    }

    fn committed(&self, alerts: &[BudgetAlert]) {
        self.committed.fetch_add(alerts.len(), Ordering::SeqCst);
    }
}

#[tokio::test]
async fn each_threshold_fires_once_per_window_on_both_stores() {
    for (name, ledger, _db) in support::both().await {
        let sink = Arc::new(Recorder::default());
        let ledger = ledger.with_alert_sink(sink.clone());
        let start = at(2026, 3, 1);
        policy(
            &ledger,
            BudgetPolicy::new(tenant("acme"), Window::Month, Nanos(EACH.0 * 10), start)
                .with_alerts([1000, 500, 800]),
        )
        .await;
        let when = at(2026, 3, 10);
        let mut holds = Vec::new();
        for _ in 0..4 {
            holds.push(ledger.hold(&request(Lane::Urgent, when)).await.unwrap());
        }
        assert!(
            ledger
                .budgets()
                .alerts(&tenant("acme"))
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        // The fifth hold reaches 50 %: reservations count.
        holds.push(ledger.hold(&request(Lane::Urgent, when)).await.unwrap());
        let fired = ledger.budgets().alerts(&tenant("acme")).await.unwrap();
        assert_eq!(levels(&fired), [500], "{name}");
        assert_eq!(
            (fired[0].spent, fired[0].held),
            (Nanos::ZERO, Nanos(EACH.0 * 5))
        );
        assert_eq!(fired[0].window_start, start);
        // Three more reach 80 %; releasing two and holding them again crosses 80 % a second
        // time in the same window, which fires nothing.
        for _ in 0..3 {
            holds.push(ledger.hold(&request(Lane::Urgent, when)).await.unwrap());
        }
        for h in holds.drain(6..) {
            assert!(ledger.release(h.id).await.unwrap());
        }
        for _ in 0..2 {
            holds.push(ledger.hold(&request(Lane::Urgent, when)).await.unwrap());
        }
        assert_eq!(
            levels(&ledger.budgets().alerts(&tenant("acme")).await.unwrap()),
            [500, 800],
            "{name}"
        );
        // Settled spend counts too: usage recorded without a hold takes the budget to 100 %.
        let line = LedgerEntry::new(
            "anthropic",
            "direct-1",
            tenant("acme"),
            "chat",
            "claude-haiku-4-5",
            Lane::Urgent,
            when,
        )
        .with_tokens(tokens(2_000, 0, 0, 0, 2_000));
        ledger.record(&line).await.unwrap();
        // A duplicate delivery of the same line charges nothing and fires nothing.
        assert!(ledger.record(&line).await.unwrap().duplicate);
        let fired = ledger.budgets().alerts(&tenant("acme")).await.unwrap();
        assert_eq!(levels(&fired), [500, 800, 1000], "{name}");
        assert_eq!(fired[2].spent, Nanos(EACH.0 * 2), "{name}");
        // The next window starts over.
        let april = at(2026, 4, 2);
        for _ in 0..5 {
            ledger.hold(&request(Lane::Urgent, april)).await.unwrap();
        }
        let fired = ledger.budgets().alerts(&tenant("acme")).await.unwrap();
        assert_eq!(levels(&fired), [500, 800, 1000, 500], "{name}");
        assert_eq!(fired[3].window_start, at(2026, 4, 1));
        // The sink saw each alert once, in the crossing's transaction, and after its commit.
        assert_eq!(
            sink.appended.lock().unwrap().as_slice(),
            fired.as_slice(),
            "{name}"
        );
        assert_eq!(sink.committed.load(Ordering::SeqCst), 4, "{name}");
    }
}

#[tokio::test]
async fn a_failing_sink_rolls_the_crossing_back() {
    for (name, ledger, _db) in support::both().await {
        let sink = Arc::new(Recorder::default());
        let ledger = ledger.with_alert_sink(sink.clone());
        policy(
            &ledger,
            BudgetPolicy::new(
                tenant("acme"),
                Window::Month,
                Nanos(EACH.0 * 2),
                at(2026, 3, 1),
            )
            .with_alerts([500]),
        )
        .await;
        let when = at(2026, 3, 10);
        sink.fail.store(true, Ordering::SeqCst);
        let err = ledger.hold(&request(Lane::Urgent, when)).await.unwrap_err();
        assert!(matches!(err, Error::AlertSink(_)), "{name}: {err}");
        let status = ledger
            .budgets()
            .status(&tenant("acme"), "chat", when)
            .await
            .unwrap();
        assert_eq!(
            status[0].held,
            Nanos::ZERO,
            "{name}: the hold was rolled back"
        );
        assert!(
            ledger
                .budgets()
                .alerts(&tenant("acme"))
                .await
                .unwrap()
                .is_empty()
        );
        sink.fail.store(false, Ordering::SeqCst);
        ledger.hold(&request(Lane::Urgent, when)).await.unwrap();
        assert_eq!(
            levels(&ledger.budgets().alerts(&tenant("acme")).await.unwrap()),
            [500]
        );
    }
}

#[tokio::test]
async fn concurrent_holds_fire_each_threshold_once_on_postgres() {
    let (ledger, _db) = support::pg_ledger().await;
    let sink = Arc::new(Recorder::default());
    let ledger = Arc::new(ledger.with_alert_sink(sink.clone()));
    policy(
        &ledger,
        BudgetPolicy::new(
            tenant("acme"),
            Window::Month,
            Nanos(EACH.0 * 20),
            at(2026, 3, 1),
        )
        .with_alerts([250, 500, 750, 1000]),
    )
    .await;
    let when = at(2026, 3, 10);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.hold(&request(Lane::Urgent, when)).await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(e) => assert!(e.is_budget_exceeded(), "{e}"),
        }
    }
    assert_eq!(admitted, 20);
    let fired = ledger.budgets().alerts(&tenant("acme")).await.unwrap();
    assert_eq!(levels(&fired), [250, 500, 750, 1000]);
    assert_eq!(sink.appended.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn past_the_soft_limit_urgent_holds_are_turned_to_the_batch_lane() {
    for (name, ledger, _db) in support::both().await {
        policy(
            &ledger,
            BudgetPolicy::new(
                tenant("acme"),
                Window::Month,
                Nanos(EACH.0 * 4),
                at(2026, 3, 1),
            )
            .with_soft_limit(500),
        )
        .await;
        let when = at(2026, 3, 10);
        for _ in 0..2 {
            ledger.hold(&request(Lane::Urgent, when)).await.unwrap();
        }
        // A third urgent hold would pass 50 %: refused as soft, not as exceeded.
        let err = ledger.hold(&request(Lane::Urgent, when)).await.unwrap_err();
        assert!(err.is_soft_limit_reached(), "{name}: {err}");
        assert_eq!(err.code(), "soft_limit_reached");
        let err = ledger
            .hold_many(&[request(Lane::Batch, when), request(Lane::Urgent, when)])
            .await
            .unwrap_err();
        assert!(err.is_soft_limit_reached(), "{name}: {err}");
        // The batch lane at half price still fits under the hard limit, up to it.
        for _ in 0..4 {
            ledger.hold(&request(Lane::Batch, when)).await.unwrap();
        }
        let err = ledger.hold(&request(Lane::Batch, when)).await.unwrap_err();
        assert!(err.is_budget_exceeded(), "{name}: {err}");
    }
}

#[tokio::test]
async fn thresholds_and_soft_limits_are_validated() {
    let (ledger, _db) = support::sqlite_ledger().await;
    let base = BudgetPolicy::new(tenant("acme"), Window::Month, EACH, at(2026, 3, 1));
    for bad in [
        base.clone().with_alerts([0]),
        base.clone().with_soft_limit(10_001),
    ] {
        let err = ledger.budgets().set(&bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidBudget(_)), "{err}");
    }
    ledger
        .budgets()
        .set(
            &base
                .clone()
                .with_alerts([900, 800, 800])
                .with_soft_limit(950),
        )
        .await
        .unwrap();
    let status = ledger
        .budgets()
        .status(&tenant("acme"), "chat", at(2026, 3, 2))
        .await
        .unwrap();
    assert_eq!(status[0].policy.alert_permille, [800, 900]);
    assert_eq!(status[0].policy.soft_limit_permille, Some(950));
}
