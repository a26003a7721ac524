//! The client: one connection pool, the configured headers, and the retry loop every call uses.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::api_clock::ApiClock;
use crate::batches::Batches;
use crate::config::Config;
use crate::error::{ApiError, Error, Result};
use crate::messages::Messages;
use crate::retry::RetryPolicy;
use crate::types::{ErrorObject, ErrorResponse, ErrorType};

/// A client of the Messages and Message Batches APIs. Cheap to clone (shared pool).
///
/// # Example
///
/// ```
/// use tenantry_batch::{Client, Config, ListParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let emulator = tenantry_emulator::Emulator::builder().api_key("sk-test").start().await?;
/// # let url = emulator.base_url();
/// // `Client::from_env()` reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL instead.
/// let client = Client::new(Config::new("sk-test").base_url(url))?;
/// let page = client.batches().list(&ListParams::default().limit(10)).await?;
/// assert!(page.data.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Key, version and betas, sent with every request rather than baked into `http`, so a
    /// host's own `reqwest::Client` works unchanged.
    headers: HeaderMap,
    /// `headers` with the Admin API key, when one is configured.
    admin_headers: Option<HeaderMap>,
    config: Config,
    clock: ApiClock,
}

/// Whether an attempt's outcome can be unknown and the call therefore must not be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating the call is harmless (reads, cancel, delete) or the SDKs repeat it anyway.
    Safe,
    /// Repeating the call after its body may have arrived could do it twice (batch create).
    Never,
}

/// One HTTP call to make.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    /// What the call is, as the `endpoint` of its span and metrics (`batches.create`, …):
    /// a fixed name, never the URL (which carries ids).
    pub(crate) endpoint: &'static str,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) query: &'a [(&'static str, String)],
    pub(crate) body: Option<Bytes>,
    pub(crate) repeat: Repeat,
    pub(crate) stream: bool,
    /// Sent with the Admin API key instead of the API key.
    pub(crate) admin: bool,
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It definitely did not take effect, or the server said how it failed.
    Known(Error),
    /// The body may have arrived and the response was lost ([`Repeat::Never`] calls only).
    Unknown(Error),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Known(e) | Failure::Unknown(e) => e,
        }
    }
}

/// A successful response: fully read, or still streaming.
pub(crate) enum Received {
    Full(Bytes),
    Streaming(reqwest::Response),
}

impl Client {
    /// A client with this configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a header value (key, version, beta) is not a valid header value, or
    /// the HTTP client cannot be built.
    pub fn new(config: Config) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("tenantry-batch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::Config("the HTTP client could not be built".to_owned()))?;
        Self::with_http(config, http)
    }

