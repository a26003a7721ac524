//! Reconciliation with the provider's account, end to end against the emulator: the client
//! makes a month of calls at the emulator's (virtual) times, the ledger records exactly what
//! came back, and `Tenantry::reconcile` reads the Admin API reports and compares. A clean
//! month is clean; each disagreement the emulator injects is found, classified rightly, and
//! nothing else is reported; paging and retries hold under faults. Each runs on SQLite and
//! on PostgreSQL.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "emulator"))]

use std::time::Duration;

use futures::TryStreamExt;
use tenantry::batch::types::{MessageParam, MessageParams, ResultOutcome};
use tenantry::batch::{AdminKey, BatchRequests, Config, PollPolicy, RetryPolicy};
use tenantry::cost::reconcile::{
    AttoUsd, Attribution, ChangeKind, DifferenceKind, ReconcileRequest, Reconciliation, TokenClass,
    Unattributed,
};
use tenantry::cost::{Lane, LedgerEntry, TokenBuckets, UnixMicros};
use tenantry::emulator::{CostRounding, Emulator, Endpoint, Fault, FaultPlan, Prices};
use tenantry::{Database, Tenantry};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

mod support;

const KEY: &str = "sk-test";
const ADMIN: &str = "sk-ant-admin01-reconcile";

async fn emulator(plan: FaultPlan) -> Emulator {
    let emu = Emulator::builder()
        .api_key(KEY)
        .admin_key(ADMIN)
        .batch_latency(Duration::from_secs(2))
        .seed(19)
        .faults(plan)
        .start()
        .await
        .expect("emulator starts");
    emu.clock().set_scale(0);
    emu
}

async fn tenantry(database: Database, emu: &Emulator) -> Tenantry {
    let config = Config::new(KEY)
        .base_url(emu.base_url())
        .retry(
            RetryPolicy::default()
                .initial_delay(Duration::from_millis(10))
                .jitter(false),
        )
        .admin_key(AdminKey::new(ADMIN).unwrap());
    Tenantry::builder()
        .database_pool(database)
        .api(config)
        .build()
        .await
        .unwrap()
}

/// One call the ledger recorded: its message id and its day.
#[derive(Debug, Clone)]
struct Call {
    message_id: String,
    day: Date,
    model: String,
    tokens: TokenBuckets,
}

fn entry(
    tenant: &str,
    message: &tenantry::batch::types::Message,
    lane: Lane,
    at: OffsetDateTime,
) -> LedgerEntry {
    let mut entry = LedgerEntry::new(
        "test",
        message.id.clone(),
        tenant.parse().unwrap(),
        "summaries",
        message.model.clone(),
        lane,
        UnixMicros(i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap()),
    )
    .with_tokens(TokenBuckets::from_usage(&message.usage).unwrap());
    entry.inference_geo = message.usage.inference_geo.clone();
    entry
}

fn set_clock(emu: &Emulator, at: OffsetDateTime) {
    emu.clock().set_offset(at - OffsetDateTime::now_utc());
}

