//! The Admin API's usage report (`GET /v1/organizations/usage_report/messages`) and cost
//! report (`GET /v1/organizations/cost_report`): typed pages, and streams that follow
//! `next_page` to the end, read with the [`AdminKey`](crate::AdminKey).

use std::fmt;
use std::str::FromStr;

use futures_util::Stream;
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{Call, Client, Repeat};
use crate::error::{Error, Result};

/// Width of a report's time buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BucketWidth {
    /// One day (UTC). The default, and the only width the cost report has.
    #[default]
    Day,
    /// One hour.
    Hour,
    /// One minute.
    Minute,
}

impl BucketWidth {
    /// The wire value: `1d`, `1h` or `1m`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "1d",
            Self::Hour => "1h",
            Self::Minute => "1m",
        }
    }
}

/// A dimension the usage report can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum UsageGroupBy {
    /// `api_key_id`.
    ApiKeyId,
    /// `workspace_id`.
    WorkspaceId,
    /// `model`.
    Model,
    /// `service_tier`.
    ServiceTier,
    /// `context_window`.
    ContextWindow,
    /// `inference_geo`.
    InferenceGeo,
}

impl UsageGroupBy {
    /// Every dimension the reconciliation of a ledger needs (all of the above).
    pub const ALL: [Self; 6] = [
        Self::ApiKeyId,
        Self::WorkspaceId,
        Self::Model,
        Self::ServiceTier,
        Self::ContextWindow,
        Self::InferenceGeo,
    ];

    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyId => "api_key_id",
            Self::WorkspaceId => "workspace_id",
            Self::Model => "model",
            Self::ServiceTier => "service_tier",
            Self::ContextWindow => "context_window",
            Self::InferenceGeo => "inference_geo",
        }
    }
}

/// A dimension the cost report can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CostGroupBy {
    /// `workspace_id`.
    WorkspaceId,
    /// `description`: one row per model, service tier, context window, inference geo and
    /// token type (those fields are `null` without it).
    Description,
}

impl CostGroupBy {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceId => "workspace_id",
            Self::Description => "description",
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339)
        .map_err(|_| Error::Config(format!("{at} cannot be written as RFC 3339")))
}

/// Query of the usage report. Build it with [`UsageReportParams::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageReportParams {
    /// Buckets starting at or after this instant (snapped down to the bucket width in UTC).
    pub starting_at: OffsetDateTime,
    /// Buckets ending at or before this instant. Default: none (the API's choice).
    pub ending_at: Option<OffsetDateTime>,
    /// Bucket width. Default [`BucketWidth::Day`].
    pub bucket_width: BucketWidth,
    /// Dimensions to group by. Default: none (one row per bucket).
    pub group_by: Vec<UsageGroupBy>,
    /// Only these models. Default: all.
    pub models: Vec<String>,
    /// Only these workspaces. Default: all.
    pub workspace_ids: Vec<String>,
    /// Only these API keys. Default: all.
    pub api_key_ids: Vec<String>,
    /// Buckets per page. Default: the API's (7 days, 24 hours or 60 minutes).
    pub limit: Option<u32>,
    /// The `next_page` token of the previous page. Default: the first page.
    pub page: Option<String>,
}

impl UsageReportParams {
    /// Every bucket from `starting_at` on, with every other setting at its default.
    #[must_use]
    pub fn new(starting_at: OffsetDateTime) -> Self {
        Self {
            starting_at,
            ending_at: None,
            bucket_width: BucketWidth::Day,
            group_by: Vec::new(),
            models: Vec::new(),
            workspace_ids: Vec::new(),
            api_key_ids: Vec::new(),
            limit: None,
            page: None,
        }
    }

    /// Buckets ending at or before `ending_at`.
    #[must_use]
    pub fn ending_at(mut self, ending_at: OffsetDateTime) -> Self {
        self.ending_at = Some(ending_at);
        self
    }

    /// Bucket width.
    #[must_use]
    pub fn bucket_width(mut self, width: BucketWidth) -> Self {
        self.bucket_width = width;
        self
    }

