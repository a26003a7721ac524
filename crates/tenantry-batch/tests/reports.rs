//! The Admin API reports through the client: typed pages, streams that follow `next_page`,
//! exact amounts, the retry rules under the emulator's faults, and the admin key kept secret.

mod support;

use std::time::Duration;

use futures_util::TryStreamExt;
use support::{KEY, fast_retries, params};
use tenantry_batch::{
    AdminKey, Client, Config, CostGroupBy, CostReportParams, Error, UsageGroupBy, UsageReportParams,
};
use tenantry_emulator::{Emulator, Endpoint, Fault, FaultKind, FaultPlan};
use time::OffsetDateTime;
use time::macros::datetime;

const ADMIN: &str = "sk-ant-admin01-3f9c2a7e-never-print-me";

async fn emulator(plan: FaultPlan) -> Emulator {
    let emu = Emulator::builder()
        .api_key(KEY)
        .admin_key(ADMIN)
        .seed(5)
        .faults(plan)
        .start()
        .await
        .expect("emulator starts");
    emu.clock().set_scale(0);
    emu
}

fn client(emu: &Emulator) -> Client {
    let config = Config::new(KEY)
        .base_url(emu.base_url())
        .retry(fast_retries())
        .admin_key(AdminKey::new(ADMIN).unwrap());
    Client::new(config).unwrap()
}

/// One message per day for `days` days from 2026-03-01, each at noon.
async fn daily_messages(emu: &Emulator, client: &Client, days: i64) {
    for day in 0..days {
        let at = datetime!(2026-03-01 12:00 UTC) + time::Duration::days(day);
        emu.clock().set_offset(at - OffsetDateTime::now_utc());
        client
            .messages()
            .create(&params(&format!("question of day {day}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn usage_report_stream_walks_every_page() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    daily_messages(&emu, &client, 10).await;
    let params = UsageReportParams::new(datetime!(2026-03-01 00:00 UTC))
        .ending_at(datetime!(2026-03-11 00:00 UTC))
        .group_by([UsageGroupBy::Model, UsageGroupBy::ServiceTier])
        .limit(3);
    let buckets: Vec<_> = client
        .reports()
        .usage_all(params)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(buckets.len(), 10);
    assert_eq!(emu.fault_counts().requests(Endpoint::UsageReport), 4);
    let billed = emu.billed();
    for (bucket, usage) in buckets.iter().zip(&billed) {
        assert_eq!(bucket.starting_at.date(), usage.at.date());
        assert_eq!(bucket.results.len(), 1);
        let row = &bucket.results[0];
        assert_eq!(row.uncached_input_tokens, usage.uncached_input_tokens);
        assert_eq!(row.output_tokens, usage.output_tokens);
        assert_eq!(row.model.as_deref(), Some("claude-haiku-4-5"));
        assert_eq!(row.service_tier.as_deref(), Some("standard"));
        assert_eq!(row.workspace_id, None, "not grouped by workspace");
    }
}

#[tokio::test]
async fn cost_amounts_are_exact_and_sum_to_the_price_of_the_tokens() {
    let emu = emulator(FaultPlan::new()).await;
    let client = client(&emu);
    daily_messages(&emu, &client, 3).await;
    let params = CostReportParams::new(datetime!(2026-03-01 00:00 UTC))
        .ending_at(datetime!(2026-03-04 00:00 UTC))
        .group_by([CostGroupBy::Description]);
    let days: Vec<_> = client
        .reports()
        .cost_all(params)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(days.len(), 3);
    // In units of 10⁻¹⁶ cent: Haiku 4.5 is $1 / $5 per million tokens.
    let expected: i128 = emu
        .billed()
        .iter()
        .map(|b| {
            i128::from(b.uncached_input_tokens) * 1_000_000_000_000
                + i128::from(b.output_tokens) * 5_000_000_000_000
        })
        .sum();
    let got: i128 = days
        .iter()
        .flat_map(|d| &d.results)
        .map(|r| r.amount.in_units_of(16).unwrap())
        .sum();
    assert_eq!(got, expected);
    let row = &days[0].results[0];
    assert_eq!(row.currency, "USD");
    assert_eq!(row.cost_type.as_deref(), Some("tokens"));
    assert!(row.token_type.is_some() && row.model.is_some());
}

#[tokio::test]
async fn report_reads_are_retried_like_any_read() {
    let plan = FaultPlan::new()
        .script(Endpoint::UsageReport, Fault::overloaded(), 2)
        .script(Endpoint::CostReport, Fault::ConnectionReset, 1)
        .script_after(
            Endpoint::CostReport,
            Fault::rate_limited(Duration::from_millis(30)),
            2,
            1,
        );
    let emu = emulator(plan).await;
    let client = client(&emu);
    daily_messages(&emu, &client, 8).await;
    let usage = UsageReportParams::new(datetime!(2026-03-01 00:00 UTC))
        .ending_at(datetime!(2026-03-09 00:00 UTC))
        .limit(5);
    let buckets: Vec<_> = client
        .reports()
        .usage_all(usage)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(buckets.len(), 8);
    let cost = CostReportParams::new(datetime!(2026-03-01 00:00 UTC))
        .ending_at(datetime!(2026-03-09 00:00 UTC))
        .limit(2);
    let days: Vec<_> = client.reports().cost_all(cost).try_collect().await.unwrap();
    assert_eq!(days.len(), 8);
    assert!(days.iter().all(|d| d.results.len() == 1));
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::UsageReport, FaultKind::Overloaded),
        2
    );
    assert_eq!(
        counts.injected(Endpoint::CostReport, FaultKind::ConnectionReset),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::CostReport, FaultKind::RateLimited),
        1
    );
    assert_eq!(counts.completed(Endpoint::UsageReport), 2);
    assert_eq!(counts.completed(Endpoint::CostReport), 4);
}

#[tokio::test]
async fn without_an_admin_key_nothing_is_sent() {
    let emu = emulator(FaultPlan::new()).await;
    let plain = Client::new(Config::new(KEY).base_url(emu.base_url())).unwrap();
    let err = plain
        .reports()
        .cost(&CostReportParams::new(datetime!(2026-03-01 00:00 UTC)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert_eq!(emu.fault_counts().requests(Endpoint::CostReport), 0);
    // An ordinary key is not an admin key.
    let refused = AdminKey::new(KEY).unwrap_err();
    assert!(!refused.to_string().contains("never-print-me"));
}

#[tokio::test]
async fn the_admin_key_never_shows() {
    let emu = emulator(FaultPlan::new()).await;
    let admin = AdminKey::new(ADMIN).unwrap();
    assert_eq!(format!("{admin:?}"), "AdminKey([REDACTED])");
    let config = Config::new(KEY).base_url(emu.base_url()).admin_key(admin);
    assert!(!format!("{config:?}").contains("never-print-me"));
    let client = Client::new(config).unwrap();
    assert!(!format!("{client:?}").contains("never-print-me"));
    // A refused report answer carries no key either.
    emu.set_faults(FaultPlan::new().script(
        Endpoint::UsageReport,
        Fault::Error {
            error_type: tenantry_emulator::ErrorType::Permission,
            retry_after: None,
            should_retry: None,
        },
        1,
    ));
    let err = client
        .reports()
        .usage(&UsageReportParams::new(datetime!(2026-03-01 00:00 UTC)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api(_)));
    assert!(!format!("{err:?} {err}").contains("never-print-me"));
}
