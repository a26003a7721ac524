//! Provider usage as reported, and its normalization into exclusive buckets.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::formula::TokenBuckets;
use tenantry_core::Lane;

/// The breakdown of cache writes by lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Tokens written with the 5-minute lifetime.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with the 1-hour lifetime.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// Anthropic's `usage` object, as the Messages and Message Batches APIs return it.
///
/// Unknown fields are ignored. See [`AnthropicUsage::buckets`] for how it is normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnthropicUsage {
    /// Uncached input tokens. **Excludes** cache reads and writes.
    #[serde(default)]
    pub input_tokens: u64,
    /// All cache-write tokens (5 m + 1 h).
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache-read tokens.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes split by lifetime, when the API reports it.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    /// Output tokens (thinking included).
    #[serde(default)]
    pub output_tokens: u64,
    /// `standard`, `priority` or `batch`.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Where inference ran: `global`, `us`, ….
    #[serde(default)]
    pub inference_geo: Option<String>,
}

impl AnthropicUsage {
    /// Normalizes into exclusive buckets. **This is the one place that states Anthropic's
    /// convention**: `input_tokens` does *not* include `cache_creation_input_tokens` or
    /// `cache_read_input_tokens` (the request's prompt is the sum of the three), so each field
    /// maps to its own bucket and nothing is subtracted or added twice.
    ///
    /// Cache writes are split by `cache_creation` when present (its two fields must sum to
    /// `cache_creation_input_tokens`); without the split, every write is a 5-minute write,
    /// the API's default lifetime.
    ///
    /// ```
    /// use tenantry_cost::AnthropicUsage;
    /// let usage: AnthropicUsage = serde_json::from_str(r#"{"input_tokens": 10,
    ///   "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
    ///   "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    ///   "output_tokens": 50}"#)?;
    /// let b = usage.buckets()?;
    /// assert_eq!((b.input, b.cache_write_5m, b.cache_write_1h, b.cache_read, b.output),
    ///            (10, 100, 200, 2000, 50));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InconsistentUsage`] when the split does not sum to the total, and
    /// [`Error::OutOfRange`] when a count exceeds [`crate::formula::MAX_TOKENS`].
    pub fn buckets(&self) -> Result<TokenBuckets> {
        let total_writes = self.cache_creation_input_tokens.unwrap_or(0);
        let (w5, w1) = match self.cache_creation {
            Some(split) => {
                let sum = split
                    .ephemeral_5m_input_tokens
                    .checked_add(split.ephemeral_1h_input_tokens);
                if sum != Some(total_writes)
                    && !(self.cache_creation_input_tokens.is_none() && sum.is_some())
                {
                    return Err(Error::InconsistentUsage(format!(
                        "cache_creation splits into {} + {} tokens but cache_creation_input_tokens is {total_writes}",
                        split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens
                    )));
                }
                (
                    split.ephemeral_5m_input_tokens,
                    split.ephemeral_1h_input_tokens,
                )
            }
            None => (total_writes, 0),
        };
        let buckets = TokenBuckets {
            input: to_i64("input_tokens", self.input_tokens)?,
            cache_write_5m: to_i64("cache_write_5m_tokens", w5)?,
            cache_write_1h: to_i64("cache_write_1h_tokens", w1)?,
            cache_read: to_i64(
                "cache_read_tokens",
                self.cache_read_input_tokens.unwrap_or(0),
            )?,
            output: to_i64("output_tokens", self.output_tokens)?,
        };
        buckets.validate()?;
        Ok(buckets)
    }

    /// The lane the usage was served on: `service_tier: "batch"` is the batch lane.
    #[must_use]
    pub fn lane(&self) -> Lane {
        if self.service_tier.as_deref() == Some("batch") {
            Lane::Batch
        } else {
            Lane::Urgent
        }
    }
}

fn to_i64(field: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::OutOfRange {
        field,
        value: i64::MAX,
        min: 0,
        max: crate::formula::MAX_TOKENS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_must_sum_to_total() {
        let u = AnthropicUsage {
            cache_creation_input_tokens: Some(10),
            cache_creation: Some(CacheCreation {
                ephemeral_5m_input_tokens: 3,
                ephemeral_1h_input_tokens: 3,
            }),
            ..AnthropicUsage::default()
        };
        assert!(matches!(u.buckets(), Err(Error::InconsistentUsage(_))));
    }

    #[test]
    fn writes_without_split_are_five_minute_writes() {
        let u = AnthropicUsage {
            input_tokens: 1,
            cache_creation_input_tokens: Some(10),
            output_tokens: 2,
            service_tier: Some("batch".into()),
            ..AnthropicUsage::default()
        };
        let b = u.buckets().unwrap();
        assert_eq!((b.cache_write_5m, b.cache_write_1h), (10, 0));
        assert_eq!(u.lane(), Lane::Batch);
    }
}
