//! Builds `Message` objects: runs the responder, counts usage, applies the prompt cache.

use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::cache::PromptCache;
use crate::ids::IdGen;
use crate::params::Checked;
use crate::responder::{MessageRequest, Reply, Responder};
use crate::tokens::{measure, text_tokens};
use crate::wire::ApiError;

/// Everything needed to answer requests for one workspace.
pub(crate) struct Generator<'a> {
    pub(crate) responder: &'a dyn Responder,
    pub(crate) cache: &'a PromptCache,
    pub(crate) ids: &'a Mutex<IdGen>,
    pub(crate) workspace: &'a str,
}

impl std::fmt::Debug for Generator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

/// Cuts `text` to at most `max_tokens` tokens; returns whether it was cut.
fn truncate_to_tokens(text: &mut String, max_tokens: u32) -> bool {
    let max_chars = usize::try_from(max_tokens)
        .unwrap_or(usize::MAX)
        .saturating_mul(4);
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => {
            text.truncate(byte);
            true
        }
        None => false,
    }
}

impl Generator<'_> {
    /// The message (serialized JSON) for one validated request, processed at virtual time `at`.
    pub(crate) fn generate(
        &self,
        params: &Value,
        checked: &Checked<'_>,
        custom_id: Option<&str>,
        at: OffsetDateTime,
        service_tier: &str,
    ) -> Result<String, ApiError> {
        let measured = measure(params);
        let request = MessageRequest {
            params,
            model: checked.model,
            max_tokens: checked.max_tokens,
            custom_id,
            input_tokens: measured.total,
        };
        let (content, stop_reason, output_tokens) = match self.responder.respond(&request) {
            Reply::Text(mut text) => {
                let cut = truncate_to_tokens(&mut text, checked.max_tokens);
                let tokens = text_tokens(&text);
                let stop = if cut { "max_tokens" } else { "end_turn" };
                let block = TextBlock { kind: "text", text };
                (Content::Text([block]), stop.to_owned(), tokens)
            }
            Reply::Content {
                content,
                stop_reason,
            } => {
                let tokens = content
                    .iter()
                    .map(|block| text_tokens(&block.to_string()))
                    .sum::<u64>()
                    .min(u64::from(checked.max_tokens));
                (Content::Blocks(content), stop_reason, tokens)
            }
            Reply::Error {
                error_type,
                message,
            } => return Err(ApiError::new(error_type, message)),
        };
        let cache = self.cache.apply(self.workspace, &measured, at);
        let input_tokens = measured.total - cache.read - cache.created();
        let id = self
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .message();
        let message = WireMessage {
            id,
            kind: "message",
            role: "assistant",
            model: checked.model,
            content,
            stop_reason,
            stop_sequence: None,
            usage: WireUsage {
                input_tokens,
                cache_creation_input_tokens: cache.created(),
                cache_read_input_tokens: cache.read,
                cache_creation: WireCacheCreation {
                    ephemeral_5m_input_tokens: cache.created_5m,
                    ephemeral_1h_input_tokens: cache.created_1h,
                },
                output_tokens,
                service_tier,
                inference_geo: params.get("inference_geo").and_then(Value::as_str),
            },
        };
        serde_json::to_string(&message).map_err(|e| {
            ApiError::new(
                crate::wire::ErrorType::Api,
                format!("cannot encode the message: {e}"),
            )
        })
    }
}

/// A `Message` with its keys in the real API's order.
#[derive(Serialize)]
struct WireMessage<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Content,
    stop_reason: String,
    stop_sequence: Option<String>,
    usage: WireUsage<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content {
    Text([TextBlock; 1]),
    Blocks(Vec<Value>),
}

#[derive(Serialize)]
struct TextBlock {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Serialize)]
struct WireUsage<'a> {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: WireCacheCreation,
    output_tokens: u64,
    service_tier: &'a str,
    /// Present when the request chose one (the real API reports it; the emulator stays
    /// silent otherwise so older clients see the usage they always saw).
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_geo: Option<&'a str>,
}

#[derive(Serialize)]
struct WireCacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Mode, check, default_models};
    use crate::responder::EchoResponder;
    use serde_json::json;

    #[test]
    fn usage_matches_count_and_max_tokens() {
        let cache = PromptCache::default();
        let ids = Mutex::new(IdGen::new(1));
        let generator = Generator {
            responder: &EchoResponder,
            cache: &cache,
            ids: &ids,
            workspace: "w",
        };
        let params = json!({"model": "claude-opus-4-8", "max_tokens": 3, "messages": [{"role": "user", "content": "Hello there, how are you?"}]});
        let models = default_models();
        let checked = check(&params, Mode::Messages, &models).unwrap();
        let message = generator
            .generate(
                &params,
                &checked,
                None,
                OffsetDateTime::UNIX_EPOCH,
                "standard",
            )
            .unwrap();
        assert!(message.starts_with(r#"{"id":"msg_01"#), "{message}");
        assert!(message.contains(r#""type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"text","#));
        let message: Value = serde_json::from_str(&message).unwrap();
        assert_eq!(message["usage"]["input_tokens"], measure(&params).total);
        assert_eq!(message["usage"]["output_tokens"], 3);
        assert_eq!(message["stop_reason"], "max_tokens");
        assert_eq!(message["content"][0]["text"], "Echo: Hello ");
        assert!(message["id"].as_str().unwrap().starts_with("msg_01"));
    }
}
