//! Token counting: one rule shared by `count_tokens`, message usage and prompt caching.
//!
//! The emulator does not know the real tokenizer; it counts one token per four characters
//! of text (rounded up), four tokens of framing per message and three per request, and a
//! flat 1,500 tokens per image or document. What matters for tests is that the same prompt
//! always gets the same count on every endpoint.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

/// Tokens per image or document block.
const MEDIA_TOKENS: u64 = 1_500;
/// Framing tokens per message.
const MESSAGE_TOKENS: u64 = 4;
/// Framing tokens per request.
const REQUEST_TOKENS: u64 = 3;

/// Tokens of a piece of text: characters / 4, rounded up.
pub(crate) fn text_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

/// How long a cache entry written at a breakpoint lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ttl {
    FiveMinutes,
    OneHour,
}

impl Ttl {
    pub(crate) fn duration(self) -> std::time::Duration {
        match self {
            Self::FiveMinutes => std::time::Duration::from_secs(300),
            Self::OneHour => std::time::Duration::from_secs(3_600),
        }
    }
}

/// A cache breakpoint: the prompt prefix up to here may be cached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Breakpoint {
    /// Tokens in the prefix that ends at this breakpoint.
    pub(crate) prefix_tokens: u64,
    /// Hash of that prefix's content (model included).
    pub(crate) prefix_hash: u64,
    pub(crate) ttl: Ttl,
}

/// A prompt measured: total input tokens and its cache breakpoints, in prompt order.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) total: u64,
    pub(crate) breakpoints: Vec<Breakpoint>,
}

struct Walker {
    total: u64,
    hasher: DefaultHasher,
    breakpoints: Vec<Breakpoint>,
}

impl Walker {
    fn add(&mut self, tokens: u64, content: &str) {
        self.total += tokens;
        content.hash(&mut self.hasher);
    }

    fn block(&mut self, block: &Value) {
        match block {
            Value::String(text) => self.add(text_tokens(text), text),
            Value::Object(map) => {
                let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "text" => {
                        let text = map.get("text").and_then(Value::as_str).unwrap_or("");
                        self.add(text_tokens(text), text);
                    }
                    "image" | "document" => {
                        let repr = block.to_string();
                        self.add(MEDIA_TOKENS, &repr);
                    }
                    "thinking" => {
                        let text = map.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.add(text_tokens(text), text);
                    }
                    "tool_result" => match map.get("content") {
                        Some(Value::Array(items)) => items.iter().for_each(|item| self.block(item)),
                        Some(other) => self.block(other),
                        None => {}
                    },
                    _ => {
                        let mut copy = map.clone();
                        copy.remove("cache_control");
                        let repr = Value::Object(copy).to_string();
                        self.add(text_tokens(&repr), &repr);
                    }
                }
                self.breakpoint_at(map.get("cache_control"));
            }
            other => {
                let repr = other.to_string();
                self.add(text_tokens(&repr), &repr);
            }
        }
    }

    fn breakpoint_at(&mut self, cache_control: Option<&Value>) {
        let Some(control) = cache_control.filter(|c| c.is_object()) else {
            return;
        };
        let ttl = match control.get("ttl").and_then(Value::as_str) {
            Some("1h") => Ttl::OneHour,
            _ => Ttl::FiveMinutes,
        };
        self.breakpoints.push(Breakpoint {
            prefix_tokens: self.total,
            prefix_hash: self.hasher.finish(),
            ttl,
        });
    }
}

/// Measures a Messages API request body (`params`): total input tokens and cache breakpoints.
pub(crate) fn measure(params: &Value) -> Measured {
    let mut walker = Walker {
        total: REQUEST_TOKENS,
        hasher: DefaultHasher::new(),
        breakpoints: Vec::new(),
    };
    if let Some(model) = params.get("model").and_then(Value::as_str) {
        model.hash(&mut walker.hasher);
    }
    if let Some(Value::Array(tools)) = params.get("tools") {
        for tool in tools {
            walker.block(tool);
        }
    }
    match params.get("system") {
        Some(Value::String(text)) => walker.add(text_tokens(text), text),
        Some(Value::Array(blocks)) => blocks.iter().for_each(|b| walker.block(b)),
        _ => {}
    }
    if let Some(Value::Array(messages)) = params.get("messages") {
        for message in messages {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            walker.add(MESSAGE_TOKENS, role);
            match message.get("content") {
                Some(Value::String(text)) => walker.add(text_tokens(text), text),
                Some(Value::Array(blocks)) => blocks.iter().for_each(|b| walker.block(b)),
                _ => {}
            }
        }
    }
    // Top-level `cache_control` is automatic caching: a breakpoint after the last block.
    walker.breakpoint_at(params.get("cache_control"));
    Measured {
        total: walker.total,
        breakpoints: walker.breakpoints,
    }
}

/// The text of the last user message (string content or its text blocks joined).
pub(crate) fn last_user_text(params: &Value) -> String {
    let Some(Value::Array(messages)) = params.get("messages") else {
        return String::new();
    };
    let Some(message) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_text_and_framing() {
        let params =
            json!({"model": "m", "messages": [{"role": "user", "content": "Hello, world"}]});
        // 3 request + 4 message + ceil(12 / 4) text.
        assert_eq!(measure(&params).total, 10);
    }

    #[test]
    fn blocks_count_like_strings() {
        let a = json!({"messages": [{"role": "user", "content": "abcdefgh"}]});
        let b = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]});
        assert_eq!(measure(&a).total, measure(&b).total);
    }

    #[test]
    fn breakpoints_record_prefixes() {
        let params = json!({
            "model": "m",
            "system": [{"type": "text", "text": "x".repeat(400), "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": "hi"}]
        });
        let measured = measure(&params);
        assert_eq!(measured.breakpoints.len(), 1);
        assert_eq!(measured.breakpoints[0].prefix_tokens, 3 + 100);
        assert_eq!(measured.breakpoints[0].ttl, Ttl::OneHour);
        assert_eq!(measured.total, 3 + 100 + 4 + 1);
    }

    #[test]
    fn automatic_caching_covers_the_whole_prompt() {
        let params = json!({"cache_control": {"type": "ephemeral"}, "messages": [{"role": "user", "content": "abcd"}]});
        let measured = measure(&params);
        assert_eq!(measured.breakpoints[0].prefix_tokens, measured.total);
    }

    #[test]
    fn last_user_text_joins_blocks() {
        let params = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ]});
        assert_eq!(last_user_text(&params), "a b");
    }
}