    /// Groups by these dimensions.
    #[must_use]
    pub fn group_by(mut self, dimensions: impl IntoIterator<Item = UsageGroupBy>) -> Self {
        self.group_by = dimensions.into_iter().collect();
        self
    }

    /// Buckets per page.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    fn query(&self) -> Result<Vec<(&'static str, String)>> {
        let mut query = vec![
            ("starting_at", rfc3339(self.starting_at)?),
            ("bucket_width", self.bucket_width.as_str().to_owned()),
        ];
        if let Some(end) = self.ending_at {
            query.push(("ending_at", rfc3339(end)?));
        }
        query.extend(
            self.group_by
                .iter()
                .map(|g| ("group_by[]", g.as_str().to_owned())),
        );
        query.extend(self.models.iter().map(|m| ("models[]", m.clone())));
        query.extend(
            self.workspace_ids
                .iter()
                .map(|w| ("workspace_ids[]", w.clone())),
        );
        query.extend(
            self.api_key_ids
                .iter()
                .map(|k| ("api_key_ids[]", k.clone())),
        );
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(page) = &self.page {
            query.push(("page", page.clone()));
        }
        Ok(query)
    }
}

/// Query of the cost report (daily buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CostReportParams {
    /// Days starting at or after this instant (snapped down to midnight UTC).
    pub starting_at: OffsetDateTime,
    /// Days ending at or before this instant. Default: none (the API's choice).
    pub ending_at: Option<OffsetDateTime>,
    /// Dimensions to group by. Default: none (one amount per day).
    pub group_by: Vec<CostGroupBy>,
    /// Days per page, 1 to 31. Default: the API's 7.
    pub limit: Option<u32>,
    /// The `next_page` token of the previous page. Default: the first page.
    pub page: Option<String>,
}

impl CostReportParams {
    /// Every day from `starting_at` on, with every other setting at its default.
    #[must_use]
    pub fn new(starting_at: OffsetDateTime) -> Self {
        Self {
            starting_at,
            ending_at: None,
            group_by: Vec::new(),
            limit: None,
            page: None,
        }
    }

    /// Days ending at or before `ending_at`.
    #[must_use]
    pub fn ending_at(mut self, ending_at: OffsetDateTime) -> Self {
        self.ending_at = Some(ending_at);
        self
    }

    /// Groups by these dimensions.
    #[must_use]
    pub fn group_by(mut self, dimensions: impl IntoIterator<Item = CostGroupBy>) -> Self {
        self.group_by = dimensions.into_iter().collect();
        self
    }

    /// Days per page.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    fn query(&self) -> Result<Vec<(&'static str, String)>> {
        let mut query = vec![
            ("starting_at", rfc3339(self.starting_at)?),
            ("bucket_width", BucketWidth::Day.as_str().to_owned()),
        ];
        if let Some(end) = self.ending_at {
            query.push(("ending_at", rfc3339(end)?));
        }
        query.extend(
            self.group_by
                .iter()
                .map(|g| ("group_by[]", g.as_str().to_owned())),
        );
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(page) = &self.page {
            query.push(("page", page.clone()));
        }
        Ok(query)
    }
}

/// Cache writes of a usage row, by lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CacheCreationTokens {
    /// Tokens written to the 5-minute cache.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written to the 1-hour cache.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// One row of a usage report bucket. A dimension is `None` unless the query grouped by it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UsageRow {
    /// Uncached input tokens.
    #[serde(default)]
    pub uncached_input_tokens: u64,
    /// Cache writes.
    #[serde(default)]
    pub cache_creation: CacheCreationTokens,
    /// Cache reads.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// `api_key_id`.
    #[serde(default)]
    pub api_key_id: Option<String>,
    /// `workspace_id`.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// `model`.
    #[serde(default)]
    pub model: Option<String>,
    /// `service_tier` (`standard`, `batch`, `priority`, …).
    #[serde(default)]
    pub service_tier: Option<String>,
    /// `context_window` (`0-200k`, `200k-1M`).
    #[serde(default)]
    pub context_window: Option<String>,
    /// `inference_geo` (`global`, `us`, `not_available`).
    #[serde(default)]
    pub inference_geo: Option<String>,
}