/// `days` days of traffic from 2026-03-01: each day a Haiku and a Sonnet message (the
/// Sonnet one in the US every third day, with a cached system prompt every fourth, written
/// by the first call and read by a follow-up), and
/// every fifth day a batch of three Haiku requests. Every answer is recorded in the ledger
/// at the emulator's time, as a host that trusts the API's clock would.
async fn traffic(tenantry: &Tenantry, emu: &Emulator, days: i64) -> Vec<Call> {
    let client = tenantry.client();
    let ledger = tenantry.ledger();
    let mut calls = Vec::new();
    for d in 0..days {
        let noon = datetime!(2026-03-01 12:00 UTC) + time::Duration::days(d);
        set_clock(emu, noon);
        let tenant = if d % 2 == 0 { "acme" } else { "globex" };
        let mut sonnet = MessageParams::new(
            "claude-sonnet-4-6",
            200,
            vec![MessageParam::user(format!(
                "Summarize day {d}: {}",
                "text ".repeat(usize::try_from(d).unwrap() * 7)
            ))],
        );
        if d % 3 == 0 {
            sonnet.inference_geo = Some("us".into());
        }
        if d % 4 == 0 {
            sonnet = sonnet.system(vec![
                tenantry::batch::types::TextBlockParam::new("policy ".repeat(400))
                    .cached(tenantry::batch::types::CacheControl::ephemeral(None)),
            ]);
        }
        let haiku = MessageParams::new(
            "claude-haiku-4-5",
            64,
            vec![MessageParam::user(format!("Classify item {d}"))],
        );
        let mut calls_today = vec![haiku, sonnet.clone()];
        if d % 4 == 0 {
            // A follow-up within the cache's five minutes reads the cached system prompt.
            let mut follow_up = sonnet;
            follow_up.messages = vec![MessageParam::user(format!("And in one line, day {d}?"))];
            calls_today.push(follow_up);
        }
        for params in calls_today {
            let message = client.messages().create(&params).await.unwrap();
            ledger
                .record(&entry(tenant, &message, Lane::Urgent, emu.clock().now()))
                .await
                .unwrap();
            calls.push(Call {
                message_id: message.id.clone(),
                day: noon.date(),
                model: message.model.clone(),
                tokens: TokenBuckets::from_usage(&message.usage).unwrap(),
            });
        }
        if d % 5 == 0 {
            let mut requests = BatchRequests::new();
            for i in 0..3 {
                let p = MessageParams::new(
                    "claude-haiku-4-5",
                    32,
                    vec![MessageParam::user(format!("Batch question {d}-{i}"))],
                );
                requests.push(format!("q{i}"), &p).unwrap();
            }
            let created_at = emu.clock().now();
            let batch = client.batches().create(requests).await.unwrap();
            emu.clock().advance(Duration::from_secs(5));
            let poll = PollPolicy::default().initial(Duration::from_millis(5));
            client
                .batches()
                .wait(&batch.id, poll, |_| {})
                .await
                .unwrap();
            let results: Vec<_> = client
                .batches()
                .results(&batch.id)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            for line in results {
                if let ResultOutcome::Succeeded { message } = &line.result {
                    ledger
                        .record(&entry(tenant, message, Lane::Batch, created_at))
                        .await
                        .unwrap();
                    calls.push(Call {
                        message_id: message.id.clone(),
                        day: noon.date(),
                        model: message.model.clone(),
                        tokens: TokenBuckets::from_usage(&message.usage).unwrap(),
                    });
                }
            }
        }
    }
    set_clock(emu, datetime!(2026-04-15 12:00 UTC));
    calls
}

fn march() -> ReconcileRequest {
    ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 03 - 31))
}

fn kinds(run: &Reconciliation) -> Vec<&'static str> {
    let mut kinds: Vec<_> = run.differences.iter().map(|d| d.kind.as_str()).collect();
    kinds.dedup();
    kinds
}

/// A month of every kind of call reconciles to zero, token for token and to the last unit;
/// a second run finds nothing new. 40 days are asked for, so both reports take two pages.
async fn a_clean_month_reconciles_to_zero(database: Database) {
    let emu = emulator(FaultPlan::new()).await;
    let tenantry = tenantry(database, &emu).await;
    let calls = traffic(&tenantry, &emu, 31).await;
    assert_eq!(calls.len(), 31 * 2 + 8 + 7 * 3);
    assert!(calls.iter().any(|c| c.tokens.cache_read > 0));
    assert!(calls.iter().any(|c| c.tokens.cache_write_5m > 0));
    let forty = ReconcileRequest::new(date!(2026 - 03 - 01), date!(2026 - 04 - 09));
    let run = tenantry.reconcile(&forty).await.unwrap();
    assert!(run.is_clean(), "{:#?}", run.differences);
    assert!(run.provider_cost > AttoUsd::ZERO);
    assert_eq!(run.ledger_cost, run.provider_cost);
    assert!(run.compared >= 31 * 2 * 2, "{}", run.compared);
    assert_eq!(emu.fault_counts().requests(Endpoint::UsageReport), 2);
    assert_eq!(emu.fault_counts().requests(Endpoint::CostReport), 2);
    let again = tenantry.reconcile(&forty).await.unwrap();
    assert_eq!(again.previous_run, Some(run.run_id));
    assert!(again.is_clean() && again.changes.is_empty());
}

