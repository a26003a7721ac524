//! The Admin API's usage and cost reports (`GET /v1/organizations/usage_report/messages`,
//! `GET /v1/organizations/cost_report`): time buckets over the account's billed requests,
//! grouped, filtered and paged as the real API does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::account::{BilledUsage, TokenType, cents_string};
use crate::body::json_response;
use crate::conn::ConnHandle;
use crate::faults::Endpoint;
use crate::server::{Handled, Shared};
use crate::wire::ApiError;

/// The usage report's grouping dimensions, in wire spelling.
const USAGE_GROUPS: [&str; 9] = [
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
];
/// The cost report's grouping dimensions.
const COST_GROUPS: [&str; 2] = ["workspace_id", "description"];

/// Which report a query is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Usage,
    Cost,
}

/// A parsed report query.
#[derive(Debug)]
struct Query {
    /// First bucket's start (unix seconds, aligned to the width).
    start: i64,
    /// Bucket width in seconds.
    width: i64,
    /// Buckets in this page.
    buckets: i64,
    /// Buckets left after this page.
    has_more: bool,
    group_by: BTreeSet<String>,
    /// Filters: dimension → accepted values.
    filters: BTreeMap<&'static str, BTreeSet<String>>,
}

fn parse_time(field: &str, value: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            ApiError::invalid(format!(
                "{field}: Input should be a valid datetime in RFC 3339 format"
            ))
        })
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses the query string of `report`, with `now` (unix seconds) closing an open range.
fn parse_query(report: Report, raw: &str, now: i64) -> Result<Query, ApiError> {
    let mut starting_at = None;
    let mut ending_at = None;
    let mut width_text = String::from("1d");
    let mut limit_text = None;
    let mut page = None;
    let mut group_by = BTreeSet::new();
    let mut filters: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let key = key.trim_end_matches("[]");
        let value = value.into_owned();
        match key {
            "starting_at" => starting_at = Some(parse_time("starting_at", &value)?),
            "ending_at" => ending_at = Some(parse_time("ending_at", &value)?),
            "bucket_width" => width_text = value,
            "limit" => limit_text = Some(value),
            "page" => page = Some(value),
            "group_by" => {
                let known: &[&str] = match report {
                    Report::Usage => &USAGE_GROUPS,
                    Report::Cost => &COST_GROUPS,
                };
                if !known.contains(&value.as_str()) {
                    return Err(ApiError::invalid(format!(
                        "group_by: Input should be {}",
                        known
                            .iter()
                            .map(|k| format!("'{k}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                group_by.insert(value);
            }
            _ if report == Report::Usage => {
                let dimension = match key {
                    "models" => "model",
                    "workspace_ids" => "workspace_id",
                    "api_key_ids" => "api_key_id",
                    "service_tiers" => "service_tier",
                    "context_window" => "context_window",
                    "inference_geos" => "inference_geo",
                    _ => continue,
                };
                filters.entry(dimension).or_default().insert(value);
            }
            _ => {}
        }
    }
    let starting_at =
        starting_at.ok_or_else(|| ApiError::invalid("starting_at: Field required"))?;
    let (width, default_limit, max_limit) = match (report, width_text.as_str()) {
        (_, "1d") => (86_400, 7, 31),
        (Report::Usage, "1h") => (3_600, 24, 168),
        (Report::Usage, "1m") => (60, 60, 1_440),
        (Report::Usage, _) => {
            return Err(ApiError::invalid(
                "bucket_width: Input should be '1d', '1h' or '1m'",
            ));
        }
        (Report::Cost, _) => return Err(ApiError::invalid("bucket_width: Input should be '1d'")),
    };
    let limit = match limit_text {
        None => default_limit,
        Some(text) => {
            let limit: i64 = text.parse().map_err(|_| {
                ApiError::invalid(
                    "limit: Input should be a valid integer, unable to parse string as an integer",
                )
            })?;
            if !(1..=max_limit).contains(&limit) {
                return Err(ApiError::invalid(format!(
                    "limit: Input should be between 1 and {max_limit} for bucket_width {width_text}"
                )));
            }
            limit
        }
    };
    let first = starting_at.div_euclid(width) * width;
    let start = match page {
        None => first,
        Some(token) => token
            .strip_prefix("page_")
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|s| *s >= first && s.rem_euclid(width) == 0)
            .ok_or_else(|| ApiError::invalid("page: Invalid page token"))?,
    };
    // Buckets that end at or before `ending_at`; without it, up to the bucket holding now.
    let end = match ending_at {
        Some(end) => {
            if end <= starting_at {
                return Err(ApiError::invalid(
                    "ending_at: must be later than starting_at",
                ));
            }
            end.div_euclid(width) * width
        }
        None => (now.div_euclid(width) + 1) * width,
    };
    let total = ((end - start) / width).max(0);
    Ok(Query {
        start,
        width,
        buckets: total.min(limit),
        has_more: total > limit,
        group_by,
        filters,
    })
}

/// The value of a dimension of one billed request, as the usage report names it.
fn dimension<'a>(usage: &'a BilledUsage, name: &str) -> Option<&'a str> {
    match name {
        "api_key_id" => Some(&usage.api_key_id),
        "workspace_id" => Some(&usage.workspace_id),
        "model" => Some(&usage.model),
        "service_tier" => Some(&usage.service_tier),
        "context_window" => Some(&usage.context_window),
        "inference_geo" => Some(&usage.inference_geo),
        _ => None,
    }
}

/// Every billed request as the account counts it, in `[from, to)` (unix seconds).
fn counted(shared: &Shared, from: i64, to: i64) -> Vec<BilledUsage> {
    let billed = shared.billed();
    shared
        .account
        .as_counted(billed)
        .into_iter()
        .filter(|u| (from..to).contains(&u.at.unix_timestamp()))
        .collect()
}

fn page_body(query: &Query, data: Vec<Value>) -> Value {
    let next = query.start + query.buckets * query.width;
    json!({
        "data": data,
        "has_more": query.has_more,
        "next_page": query.has_more.then(|| format!("page_{next}")),
    })
}

/// Runs `f` per bucket of the page over the requests that fall in it.
fn buckets(
    shared: &Shared,
    query: &Query,
    mut results: impl FnMut(&[BilledUsage]) -> Vec<Value>,
) -> Vec<Value> {
    let end = query.start + query.buckets * query.width;
    let mut by_bucket: BTreeMap<i64, Vec<BilledUsage>> = BTreeMap::new();
    for usage in counted(shared, query.start, end) {
        let index = (usage.at.unix_timestamp() - query.start) / query.width;
        by_bucket.entry(index).or_default().push(usage);
    }
    (0..query.buckets)
        .map(|i| {
            let from = query.start + i * query.width;
            let rows = by_bucket.remove(&i).unwrap_or_default();
            json!({
                "starting_at": rfc3339(from),
                "ending_at": rfc3339(from + query.width),
                "results": results(&rows),
            })
        })
        .collect()
}

/// Token sums of one usage report row, in the order of [`TokenType::ALL`].
type Sums = [u64; 5];

fn usage_results(query: &Query, rows: &[BilledUsage]) -> Vec<Value> {
    let mut groups: BTreeMap<Vec<Option<String>>, Sums> = BTreeMap::new();
    for usage in rows {
        let passes = query.filters.iter().all(|(dim, accepted)| {
            dimension(usage, dim).is_some_and(|value| accepted.contains(value))
        });
        if !passes {
            continue;
        }
        let key = USAGE_GROUPS
            .iter()
            .map(|g| {
                query
                    .group_by
                    .contains(*g)
                    .then(|| dimension(usage, g).map(str::to_owned))
                    .flatten()
            })
            .collect();
        let sums = groups.entry(key).or_default();
        for (sum, token_type) in sums.iter_mut().zip(TokenType::ALL) {
            *sum += usage.tokens(token_type);
        }
    }
    groups
        .into_iter()
        .map(|(key, [uncached, w5, w1, read, output])| {
            let mut row = json!({
                "uncached_input_tokens": uncached,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": w1,
                    "ephemeral_5m_input_tokens": w5,
                },
                "cache_read_input_tokens": read,
                "output_tokens": output,
                "server_tool_use": {"web_search_requests": 0},
            });
            for (name, value) in USAGE_GROUPS.iter().zip(key) {
                row[*name] = value.map_or(Value::Null, Value::String);
            }
            row
        })
        .collect()
}

/// The dimensions a cost row is keyed by, with `description` grouping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CostKey {
    workspace_id: Option<String>,
    /// `(model, service_tier, context_window, inference_geo, token_type)`.
    line: Option<(String, String, String, String, TokenType)>,
}

