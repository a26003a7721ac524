//! The Message object the API returns, its content blocks and its token usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::params::Role;
use tenantry_core::open_enum;
pub use tenantry_core::{CacheCreation, OutputTokensDetails, ServerToolUsage, ServiceTier, Usage};

/// A model response: `POST /v1/messages`, or `result.message` of a succeeded batch result.
///
/// Unknown fields are ignored; unknown enum values decode to `Unknown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// The message id (`msg_…`).
    pub id: String,
    /// Always `assistant`.
    pub role: Role,
    /// The model that answered.
    pub model: String,
    /// What the model produced.
    pub content: Vec<ContentBlock>,
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Details of a refusal stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_details: Option<Value>,
    /// The container used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    /// Token usage, the basis of billing.
    pub usage: Usage,
}

impl Message {
    /// The text of all text blocks, concatenated.
    #[must_use]
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A content block of a response.
///
/// Decoded in one pass whatever the order of its fields; a block of an unknown type (or a known
/// type missing a field) becomes [`ContentBlock::Unknown`] with every field kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Citations supporting the text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Vec<Value>>,
    },
    /// Extended thinking.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// Signature to send back with the block.
        signature: String,
    },
    /// Redacted thinking.
    RedactedThinking {
        /// Opaque data to send back.
        data: String,
    },
    /// A client tool call.
    ToolUse {
        /// The call's id (`toolu_…`).
        id: String,
        /// The tool's name.
        name: String,
        /// The call's input.
        input: Value,
    },
    /// A server tool call (web search, code execution, …).
    ServerToolUse {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
        /// The call's input.
        input: Value,
    },
    /// Any other block (server tool results, future kinds), kept as raw JSON.
    #[serde(untagged)]
    Unknown(Value),
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BlockVisitor)
    }
}

/// The `type` of a content block: the known ones named without allocating (one block per
/// result line is the hot path of decoding a results file).
enum BlockKind {
    Text,
    Thinking,
    RedactedThinking,
    ToolUse,
    ServerToolUse,
    Other(String),
}

impl BlockKind {
    fn into_string(self) -> String {
        match self {
            Self::Text => "text".to_owned(),
            Self::Thinking => "thinking".to_owned(),
            Self::RedactedThinking => "redacted_thinking".to_owned(),
            Self::ToolUse => "tool_use".to_owned(),
            Self::ServerToolUse => "server_tool_use".to_owned(),
            Self::Other(other) => other,
        }
    }
}

impl<'de> Deserialize<'de> for BlockKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl serde::de::Visitor<'_> for KindVisitor {
            type Value = BlockKind;
            // The same words as `String`'s, so a non-string `type` fails as it did before.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<BlockKind, E> {
                Ok(match value {
                    "text" => BlockKind::Text,
                    "thinking" => BlockKind::Thinking,
                    "redacted_thinking" => BlockKind::RedactedThinking,
                    "tool_use" => BlockKind::ToolUse,
                    "server_tool_use" => BlockKind::ServerToolUse,
                    other => BlockKind::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_string(KindVisitor)
    }
}

/// The fields of a content block; unknown names are kept for [`ContentBlock::Unknown`].
enum BlockField {
    Type,
    Text,
    Citations,
    Thinking,
    Signature,
    Data,
    Id,
    Name,
    Input,
    Other(String),
}

