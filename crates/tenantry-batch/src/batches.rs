//! The Message Batches API: create (never twice), retrieve, list and page, cancel, delete,
//! stream results, and wait for the end.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::Method;
use time::OffsetDateTime;

use crate::client::{Call, Client, Failure, Received, Repeat};
use crate::error::{Error, Result};
use crate::requests::BatchRequests;
use crate::results::{Body, Reopen, ResultStream};
use crate::types::{DeletedMessageBatch, MessageBatch, MessageBatchList};

/// Which way [`Batches::list_all`] pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Direction {
    /// From the newest batch (or the cursor) towards older ones, with `after_id`. The default.
    #[default]
    Older,
    /// From the cursor towards newer ones, with `before_id`.
    Newer,
}

/// Query of `GET /v1/messages/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListParams {
    /// Return the page right before (newer than) this batch id.
    pub before_id: Option<String>,
    /// Return the page right after (older than) this batch id.
    pub after_id: Option<String>,
    /// Page size, 1 to 1000. Default (when `None`): the API's 20.
    pub limit: Option<u32>,
}

impl ListParams {
    /// Page size. Default: the API's 20.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Batches older than this id.
    #[must_use]
    pub fn after_id(mut self, id: impl Into<String>) -> Self {
        self.after_id = Some(id.into());
        self
    }

    /// Batches newer than this id.
    #[must_use]
    pub fn before_id(mut self, id: impl Into<String>) -> Self {
        self.before_id = Some(id.into());
        self
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(id) = &self.before_id {
            query.push(("before_id", id.clone()));
        }
        if let Some(id) = &self.after_id {
            query.push(("after_id", id.clone()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        query
    }
}

/// How [`Batches::wait`] and [`Batches::watch`] poll: a growing interval, capped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollPolicy {
    /// The first interval. Default: 1 s.
    pub initial: Duration,
    /// The longest interval. Default: 60 s.
    pub max: Duration,
    /// Give up after this long. Default: none (batches end within 24 hours).
    pub deadline: Option<Duration>,
    /// How long after the watch starts a 404 is taken as "just created, not visible yet"
    /// and polling goes on (the real API can answer 404 for a few seconds after a create).
    /// Default: 30 s.
    pub not_found_grace: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            deadline: None,
            not_found_grace: Duration::from_secs(30),
        }
    }
}

impl PollPolicy {
    /// First interval (doubled after each poll). Default: 1 s.
    #[must_use]
    pub fn initial(mut self, interval: Duration) -> Self {
        self.initial = interval;
        self
    }

    /// Longest interval. Default: 60 s.
    #[must_use]
    pub fn max(mut self, interval: Duration) -> Self {
        self.max = interval;
        self
    }

    /// Overall deadline. Default: none.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Grace period for 404s right after a create. Default: 30 s.
    #[must_use]
    pub fn not_found_grace(mut self, grace: Duration) -> Self {
        self.not_found_grace = grace;
        self
    }

    fn interval(&self, poll: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << poll.min(20))
            .min(self.max)
    }
}

/// The Message Batches API (`client.batches()`).
///
/// # Example
///
/// ```
/// use futures_util::TryStreamExt;
/// use tenantry_batch::types::{MessageParam, MessageParams};
/// use tenantry_batch::{BatchRequests, Client, Config, Direction, ListParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let emulator = tenantry_emulator::Emulator::builder().api_key("sk-test").start().await?;
/// let client = Client::new(Config::new("sk-test").base_url(emulator.base_url()))?;
/// let params = MessageParams::new("claude-haiku-4-5", 64, vec![MessageParam::user("Hi")]);
/// for _ in 0..3 {
///     let mut requests = BatchRequests::new();
///     requests.push("only", &params)?;
///     client.batches().create(requests).await?;
/// }
/// // Every batch, two per page, newest first.
/// let all: Vec<_> = client
///     .batches()
///     .list_all(ListParams::default().limit(2), Direction::Older)
///     .try_collect()
///     .await?;
/// assert_eq!(all.len(), 3);
/// let canceled = client.batches().cancel(&all[0].id).await?;
/// assert!(canceled.cancel_initiated_at.is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batches<'c> {
    client: &'c Client,
}

