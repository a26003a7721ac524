//! Reconciliation with the provider's account: reads the Admin API's usage and cost reports
//! through the client and hands them, as plain rows, to the ledger's reconciler.

use futures_util::TryStreamExt;
use tenantry_batch::{
    Client, CostGroupBy, CostReportParams, CostRow, UsageGroupBy, UsageReportParams, UsageRow,
};
use tenantry_cost::TokenBuckets;
use tenantry_cost::reconcile::{
    AttoUsd, Attribution, ProviderAccount, ProviderCost, ProviderUsage, ReconcileRequest,
    Reconciliation, TokenClass,
};
use time::{Date, OffsetDateTime, Time};

use crate::error::{Error, Result};
use crate::handle::Tenantry;

/// Days per report page: the most both reports allow, so a month is one or two calls.
const DAYS_PER_PAGE: u32 = 31;

fn midnight(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

fn count(field: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::ProviderReport(format!("the usage report's {field} ({value}) does not fit"))
    })
}

fn usage_row(day: Date, row: UsageRow) -> Result<ProviderUsage> {
    Ok(ProviderUsage {
        day,
        workspace_id: row.workspace_id,
        api_key_id: row.api_key_id,
        model: row.model.unwrap_or_default(),
        service_tier: row.service_tier.unwrap_or_default(),
        context_window: row.context_window.unwrap_or_default(),
        inference_geo: row.inference_geo.unwrap_or_default(),
        tokens: TokenBuckets {
            input: count("uncached_input_tokens", row.uncached_input_tokens)?,
            cache_write_5m: count(
                "cache_creation.ephemeral_5m_input_tokens",
                row.cache_creation.ephemeral_5m_input_tokens,
            )?,
            cache_write_1h: count(
                "cache_creation.ephemeral_1h_input_tokens",
                row.cache_creation.ephemeral_1h_input_tokens,
            )?,
            cache_read: count("cache_read_input_tokens", row.cache_read_input_tokens)?,
            output: count("output_tokens", row.output_tokens)?,
        },
    })
}

/// A token row of the cost report; `None` for costs that are not tokens (web search, code
/// execution, …), which the ledger does not record.
fn cost_row(day: Date, row: CostRow) -> Result<Option<ProviderCost>> {
    if row.cost_type.as_deref() != Some("tokens") {
        return Ok(None);
    }
    let Some(token_class) = row
        .token_type
        .as_deref()
        .and_then(TokenClass::from_token_type)
    else {
        return Ok(None);
    };
    if row.currency != "USD" {
        return Err(Error::ProviderReport(format!(
            "the cost report is in {}, the ledger in USD",
            row.currency
        )));
    }
    let amount = AttoUsd::from_cents(row.amount.digits(), row.amount.scale()).ok_or_else(|| {
        Error::ProviderReport(format!(
            "the cost report's amount {} has more decimals than 10⁻¹⁸ USD",
            row.amount
        ))
    })?;
    Ok(Some(ProviderCost {
        day,
        workspace_id: row.workspace_id,
        model: row.model.unwrap_or_default(),
        service_tier: row.service_tier.unwrap_or_default(),
        context_window: row.context_window.unwrap_or_default(),
        inference_geo: row.inference_geo.unwrap_or_default(),
        token_class,
        amount,
    }))
}

/// Reads both reports for the request's days, grouped by every dimension reconciliation
/// compares (and by workspace when tenants map to workspaces).
///
/// # Errors
///
/// [`Error::Client`] when a report cannot be read (after the client's retries) or no Admin
/// API key is configured; [`Error::ProviderReport`] for a report the ledger cannot take as it is.
pub(crate) async fn provider_account(
    client: &Client,
    request: &ReconcileRequest,
) -> Result<ProviderAccount> {
    let start = midnight(request.from);
    let end = midnight(request.to) + time::Duration::DAY;
    let usage_params = UsageReportParams::new(start)
        .ending_at(end)
        .group_by(UsageGroupBy::ALL)
        .limit(DAYS_PER_PAGE);
    let mut cost_groups = vec![CostGroupBy::Description];
    if matches!(request.attribution, Attribution::Workspaces(_)) {
        cost_groups.push(CostGroupBy::WorkspaceId);
    }
    let cost_params = CostReportParams::new(start)
        .ending_at(end)
        .group_by(cost_groups)
        .limit(DAYS_PER_PAGE);
    let reports = client.reports();
    let usage_buckets: Vec<_> = reports.usage_all(usage_params).try_collect().await?;
    let cost_buckets: Vec<_> = reports.cost_all(cost_params).try_collect().await?;
    let mut account = ProviderAccount::default();
    for bucket in usage_buckets {
        let day = bucket.starting_at.date();
        for row in bucket.results {
            account.usage.push(usage_row(day, row)?);
        }
    }
    for bucket in cost_buckets {
        let day = bucket.starting_at.date();
        for row in bucket.results {
            account.cost.extend(cost_row(day, row)?);
        }
    }
    Ok(account)
}

impl Tenantry {
    /// Reconciles the ledger with the provider's own account for days
    /// `request.from ..= request.to` (UTC): reads the Admin API's usage and cost reports
    /// with the client's Admin API key ([`tenantry_batch::Config::admin_key`]), compares them
    /// cell by cell with the ledger, stores the run and says what changed since the previous
    /// one (see [`tenantry_cost::reconcile`]).
    ///
    /// # Errors
    ///
    /// [`Error::Client`] when a report cannot be read (no Admin API key, or the API failed
    /// after the retries); [`Error::ProviderReport`] for a report in another currency or with more
    /// decimals than the ledger keeps; [`Error::Cost`] when the ledger cannot be read or the
    /// run stored.
    pub async fn reconcile(&self, request: &ReconcileRequest) -> Result<Reconciliation> {
        let account = provider_account(self.client(), request).await?;
        Ok(self.ledger().reconcile(request, &account).await?)
    }
}
