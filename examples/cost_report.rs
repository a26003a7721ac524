//! A month's AI spend per tenant from a seeded ledger: by tenant, feature and lane, what
//! batching saved, and an SVG chart of spend by tenant and day; then a week of real calls to
//! the emulator reconciled with its Admin API usage and cost reports, and the drift printed.
//!
//! Run with: `cargo run --example cost_report [chart.svg]`
//!
//! The database is a fresh SQLite file under the system temp dir, seeded with October 2026 for
//! five tenants; the chart goes to the given path, or `tenantry-spend-by-day.svg` under the
//! system temp dir.

#[path = "seed.rs"]
mod seed;
#[path = "svg_chart.rs"]
mod svg_chart;

mod drift {
    //! The reconciliation part: calls made through the client at the emulator's times,
    //! recorded in the ledger as they came back, then compared with the provider's account
    //! after the emulator was told to disagree.

    use tenantry::Tenantry;
    use tenantry::batch::types::{MessageParam, MessageParams};
    use tenantry::batch::{AdminKey, Config};
    use tenantry::cost::reconcile::{AttoUsd, DifferenceKind, ReconcileRequest};
    use tenantry::cost::{Lane, LedgerEntry, TokenBuckets, UnixMicros};
    use tenantry::emulator::{Emulator, Prices};
    use time::macros::{date, datetime};
    use time::{Duration, OffsetDateTime};

    const ADMIN: &str = "sk-ant-admin01-example";

    pub(crate) async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
        let emu = Emulator::builder()
            .api_key("sk-example")
            .admin_key(ADMIN)
            .start()
            .await?;
        emu.clock().set_scale(0);
        let tenantry = Tenantry::builder()
            .database(format!("sqlite://{}", dir.join("reconcile.db").display()))
            .api(
                Config::new("sk-example")
                    .base_url(emu.base_url())
                    .admin_key(AdminKey::new(ADMIN)?),
            )
            .build()
            .await?;
        let mut ids = Vec::new();
        for day in 0..7 {
            let noon = datetime!(2026-11-02 12:00 UTC) + Duration::days(day);
            emu.clock().set_offset(noon - OffsetDateTime::now_utc());
            for (tenant, model) in [
                ("acme", "claude-haiku-4-5"),
                ("globex", "claude-sonnet-4-6"),
            ] {
                let text = format!(
                    "Summarize ticket {day} for {tenant}: {}",
                    "words ".repeat(60)
                );
                let params = MessageParams::new(model, 300, vec![MessageParam::user(text)]);
                let message = tenantry.client().messages().create(&params).await?;
                let at = emu.clock().now().unix_timestamp_nanos() / 1_000;
                let mut entry = LedgerEntry::new(
                    "example",
                    message.id.clone(),
                    tenant.parse()?,
                    "tickets",
                    message.model.clone(),
                    Lane::Urgent,
                    UnixMicros(i64::try_from(at)?),
                )
                .with_tokens(TokenBuckets::from_usage(&message.usage)?);
                entry.inference_geo = message.usage.inference_geo.clone();
                tenantry.ledger().record(&entry).await?;
                ids.push(message.id);
            }
        }
        // The provider's account disagrees: it lost one request, and Sonnet's output went up
        // to $18/MTok on Nov 6 while our price book still says $15.
        emu.drop_from_account(&ids[2]);
        emu.change_price(
            "claude-sonnet-4-6",
            datetime!(2026-11-06 00:00 UTC),
            Prices::new(3_000_000, 3_750_000, 6_000_000, 300_000, 18_000_000),
        );
        let week = ReconcileRequest::new(date!(2026 - 11 - 02), date!(2026 - 11 - 08))
            .tolerance(AttoUsd::ZERO);
        let run = tenantry.reconcile(&week).await?;
        println!(
            "\nreconciliation with the provider, 2026-11-02 ..= 2026-11-08 (run {}):",
            run.run_id
        );
        println!("  ledger   {}", run.ledger_cost);
        println!("  provider {}", run.provider_cost);
        println!(
            "  {} cells compared, {} differences",
            run.compared,
            run.differences.len()
        );
        for d in &run.differences {
            let detail = match d.kind {
                DifferenceKind::PriceDifference {
                    ledger_rate,
                    implied_rate,
                } => format!(
                    "rate {}/MTok in the book, {}/MTok implied",
                    AttoUsd(i128::from(ledger_rate) * 1_000_000_000_000),
                    AttoUsd(i128::from(implied_rate) * 1_000_000_000_000)
                ),
                _ => format!("{:+} tokens", d.token_delta()),
            };
            println!(
                "  {} {:18} {:8} {:7?} {:16} {:>14}  {detail}",
                d.cell.day,
                d.cell.model,
                d.cell.service_tier,
                d.class,
                d.kind.as_str(),
                d.cost_delta().to_string()
            );
        }
        let again = tenantry.reconcile(&week).await?;
        println!(
            "  a second run changes {} of them (previous run {:?})",
            again.changes.len(),
            again.previous_run
        );
        emu.shutdown().await;
        Ok(())
    }
}

