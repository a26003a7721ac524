//! A month's AI spend per tenant from a seeded ledger: by tenant, feature and lane, what
//! batching saved, and an SVG chart of spend by tenant and day.
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

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