/// A request the provider's account lost shows as duplicate usage in the ledger, one it
/// counted twice as missing usage, in exactly their cells; a second run says only the new
/// one is new, and a run after the account is repaired says both are resolved.
async fn dropped_and_doubled_requests_are_ingestion_differences(database: Database) {
    let emu = emulator(FaultPlan::new()).await;
    let tenantry = tenantry(database, &emu).await;
    let calls = traffic(&tenantry, &emu, 8).await;
    let find = |day: Date, model: &str| {
        calls
            .iter()
            .find(|c| c.day == day && c.model == model)
            .unwrap()
            .clone()
    };
    let dropped = find(date!(2026 - 03 - 03), "claude-haiku-4-5");
    emu.drop_from_account(&dropped.message_id);
    let run = tenantry.reconcile(&march()).await.unwrap();
    assert_eq!(kinds(&run), ["duplicate_usage"], "{:#?}", run.differences);
    for d in &run.differences {
        assert_eq!(
            (d.cell.day, d.cell.model.as_str()),
            (dropped.day, "claude-haiku-4-5")
        );
        assert_eq!(d.token_delta(), -d.class.of(&dropped.tokens));
    }
    let classes: Vec<TokenClass> = run.differences.iter().map(|d| d.class).collect();
    let expected: Vec<TokenClass> = TokenClass::ALL
        .into_iter()
        .filter(|c| c.of(&dropped.tokens) != 0)
        .collect();
    assert_eq!(classes, expected);

    let doubled = find(date!(2026 - 03 - 05), "claude-sonnet-4-6");
    emu.double_in_account(&doubled.message_id);
    let second = tenantry.reconcile(&march()).await.unwrap();
    let missing: Vec<_> = second.of_kind("missing_usage").collect();
    assert!(!missing.is_empty());
    for d in &missing {
        assert_eq!(d.cell.day, doubled.day);
        assert_eq!(d.token_delta(), d.class.of(&doubled.tokens));
    }
    assert_eq!(
        second.differences.len(),
        run.differences.len() + missing.len(),
        "nothing else: {:#?}",
        second.differences
    );
    assert_eq!(second.previous_run, Some(run.run_id));
    assert!(second.changes.iter().all(|c| c.kind == ChangeKind::New));
    assert_eq!(second.changes.len(), missing.len());

    // The ledger's side of a duplicate: the same call recorded again under another key.
    let first = find(date!(2026 - 03 - 01), "claude-haiku-4-5");
    let mut copy = tenantry
        .ledger()
        .lines(&"acme".parse().unwrap())
        .await
        .unwrap()[0]
        .record
        .clone();
    copy.request_id = format!("{}-again", first.message_id);
    copy.source = "test".into();
    tenantry.ledger().record(&copy).await.unwrap();
    let third = tenantry.reconcile(&march()).await.unwrap();
    let new: Vec<_> = third
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::New)
        .collect();
    assert!(!new.is_empty());
    for change in new {
        let now = change.now.as_ref().unwrap();
        assert_eq!(now.kind, DifferenceKind::DuplicateUsage);
        assert_eq!(now.cell.day, date!(2026 - 03 - 01));
    }
}

/// A price change at a date is a price difference on exactly the cells it touches, with the
/// rate the provider's amounts imply; under the default tolerance of a cent the same small
/// cells are rounding, which is why the tolerance is the host's to state.
async fn a_price_change_is_found_with_its_implied_rate(database: Database) {
    let emu = emulator(FaultPlan::new()).await;
    let tenantry = tenantry(database, &emu).await;
    traffic(&tenantry, &emu, 8).await;
    emu.change_price(
        "claude-sonnet-4-6",
        datetime!(2026-03-06 00:00 UTC),
        Prices::new(3_000_000, 3_750_000, 6_000_000, 300_000, 20_000_000),
    );
    // The emulator writes exact amounts, so no difference is rounding: a tolerance of zero.
    // (With the default cent, these few hundred tokens would differ by less than it.)
    let run = tenantry
        .reconcile(&march().tolerance(AttoUsd::ZERO))
        .await
        .unwrap();
    assert!(!run.differences.is_empty());
    for d in &run.differences {
        assert_eq!(d.cell.model, "claude-sonnet-4-6");
        assert!(d.cell.day >= date!(2026 - 03 - 06), "{d:?}");
        assert_eq!(d.class, TokenClass::Output);
        assert_eq!(d.ledger_tokens, d.provider_tokens);
        let geo = if d.cell.inference_geo == "us" {
            1_100
        } else {
            1_000
        };
        assert_eq!(
            d.kind,
            DifferenceKind::PriceDifference {
                ledger_rate: 15_000 * geo,
                implied_rate: 20_000 * geo
            }
        );
    }
    // Days 6, 7 (in the US) and 8: one Sonnet output cell each.
    assert_eq!(run.differences.len(), 3, "{:#?}", run.differences);
    assert_eq!(run.of_kind("price_difference").count(), 3);
    let lenient = tenantry.reconcile(&march()).await.unwrap();
    assert_eq!(kinds(&lenient), ["rounding"]);
    assert_eq!(lenient.differences.len(), 3);
}

/// A provider that rounds each line to whole cents differs by rounding only, within the
/// stated tolerance; with no tolerance the same cells are price differences.
async fn coarser_rounding_is_rounding_within_tolerance(database: Database) {
    let emu = emulator(FaultPlan::new()).await;
    let tenantry = tenantry(database, &emu).await;
    traffic(&tenantry, &emu, 6).await;
    emu.set_cost_rounding(CostRounding::Decimals(0));
    let run = tenantry.reconcile(&march()).await.unwrap();
    assert!(!run.differences.is_empty());
    assert_eq!(kinds(&run), ["rounding"], "{:#?}", run.differences);
    for d in &run.differences {
        assert!(d.cost_delta().0.abs() <= AttoUsd::CENT.0 / 2);
        assert_eq!(d.ledger_tokens, d.provider_tokens);
    }
    let strict = tenantry
        .reconcile(&march().tolerance(AttoUsd::ZERO))
        .await
        .unwrap();
    assert_eq!(strict.differences.len(), run.differences.len());
    assert!(strict.of_kind("price_difference").count() == strict.differences.len());
}