use tenantry::cost::{GroupBy, Nanos, SpendQuery, UnixMicros};

/// Dollars with four decimals, for the chart's axis.
fn dollars(nanos: i64) -> String {
    format!(
        "${}.{:04}",
        nanos / 1_000_000_000,
        (nanos % 1_000_000_000) / 100_000
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tenantry-cost-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tenantry = seed::seeded(&dir.join("ledger.db"), 40).await?;

    let from = UnixMicros::from_ymd(seed::YEAR, seed::MONTH, 1)?;
    let to = UnixMicros::from_ymd(seed::YEAR, seed::MONTH + 1, 1)?;
    let report = |group_by| SpendQuery::new(from, to, group_by);

    println!("AI spend, {}-{:02} (UTC)\n", seed::YEAR, seed::MONTH);
    for (title, group_by) in [
        ("tenant", GroupBy::Tenant),
        ("feature", GroupBy::Feature),
        ("lane", GroupBy::Lane),
    ] {
        println!("by {title}:");
        println!(
            "  {:16} {:>8} {:>16} {:>16} {:>16}",
            title, "requests", "cost", "synchronous", "saved"
        );
        for row in tenantry.spend(&report(group_by)).await? {
            println!(
                "  {:16} {:>8} {:>16} {:>16} {:>16}",
                row.key.as_deref().unwrap_or("-"),
                row.lines,
                row.cost.to_string(),
                row.standard_cost.to_string(),
                row.saved_by_batching().to_string()
            );
        }
        println!();
    }
    let saved = tenantry
        .ledger()
        .reports()
        .saved_by_batching(None, from, to)
        .await?;
    println!("batching saved {saved} this month\n");

    // Spend by tenant and day: one report per day.
    let mut by_day = vec![vec![0_i64; usize::from(seed::DAYS)]; seed::ACTIVE.len()];
    for day in 0..seed::DAYS {
        let start = UnixMicros(from.0 + i64::from(day) * seed::DAY_MICROS);
        let end = UnixMicros(start.0 + seed::DAY_MICROS);
        for row in tenantry
            .spend(&SpendQuery::new(start, end, GroupBy::Tenant))
            .await?
        {
            if let Some(t) = seed::ACTIVE
                .iter()
                .position(|t| Some(*t) == row.key.as_deref())
            {
                by_day[t][usize::from(day)] = row.cost.0;
            }
        }
    }
    let busiest = (0..usize::from(seed::DAYS))
        .max_by_key(|&d| by_day.iter().map(|s| s[d]).sum::<i64>())
        .unwrap_or(0);
    println!(
        "busiest day: {}-{:02}-{:02}, {}",
        seed::YEAR,
        seed::MONTH,
        busiest + 1,
        Nanos(by_day.iter().map(|s| s[busiest]).sum())
    );

    let svg = svg_chart::stacked_bars(
        &format!(
            "AI spend by tenant and day, {}-{:02}",
            seed::YEAR,
            seed::MONTH
        ),
        &seed::ACTIVE,
        &by_day,
        dollars,
    );
    let chart = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("tenantry-spend-by-day.svg"),
        Into::into,
    );
    std::fs::write(&chart, svg)?;
    println!("chart of spend by tenant and day: {}", chart.display());

    drift::run(&dir).await?;

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
