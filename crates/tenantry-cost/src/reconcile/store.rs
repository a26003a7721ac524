//! Stored runs: each reconciliation and its differences, and what changed since the latest
//! earlier run over overlapping days.

use std::collections::BTreeMap;

use sea_query::{Expr, ExprTrait, Order, Query};
use time::Date;
use time::macros::format_description;

use super::compare::Outcome;
use super::{
    AttoUsd, Cell, Change, ChangeKind, Difference, DifferenceKind, ReconcileRequest,
    Reconciliation, TokenClass,
};
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::schema::{ReconDiff, ReconRun};
use tenantry_core::UnixMicros;

/// Rows per insert statement (14 bound values each, well under both databases' limits).
const ROWS_PER_INSERT: usize = 500;

type DiffRow = (
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
);

fn day_text(day: Date) -> String {
    day.to_string()
}

fn parse_day(text: &str) -> Result<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| Error::InvalidRow(format!("reconciliation day `{text}`")))
}

fn parse_class(text: &str) -> Result<TokenClass> {
    TokenClass::ALL
        .into_iter()
        .find(|c| c.as_str() == text)
        .ok_or_else(|| Error::InvalidRow(format!("token class `{text}`")))
}

fn parse_kind(
    text: &str,
    ledger_rate: Option<i64>,
    implied_rate: Option<i64>,
) -> Result<DifferenceKind> {
    Ok(match text {
        "missing_usage" => DifferenceKind::MissingUsage,
        "duplicate_usage" => DifferenceKind::DuplicateUsage,
        "rounding" => DifferenceKind::Rounding,
        "price_difference" => DifferenceKind::PriceDifference {
            ledger_rate: ledger_rate.unwrap_or(0),
            implied_rate: implied_rate.unwrap_or(0),
        },
        other => return Err(Error::InvalidRow(format!("difference kind `{other}`"))),
    })
}

fn from_row(row: DiffRow) -> Result<Difference> {
    let (day, scope, model, service_tier, context_window, inference_geo, class, kind) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    Ok(Difference {
        cell: Cell {
            day: parse_day(&day)?,
            scope,
            model,
            service_tier,
            context_window,
            inference_geo,
        },
        class: parse_class(&class)?,
        kind: parse_kind(&kind, row.12, row.13)?,
        ledger_tokens: row.8,
        provider_tokens: row.9,
        ledger_cost: AttoUsd::from_decimal_string(&row.10)?,
        provider_cost: AttoUsd::from_decimal_string(&row.11)?,
    })
}

/// The latest run over days overlapping `request`'s, and its differences on those days.
async fn previous(
    ledger: &Ledger,
    request: &ReconcileRequest,
) -> Result<Option<(i64, Vec<Difference>)>> {
    let (from, to) = (day_text(request.from), day_text(request.to));
    let find = Query::select()
        .column(ReconRun::Id)
        .from(ReconRun::Table)
        .and_where(Expr::col(ReconRun::FromDay).lte(to.as_str()))
        .and_where(Expr::col(ReconRun::ToDay).gte(from.as_str()))
        .order_by(ReconRun::Id, Order::Desc)
        .limit(1)
        .to_owned();
    let Some((run_id,)): Option<(i64,)> = ledger.pool.fetch_optional(&find).await? else {
        return Ok(None);
    };
    let rows = Query::select()
        .columns([
            ReconDiff::Day,
            ReconDiff::Scope,
            ReconDiff::Model,
            ReconDiff::ServiceTier,
            ReconDiff::ContextWindow,
            ReconDiff::InferenceGeo,
            ReconDiff::TokenClass,
            ReconDiff::Kind,
            ReconDiff::LedgerTokens,
            ReconDiff::ProviderTokens,
            ReconDiff::LedgerCost,
            ReconDiff::ProviderCost,
            ReconDiff::LedgerRate,
            ReconDiff::ImpliedRate,
        ])
        .from(ReconDiff::Table)
        .and_where(Expr::col(ReconDiff::RunId).eq(run_id))
        .and_where(Expr::col(ReconDiff::Day).gte(from.as_str()))
        .and_where(Expr::col(ReconDiff::Day).lte(to.as_str()))
        .to_owned();
    let rows: Vec<DiffRow> = ledger.pool.fetch_all(&rows).await?;
    let diffs = rows.into_iter().map(from_row).collect::<Result<_>>()?;
    Ok(Some((run_id, diffs)))
}

/// What changed from `before` to `now`, keyed by cell and class.
fn changes(before: Vec<Difference>, now: &[Difference]) -> Vec<Change> {
    let mut old: BTreeMap<(Cell, TokenClass), Difference> = before
        .into_iter()
        .map(|d| ((d.cell.clone(), d.class), d))
        .collect();
    let mut out = Vec::new();
    for d in now {
        match old.remove(&(d.cell.clone(), d.class)) {
            None => out.push(Change {
                kind: ChangeKind::New,
                now: Some(d.clone()),
                before: None,
            }),
            Some(b) if b != *d => out.push(Change {
                kind: ChangeKind::Changed,
                now: Some(d.clone()),
                before: Some(b),
            }),
            Some(_) => {}
        }
    }
    out.extend(old.into_values().map(|b| Change {
        kind: ChangeKind::Resolved,
        now: None,
        before: Some(b),
    }));
    out
}

