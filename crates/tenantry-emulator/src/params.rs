//! Validation of Messages API parameters, shared by `/v1/messages`, `count_tokens` and batch requests.
//!
//! Messages follow the real API's pydantic style (`max_tokens: Input should be …`). In a batch
//! these problems do not fail the create call; they become `errored` result lines.

use serde_json::{Map, Value};

use crate::wire::{ApiError, ErrorType};

/// Models the emulator knows, with their maximum output tokens.
pub(crate) const MODELS: &[(&str, u32)] = &[
    ("claude-sonnet-5", 128_000),
    ("claude-fable-5", 128_000),
    ("claude-mythos-5", 128_000),
    ("claude-opus-5", 128_000),
    ("claude-opus-4-8", 128_000),
    ("claude-opus-4-7", 128_000),
    ("claude-mythos-preview", 128_000),
    ("claude-opus-4-6", 128_000),
    ("claude-sonnet-4-6", 64_000),
    ("claude-haiku-4-5", 64_000),
    ("claude-haiku-4-5-20251001", 64_000),
    ("claude-opus-4-5", 64_000),
    ("claude-opus-4-5-20251101", 64_000),
    ("claude-sonnet-4-5", 64_000),
    ("claude-sonnet-4-5-20250929", 64_000),
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4-1-20250805", 32_000),
    ("claude-sonnet-4-0", 64_000),
    ("claude-sonnet-4-20250514", 64_000),
    ("claude-3-5-haiku-latest", 8_192),
    ("claude-3-5-haiku-20241022", 8_192),
    ("claude-3-haiku-20240307", 4_096),
];

/// Which endpoint the parameters were sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens` (no `max_tokens`).
    CountTokens,
    /// One request of a Message Batch.
    Batch,
}

/// Parameters that passed validation.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub(crate) model: &'a str,
    /// Zero for `count_tokens`.
    pub(crate) max_tokens: u32,
}

const COMMON_KEYS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "cache_control",
    "metadata",
    "output_config",
    "output_format",
    "context_management",
    "mcp_servers",
    "container",
    "inference_geo",
    "betas",
];
const GENERATION_KEYS: &[&str] = &[
    "max_tokens",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "service_tier",
];
/// Parameters the real API rejects inside a batch.
const NOT_IN_BATCH: &[&str] = &[
    "speed",
    "store",
    "previous_thread_event_id",
    "cache_hint",
    "context_hint",
    "research_preview_2026_02",
];

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

/// Checks one request's parameters the way the real API does.
pub(crate) fn check<'a>(
    params: &'a Value,
    mode: Mode,
    models: &[(String, u32)],
) -> Result<Checked<'a>, ApiError> {
    let Value::Object(map) = params else {
        return Err(invalid(String::from("Input should be a valid dictionary")));
    };
    for key in map.keys() {
        let known = COMMON_KEYS.contains(&key.as_str())
            || (mode != Mode::CountTokens && GENERATION_KEYS.contains(&key.as_str()));
        if NOT_IN_BATCH.contains(&key.as_str()) {
            if mode == Mode::Batch {
                return Err(invalid(format!(
                    "{key}: This parameter is not supported for Message Batches"
                )));
            }
        } else if !known {
            return Err(invalid(format!("{key}: Extra inputs are not permitted")));
        }
    }
    let model = match map.get("model") {
        None => return Err(invalid(String::from("model: Field required"))),
        Some(Value::String(model)) => model.as_str(),
        Some(_) => {
            return Err(invalid(String::from(
                "model: Input should be a valid string",
            )));
        }
    };
    let Some(max_output) = models
        .iter()
        .find(|(name, _)| name == model)
        .map(|(_, max)| *max)
    else {
        return Err(ApiError::new(
            ErrorType::NotFound,
            format!("model: {model}"),
        ));
    };
    let max_tokens = if mode == Mode::CountTokens {
        0
    } else {
        check_max_tokens(map, model, max_output)?
    };
    check_messages(map)?;
    check_system(map)?;
    if let Some(stream) = map.get("stream") {
        match stream {
            Value::Bool(true) if mode == Mode::Batch => {
                return Err(invalid(String::from(
                    "stream: Streaming is not supported for Message Batches requests",
                )));
            }
            Value::Bool(true) => {
                return Err(invalid(String::from(
                    "stream: streaming responses are not supported by this emulator",
                )));
            }
            Value::Bool(false) | Value::Null => {}
            _ => {
                return Err(invalid(String::from(
                    "stream: Input should be a valid boolean",
                )));
            }
        }
    }
    if let Some(temperature) = map.get("temperature").filter(|t| !t.is_null()) {
        match temperature.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {}
            Some(_) => {
                return Err(invalid(String::from(
                    "temperature: Input should be less than or equal to 1",
                )));
            }
            None => {
                return Err(invalid(String::from(
                    "temperature: Input should be a valid number",
                )));
            }
        }
    }
    Ok(Checked { model, max_tokens })
}