impl<'de> Deserialize<'de> for BlockField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl serde::de::Visitor<'_> for FieldVisitor {
            type Value = BlockField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<BlockField, E> {
                Ok(match value {
                    "type" => BlockField::Type,
                    "text" => BlockField::Text,
                    "citations" => BlockField::Citations,
                    "thinking" => BlockField::Thinking,
                    "signature" => BlockField::Signature,
                    "data" => BlockField::Data,
                    "id" => BlockField::Id,
                    "name" => BlockField::Name,
                    "input" => BlockField::Input,
                    other => BlockField::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct BlockVisitor;

impl<'de> serde::de::Visitor<'de> for BlockVisitor {
    type Value = ContentBlock;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a content block object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ContentBlock, A::Error> {
        let mut kind: Option<BlockKind> = None;
        let mut text: Option<String> = None;
        let mut citations: Option<Option<Vec<Value>>> = None;
        let mut thinking: Option<String> = None;
        let mut signature: Option<String> = None;
        let mut data: Option<String> = None;
        let mut id: Option<String> = None;
        let mut name: Option<String> = None;
        let mut input: Option<Value> = None;
        let mut rest = serde_json::Map::new();
        while let Some(field) = map.next_key::<BlockField>()? {
            match field {
                BlockField::Type => kind = Some(map.next_value()?),
                BlockField::Text => text = Some(map.next_value()?),
                BlockField::Citations => citations = Some(map.next_value()?),
                BlockField::Thinking => thinking = Some(map.next_value()?),
                BlockField::Signature => signature = Some(map.next_value()?),
                BlockField::Data => data = Some(map.next_value()?),
                BlockField::Id => id = Some(map.next_value()?),
                BlockField::Name => name = Some(map.next_value()?),
                BlockField::Input => input = Some(map.next_value()?),
                BlockField::Other(key) => {
                    rest.insert(key, map.next_value()?);
                }
            }
        }
        let block = match (kind, text, thinking, signature, data, id, name, input) {
            (Some(BlockKind::Text), Some(text), None, None, None, None, None, None) => {
                ContentBlock::Text {
                    text,
                    citations: citations.flatten(),
                }
            }
            (
                Some(BlockKind::Thinking),
                None,
                Some(thinking),
                Some(signature),
                None,
                None,
                None,
                None,
            ) => ContentBlock::Thinking {
                thinking,
                signature,
            },
            (Some(BlockKind::RedactedThinking), None, None, None, Some(data), None, None, None) => {
                ContentBlock::RedactedThinking { data }
            }
            (
                Some(BlockKind::ToolUse),
                None,
                None,
                None,
                None,
                Some(id),
                Some(name),
                Some(input),
            ) => ContentBlock::ToolUse { id, name, input },
            (
                Some(BlockKind::ServerToolUse),
                None,
                None,
                None,
                None,
                Some(id),
                Some(name),
                Some(input),
            ) => ContentBlock::ServerToolUse { id, name, input },
            (kind, text, thinking, signature, data, id, name, input) => {
                let strings = [
                    ("type", kind.map(BlockKind::into_string)),
                    ("text", text),
                    ("thinking", thinking),
                    ("signature", signature),
                    ("data", data),
                    ("id", id),
                    ("name", name),
                ];
                for (key, value) in strings {
                    if let Some(value) = value {
                        rest.insert(key.to_owned(), Value::String(value));
                    }
                }
                if let Some(citations) = citations {
                    rest.insert(
                        "citations".to_owned(),
                        citations.map_or(Value::Null, Value::Array),
                    );
                }
                if let Some(input) = input {
                    rest.insert("input".to_owned(), input);
                }
                ContentBlock::Unknown(Value::Object(rest))
            }
        };
        Ok(block)
    }
}

open_enum! {
    /// Why the model stopped generating.
    StopReason {
        /// A natural stopping point.
        EndTurn = "end_turn",
        /// `max_tokens` was reached.
        MaxTokens = "max_tokens",
        /// A stop sequence matched.
        StopSequence = "stop_sequence",
        /// The model called a tool.
        ToolUse = "tool_use",
        /// A long server-tool turn was paused; send it back to continue.
        PauseTurn = "pause_turn",
        /// The model refused.
        Refusal = "refusal",
        /// The context window is full.
        ModelContextWindowExceeded = "model_context_window_exceeded",
    }
}

/// The answer of `POST /v1/messages/count_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenCount {
    /// Input tokens the request would use.
    pub input_tokens: u64,
}
