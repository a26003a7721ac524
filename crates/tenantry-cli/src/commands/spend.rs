//! `tenantry spend`: the ledger's spend over a period, grouped, as a table, CSV or JSON.

use serde_json::json;
use tenantry::Tenantry;
use tenantry::cost::{GroupBy, SpendQuery, UnixMicros};

use crate::cli::{By, Format, SpendArgs};
use crate::commands::jobs::tenant;
use crate::exit::{Failure, USAGE};
use crate::output::{self, Table};

fn micros(at: time::OffsetDateTime) -> Result<UnixMicros, Failure> {
    i64::try_from(at.unix_timestamp_nanos() / 1000)
        .map(UnixMicros)
        .map_err(|_| Failure::new(USAGE, "time out of range"))
}

pub(crate) async fn run(t: &Tenantry, args: &SpendArgs, as_json: bool) -> Result<(), Failure> {
    if args.from >= args.to {
        return Err(Failure::new(USAGE, "--from must be before --to"));
    }
    let group_by = match args.by {
        By::Tenant => GroupBy::Tenant,
        By::Feature => GroupBy::Feature,
        By::User => GroupBy::User,
        By::Model => GroupBy::Model,
        By::Lane => GroupBy::Lane,
    };
    let query = SpendQuery::new(micros(args.from)?, micros(args.to)?, group_by);
    let query = match args.tenant.as_deref().map(tenant).transpose()? {
        Some(tenant) => query.for_tenant(tenant),
        None => query,
    };
    let rows = t.spend(&query).await?;
    let format = if as_json { Format::Json } else { args.format };
    match format {
        Format::Json => {
            // Money as integer nano-dollars: exact, and what the ledger stores.
            let rows: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "key": r.key,
                        "cost_nanos": r.cost.0,
                        "standard_cost_nanos": r.standard_cost.0,
                        "saved_nanos": r.saved_by_batching().0,
                        "lines": r.lines,
                    })
                })
                .collect();
            output::json(&json!({
                "from": output::time(args.from),
                "to": output::time(args.to),
                "rows": rows,
            }));
        }
        Format::Table | Format::Csv => {
            let mut table = Table::new(vec!["key", "cost", "standard_cost", "saved", "lines"]);
            for r in &rows {
                table.row(vec![
                    r.key.clone().unwrap_or_default(),
                    r.cost.to_string(),
                    r.standard_cost.to_string(),
                    r.saved_by_batching().to_string(),
                    r.lines.to_string(),
                ]);
            }
            if matches!(format, Format::Csv) {
                print!("{}", table.csv());
            } else {
                table.print();
            }
        }
    }
    Ok(())
}