fn rates(kind: &DifferenceKind) -> (Option<i64>, Option<i64>) {
    match kind {
        DifferenceKind::PriceDifference {
            ledger_rate,
            implied_rate,
        } => (Some(*ledger_rate), Some(*implied_rate)),
        _ => (None, None),
    }
}

pub(crate) async fn store(
    ledger: &Ledger,
    request: &ReconcileRequest,
    outcome: Outcome,
) -> Result<Reconciliation> {
    let previous = previous(ledger, request).await?;
    let run = Query::insert()
        .into_table(ReconRun::Table)
        .columns([
            ReconRun::RanAt,
            ReconRun::FromDay,
            ReconRun::ToDay,
            ReconRun::Tolerance,
            ReconRun::Differences,
        ])
        .values([
            UnixMicros::now().0.into(),
            day_text(request.from).into(),
            day_text(request.to).into(),
            request.tolerance.to_decimal_string().into(),
            i64::try_from(outcome.differences.len())
                .unwrap_or(i64::MAX)
                .into(),
        ])?
        .returning_col(ReconRun::Id)
        .to_owned();
    let mut tx = ledger.pool.begin().await?;
    let (run_id,): (i64,) = tx.fetch_one(&run).await?;
    for chunk in outcome.differences.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::insert();
        insert.into_table(ReconDiff::Table).columns([
            ReconDiff::RunId,
            ReconDiff::Day,
            ReconDiff::Scope,
            ReconDiff::Model,
            ReconDiff::ServiceTier,
            ReconDiff::ContextWindow,
            ReconDiff::InferenceGeo,
            ReconDiff::TokenClass,
            ReconDiff::Kind,
            ReconDiff::LedgerTokens,
            ReconDiff::ProviderTokens,
            ReconDiff::LedgerCost,
            ReconDiff::ProviderCost,
            ReconDiff::LedgerRate,
            ReconDiff::ImpliedRate,
        ]);
        for d in chunk {
            let (ledger_rate, implied_rate) = rates(&d.kind);
            insert.values([
                run_id.into(),
                day_text(d.cell.day).into(),
                d.cell.scope.clone().into(),
                d.cell.model.clone().into(),
                d.cell.service_tier.clone().into(),
                d.cell.context_window.clone().into(),
                d.cell.inference_geo.clone().into(),
                d.class.as_str().into(),
                d.kind.as_str().into(),
                d.ledger_tokens.into(),
                d.provider_tokens.into(),
                d.ledger_cost.to_decimal_string().into(),
                d.provider_cost.to_decimal_string().into(),
                ledger_rate.into(),
                implied_rate.into(),
            ])?;
        }
        tx.execute(&insert).await?;
    }
    tx.commit().await?;
    let (previous_run, changes) = match previous {
        None => (None, Vec::new()),
        Some((id, before)) => (Some(id), changes(before, &outcome.differences)),
    };
    Ok(Reconciliation {
        run_id,
        from: request.from,
        to: request.to,
        tolerance: request.tolerance,
        compared: outcome.compared,
        ledger_cost: outcome.ledger_cost,
        provider_cost: outcome.provider_cost,
        differences: outcome.differences,
        unattributed: outcome.unattributed,
        previous_run,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn diff(day: Date, kind: DifferenceKind, ledger_tokens: i64) -> Difference {
        Difference {
            cell: Cell {
                day,
                scope: None,
                model: "m".into(),
                service_tier: "batch".into(),
                context_window: "0-200k".into(),
                inference_geo: "global".into(),
            },
            class: TokenClass::Input,
            kind,
            ledger_tokens,
            provider_tokens: 10,
            ledger_cost: AttoUsd(1),
            provider_cost: AttoUsd(2),
        }
    }

    #[test]
    fn changes_are_new_changed_or_resolved() {
        let (a, b, c) = (
            date!(2026 - 03 - 01),
            date!(2026 - 03 - 02),
            date!(2026 - 03 - 03),
        );
        let before = vec![
            diff(a, DifferenceKind::MissingUsage, 5),
            diff(b, DifferenceKind::Rounding, 10),
            diff(c, DifferenceKind::Rounding, 10),
        ];
        let now = vec![
            diff(a, DifferenceKind::MissingUsage, 6),
            diff(c, DifferenceKind::Rounding, 10),
            diff(date!(2026 - 03 - 04), DifferenceKind::DuplicateUsage, 11),
        ];
        let got: Vec<(ChangeKind, Option<Date>)> = changes(before, &now)
            .into_iter()
            .map(|c| (c.kind, c.now.or(c.before).map(|d| d.cell.day)))
            .collect();
        assert_eq!(
            got,
            vec![
                (ChangeKind::Changed, Some(a)),
                (ChangeKind::New, Some(date!(2026 - 03 - 04))),
                (ChangeKind::Resolved, Some(b)),
            ]
        );
    }
}
