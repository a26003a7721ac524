//! Request parameters of the Messages API, as a batch request item carries them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use tenantry_core::open_enum;

/// The parameters of one Messages API call (`POST /v1/messages`, or `params` of a batch item).
///
/// Every parameter the batch path accepts is typed; anything newer goes into [`extra`]
/// (the raw JSON escape hatch), which is merged into the serialized object as is.
///
/// [`extra`]: MessageParams::extra
///
/// # Example
///
/// ```
/// use tenantry_batch::types::{MessageParams, MessageParam};
///
/// let params = MessageParams::new("claude-sonnet-4-6", 1024, vec![MessageParam::user("Hello")])
///     .system("Answer in one line.")
///     .temperature(0.2)
///     .extra("output_config", serde_json::json!({"effort": "low"}));
/// let json = serde_json::to_value(&params)?;
/// assert_eq!(json["output_config"]["effort"], "low");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageParams {
    /// The model, e.g. `claude-sonnet-4-6`.
    pub model: String,
    /// The most tokens the model may generate; at least 1 in a batch.
    pub max_tokens: u32,
    /// The conversation, alternating user and assistant turns.
    pub messages: Vec<MessageParam>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    /// Top-level automatic prompt caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Sampling temperature, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Sample only from the top K options for each token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Nucleus sampling threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sequences that stop generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Tools the model may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model chooses tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingConfig>,
    /// Request metadata (an opaque end-user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Which capacity tier serves the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTierParam>,
    /// Where inference runs (e.g. `"us"`, `"global"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    /// A container to reuse (code execution, skills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    /// Output configuration (`effort`, structured `format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
    /// Streaming flag. Batches refuse `true`; [`BatchRequests`](crate::BatchRequests) rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Parameters this crate has not typed yet, serialized next to the typed ones.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageParams {
    /// Parameters with the three required fields and nothing else set.
    #[must_use]
    pub fn new(model: impl Into<String>, max_tokens: u32, messages: Vec<MessageParam>) -> Self {
        Self {
            model: model.into(),
            max_tokens,
            messages,
            system: None,
            cache_control: None,
            temperature: None,
            top_k: None,
            top_p: None,
            stop_sequences: None,
            tools: None,
            tool_choice: None,
            thinking: None,
            metadata: None,
            service_tier: None,
            inference_geo: None,
            container: None,
            output_config: None,
            stream: None,
            extra: Map::new(),
        }
    }

    /// Sets the system prompt (a string or blocks). Default: none.
    #[must_use]
    pub fn system(mut self, system: impl Into<SystemPrompt>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the sampling temperature. Default: the API's (1.0).
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the tools. Default: none.
    #[must_use]
    pub fn tools(mut self, tools: Vec<Tool>) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Sets an untyped parameter (the raw JSON escape hatch). Default: none.
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

open_enum! {
    /// Who speaks a turn.
    Role {
        /// The caller.
        User = "user",
        /// The model.
        Assistant = "assistant",
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageParam {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: MessageContent,
}

impl MessageParam {
    /// A user turn with plain text.
    #[must_use]
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: MessageContent::Text(text.into()),
        }
    }

    /// An assistant turn with plain text (prefill or history).
    #[must_use]
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: MessageContent::Text(text.into()),
        }
    }

    /// A turn made of content blocks.
    #[must_use]
    pub fn blocks(role: Role, blocks: Vec<ContentBlockParam>) -> Self {
        Self {
            role,
            content: MessageContent::Blocks(blocks),
        }
    }
}

/// The content of a turn: a string, or content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum MessageContent {
    /// Plain text (shorthand for one text block).
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlockParam>),
}

/// The system prompt: a string, or text blocks (which may carry `cache_control`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum SystemPrompt {
    /// Plain text.
    Text(String),
    /// Text blocks.
    Blocks(Vec<TextBlockParam>),
}

impl From<&str> for SystemPrompt {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for SystemPrompt {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<Vec<TextBlockParam>> for SystemPrompt {
    fn from(blocks: Vec<TextBlockParam>) -> Self {
        Self::Blocks(blocks)
    }
}

/// A text block of a system prompt or of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextBlockParam {
    /// Always `"text"`.
    #[serde(rename = "type")]
    pub kind: TextKind,
    /// The text.
    pub text: String,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

impl TextBlockParam {
    /// A text block without a cache breakpoint.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            kind: TextKind::Text,
            text: text.into(),
            cache_control: None,
        }
    }

    /// Puts a cache breakpoint on this block.
    #[must_use]
    pub fn cached(mut self, cache_control: CacheControl) -> Self {
        self.cache_control = Some(cache_control);
        self
    }
}