/// One time bucket of the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UsageBucket {
    /// Start (inclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub starting_at: OffsetDateTime,
    /// End (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub ending_at: OffsetDateTime,
    /// Its rows.
    pub results: Vec<UsageRow>,
}

/// One page of the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UsageReportPage {
    /// The buckets, oldest first.
    pub data: Vec<UsageBucket>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The token of the next page.
    #[serde(default)]
    pub next_page: Option<String>,
}

/// An exact decimal amount as the cost report writes it (a string, in the currency's
/// lowest unit: `"123.45"` USD is 123.45 cents). Kept as an integer and a scale, never a
/// float.
///
/// ```
/// use tenantry_batch::Amount;
/// let a: Amount = "123.45".parse()?;
/// assert_eq!((a.digits(), a.scale()), (12_345, 2));
/// // In units of 10⁻¹⁶ cent (10⁻¹⁸ USD): exact.
/// assert_eq!(a.in_units_of(16), Some(1_234_500_000_000_000_000));
/// // In whole cents it would lose digits.
/// assert_eq!(a.in_units_of(0), None);
/// assert_eq!(a.to_string(), "123.45");
/// # Ok::<(), tenantry_batch::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    digits: i128,
    scale: u32,
}

/// Most decimals an amount may have (units of 10⁻²⁴ of the lowest currency unit).
const MAX_SCALE: u32 = 24;

impl Amount {
    /// The amount's digits as an integer (`123.45` → `12345`).
    #[must_use]
    pub fn digits(&self) -> i128 {
        self.digits
    }

    /// How many of the digits are decimals (`123.45` → `2`).
    #[must_use]
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The amount in units of `10^-decimals` of the lowest currency unit, when that is exact
    /// and fits an `i128`.
    #[must_use]
    pub fn in_units_of(&self, decimals: u32) -> Option<i128> {
        if decimals >= self.scale {
            10i128
                .checked_pow(decimals - self.scale)
                .and_then(|f| self.digits.checked_mul(f))
        } else {
            let f = 10i128.checked_pow(self.scale - decimals)?;
            (self.digits % f == 0).then_some(self.digits / f)
        }
    }
}

impl FromStr for Amount {
    type Err = Error;

    /// Parses `-?DIGITS(.DIGITS)?`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::InvalidAmount(text.to_owned());
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(bad());
        }
        if rest.contains('.') && fraction.is_empty() {
            return Err(bad());
        }
        let scale = u32::try_from(fraction.len()).map_err(|_| bad())?;
        if scale > MAX_SCALE {
            return Err(bad());
        }
        let mut digits: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            digits = digits
                .checked_mul(10)
                .and_then(|d| d.checked_add(i128::from(b - b'0')))
                .ok_or_else(bad)?;
        }
        Ok(Self {
            digits: if negative { -digits } else { digits },
            scale,
        })
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.digits < 0 { "-" } else { "" };
        let abs = self.digits.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let unit = 10u128.pow(self.scale);
        let width = usize::try_from(self.scale).unwrap_or(0);
        write!(f, "{sign}{}.{:0width$}", abs / unit, abs % unit)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One row of a cost report bucket. The line fields are `None` unless the query grouped
/// by [`CostGroupBy::Description`] (and for costs that are not tokens).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CostRow {
    /// The amount, in the currency's lowest unit (cents for USD).
    pub amount: Amount,
    /// The currency (`USD`).
    pub currency: String,
    /// `workspace_id`, when grouped by it.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// The line's description.
    #[serde(default)]
    pub description: Option<String>,
    /// `tokens`, `web_search`, `code_execution`, …
    #[serde(default)]
    pub cost_type: Option<String>,
    /// `model`.
    #[serde(default)]
    pub model: Option<String>,
    /// `service_tier`.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// `context_window`.
    #[serde(default)]
    pub context_window: Option<String>,
    /// `inference_geo`.
    #[serde(default)]
    pub inference_geo: Option<String>,
    /// `token_type` (`uncached_input_tokens`, `output_tokens`, `cache_read_input_tokens`,
    /// `cache_creation.ephemeral_5m_input_tokens`, `cache_creation.ephemeral_1h_input_tokens`).
    #[serde(default)]
    pub token_type: Option<String>,
}

