//! How `submit` sizes a request's prompt for its budget hold.

use futures_util::{StreamExt, stream};
use tenantry_batch::Client;
use tenantry_batch::types::MessageParams;

use crate::request::Request;

/// Token counts asked of the API at once, per `submit_many` call.
const COUNTS_IN_FLIGHT: usize = 8;

/// How [`Tenantry::submit`](crate::Tenantry::submit) sizes each request's prompt for its budget
/// hold (the hold is `max_tokens` plus this, at the model's price). The hold is settled to the
/// billed usage either way; the choice decides how close the hold is to the bill, and so how
/// early a budget refuses.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use tenantry::{InputTokens, Tenantry, batch::Config};
///
/// let tenantry = Tenantry::builder()
///     .database(format!("sqlite://{}", dir.path().join("app.db").display()))
///     .api(Config::new("sk-test").base_url("http://127.0.0.1:9"))
///     .input_tokens(InputTokens::Counted) // exact holds, one count call per request
///     .build()
///     .await?;
/// # let _ = tenantry;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputTokens {
    /// From the size of the request body: one token per 3 bytes. The API counts about 4 bytes
    /// per token of English text, so the hold is usually above the bill; text that tokenizes
    /// more densely (random identifiers, some scripts) can come out below it. Images and
    /// documents count by their base64 size, far above what the API bills for them. No API
    /// call.
    #[default]
    Estimate,
    /// Counted by the API's free token-counting endpoint (`POST /v1/messages/count_tokens`):
    /// exact, one call per request, at most 8 at a time, before the holds are taken. A request
    /// whose count fails (the endpoint is down or rate limited, or the body does not parse)
    /// falls back to the estimate, with a warning logged, so a submit never depends on it.
    Counted,
}

/// The prompt size of each request, in order.
pub(crate) async fn input_tokens(
    policy: InputTokens,
    client: &Client,
    requests: &[Request],
) -> Vec<i64> {
    match policy {
        InputTokens::Estimate => requests.iter().map(Request::input_token_estimate).collect(),
        InputTokens::Counted => {
            // Made up front, so no closure is part of the stream's type and the submit future
            // stays `Send` for any lifetime (axum handlers need that).
            let counts: Vec<_> = requests.iter().map(|r| counted(client, r)).collect();
            stream::iter(counts)
                .buffered(COUNTS_IN_FLIGHT)
                .collect()
                .await
        }
    }
}

async fn counted(client: &Client, request: &Request) -> i64 {
    let params: MessageParams = match serde_json::from_value(request.params().clone()) {
        Ok(p) => p,
        // The queue refuses it with the reason; the estimate is as good as any until then.
        Err(_) => return request.input_token_estimate(),
    };
    match client.messages().count_tokens(&params).await {
        Ok(count) => i64::try_from(count.input_tokens).unwrap_or(i64::MAX),
        Err(e) => {
            tracing::warn!(error = %e, "counting input tokens failed; holding the estimate");
            request.input_token_estimate()
        }
    }
}
