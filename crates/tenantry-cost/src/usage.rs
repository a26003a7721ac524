//! Provider usage as reported ([`Usage`]), and its normalization into exclusive buckets.

use tenantry_core::{Lane, ServiceTier, Usage};

use crate::error::{Error, Result};
use crate::formula::TokenBuckets;

impl TokenBuckets {
    /// Normalizes the API's usage into exclusive buckets. **This is the one place that states
    /// Anthropic's convention**: `input_tokens` does *not* include
    /// `cache_creation_input_tokens` or `cache_read_input_tokens` (the request's prompt is the
    /// sum of the three), so each field maps to its own bucket and nothing is subtracted or
    /// added twice.
    ///
    /// Cache writes are split by `cache_creation` when present (its two fields must sum to
    /// `cache_creation_input_tokens`); without the split, every write is a 5-minute write,
    /// the API's default lifetime.
    ///
    /// ```
    /// use tenantry_cost::{TokenBuckets, Usage};
    /// let usage: Usage = serde_json::from_str(r#"{"input_tokens": 10,
    ///   "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
    ///   "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    ///   "output_tokens": 50}"#)?;
    /// let b = TokenBuckets::from_usage(&usage)?;
    /// assert_eq!((b.input, b.cache_write_5m, b.cache_write_1h, b.cache_read, b.output),
    ///            (10, 100, 200, 2000, 50));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InconsistentUsage`] when the split does not sum to the total, and
    /// [`Error::OutOfRange`] when a count exceeds [`crate::formula::MAX_TOKENS`].
    pub fn from_usage(usage: &Usage) -> Result<Self> {
        let total_writes = usage.cache_creation_input_tokens.unwrap_or(0);
        let (w5, w1) = match &usage.cache_creation {
            Some(split) => {
                let sum = split
                    .ephemeral_5m_input_tokens
                    .checked_add(split.ephemeral_1h_input_tokens);
                if sum != Some(total_writes)
                    && !(usage.cache_creation_input_tokens.is_none() && sum.is_some())
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
        let buckets = Self {
            input: to_i64("input_tokens", usage.input_tokens)?,
            cache_write_5m: to_i64("cache_write_5m_tokens", w5)?,
            cache_write_1h: to_i64("cache_write_1h_tokens", w1)?,
            cache_read: to_i64(
                "cache_read_tokens",
                usage.cache_read_input_tokens.unwrap_or(0),
            )?,
            output: to_i64("output_tokens", usage.output_tokens)?,
        };
        buckets.validate()?;
        Ok(buckets)
    }
}

/// The lane a usage was served on, as the API reports it: `service_tier: "batch"` is the batch
/// lane, anything else the urgent one.
#[must_use]
pub fn served_lane(usage: &Usage) -> Lane {
    if usage.service_tier == Some(ServiceTier::Batch) {
        Lane::Batch
    } else {
        Lane::Urgent
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
    use tenantry_core::CacheCreation;

    use super::*;

    #[test]
    fn split_must_sum_to_total() {
        let mut u = Usage::default();
        u.cache_creation_input_tokens = Some(10);
        u.cache_creation = Some(CacheCreation::new(3, 3));
        assert!(matches!(
            TokenBuckets::from_usage(&u),
            Err(Error::InconsistentUsage(_))
        ));
    }

    #[test]
    fn writes_without_split_are_five_minute_writes() {
        let mut u = Usage::new(1, 2);
        u.cache_creation_input_tokens = Some(10);
        u.service_tier = Some(ServiceTier::Batch);
        let b = TokenBuckets::from_usage(&u).unwrap();
        assert_eq!((b.cache_write_5m, b.cache_write_1h), (10, 0));
        assert_eq!(served_lane(&u), Lane::Batch);
    }
}
