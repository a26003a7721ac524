//! The Messages API: one synchronous model call, and token counting.

use bytes::Bytes;
use reqwest::Method;

use crate::client::{Call, Client, Repeat};
use crate::error::{Error, Result};
use crate::types::{Message, MessageParams, TokenCount};

/// Parameters `count_tokens` does not accept; they are dropped from the request.
const NOT_COUNTED: [&str; 8] = [
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_k",
    "top_p",
    "metadata",
    "service_tier",
    "stream",
];

/// The Messages API (`client.messages()`).
///
/// # Example
///
/// ```
/// use tenantry_batch::types::{MessageParam, MessageParams};
/// use tenantry_batch::{Client, Config};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let emulator = tenantry_emulator::Emulator::builder().api_key("sk-test").start().await?;
/// let client = Client::new(Config::new("sk-test").base_url(emulator.base_url()))?;
/// let params = MessageParams::new("claude-haiku-4-5", 64, vec![MessageParam::user("Hello")]);
/// let tokens = client.messages().count_tokens(&params).await?;
/// let message = client.messages().create(&params).await?;
/// assert_eq!(message.usage.input_tokens, tokens.input_tokens);
/// println!("{}", message.text());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Messages<'c> {
    client: &'c Client,
}

impl<'c> Messages<'c> {
    pub(crate) fn new(client: &'c Client) -> Self {
        Self { client }
    }

    /// Sends one request and waits for the whole answer (`POST /v1/messages`, not streaming).
    ///
    /// Retried by the policy's rules, like the official SDKs do.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] for an error answer, [`Error::Transport`] / [`Error::Timeout`] when no
    /// answer arrived (after retries), [`Error::Decode`] for an unexpected body,
    /// [`Error::Validation`] if `stream` is set.
    pub async fn create(&self, params: &MessageParams) -> Result<Message> {
        self.send(params, Repeat::Safe).await
    }

    /// Sends one request like [`create`](Self::create), but never sends it again once it may
    /// have reached the API (the connection was lost or the attempt timed out after sending):
    /// each message is generated and billed, so a caller that counts its attempts (a queue)
    /// makes the next one itself. Answers the API refused (429, 5xx) and failures to connect
    /// are still retried by the policy.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create); [`Error::Transport`] or [`Error::Timeout`] at once when the
    /// outcome is unknown.
    pub async fn create_once(&self, params: &MessageParams) -> Result<Message> {
        self.send(params, Repeat::Never).await
    }

    async fn send(&self, params: &MessageParams, repeat: Repeat) -> Result<Message> {
        if params.stream == Some(true) {
            return Err(Error::validation(None, crate::ValidationRule::StreamSet));
        }
        let body = serde_json::to_vec(params).map_err(|source| Error::Encode {
            what: "message request",
            source,
        })?;
        let call = Call {
            endpoint: "messages.create",
            method: Method::POST,
            url: self.client.url("/v1/messages"),
            query: &[],
            body: Some(Bytes::from(body)),
            repeat,
            stream: false,
            admin: false,
        };
        Ok(self.client.json(call, "message").await?)
    }

    /// Counts the input tokens `params` would use (`POST /v1/messages/count_tokens`).
    /// Generation-only parameters (`max_tokens`, sampling, metadata, …) are left out.
    ///
    /// # Errors
    ///
    /// As [`Messages::create`].
    pub async fn count_tokens(&self, params: &MessageParams) -> Result<TokenCount> {
        let mut value = serde_json::to_value(params).map_err(|source| Error::Encode {
            what: "count_tokens request",
            source,
        })?;
        if let Some(object) = value.as_object_mut() {
            for key in NOT_COUNTED {
                object.remove(key);
            }
        }
        let body = serde_json::to_vec(&value).map_err(|source| Error::Encode {
            what: "count_tokens request",
            source,
        })?;
        let call = Call {
            endpoint: "messages.count_tokens",
            method: Method::POST,
            url: self.client.url("/v1/messages/count_tokens"),
            query: &[],
            body: Some(Bytes::from(body)),
            repeat: Repeat::Safe,
            stream: false,
            admin: false,
        };
        Ok(self.client.json(call, "count_tokens").await?)
    }
}