/// One day of the cost report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CostBucket {
    /// Start (inclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub starting_at: OffsetDateTime,
    /// End (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub ending_at: OffsetDateTime,
    /// Its rows.
    pub results: Vec<CostRow>,
}

/// One page of the cost report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CostReportPage {
    /// The days, oldest first.
    pub data: Vec<CostBucket>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The token of the next page.
    #[serde(default)]
    pub next_page: Option<String>,
}

/// The Admin API's usage and cost reports ([`Client::reports`]). Every call is a read,
/// retried under the client's [`RetryPolicy`](crate::RetryPolicy) like any other.
///
/// # Example
///
/// ```
/// use futures_util::TryStreamExt;
/// use tenantry_batch::{AdminKey, Client, Config, CostGroupBy, CostReportParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let emulator = tenantry_emulator::Emulator::builder().start().await?;
/// # let url = emulator.base_url();
/// let admin = AdminKey::new("sk-ant-admin01-example")?;
/// let client = Client::new(Config::new("sk-test").base_url(url).admin_key(admin))?;
/// let start = time::macros::datetime!(2026-03-01 00:00 UTC);
/// let params = CostReportParams::new(start)
///     .ending_at(time::macros::datetime!(2026-04-01 00:00 UTC))
///     .group_by([CostGroupBy::Description]);
/// let days: Vec<_> = client.reports().cost_all(params).try_collect().await?;
/// assert_eq!(days.len(), 31); // every day, over five pages of the API's seven
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Reports<'c> {
    client: &'c Client,
}

impl<'c> Reports<'c> {
    pub(crate) fn new(client: &'c Client) -> Self {
        Self { client }
    }

    fn admin_call<'q>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &'q [(&'static str, String)],
    ) -> Call<'q> {
        Call {
            endpoint,
            method: Method::GET,
            url: self.client.url(path),
            query,
            body: None,
            repeat: Repeat::Safe,
            stream: false,
            admin: true,
        }
    }

    fn need_admin_key(&self) -> Result<()> {
        if self.client.has_admin_key() {
            Ok(())
        } else {
            Err(Error::Config(
                "the usage and cost reports need an Admin API key (Config::admin_key)".to_owned(),
            ))
        }
    }

    /// One page of the usage report.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without an Admin API key; otherwise as any call ([`Error::Api`]
    /// after the retries, [`Error::Decode`] for a body that is not a usage report).
    pub async fn usage(&self, params: &UsageReportParams) -> Result<UsageReportPage> {
        self.need_admin_key()?;
        let query = params.query()?;
        let call = self.admin_call(
            "reports.usage",
            "/v1/organizations/usage_report/messages",
            &query,
        );
        Ok(self.client.json(call, "usage report").await?)
    }

    /// One page of the cost report.
    ///
    /// # Errors
    ///
    /// As [`Reports::usage`].
    pub async fn cost(&self, params: &CostReportParams) -> Result<CostReportPage> {
        self.need_admin_key()?;
        let query = params.query()?;
        let call = self.admin_call("reports.cost", "/v1/organizations/cost_report", &query);
        Ok(self.client.json(call, "cost report").await?)
    }

    /// Every bucket of the usage report from `params` on, following `next_page`.
    ///
    /// # Errors
    ///
    /// The stream yields the first error of [`Reports::usage`] and ends.
    pub fn usage_all(
        &self,
        params: UsageReportParams,
    ) -> impl Stream<Item = Result<UsageBucket>> + Send + use<> {
        let client = self.client.clone();
        pages(Some(params), move |params| {
            let client = client.clone();
            async move {
                let page = client.reports().usage(&params).await?;
                let next = next_params(page.has_more, page.next_page, &params.page)
                    .ok_or(Error::PagingStalled("usage report"))?
                    .map(|token| UsageReportParams {
                        page: Some(token),
                        ..params
                    });
                Ok((page.data, next))
            }
        })
    }