    /// A client that sends its requests through the host's own `reqwest::Client`: its
    /// proxies, root certificates, TLS backend, default headers, timeouts and middleware-free
    /// instrumentation apply to every call. The API key, version and beta headers are added
    /// to each request; [`Config::connect_timeout`] is not applied (the host's client has its
    /// own), every other [`Config`] setting is.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tenantry_batch::{Client, Config};
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let http = reqwest::Client::builder()
    ///     .proxy(reqwest::Proxy::https("http://proxy.internal:3128")?)
    ///     .build()?;
    /// let client = Client::with_http(Config::new("sk-ant-…"), http)?;
    /// # let _ = client; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a header value (key, version, beta) is not a valid header value.
    pub fn with_http(config: Config, http: reqwest::Client) -> Result<Self> {
        let mut headers = HeaderMap::new();
        let mut key = HeaderValue::from_str(config.api_key.expose())
            .map_err(|_| Error::Config("the API key is not a valid header value".to_owned()))?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        headers.insert(
            "anthropic-version",
            header_value("anthropic-version", &config.version)?,
        );
        if !config.betas.is_empty() {
            headers.insert(
                "anthropic-beta",
                header_value("anthropic-beta", &config.betas.join(","))?,
            );
        }
        let admin_headers = match &config.admin_key {
            None => None,
            Some(admin) => {
                let mut key = HeaderValue::from_str(admin.expose()).map_err(|_| {
                    Error::Config("the Admin API key is not a valid header value".to_owned())
                })?;
                key.set_sensitive(true);
                let mut admin_headers = headers.clone();
                admin_headers.insert("x-api-key", key);
                Some(admin_headers)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                headers,
                admin_headers,
                config,
                clock: ApiClock::default(),
            }),
        })
    }

    /// A client configured from the environment (see [`Config::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`] and [`Client::new`].
    pub fn from_env() -> Result<Self> {
        Self::new(Config::from_env()?)
    }

    /// The Messages API.
    #[must_use]
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self)
    }

    /// The Message Batches API.
    #[must_use]
    pub fn batches(&self) -> Batches<'_> {
        Batches::new(self)
    }

    /// The Admin API's usage and cost reports (needs [`Config::admin_key`]).
    #[must_use]
    pub fn reports(&self) -> crate::Reports<'_> {
        crate::Reports::new(self)
    }

    /// Whether an Admin API key is configured.
    pub(crate) fn has_admin_key(&self) -> bool {
        self.inner.admin_headers.is_some()
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// How far the API's clock runs ahead of this host's (negative: behind), as a lower bound
    /// learned from the API's answers (their `Date` header and the `created_at` of created
    /// batches); `None` before the first answer.
    ///
    /// `local time + offset` is never later than the API's time at that moment, which is what
    /// a lost batch create needs to tell the batch it may have created from older ones.
    #[must_use]
    pub fn api_clock_offset(&self) -> Option<time::Duration> {
        self.inner.clock.offset()
    }

    pub(crate) fn api_clock(&self) -> &ApiClock {
        &self.inner.clock
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.config.base_url)
    }

    /// Makes a call returning JSON and decodes it.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        what: &'static str,
    ) -> Result<T, Failure> {
        match self.execute(call).await? {
            Received::Full(body) => serde_json::from_slice(&body)
                .map_err(|source| Failure::Known(Error::Decode { what, source })),
            Received::Streaming(_) => unreachable!("JSON calls read their body"),
        }
    }

    /// Makes a call with the configured retries and overall timeout.
    pub(crate) async fn execute(&self, call: Call<'_>) -> Result<Received, Failure> {
        use tracing::Instrument;
        let span = tracing::info_span!("tenantry.api.call",
            endpoint = call.endpoint,
            http.request.method = %call.method,
            http.response.status_code = tracing::field::Empty,
            request_id = tracing::field::Empty,
            retries = tracing::field::Empty,
            gen_ai.provider.name = "anthropic");
        let work = async {
            match self.inner.config.overall_timeout {
                None => self.retry_loop(&call).await,
                Some(limit) => tokio::time::timeout(limit, self.retry_loop(&call))
                    .await
                    .unwrap_or(Err(Failure::Known(Error::Timeout(limit)))),
            }
        };
        work.instrument(span).await
    }

    async fn retry_loop(&self, call: &Call<'_>) -> Result<Received, Failure> {
        let policy = &self.inner.config.retry;
        let per_attempt = self.inner.config.request_timeout;
        let mut retry = 0u32;
        loop {
            let attempt = tokio::time::timeout(per_attempt, self.attempt(call)).await;
            if attempt.is_err() {
                crate::telemetry::call_made(call.endpoint, "timeout");
            }
            let (error, headers, unknown) = match attempt {
                Ok(Ok(received)) => return Ok(received),
                Ok(Err(Attempt::Api(api, headers))) => {
                    let retryable = api.retryable;
                    let error = Error::Api(api);
                    if !retryable {
                        return Err(Failure::Known(error));
                    }
                    (error, headers, false)
                }
                Ok(Err(Attempt::Transport(e))) => {
                    // A connect error means nothing was sent; anything later may have arrived.
                    let unknown = !e.is_connect();
                    (Error::Transport(e), HeaderMap::new(), unknown)
                }
                Err(_) => (Error::Timeout(per_attempt), HeaderMap::new(), true),
            };
            if unknown && call.repeat == Repeat::Never {
                return Err(Failure::Unknown(error));
            }
            if retry >= policy.retries() {
                return Err(Failure::Known(error));
            }
            let delay = policy.delay(retry, &headers, SystemTime::now());
            tracing::debug!(retry, ?delay, url = %call.url, "retrying after {error}");
            tokio::time::sleep(delay).await;
            retry += 1;
            tracing::Span::current().record("retries", retry);
            crate::telemetry::retried(call.endpoint);
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Received, Attempt> {
        let headers = match (&self.inner.admin_headers, call.admin) {
            (Some(admin), true) => admin.clone(),
            _ => self.inner.headers.clone(),
        };
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .headers(headers);
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = &call.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        if call.stream {
            request = request.header("accept", "application/binary");
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                crate::telemetry::call_made(call.endpoint, "transport_error");
                return Err(Attempt::Transport(e));
            }
        };
        let status = response.status();
        crate::telemetry::call_made(call.endpoint, status.as_str());
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("http.response.status_code", status.as_u16());
            // The API's id of this request, to quote to its support; never a secret.
            if let Some(id) = response
                .headers()
                .get(HeaderName::from_static("request-id"))
                .and_then(|v| v.to_str().ok())
            {
                span.record("request_id", id);
            }
        }
        if let Some(date) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
        {
            self.inner
                .clock
                .observe_date(date, time::OffsetDateTime::now_utc());
        }
        if status.is_success() {
            if call.stream {
                return Ok(Received::Streaming(response));
            }
            return response
                .bytes()
                .await
                .map(Received::Full)
                .map_err(Attempt::Transport);
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Attempt::Transport)?;
        Err(Attempt::Api(
            Box::new(api_error(status, &headers, &body)),
            headers,
        ))
    }
}