impl<'c> Batches<'c> {
    pub(crate) fn new(client: &'c Client) -> Self {
        Self { client }
    }

    /// Creates a batch (`POST /v1/messages/batches`).
    ///
    /// A create is not idempotent, so it is retried only when it certainly did not happen:
    /// an error status the retry rules allow (the API answered, so it refused), or a failure to
    /// connect. When the outcome is unknown (the connection was lost or the attempt timed out
    /// after the body was sent) it is **never** sent again: the client lists the batches
    /// created *after* the send, in the API's clock (see [`Client::api_clock_offset`]), with
    /// the same number of requests. Exactly one such batch is returned as the created one;
    /// otherwise [`Error::CreateOutcomeUnknown`] lists them, so the caller decides and never
    /// pays twice unknowingly.
    ///
    /// The one match is the created batch unless another process with the same key created a
    /// batch of the same size in the same moment. Callers that share a key between processes
    /// and must be certain use [`try_create`](Self::try_create) and confirm a candidate by the
    /// `custom_id`s of its results.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an empty batch; [`Error::Api`] for an error answer (e.g. 413,
    /// 429 after retries); [`Error::CreateOutcomeUnknown`] as above; [`Error::Transport`] when
    /// no connection could be made; [`Error::Decode`] for an unexpected body.
    pub async fn create(&self, requests: BatchRequests) -> Result<MessageBatch> {
        match self.try_create(requests).await {
            Err(Error::CreateOutcomeUnknown {
                mut candidates,
                source,
            }) => {
                if candidates.len() == 1 {
                    Ok(candidates.remove(0))
                } else {
                    Err(Error::CreateOutcomeUnknown { candidates, source })
                }
            }
            other => other,
        }
    }