    /// Every day of the cost report from `params` on, following `next_page`.
    ///
    /// # Errors
    ///
    /// The stream yields the first error of [`Reports::cost`] and ends.
    pub fn cost_all(
        &self,
        params: CostReportParams,
    ) -> impl Stream<Item = Result<CostBucket>> + Send + use<> {
        let client = self.client.clone();
        pages(Some(params), move |params| {
            let client = client.clone();
            async move {
                let page = client.reports().cost(&params).await?;
                let next = next_params(page.has_more, page.next_page, &params.page)
                    .ok_or(Error::PagingStalled("cost report"))?
                    .map(|token| CostReportParams {
                        page: Some(token),
                        ..params
                    });
                Ok((page.data, next))
            }
        })
    }
}

/// The next page's token (`Some(None)` when the page was the last); `None` when the API
/// says more follows but gives no new token (following it would loop forever).
fn next_params(
    has_more: bool,
    next_page: Option<String>,
    current: &Option<String>,
) -> Option<Option<String>> {
    match (has_more, next_page) {
        (false, _) => Some(None),
        (true, Some(token)) if Some(&token) != current.as_ref() => Some(Some(token)),
        (true, _) => None,
    }
}

/// Flattens pages fetched by `fetch(params) -> (items, next params)` into one stream.
fn pages<P, T, F, Fut>(start: Option<P>, fetch: F) -> impl Stream<Item = Result<T>> + Send
where
    P: Send + 'static,
    T: Send + 'static,
    F: Fn(P) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<T>, Option<P>)>> + Send,
{
    use futures_util::StreamExt;
    futures_util::stream::try_unfold(start, move |params| {
        let fetched = params.map(&fetch);
        async move {
            match fetched {
                None => Ok(None),
                Some(fetched) => {
                    let (items, next) = fetched.await?;
                    Ok(Some((
                        futures_util::stream::iter(items.into_iter().map(Ok)),
                        next,
                    )))
                }
            }
        }
    })
    .map(|page: Result<_>| match page {
        Ok(items) => items.left_stream(),
        Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        let a: Amount = "0.000055".parse().unwrap();
        assert_eq!(a.in_units_of(16), Some(550_000_000_000));
        assert_eq!("-2".parse::<Amount>().unwrap().in_units_of(2), Some(-200));
        for bad in ["", "1.", ".5", "1e3", "1,5", "NaN", "--1", "1.2.3"] {
            assert!(bad.parse::<Amount>().is_err(), "{bad}");
        }
        assert_eq!("7.050".parse::<Amount>().unwrap().to_string(), "7.050");
        assert_eq!("-0.5".parse::<Amount>().unwrap().to_string(), "-0.5");
    }

    #[test]
    fn usage_query_repeats_array_keys() {
        let params = UsageReportParams::new(time::macros::datetime!(2026-03-01 00:00 UTC))
            .group_by([UsageGroupBy::Model, UsageGroupBy::ServiceTier])
            .limit(31);
        let query = params.query().unwrap();
        assert!(query.contains(&("group_by[]", "model".to_owned())));
        assert!(query.contains(&("group_by[]", "service_tier".to_owned())));
        assert!(query.contains(&("starting_at", "2026-03-01T00:00:00Z".to_owned())));
    }

    #[test]
    fn a_page_without_a_new_token_is_an_error() {
        assert_eq!(next_params(false, None, &None), Some(None));
        assert_eq!(next_params(true, None, &None), None);
        let same = Some("p".to_owned());
        assert_eq!(next_params(true, same.clone(), &same), None);
        assert_eq!(
            next_params(true, Some("q".to_owned()), &same),
            Some(Some("q".to_owned()))
        );
    }
}