enum Attempt {
    Api(Box<ApiError>, HeaderMap),
    Transport(reqwest::Error),
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::Config(format!("{name} is not a valid header value")))
}

/// Builds the error of a non-success response, and decides whether it is retryable.
fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let request_id_header = headers
        .get(HeaderName::from_static("request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (error, body_request_id) = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(parsed) => (parsed.error, parsed.request_id),
        Err(_) => (
            ErrorObject {
                kind: ErrorType::Unknown(format!("http_{}", status.as_u16())),
                message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                details: None,
            },
            None,
        ),
    };
    let retryable = RetryPolicy::should_retry(status.as_u16(), headers, error.error_code());
    ApiError {
        status: status.as_u16(),
        error,
        request_id: request_id_header.or(body_request_id),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_reads_type_message_request_id_and_spend_limit() {
        let mut headers = HeaderMap::new();
        headers.insert("request-id", HeaderValue::from_static("req_1"));
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_body"}"#;
        let e = api_error(StatusCode::TOO_MANY_REQUESTS, &headers, body);
        assert_eq!(e.status, 429);
        assert_eq!(e.error.kind, ErrorType::RateLimit);
        assert_eq!(e.request_id.as_deref(), Some("req_1"));
        assert!(!e.retryable);
        let err = Error::Api(Box::new(e));
        assert!(err.is_rate_limited() && err.is_spend_limit() && !err.is_retryable());
        assert_eq!(
            err.to_string(),
            "API error 429 rate_limit_error: slow down (request-id req_1)"
        );
    }

    #[test]
    fn api_error_of_a_non_json_body() {
        let e = api_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.error.kind.as_str(), "http_502");
        assert!(e.retryable);
    }

    #[test]
    fn debug_of_client_hides_the_key() {
        let client = Client::new(Config::new("sk-ant-hidden-value")).unwrap();
        assert!(!format!("{client:?}").contains("hidden-value"));
    }
}