    /// Creates a batch like [`create`](Self::create), but never takes a batch found by listing
    /// for the created one: when the outcome is unknown it returns
    /// [`Error::CreateOutcomeUnknown`] with every candidate (same request count, created after
    /// the send in the API's clock), even a single one.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub async fn try_create(&self, requests: BatchRequests) -> Result<MessageBatch> {
        let count = requests.len() as u64;
        let body = requests.into_body()?;
        let started = OffsetDateTime::now_utc();
        let call = Call {
            endpoint: "batches.create",
            method: Method::POST,
            url: self.client.url("/v1/messages/batches"),
            query: &[],
            body: Some(body),
            repeat: Repeat::Never,
            stream: false,
            admin: false,
        };
        match self
            .client
            .json::<MessageBatch>(call, "message batch")
            .await
        {
            Ok(batch) => {
                self.client
                    .api_clock()
                    .observe_created(batch.created_at, OffsetDateTime::now_utc());
                Ok(batch)
            }
            // A success whose body cannot be read still created a batch: find it.
            Err(Failure::Known(cause @ Error::Decode { .. }) | Failure::Unknown(cause)) => {
                Err(self.candidates(started, count, cause).await)
            }
            Err(Failure::Known(e)) => Err(e),
        }
    }

    /// The batches with `count` requests created since the attempt started at `started` (this
    /// host's clock), as an [`Error::CreateOutcomeUnknown`].
    async fn candidates(&self, started: OffsetDateTime, count: u64, cause: Error) -> Error {
        tracing::warn!("batch create outcome unknown ({cause}); reconciling");
        let mut candidates = Vec::new();
        let mut pages = Box::pin(self.list_all(ListParams::default().limit(100), Direction::Older));
        loop {
            match pages.next().await {
                Some(Ok(batch)) => {
                    // Read after the first page arrived, so its `Date` header counts too.
                    let since = match self.client.api_clock_offset() {
                        Some(offset) => started + offset,
                        None => started - self.client.config().reconcile_window,
                    };
                    if batch.created_at < since {
                        break;
                    }
                    if batch.request_counts.total() == count {
                        candidates.push(batch);
                    }
                }
                Some(Err(list_error)) => {
                    tracing::warn!("reconciling a batch create failed: {list_error}");
                    break;
                }
                None => break,
            }
        }
        Error::CreateOutcomeUnknown {
            candidates,
            source: Box::new(cause),
        }
    }

    /// Fetches a batch (`GET /v1/messages/batches/{id}`). Idempotent; retried.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::Api`] (404 for an unknown id), [`Error::Transport`],
    /// [`Error::Timeout`], [`Error::Decode`].
    pub async fn retrieve(&self, id: &str) -> Result<MessageBatch> {
        let url = self.batch_url(id, "")?;
        Ok(self
            .client
            .json(
                self.call("batches.retrieve", Method::GET, url),
                "message batch",
            )
            .await?)
    }

    /// One page of batches, newest first (`GET /v1/messages/batches`).
    ///
    /// # Errors
    ///
    /// [`Error::Api`] (e.g. 400 for a bad cursor or limit), [`Error::Transport`],
    /// [`Error::Timeout`], [`Error::Decode`].
    pub async fn list(&self, params: &ListParams) -> Result<MessageBatchList> {
        let query = params.query();
        let call = Call {
            query: &query,
            ..self.call(
                "batches.list",
                Method::GET,
                self.client.url("/v1/messages/batches"),
            )
        };
        Ok(self.client.json(call, "batch list").await?)
    }

    /// Every batch from `start`'s cursor on, page after page, in the chosen direction.
    ///
    /// [`Direction::Older`] pages with `after_id = last_id`; [`Direction::Newer`] with
    /// `before_id = first_id` (start it with `before_id` set, e.g. an id you have seen). Within a
    /// page batches come newest first, as the API sends them.
    ///
    /// # Errors
    ///
    /// The stream yields the first error of [`Batches::list`] and ends.
    pub fn list_all(
        &self,
        start: ListParams,
        direction: Direction,
    ) -> impl Stream<Item = Result<MessageBatch>> + Send + use<> {
        let client = self.client.clone();
        futures_util::stream::try_unfold(Some(start), move |params| {
            let client = client.clone();
            async move {
                let Some(params) = params else {
                    return Ok::<_, Error>(None);
                };
                let page = client.batches().list(&params).await?;
                let next = match (page.has_more, direction) {
                    (false, _) => None,
                    (true, Direction::Older) => page.last_id.clone().map(|id| ListParams {
                        after_id: Some(id),
                        before_id: None,
                        limit: params.limit,
                    }),
                    (true, Direction::Newer) => page.first_id.clone().map(|id| ListParams {
                        before_id: Some(id),
                        after_id: None,
                        limit: params.limit,
                    }),
                };
                let next = if page.data.is_empty() { None } else { next };
                Ok(Some((
                    futures_util::stream::iter(page.data.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    /// Asks to cancel a batch (`POST /v1/messages/batches/{id}/cancel`). Retried.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::Api`] (e.g. for an ended batch), [`Error::Transport`],
    /// [`Error::Timeout`], [`Error::Decode`].
    pub async fn cancel(&self, id: &str) -> Result<MessageBatch> {
        let url = self.batch_url(id, "/cancel")?;
        Ok(self
            .client
            .json(
                self.call("batches.cancel", Method::POST, url),
                "message batch",
            )
            .await?)
    }

    /// Deletes an ended batch (`DELETE /v1/messages/batches/{id}`). Retried.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::Api`] (e.g. for a batch still in progress),
    /// [`Error::Transport`], [`Error::Timeout`], [`Error::Decode`].
    pub async fn delete(&self, id: &str) -> Result<DeletedMessageBatch> {
        let url = self.batch_url(id, "")?;
        Ok(self
            .client
            .json(
                self.call("batches.delete", Method::DELETE, url),
                "deleted batch",
            )
            .await?)
    }

    /// Streams the results of an ended batch, decoded as they arrive (see [`ResultStream`]).
    ///
    /// Fetches the batch first for its `results_url` and its request count (which lets the
    /// stream detect a truncated file and resume it).
    ///
    /// # Errors
    ///
    /// [`Error::ResultsUnavailable`] if the batch has not ended (or its results are archived);
    /// the errors of [`Batches::retrieve`]; the first request for the file is retried like any
    /// read. Errors while streaming are items of the stream.
    pub async fn results(&self, id: &str) -> Result<ResultStream> {
        let batch = self.retrieve(id).await?;
        let Some(url) = batch
            .results_url
            .clone()
            .filter(|_| batch.archived_at.is_none())
        else {
            return Err(Error::ResultsUnavailable { batch_id: batch.id });
        };
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url
        } else {
            self.client.url(&url)
        };
        let client = self.client.clone();
        let reopen: Reopen = Arc::new(move || {
            let client = client.clone();
            let url = url.clone();
            Box::pin(async move { open_results(&client, url).await })
        });
        let body = reopen().await?;
        let config = self.client.config();
        Ok(ResultStream::new(
            body,
            Some(batch.request_counts.total()),
            Some(reopen),
            config.retry.retries(),
            config.idle_timeout,
        ))
    }

    /// Polls a batch until it ends, yielding it after every poll (its `request_counts` are the
    /// progress); the last item is the ended batch. Intervals grow as [`PollPolicy`] says. A 404
    /// within [`PollPolicy::not_found_grace`] of the start is polled through, as the real API
    /// may not show a batch for a few seconds after creating it.
    ///
    /// # Errors
    ///
    /// The stream yields the first error of [`Batches::retrieve`] (after its retries), or
    /// [`Error::Timeout`] at the policy's deadline, and ends.
    pub fn watch(
        &self,
        id: &str,
        policy: PollPolicy,
    ) -> impl Stream<Item = Result<MessageBatch>> + Send + use<> {
        let client = self.client.clone();
        let id = id.to_owned();
        let started = tokio::time::Instant::now();
        futures_util::stream::try_unfold(Some(0u32), move |poll| {
            let client = client.clone();
            let id = id.clone();
            let policy = policy.clone();
            async move {
                let Some(mut poll) = poll else {
                    return Ok::<_, Error>(None);
                };
                loop {
                    if poll > 0 {
                        let wait = policy.interval(poll - 1);
                        if let Some(deadline) = policy.deadline
                            && started.elapsed() + wait > deadline
                        {
                            return Err(Error::Timeout(deadline));
                        }
                        tokio::time::sleep(wait).await;
                    }
                    match client.batches().retrieve(&id).await {
                        Ok(batch) => {
                            let next = if batch.is_ended() {
                                None
                            } else {
                                Some(poll + 1)
                            };
                            return Ok(Some((batch, next)));
                        }
                        // A batch created moments ago may not be visible yet.
                        Err(e)
                            if e.status() == Some(404)
                                && started.elapsed() < policy.not_found_grace =>
                        {
                            tracing::debug!(%id, "batch not visible yet: {e}");
                            poll += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        })
    }

    /// Polls a batch until it ends and returns it, calling `progress` after every poll.
    ///
    /// # Errors
    ///
    /// As [`Batches::watch`].
    pub async fn wait(
        &self,
        id: &str,
        policy: PollPolicy,
        mut progress: impl FnMut(&MessageBatch),
    ) -> Result<MessageBatch> {
        let mut polls = Box::pin(self.watch(id, policy));
        let mut last = None;
        while let Some(batch) = polls.try_next().await? {
            progress(&batch);
            last = Some(batch);
        }
        last.ok_or_else(|| Error::InvalidId(id.to_owned()))
    }

    fn call(&self, endpoint: &'static str, method: Method, url: String) -> Call<'static> {
        Call {
            endpoint,
            method,
            url,
            query: &[],
            body: None,
            repeat: Repeat::Safe,
            stream: false,
            admin: false,
        }
    }

    fn batch_url(&self, id: &str, suffix: &str) -> Result<String> {
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Error::InvalidId(id.to_owned()));
        }
        Ok(self
            .client
            .url(&format!("/v1/messages/batches/{id}{suffix}")))
    }
}

async fn open_results(client: &Client, url: String) -> Result<Body> {
    let call = Call {
        endpoint: "batches.results",
        method: Method::GET,
        url,
        query: &[],
        body: None,
        repeat: Repeat::Safe,
        stream: true,
        admin: false,
    };
    match client.execute(call).await? {
        Received::Streaming(response) => {
            Ok(Box::pin(response.bytes_stream().map_err(Error::Transport)) as Body)
        }
        Received::Full(bytes) => Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])) as Body),
    }
}