fn description(model: &str, tier: &str, window: &str, geo: &str, token_type: TokenType) -> String {
    let mut text = format!("{model} Usage - {}", token_type.label());
    if tier == "batch" {
        text.push_str(", Batch");
    }
    if window == "200k-1M" {
        text.push_str(", Long Context");
    }
    if geo == "us" {
        text.push_str(", US");
    }
    text
}

fn cost_results(shared: &Shared, query: &Query, rows: &[BilledUsage]) -> Vec<Value> {
    let by_line = query.group_by.contains("description");
    let by_workspace = query.group_by.contains("workspace_id");
    let mut groups: BTreeMap<CostKey, u128> = BTreeMap::new();
    for usage in rows {
        for token_type in TokenType::ALL {
            if usage.tokens(token_type) == 0 {
                continue;
            }
            let Some(amount) = shared.account.amount(usage, token_type) else {
                continue;
            };
            let key = CostKey {
                workspace_id: by_workspace.then(|| usage.workspace_id.clone()),
                line: by_line.then(|| {
                    (
                        usage.model.clone(),
                        usage.service_tier.clone(),
                        usage.context_window.clone(),
                        usage.inference_geo.clone(),
                        token_type,
                    )
                }),
            };
            *groups.entry(key).or_default() += amount;
        }
    }
    let rounding = shared.account.rounding();
    groups
        .into_iter()
        .map(|(key, units)| {
            let (model, tier, window, geo, token_type) = match &key.line {
                Some((m, t, w, g, tt)) => (
                    Some(m.as_str()),
                    Some(t.as_str()),
                    Some(w.as_str()),
                    Some(g.as_str()),
                    Some(*tt),
                ),
                None => (None, None, None, None, None),
            };
            json!({
                "currency": "USD",
                "amount": cents_string(units, rounding),
                "workspace_id": key.workspace_id,
                "description": key.line.as_ref().map(|(m, t, w, g, tt)| description(m, t, w, g, *tt)),
                "cost_type": key.line.as_ref().map(|_| "tokens"),
                "context_window": window,
                "model": model,
                "service_tier": tier,
                "token_type": token_type.map(TokenType::wire),
                "inference_geo": geo,
            })
        })
        .collect()
}

