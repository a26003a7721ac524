//! Typed wire models: request parameters, responses, batches and result lines.
//!
//! Response types ignore unknown fields, and their enums decode values they do not know into an
//! `Unknown` variant, so a value the API adds later never breaks decoding.

mod batch;
mod message;
mod params;
mod result;

pub use batch::{
    DeletedMessageBatch, MessageBatch, MessageBatchList, ProcessingStatus, RequestCounts,
};
pub use message::{
    CacheCreation, ContentBlock, Message, OutputTokensDetails, ServerToolUsage, ServiceTier,
    StopReason, TokenCount, Usage,
};
pub use params::{
    CacheControl, CacheKind, CacheTtl, ContentBlockParam, CustomTool, DocumentSource, ImageSource,
    MessageContent, MessageParam, MessageParams, Metadata, Role, ServiceTierParam, SystemPrompt,
    TextBlockParam, TextKind, ThinkingConfig, Tool, ToolChoice, ToolResultContent,
};
pub use result::{BatchResult, ErrorObject, ErrorResponse, ErrorType, ResultOutcome};