/// Both reports read through overload, rate limits and a reset connection: the client's
/// retries absorb them and the month is still clean.
async fn reports_read_through_faults(database: Database) {
    let plan = FaultPlan::new()
        .script(Endpoint::UsageReport, Fault::overloaded(), 2)
        .script(Endpoint::CostReport, Fault::ConnectionReset, 1)
        .script_after(
            Endpoint::CostReport,
            Fault::rate_limited(Duration::from_millis(20)),
            1,
            1,
        );
    let emu = emulator(plan).await;
    let tenantry = tenantry(database, &emu).await;
    traffic(&tenantry, &emu, 4).await;
    let run = tenantry.reconcile(&march()).await.unwrap();
    assert!(run.is_clean(), "{:#?}", run.differences);
    assert_eq!(emu.fault_counts().injected_on(Endpoint::UsageReport), 2);
    assert_eq!(emu.fault_counts().injected_on(Endpoint::CostReport), 2);
}

/// Tenants mapped to workspaces: a request lost from one tenant's workspace is that
/// workspace's difference, usage in a workspace no tenant maps to is missing from the ledger
/// in the unscoped cells and named as unattributed, and the other tenant's workspace is clean.
async fn workspaces_attribute_differences_to_tenants(database: Database) {
    let emu = Emulator::builder()
        .api_key_in_workspace(KEY, "wrkspc_acme")
        .api_key_in_workspace("sk-globex", "wrkspc_globex")
        .api_key("sk-stray")
        .admin_key(ADMIN)
        .start()
        .await
        .unwrap();
    emu.clock().set_scale(0);
    let tenantry = tenantry(database, &emu).await;
    let client_of = |key: &str| {
        tenantry::batch::Client::new(Config::new(key).base_url(emu.base_url())).unwrap()
    };
    let (globex, stray) = (client_of("sk-globex"), client_of("sk-stray"));
    set_clock(&emu, datetime!(2026-03-02 12:00 UTC));
    let mut globex_ids = Vec::new();
    for i in 0..2 {
        for (tenant, client) in [("acme", tenantry.client()), ("globex", &globex)] {
            let params = MessageParams::new(
                "claude-haiku-4-5",
                64,
                vec![MessageParam::user(format!("{tenant} question {i}"))],
            );
            let message = client.messages().create(&params).await.unwrap();
            tenantry
                .ledger()
                .record(&entry(tenant, &message, Lane::Urgent, emu.clock().now()))
                .await
                .unwrap();
            if tenant == "globex" {
                globex_ids.push(message.id);
            }
        }
    }
    // Billed to a workspace no tenant maps to, and never recorded in the ledger.
    let params = MessageParams::new("claude-haiku-4-5", 64, vec![MessageParam::user("stray")]);
    stray.messages().create(&params).await.unwrap();
    emu.drop_from_account(&globex_ids[0]);

    let mut map = std::collections::BTreeMap::new();
    map.insert("acme".parse().unwrap(), "wrkspc_acme".to_owned());
    map.insert("globex".parse().unwrap(), "wrkspc_globex".to_owned());
    let request = march()
        .attribution(Attribution::Workspaces(map))
        .tolerance(AttoUsd::ZERO);
    let run = tenantry.reconcile(&request).await.unwrap();
    assert!(!run.differences.is_empty());
    for d in &run.differences {
        match d.cell.scope.as_deref() {
            Some("wrkspc_globex") => assert_eq!(d.kind, DifferenceKind::DuplicateUsage),
            None => assert_eq!(d.kind, DifferenceKind::MissingUsage),
            other => panic!("no difference expected in {other:?}: {d:?}"),
        }
    }
    assert!(
        run.of_kind("duplicate_usage").count() >= 2,
        "input and output"
    );
    let stray_workspace = emu.workspace_id("sk-stray").unwrap();
    assert!(
        run.unattributed
            .contains(&Unattributed::UnmappedScopes(vec![stray_workspace])),
        "{:?}",
        run.unattributed
    );
}

support::on_both_databases!(
    workspaces_attribute_differences_to_tenants,
    a_clean_month_reconciles_to_zero,
    dropped_and_doubled_requests_are_ingestion_differences,
    a_price_change_is_found_with_its_implied_rate,
    coarser_rounding_is_rounding_within_tolerance,
    reports_read_through_faults,
);
