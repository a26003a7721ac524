//! Who decides what the "model" answers: the [`Responder`] trait and the default [`EchoResponder`].

use std::fmt;

use serde_json::Value;

use crate::wire::ErrorType;

/// One Messages API request as a responder sees it, after validation.
#[derive(Debug)]
#[non_exhaustive]
pub struct MessageRequest<'a> {
    /// The full request body (the `params` of a batch request).
    pub params: &'a Value,
    /// The requested model (a name the emulator knows).
    pub model: &'a str,
    /// The output token budget (at least 1).
    pub max_tokens: u32,
    /// The `custom_id` when the request is part of a batch.
    pub custom_id: Option<&'a str>,
    /// Input tokens as `count_tokens` counts them.
    pub input_tokens: u64,
}

/// A responder's answer to one request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// One text block. Output tokens are counted from it; text beyond `max_tokens` is
    /// cut off and the stop reason becomes `max_tokens`.
    Text(String),
    /// Arbitrary content blocks with a stop reason (e.g. `tool_use`). Output tokens are
    /// counted from the blocks' JSON and capped at `max_tokens`.
    Content {
        /// The `content` array of the message.
        content: Vec<Value>,
        /// The `stop_reason` of the message.
        stop_reason: String,
    },
    /// The request fails: `/v1/messages` answers this error, a batch gets an `errored` line.
    Error {
        /// The error's type (its HTTP status on `/v1/messages`).
        error_type: ErrorType,
        /// The error's message.
        message: String,
    },
}

/// Decides the content of every message the emulator produces.
///
/// Implementations must be deterministic if tests rely on exact output, and fast: the
/// emulator calls it once per request, also for 100,000-request batches.
///
/// # Example
///
/// ```
/// use tenantry_emulator::{MessageRequest, Reply, Responder};
///
/// #[derive(Debug)]
/// struct Shout;
///
/// impl Responder for Shout {
///     fn respond(&self, request: &MessageRequest<'_>) -> Reply {
///         Reply::Text(format!("{} SAYS HI", request.model.to_uppercase()))
///     }
/// }
/// # let _ = Shout;
/// ```
pub trait Responder: Send + Sync + fmt::Debug + 'static {
    /// The answer to one validated request.
    fn respond(&self, request: &MessageRequest<'_>) -> Reply;
}

/// The default responder: answers with text derived from the last user message.
///
/// The answer is `"Echo: "` followed by the first 200 characters of the last user
/// message, so it is deterministic, depends on the prompt and stays short.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoResponder;

impl Responder for EchoResponder {
    fn respond(&self, request: &MessageRequest<'_>) -> Reply {
        let text = crate::tokens::last_user_text(request.params);
        let snippet: String = text.chars().take(200).collect();
        Reply::Text(format!("Echo: {snippet}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_derives_text_from_the_prompt() {
        let params = json!({"messages": [{"role": "user", "content": "Hello, world"}]});
        let request = MessageRequest {
            params: &params,
            model: "m",
            max_tokens: 5,
            custom_id: None,
            input_tokens: 1,
        };
        assert_eq!(
            EchoResponder.respond(&request),
            Reply::Text("Echo: Hello, world".to_owned())
        );
    }
}
