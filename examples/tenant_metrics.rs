//! The built-in tenant metrics of a seeded database, rolled up over the tenant tree, and an SVG
//! chart of spend by tenant and day computed by one metrics query.
//!
//! Run with: `cargo run --example tenant_metrics [chart.svg]`
//!
//! The database is a fresh SQLite file under the system temp dir, seeded with October 2026 for
//! an organization with two workspaces and three more tenants; the chart goes to the given path,
//! or `tenantry-metrics-by-day.svg` under the system temp dir.

#[path = "seed.rs"]
mod seed;
#[path = "svg_chart.rs"]
mod svg_chart;

use tenantry::cost::{Nanos, UnixMicros};
use tenantry::metrics::{MetricsQuery, Period, Scope, builtin};

fn dollars(nanos: i64) -> String {
    format!(
        "${}.{:04}",
        nanos / 1_000_000_000,
        (nanos % 1_000_000_000) / 100_000
    )
}

fn cell(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tenantry-tenant-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tenantry = seed::seeded(&dir.join("metrics.db"), 40).await?;

    let from = UnixMicros::from_ymd(seed::YEAR, seed::MONTH, 1)?;
    let to = UnixMicros::from_ymd(seed::YEAR, seed::MONTH + 1, 1)?;
    let october = Period::new(from.0, to.0)?;
    let first_half = Period::new(from.0, from.0 + 15 * seed::DAY_MICROS)?;
    let second_half = Period::new(
        from.0 + 15 * seed::DAY_MICROS,
        from.0 + 30 * seed::DAY_MICROS,
    )?;

    // Every built-in usage metric for every tenant; parents are recomputed over their subtree.
    let mut q = MetricsQuery::new();
    q.scope(Scope::All);
    q.select("requests", builtin::requests(october))?;
    q.select("tokens", builtin::tokens(october))?;
    q.select("cost", builtin::cost(october))?;
    q.select("active_users", builtin::active_users(october))?;
    q.select("cost_per_user", builtin::cost_per_active_user(october))?;
    q.select(
        "summaries_adoption_ppm",
        builtin::adoption_rate("summaries", october),
    )?;
    q.select("batch_share_ppm", builtin::batch_share(october))?;
    q.select("batch_savings", builtin::batch_savings(october))?;
    q.select(
        "requests_trend",
        builtin::delta(builtin::requests, second_half, first_half),
    )?;
    let rows = tenantry.metrics(&q).await?;

    println!(
        "tenant metrics, {}-{:02} (UTC); parents roll up their subtree\n",
        seed::YEAR,
        seed::MONTH
    );
    println!(
        "  {:12} {:>8} {:>9} {:>14} {:>6} {:>14} {:>9} {:>8} {:>14} {:>7}",
        "tenant",
        "requests",
        "tokens",
        "cost",
        "users",
        "cost/user",
        "adoption",
        "batch",
        "saved",
        "trend"
    );
    for (tenant, parent) in seed::TENANTS {
        let Some(row) = rows.iter().find(|r| r.tenant_id() == tenant) else {
            continue;
        };
        let name = if parent.is_some() {
            format!("  {tenant}")
        } else {
            tenant.to_owned()
        };
        println!(
            "  {:12} {:>8} {:>9} {:>14} {:>6} {:>14} {:>8}% {:>7}% {:>14} {:>7}",
            name,
            cell(row.value("requests")),
            cell(row.value("tokens")),
            Nanos(row.value("cost").unwrap_or(0)).to_string(),
            cell(row.value("active_users")),
            Nanos(row.value("cost_per_user").unwrap_or(0)).to_string(),
            row.value("summaries_adoption_ppm").unwrap_or(0) / 10_000,
            row.value("batch_share_ppm").unwrap_or(0) / 10_000,
            Nanos(row.value("batch_savings").unwrap_or(0)).to_string(),
            cell(row.value("requests_trend")),
        );
    }

    // Spend by tenant and day: one query with one column per day.
    let mut daily = MetricsQuery::new();
    daily.scope(Scope::Ids(
        seed::ACTIVE.iter().map(|t| (*t).to_owned()).collect(),
    ));
    for day in 0..i64::from(seed::DAYS) {
        let start = from.0 + day * seed::DAY_MICROS;
        daily.select(
            &format!("day{day}"),
            builtin::cost(Period::new(start, start + seed::DAY_MICROS)?),
        )?;
    }
    let rows = tenantry.metrics(&daily).await?;
    let by_day: Vec<Vec<i64>> = seed::ACTIVE
        .iter()
        .map(|t| {
            let row = rows.iter().find(|r| r.tenant_id() == *t);
            (0..seed::DAYS)
                .map(|d| row.and_then(|r| r.value(&format!("day{d}"))).unwrap_or(0))
                .collect()
        })
        .collect();
    let svg = svg_chart::stacked_bars(
        &format!(
            "Spend by tenant and day (metrics query), {}-{:02}",
            seed::YEAR,
            seed::MONTH
        ),
        &seed::ACTIVE,
        &by_day,
        dollars,
    );
    let chart = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("tenantry-metrics-by-day.svg"),
        Into::into,
    );
    std::fs::write(&chart, svg)?;
    println!("\nchart of spend by tenant and day: {}", chart.display());

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
