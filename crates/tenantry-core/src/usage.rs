//! [`Usage`]: the token usage of one response, as the Anthropic API reports it, shared by the
//! API client (which decodes it), the queue (which stores it) and the ledger (which prices it).

use serde::{Deserialize, Serialize};

use crate::open_enum;

/// Token usage of one response. Only the first two fields are always present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes broken down by lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// Where inference ran (`"global"`, `"us"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    /// Output broken down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Server tool calls made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUsage>,
    /// The tier that served the request (`batch` for batch results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

/// Cache writes by lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheCreation {
    /// Tokens written with a five-minute lifetime.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with a one-hour lifetime.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// Output tokens broken down.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputTokensDetails {
    /// Tokens spent thinking.
    #[serde(default)]
    pub thinking_tokens: u64,
}

/// Server tool calls made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerToolUsage {
    /// Web searches.
    #[serde(default)]
    pub web_search_requests: u64,
    /// Web fetches.
    #[serde(default)]
    pub web_fetch_requests: u64,
}

open_enum! {
    /// The tier that served a request.
    ServiceTier {
        /// Standard capacity.
        Standard = "standard",
        /// Priority capacity.
        Priority = "priority",
        /// The Message Batches API.
        Batch = "batch",
    }
}

impl Usage {
    /// A usage with only the two fields every response carries.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::{CacheCreation, Usage};
    ///
    /// let mut usage = Usage::new(1_000, 200);
    /// usage.cache_read_input_tokens = Some(5_000);
    /// usage.cache_creation = Some(CacheCreation::new(0, 300));
    /// assert_eq!(usage.input_tokens + usage.output_tokens, 1_200);
    /// ```
    #[must_use]
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }
}

impl CacheCreation {
    /// Cache writes with a five-minute and a one-hour lifetime.
    #[must_use]
    pub fn new(ephemeral_5m_input_tokens: u64, ephemeral_1h_input_tokens: u64) -> Self {
        Self {
            ephemeral_5m_input_tokens,
            ephemeral_1h_input_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tier_this_version_does_not_know_survives_a_round_trip() {
        let usage: Usage = serde_json::from_str(
            r#"{"input_tokens":1,"output_tokens":2,"service_tier":"flex","cache_creation":{"ephemeral_1h_input_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(
            usage.service_tier,
            Some(ServiceTier::Unknown("flex".into()))
        );
        assert_eq!(usage.cache_creation, Some(CacheCreation::new(0, 3)));
        let back = serde_json::to_value(&usage).unwrap();
        assert_eq!(back["service_tier"], "flex");
        assert_eq!(
            serde_json::from_str::<Usage>(
                r#"{"input_tokens":1,"output_tokens":2,"service_tier":"batch"}"#
            )
            .unwrap()
            .service_tier,
            Some(ServiceTier::Batch)
        );
    }
}
