//! The client's metrics, recorded through the [`metrics`](https://docs.rs/metrics) facade when
//! the `telemetry` feature is on and the host installed a recorder.
//!
//! | name | type | unit | labels | what |
//! |---|---|---|---|---|
//! | `tenantry_api_requests_total` | counter | HTTP requests | `endpoint` (`messages.create`, `messages.count_tokens`, `batches.create`, `batches.retrieve`, `batches.list`, `batches.cancel`, `batches.delete`, `batches.results`, `reports.usage`, `reports.cost`), `status` (the HTTP status code, `transport_error` or `timeout`) | every attempt, retries included |
//! | `tenantry_api_retries_total` | counter | HTTP requests | `endpoint` | attempts made again by the retry policy |
//!
//! Every call is also a `tenantry.api.call` span with `endpoint`, `http.request.method`,
//! `http.response.status_code`, the API's `request_id` and `retries`; no header, body, key or
//! URL is ever recorded.

/// Counter: API requests by `endpoint` and `status`.
pub const API_REQUESTS: &str = "tenantry_api_requests_total";
/// Counter: retried API requests by `endpoint`.
pub const API_RETRIES: &str = "tenantry_api_retries_total";

/// Counts one attempt of a call and how it ended.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn call_made(endpoint: &'static str, status: &str) {
    #[cfg(feature = "telemetry")]
    metrics::counter!(API_REQUESTS, "endpoint" => endpoint, "status" => status.to_owned())
        .increment(1);
}

/// Counts an attempt the retry policy makes again.
#[cfg_attr(not(feature = "telemetry"), allow(unused_variables))]
pub(crate) fn retried(endpoint: &'static str) {
    #[cfg(feature = "telemetry")]
    metrics::counter!(API_RETRIES, "endpoint" => endpoint).increment(1);
}