pub(crate) async fn usage_report(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::UsageReport, &headers, &conn)?;
    let now = shared.clock.now().unix_timestamp();
    let query = parse_query(Report::Usage, raw.as_deref().unwrap_or(""), now)?;
    let data = buckets(&shared, &query, |rows| usage_results(&query, rows));
    Ok(ctx.finish(json_response(StatusCode::OK, &page_body(&query, data))))
}

pub(crate) async fn cost_report(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Handled {
    let ctx = shared.begin(Endpoint::CostReport, &headers, &conn)?;
    let now = shared.clock.now().unix_timestamp();
    let query = parse_query(Report::Cost, raw.as_deref().unwrap_or(""), now)?;
    let data = buckets(&shared, &query, |rows| cost_results(&shared, &query, rows));
    Ok(ctx.finish(json_response(StatusCode::OK, &page_body(&query, data))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_the_buckets() {
        let q = parse_query(
            Report::Usage,
            "starting_at=2026-03-01T05:00:00Z&ending_at=2026-03-11T00:00:00Z&limit=4",
            0,
        )
        .unwrap();
        assert_eq!(rfc3339(q.start), "2026-03-01T00:00:00Z");
        assert_eq!((q.buckets, q.has_more), (4, true));
        let next = q.start + 4 * 86_400;
        let q2 = parse_query(
            Report::Usage,
            &format!(
                "starting_at=2026-03-01T05:00:00Z&ending_at=2026-03-11T00:00:00Z&limit=4&page=page_{next}"
            ),
            0,
        )
        .unwrap();
        assert_eq!((q2.start, q2.buckets, q2.has_more), (next, 4, true));
        let last = next + 4 * 86_400;
        let q3 = parse_query(
            Report::Usage,
            &format!(
                "starting_at=2026-03-01T05:00:00Z&ending_at=2026-03-11T00:00:00Z&limit=4&page=page_{last}"
            ),
            0,
        )
        .unwrap();
        assert_eq!((q3.buckets, q3.has_more), (2, false));
    }

    #[test]
    fn bad_queries_name_the_field() {
        let err = |q: &str, r| parse_query(r, q, 0).unwrap_err().message;
        assert!(err("", Report::Usage).starts_with("starting_at"));
        assert!(
            err(
                "starting_at=2026-03-01T00:00:00Z&bucket_width=1h",
                Report::Cost
            )
            .starts_with("bucket_width")
        );
        assert!(
            err("starting_at=2026-03-01T00:00:00Z&limit=32", Report::Cost).starts_with("limit")
        );
        assert!(
            err(
                "starting_at=2026-03-01T00:00:00Z&group_by[]=model",
                Report::Cost
            )
            .starts_with("group_by")
        );
        assert!(
            err("starting_at=2026-03-01T00:00:00Z&page=zzz", Report::Usage).starts_with("page")
        );
    }
}