fn check_max_tokens(
    map: &Map<String, Value>,
    model: &str,
    max_output: u32,
) -> Result<u32, ApiError> {
    let value = match map.get("max_tokens") {
        None => return Err(invalid(String::from("max_tokens: Field required"))),
        Some(Value::Number(n)) => n,
        Some(_) => {
            return Err(invalid(String::from(
                "max_tokens: Input should be a valid integer",
            )));
        }
    };
    let Some(tokens) = value.as_i64() else {
        return Err(invalid(String::from(
            "max_tokens: Input should be a valid integer",
        )));
    };
    if tokens < 1 {
        return Err(invalid(String::from(
            "max_tokens: Input should be greater than or equal to 1",
        )));
    }
    match u32::try_from(tokens) {
        Ok(tokens) if tokens <= max_output => Ok(tokens),
        _ => Err(invalid(format!(
            "max_tokens: {tokens} > {max_output}, which is the maximum allowed number of output tokens for {model}"
        ))),
    }
}

fn check_messages(map: &Map<String, Value>) -> Result<(), ApiError> {
    let messages = match map.get("messages") {
        None => return Err(invalid(String::from("messages: Field required"))),
        Some(Value::Array(messages)) => messages,
        Some(_) => {
            return Err(invalid(String::from(
                "messages: Input should be a valid list",
            )));
        }
    };
    if messages.is_empty() {
        return Err(invalid(String::from(
            "messages: List should have at least 1 item after validation, not 0",
        )));
    }
    for (i, message) in messages.iter().enumerate() {
        let Value::Object(message) = message else {
            return Err(invalid(format!(
                "messages.{i}: Input should be a valid dictionary"
            )));
        };
        match message.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            None if !message.contains_key("role") => {
                return Err(invalid(format!("messages.{i}.role: Field required")));
            }
            _ => {
                return Err(invalid(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )));
            }
        }
        match message.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, block) in blocks.iter().enumerate() {
                    if block.get("type").and_then(Value::as_str).is_none() {
                        return Err(invalid(format!(
                            "messages.{i}.content.{j}: Unable to extract tag using discriminator 'type'"
                        )));
                    }
                }
            }
            None => return Err(invalid(format!("messages.{i}.content: Field required"))),
            Some(_) => {
                return Err(invalid(format!(
                    "messages.{i}.content: Input should be a valid list"
                )));
            }
        }
    }
    Ok(())
}

fn check_system(map: &Map<String, Value>) -> Result<(), ApiError> {
    match map.get("system") {
        None | Some(Value::String(_) | Value::Array(_) | Value::Null) => Ok(()),
        Some(_) => Err(invalid(String::from(
            "system: Input should be a valid list",
        ))),
    }
}

/// The built-in model table as owned entries.
pub(crate) fn default_models() -> Vec<(String, u32)> {
    MODELS
        .iter()
        .map(|(name, max)| ((*name).to_owned(), *max))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(params: &Value, mode: Mode) -> Result<(String, u32), (ErrorType, String)> {
        check(params, mode, &default_models())
            .map(|c| (c.model.to_owned(), c.max_tokens))
            .map_err(|e| (e.error_type, e.message))
    }

    fn ok_params() -> Value {
        json!({"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn accepts_a_plain_request() {
        assert_eq!(
            run(&ok_params(), Mode::Batch),
            Ok(("claude-opus-4-8".to_owned(), 16))
        );
    }

    #[test]
    fn unknown_model_is_not_found() {
        let mut p = ok_params();
        p["model"] = json!("gpt-4");
        assert_eq!(
            run(&p, Mode::Batch),
            Err((ErrorType::NotFound, "model: gpt-4".to_owned()))
        );
    }

    #[test]
    fn max_tokens_rules() {
        let mut p = ok_params();
        p["max_tokens"] = json!(0);
        assert_eq!(
            run(&p, Mode::Batch).unwrap_err().1,
            "max_tokens: Input should be greater than or equal to 1"
        );
        p["max_tokens"] = json!(100_000);
        p["model"] = json!("claude-haiku-4-5-20251001");
        assert_eq!(
            run(&p, Mode::Batch).unwrap_err().1,
            "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"
        );
        let mut count = ok_params();
        count.as_object_mut().map(|m| m.remove("max_tokens"));
        assert!(run(&count, Mode::CountTokens).is_ok());
        assert_eq!(
            run(&count, Mode::Messages).unwrap_err().1,
            "max_tokens: Field required"
        );
    }

    #[test]
    fn batch_only_restrictions() {
        let mut p = ok_params();
        p["stream"] = json!(true);
        assert_eq!(
            run(&p, Mode::Batch).unwrap_err().0,
            ErrorType::InvalidRequest
        );
        p["stream"] = json!(false);
        assert!(run(&p, Mode::Batch).is_ok());
        p["speed"] = json!("fast");
        assert!(run(&p, Mode::Batch).unwrap_err().1.starts_with("speed:"));
        assert!(run(&p, Mode::Messages).is_ok());
    }

    #[test]
    fn extra_and_malformed_fields() {
        let mut p = ok_params();
        p["bogus"] = json!(1);
        assert_eq!(
            run(&p, Mode::Batch).unwrap_err().1,
            "bogus: Extra inputs are not permitted"
        );
        let mut p = ok_params();
        p["messages"] = json!([{"role": "robot", "content": "x"}]);
        assert_eq!(
            run(&p, Mode::Batch).unwrap_err().1,
            "messages.0.role: Input should be 'user' or 'assistant'"
        );
        p["messages"] = json!([]);
        assert!(
            run(&p, Mode::Batch)
                .unwrap_err()
                .1
                .starts_with("messages: List should have at least 1")
        );
        assert!(run(&json!([1]), Mode::Batch).is_err());
    }
}
