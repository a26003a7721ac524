//! Client configuration: the secret API key, base URL, headers, timeouts and retry policy.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// The Anthropic API's address.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header this crate speaks.
pub const API_VERSION: &str = "2023-06-01";

/// An API key. Its `Debug` shows `ApiKey([REDACTED])`; it has no `Display`.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a key.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}

/// An Admin API key (`sk-ant-admin…`), which only the Admin API (the usage and cost reports)
/// accepts. Its `Debug` shows `AdminKey([REDACTED])`; it has no `Display`.
#[derive(Clone)]
pub struct AdminKey(SecretString);

impl AdminKey {
    /// The prefix every Admin API key has.
    pub const PREFIX: &'static str = "sk-ant-admin";

    /// Wraps an Admin API key.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key does not start with [`AdminKey::PREFIX`] (an ordinary
    /// API key, which the Admin API refuses). The message never shows the key.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if !key.starts_with(Self::PREFIX) {
            return Err(Error::Config(format!(
                "an Admin API key starts with `{}`",
                Self::PREFIX
            )));
        }
        Ok(Self(SecretString::from(key)))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey([REDACTED])")
    }
}

/// Everything a [`Client`](crate::Client) needs. Every setter states its default.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tenantry_batch::{Config, RetryPolicy};
///
/// let config = Config::new("sk-test")
///     .base_url("http://127.0.0.1:4010")
///     .beta("output-300k-2026-03-24")
///     .connect_timeout(Duration::from_secs(2))
///     .retry(RetryPolicy::default().max_retries(4));
/// assert!(!format!("{config:?}").contains("sk-test"));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) api_key: ApiKey,
    pub(crate) admin_key: Option<AdminKey>,
    pub(crate) base_url: String,
    pub(crate) version: String,
    pub(crate) betas: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) overall_timeout: Option<Duration>,
    pub(crate) idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) reconcile_window: Duration,
}

impl Config {
    /// A configuration for the real API with this key and every other setting at its default.
    #[must_use]
    pub fn new(api_key: impl Into<ApiKey>) -> Self {
        Self {
            api_key: api_key.into(),
            admin_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: API_VERSION.to_owned(),
            betas: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(600),
            overall_timeout: None,
            idle_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            reconcile_window: Duration::from_secs(600),
        }
    }

    /// Reads `ANTHROPIC_API_KEY` (required), `ANTHROPIC_BASE_URL` (optional) and
    /// `ANTHROPIC_BETA` (optional, comma-separated beta names).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `ANTHROPIC_API_KEY` is unset or empty.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let key = var("ANTHROPIC_API_KEY")
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::Config("ANTHROPIC_API_KEY is not set".to_owned()))?;
        let mut config = Self::new(key.trim());
        if let Some(url) = var("ANTHROPIC_BASE_URL")
            && !url.trim().is_empty()
        {
            config = config.base_url(url.trim());
        }
        if let Some(betas) = var("ANTHROPIC_BETA") {
            for beta in betas.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                config = config.beta(beta);
            }
        }
        Ok(config)
    }

    /// The API's base URL. Default: `https://api.anthropic.com`.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The Admin API key the usage and cost reports ([`Client::reports`](crate::Client::reports))
    /// are read with. Default: none (the reports answer [`Error::Config`]).
    #[must_use]
    pub fn admin_key(mut self, key: AdminKey) -> Self {
        self.admin_key = Some(key);
        self
    }

    /// The `anthropic-version` header. Default: `2023-06-01`.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds a beta to the `anthropic-beta` header. Default: no betas.
    #[must_use]
    pub fn beta(mut self, beta: impl Into<String>) -> Self {
        self.betas.push(beta.into());
        self
    }

    /// Time allowed to open a connection. Default: 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one attempt (request sent, whole JSON response read). Default: 600 s.
    /// For the results stream it bounds the wait for the response headers.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Time allowed for a whole call, retries and their delays included. Default: none.
    #[must_use]
    pub fn overall_timeout(mut self, timeout: Duration) -> Self {
        self.overall_timeout = Some(timeout);
        self
    }

    /// Longest silence tolerated while streaming results before the stream counts as lost
    /// (and is resumed). Default: 60 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The retry policy. Default: [`RetryPolicy::default`] (the official SDKs' rules).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How far back (before the attempt started, in this host's clock) a batch create whose
    /// outcome is unknown looks for the batch it may have created, when no answer of the API
    /// has told its clock yet (see [`Client::api_clock_offset`](crate::Client::api_clock_offset));
    /// otherwise only batches created after the send count. Default: 600 s.
    #[must_use]
    pub fn reconcile_window(mut self, window: Duration) -> Self {
        self.reconcile_window = window;
        self
    }

    /// The base URL in use.
    #[must_use]
    pub fn base_url_str(&self) -> &str {
        &self.base_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_shows() {
        let config = Config::new("sk-ant-very-secret");
        assert!(!format!("{config:?}").contains("very-secret"));
        assert!(!format!("{:?}", config.api_key).contains("very-secret"));
        assert_eq!(config.api_key.expose(), "sk-ant-very-secret");
    }

    #[test]
    fn from_vars_reads_key_url_and_betas() {
        let config = Config::from_vars(|name| match name {
            "ANTHROPIC_API_KEY" => Some(" sk-ant-env-secret ".to_owned()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:4010/".to_owned()),
            "ANTHROPIC_BETA" => Some("a-1, b-2,".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.api_key.expose(), "sk-ant-env-secret");
        assert_eq!(config.base_url_str(), "http://127.0.0.1:4010");
        assert_eq!(config.betas, ["a-1", "b-2"]);
        let defaults =
            Config::from_vars(|name| (name == "ANTHROPIC_API_KEY").then(|| "k".to_owned()))
                .unwrap();
        assert_eq!(defaults.base_url_str(), DEFAULT_BASE_URL);
        assert_eq!(defaults.version, API_VERSION);
    }

    #[test]
    fn missing_key_names_the_variable_not_a_value() {
        let err = Config::from_vars(|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: ANTHROPIC_API_KEY is not set"
        );
        let blank = Config::from_vars(|_| Some("  ".to_owned())).unwrap_err();
        assert!(matches!(blank, Error::Config(_)));
    }

    #[test]
    fn base_url_loses_trailing_slash() {
        assert_eq!(
            Config::new("k").base_url("http://x:1/").base_url_str(),
            "http://x:1"
        );
    }
}
