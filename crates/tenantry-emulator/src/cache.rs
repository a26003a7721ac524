//! The prompt cache: which prompt prefixes were written recently, per workspace, on the virtual clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use crate::tokens::{Breakpoint, Measured, Ttl};

/// Cache accounting for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheUse {
    /// Tokens read from the cache.
    pub(crate) read: u64,
    /// Tokens written with a 5-minute lifetime.
    pub(crate) created_5m: u64,
    /// Tokens written with a 1-hour lifetime.
    pub(crate) created_1h: u64,
}

impl CacheUse {
    pub(crate) fn created(self) -> u64 {
        self.created_5m + self.created_1h
    }
}

/// Cached prefixes keyed by (workspace, prefix hash), each with the time it stops being valid.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    entries: Mutex<HashMap<(String, u64), OffsetDateTime>>,
}

impl PromptCache {
    /// Looks up the longest cached prefix, writes the rest up to the last breakpoint, and
    /// refreshes the lifetime of what was read (as the real cache does on a hit).
    pub(crate) fn apply(
        &self,
        workspace: &str,
        measured: &Measured,
        at: OffsetDateTime,
    ) -> CacheUse {
        let Some(last) = measured.breakpoints.last() else {
            return CacheUse::default();
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let hit: Option<&Breakpoint> = measured.breakpoints.iter().rev().find(|bp| {
            entries
                .get(&(workspace.to_owned(), bp.prefix_hash))
                .is_some_and(|until| *until > at)
        });
        let read = hit.map_or(0, |bp| bp.prefix_tokens);
        if let Some(bp) = hit {
            entries.insert(
                (workspace.to_owned(), bp.prefix_hash),
                at + bp.ttl.duration(),
            );
        }
        let mut usage = CacheUse {
            read,
            ..CacheUse::default()
        };
        if last.prefix_tokens > read {
            let created = last.prefix_tokens - read;
            match last.ttl {
                Ttl::FiveMinutes => usage.created_5m = created,
                Ttl::OneHour => usage.created_1h = created,
            }
            for bp in &measured.breakpoints {
                if bp.prefix_tokens > read {
                    entries.insert(
                        (workspace.to_owned(), bp.prefix_hash),
                        at + bp.ttl.duration(),
                    );
                }
            }
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::measure;
    use serde_json::json;
    use std::time::Duration;

    fn cached_params() -> serde_json::Value {
        json!({
            "model": "m",
            "system": [{"type": "text", "text": "s".repeat(4000), "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "question"}]
        })
    }

    #[test]
    fn first_write_then_read_within_ttl_then_write_again() {
        let cache = PromptCache::default();
        let measured = measure(&cached_params());
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        let first = cache.apply("w", &measured, t0);
        assert_eq!(
            first,
            CacheUse {
                read: 0,
                created_5m: 1003,
                created_1h: 0
            }
        );
        let second = cache.apply("w", &measured, t0 + Duration::from_secs(60));
        assert_eq!(
            second,
            CacheUse {
                read: 1003,
                created_5m: 0,
                created_1h: 0
            }
        );
        // Another workspace never shares the cache.
        assert_eq!(cache.apply("other", &measured, t0).read, 0);
        // The hit at 60 s refreshed the entry until 360 s; at 400 s it is gone.
        let late = cache.apply("w", &measured, t0 + Duration::from_secs(400));
        assert_eq!(late.read, 0);
        assert_eq!(late.created(), 1003);
    }

    #[test]
    fn no_breakpoint_no_cache() {
        let cache = PromptCache::default();
        let measured = measure(&json!({"messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(
            cache.apply("w", &measured, time::OffsetDateTime::UNIX_EPOCH),
            CacheUse::default()
        );
    }
}