/// The `type` tag of a [`TextBlockParam`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    /// `"text"`.
    Text,
}

/// A content block of a request turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentBlockParam {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
        /// Cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A document (PDF, plain text, or custom content).
    Document {
        /// Where the document comes from.
        source: DocumentSource,
        /// Title shown to the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Context about the document.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        /// Citation settings, e.g. `{"enabled": true}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Value>,
        /// Cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A tool call the model made earlier (conversation history).
    ToolUse {
        /// The call's id (`toolu_…`).
        id: String,
        /// The tool's name.
        name: String,
        /// The call's input.
        input: Value,
        /// Cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// The result of a tool call.
    ToolResult {
        /// The call this answers.
        tool_use_id: String,
        /// The result: text or blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        /// Cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A thinking block returned earlier (conversation history).
    Thinking {
        /// The thinking text.
        thinking: String,
        /// Its signature.
        signature: String,
    },
    /// A redacted thinking block returned earlier.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// A block this crate does not type: serialized exactly as given.
    #[serde(untagged)]
    Raw(Value),
}

impl ContentBlockParam {
    /// A text block.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

/// The content of a tool result: a string or blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ToolResultContent {
    /// Plain text.
    Text(String),
    /// Text, image or document blocks.
    Blocks(Vec<ContentBlockParam>),
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageSource {
    /// Inline base64 data.
    Base64 {
        /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// A URL the API fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A file uploaded through the Files API.
    File {
        /// The file id.
        file_id: String,
    },
}

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DocumentSource {
    /// Inline base64 data (PDF).
    Base64 {
        /// `application/pdf`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// Inline plain text.
    Text {
        /// `text/plain`.
        media_type: String,
        /// The text.
        data: String,
    },
    /// Custom content blocks.
    Content {
        /// A string or blocks.
        content: Value,
    },
    /// A URL the API fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A file uploaded through the Files API.
    File {
        /// The file id.
        file_id: String,
    },
}

/// A prompt-cache breakpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheControl {
    /// Always `"ephemeral"`.
    #[serde(rename = "type")]
    pub kind: CacheKind,
    /// How long the cache entry lives. Default (when `None`): five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

impl CacheControl {
    /// An ephemeral breakpoint with the given lifetime.
    #[must_use]
    pub fn ephemeral(ttl: Option<CacheTtl>) -> Self {
        Self {
            kind: CacheKind::Ephemeral,
            ttl,
        }
    }
}

open_enum! {
    /// The kind of a cache breakpoint.
    CacheKind {
        /// `"ephemeral"`.
        Ephemeral = "ephemeral",
    }
}

open_enum! {
    /// The lifetime of a cache entry.
    CacheTtl {
        /// Five minutes (`"5m"`), billed at 1.25× input.
        FiveMinutes = "5m",
        /// One hour (`"1h"`), billed at 2× input.
        OneHour = "1h",
    }
}

/// A tool definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Tool {
    /// A client tool described by a JSON schema.
    Custom(CustomTool),
    /// A server tool (web search, code execution, …) or anything else, as raw JSON.
    Raw(Value),
}

/// A client tool described by a JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CustomTool {
    /// The tool's name.
    pub name: String,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the tool's input.
    pub input_schema: Value,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

impl CustomTool {
    /// A tool with a name and an input schema.
    #[must_use]
    pub fn new(name: impl Into<String>, input_schema: Value) -> Self {
        Self {
            name: name.into(),
            description: None,
            input_schema,
            cache_control: None,
        }
    }

    /// Sets the description. Default: none.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// How the model chooses tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// Use at most one tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must use some tool.
    Any {
        /// Use exactly one tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must use this tool.
    Tool {
        /// The tool's name.
        name: String,
        /// Use exactly one tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not use tools.
    None,
}

/// Extended thinking configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThinkingConfig {
    /// Thinking with a token budget.
    Enabled {
        /// Tokens the model may think with (≥ 1024, < `max_tokens`).
        budget_tokens: u32,
        /// How thinking is shown (`"summarized"`, `"omitted"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    /// The model decides how much to think.
    Adaptive {
        /// How thinking is shown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    /// No thinking.
    Disabled,
}

/// Request metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// An opaque id of the end user (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Metadata {
    /// Metadata carrying an end-user id.
    #[must_use]
    pub fn user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id.into()),
        }
    }
}

open_enum! {
    /// The capacity tier a request asks for.
    ServiceTierParam {
        /// Priority capacity when available, else standard.
        Auto = "auto",
        /// Standard capacity only.
        StandardOnly = "standard_only",
    }
}
