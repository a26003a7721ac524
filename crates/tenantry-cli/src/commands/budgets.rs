//! `tenantry budgets show|set`.

use serde_json::json;
use tenantry::Tenantry;
use tenantry::cost::{BudgetPolicy, Nanos, UnixMicros, Window};

use crate::cli::{BudgetSetArgs, BudgetShowArgs, BudgetWindow, BudgetsCommand};
use crate::commands::jobs::tenant;
use crate::exit::{Failure, USAGE};
use crate::output::{self, Table};

pub(crate) async fn run(
    t: &Tenantry,
    command: &BudgetsCommand,
    as_json: bool,
) -> Result<(), Failure> {
    match command {
        BudgetsCommand::Show(args) => show(t, args, as_json).await,
        BudgetsCommand::Set(args) => set(t, args, as_json).await,
    }
}

fn window_name(window: Window) -> String {
    match window {
        Window::Month => "month".to_owned(),
        Window::Day => "day".to_owned(),
        Window::Custom { length_micros } => format!("custom {length_micros} µs"),
        _ => "other".to_owned(),
    }
}

fn at(micros: UnixMicros) -> String {
    micros
        .to_datetime()
        .map(output::time)
        .unwrap_or_else(|_| micros.0.to_string())
}

async fn show(t: &Tenantry, args: &BudgetShowArgs, as_json: bool) -> Result<(), Failure> {
    let id = tenant(&args.tenant.tenant)?;
    // The tenant-wide budget is in force for every feature; a feature adds its own.
    let feature = args.feature.as_deref().unwrap_or_default();
    let status = t
        .ledger()
        .budgets()
        .status(&id, feature, UnixMicros::now())
        .await?;
    if as_json {
        let rows: Vec<_> = status
            .iter()
            .map(|s| {
                json!({
                    "tenant": s.policy.tenant_id.as_str(),
                    "feature": s.policy.feature,
                    "window": window_name(s.policy.window),
                    "limit_nanos": s.policy.limit.0,
                    "spent_nanos": s.spent.0,
                    "held_nanos": s.held.0,
                    "remaining_nanos": (s.policy.limit - s.spent - s.held).0,
                    "window_start": at(s.window_start),
                    "window_end": at(s.window_end),
                })
            })
            .collect();
        output::json(&json!({"budgets": rows}));
        return Ok(());
    }
    if status.is_empty() {
        println!("no budget in force for {}", args.tenant.tenant);
        return Ok(());
    }
    let mut table = Table::new(vec![
        "scope",
        "window",
        "limit",
        "spent",
        "held",
        "remaining",
        "window ends",
    ]);
    for s in &status {
        table.row(vec![
            s.policy
                .feature
                .clone()
                .unwrap_or_else(|| "(tenant)".to_owned()),
            window_name(s.policy.window),
            s.policy.limit.to_string(),
            s.spent.to_string(),
            s.held.to_string(),
            (s.policy.limit - s.spent - s.held).to_string(),
            at(s.window_end),
        ]);
    }
    table.print();
    Ok(())
}

async fn set(t: &Tenantry, args: &BudgetSetArgs, as_json: bool) -> Result<(), Failure> {
    let from = match args.from {
        Some(at) => i64::try_from(at.unix_timestamp_nanos() / 1000)
            .map(UnixMicros)
            .map_err(|_| Failure::new(USAGE, "--from out of range"))?,
        None => UnixMicros::now(),
    };
    let window = match args.window {
        BudgetWindow::Month => Window::Month,
        BudgetWindow::Day => Window::Day,
    };
    let policy = BudgetPolicy::new(
        tenant(&args.tenant.tenant)?,
        window,
        Nanos(args.limit_usd),
        from,
    );
    let policy = match &args.feature {
        Some(feature) => policy.for_feature(feature),
        None => policy,
    };
    t.ledger().budgets().set(&policy).await?;
    if as_json {
        output::json(&json!({
            "tenant": args.tenant.tenant,
            "feature": args.feature,
            "window": window_name(policy.window),
            "limit_nanos": policy.limit.0,
            "effective_from": at(from),
        }));
    } else {
        println!(
            "budget of {} per {} for {}{} in force from {}",
            policy.limit,
            window_name(policy.window),
            args.tenant.tenant,
            args.feature
                .as_deref()
                .map(|f| format!(" / {f}"))
                .unwrap_or_default(),
            at(from)
        );
    }
    Ok(())
}
