//! The engine: turns queued jobs into Message Batches and their results into job states.
//!
//! Each [`Engine::step`] does, in order:
//!
//! 0. **Sweep**: urgent calls whose worker's lease expired go back to `queued` while they
//!    have attempts left, and fail with their last error otherwise; unfinished jobs past
//!    their deadline expire or move to the urgent lane (out of their batch if they were in
//!    one), by their policy.
//! 1. **Recover**: take over `planned`/`creating` batches whose owner's lease expired. A
//!    `planned` batch is created; a `creating` one is reconciled with the API's batch list:
//!    candidates are the unrecorded batches with as many requests as the create sent, created
//!    at or after the send in the API's clock. Once every candidate has ended, one whose
//!    results carry a `custom_id` the create sent is adopted and any other such batch is
//!    recorded as a duplicate (polled, its billed results recorded); if there is none, the
//!    create never happened and the batch is planned again. It is never created again
//!    blindly, and a batch another system created is never adopted, canceled or billed.
//! 2. **Create**: while a batch is due ([`planner`](crate::planner)), claim it, record
//!    `creating` and freeze its members (the jobs still `batched`: exactly what is sent,
//!    kept whatever later happens to them), call the API, record `submitted` (or `planned`
//!    again when the API refused). A create that returns after the batch was taken over is
//!    a duplicate: it is canceled at the API and recorded like the duplicates above.
//! 3. **Poll**: claim submitted batches whose next poll is due (one worker per batch at a
//!    time); an ended batch has its results streamed and stored chunk by chunk
//!    ([`ClaimStore::ingest`]), otherwise its next poll is scheduled later the older it is.
//!    A line that does not decode fails its own job; jobs the file has no line for are sent
//!    again or failed by [`EngineConfig::missing_result`] when the batch ends.
//! 4. **Urgent lane**: claim up to `urgent_concurrency` urgent jobs, call the Messages API
//!    for them concurrently, store the answers like batch results (same rows, same retries,
//!    same usage path); repeated a few waves per step.
//! 5. **Usage**: hand stored billed usage to the [`UsageSink`] and mark it recorded, or
//!    dead-letter it when the sink cannot price it
//!    ([`SinkError::Unpriceable`](crate::SinkError::Unpriceable)).
//!
//! While a call is in flight the engine renews its lease every third of the lease, so only
//! a dead or stalled engine's work is taken over; leases are on the database's clock.
//!
//! [`Engine::run`] repeats this until told to stop, then releases what it holds.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tenantry_batch::types::{MessageParams, ResultOutcome};
use tenantry_batch::{BatchRequests, Client, Direction, ListParams};
use time::OffsetDateTime;
use tracing::Instrument;
use tracing::field::Empty;

use crate::claim::{BatchId, ClaimStore, WorkerId};
use crate::error::Result;
use crate::ids::JobId;
use crate::ingest::{IngestCounts, ItemOutcome, MissingResult, ResultItem, UsageSink};
use crate::job::JobError;
use crate::planner::FlushPolicy;
use crate::validate::micros;

/// Attempts per job unless [`EngineConfig::max_attempts`] says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Downloads of a damaged results file (a line that does not decode, or lines missing) before
/// its damaged requests are settled without their lines. Damage in transit is usually gone at
/// the next download, and only a whole line says what its request billed.
const DAMAGED_DOWNLOADS: u32 = 3;

/// How the engine paces itself. Built with owned setters; every setter states its default.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct EngineConfig {
    flush: FlushPolicy,
    lease: Duration,
    poll_min: Duration,
    poll_max: Duration,
    max_attempts: u32,
    chunk: usize,
    idle: Duration,
    reconcile_window: Duration,
    urgent_concurrency: usize,
    missing: MissingResult,
    sample_every: Duration,
    tenant_labels: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            flush: FlushPolicy::default(),
            lease: Duration::from_secs(120),
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(300),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            chunk: 500,
            idle: Duration::from_secs(1),
            reconcile_window: Duration::from_secs(60),
            urgent_concurrency: 8,
            missing: MissingResult::Retry,
            sample_every: Duration::from_secs(15),
            tenant_labels: false,
        }
    }
}

impl EngineConfig {
    /// The defaults: API batch limits, 120 s leases, polls every 5 s to 5 min, 3 attempts,
    /// 500 results per transaction, 1 s idle sleep.
    pub fn new() -> Self {
        Self::default()
    }

    /// When batches close. Default [`FlushPolicy::default`].
    pub fn flush(mut self, policy: FlushPolicy) -> Self {
        self.flush = policy;
        self
    }

    /// How long a claim lasts before another engine may take it over. While a call for it
    /// is in flight (a create, a poll and its results, a reconciliation, urgent calls) the
    /// engine renews it every third of this, so only a dead or stalled engine loses it. Lease
    /// times are on the database's clock ([`ClaimStore::now`]). Default 120 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The poll interval grows from `min` with the batch's age (a tenth of it) up to `max`.
    /// Default 5 s to 300 s.
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.poll_min = min;
        self.poll_max = max.max(min);
        self
    }

    /// Attempts per job before a retryable error becomes final. Default 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Results stored per transaction. Default 500.
    pub fn chunk(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// Messages API calls in flight at once for urgent-lane jobs, per engine. Default 8.
    pub fn urgent_concurrency(mut self, n: usize) -> Self {
        self.urgent_concurrency = n.max(1);
        self
    }

    /// What becomes of a job whose ended batch has no readable result line for it. Default
    /// [`MissingResult::Retry`] (within [`max_attempts`](Self::max_attempts)).
    pub fn missing_result(mut self, missing: MissingResult) -> Self {
        self.missing = missing;
        self
    }

    /// Sleep between steps that found nothing to do. Default 1 s.
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How often the engine reads the queue's gauges ([`ClaimStore::snapshot`]: depth,
    /// oldest job, batches in flight, usage backlog, dead letters) into the metrics, at the
    /// end of a step. Only with the `telemetry` feature. Default 15 s.
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every;
        self
    }

    /// Whether metrics carry a `tenant` label where one applies (queue depth). One series per
    /// tenant: turn it on only when the number of tenants is small enough for the metrics
    /// backend. Only with the `telemetry` feature. Default off.
    pub fn tenant_labels(mut self, on: bool) -> Self {
        self.tenant_labels = on;
        self
    }

    /// The [`sample_every`](Self::sample_every) interval.
    #[must_use]
    pub fn sample_interval(&self) -> Duration {
        self.sample_every
    }

    /// Whether [`tenant_labels`](Self::tenant_labels) is on.
    #[must_use]
    pub fn has_tenant_labels(&self) -> bool {
        self.tenant_labels
    }
}

/// What one [`Engine::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepReport {
    /// Batches created at the API.
    pub created: u64,
    /// Batches whose results were ingested.
    pub ended: u64,
    /// Batches polled and still running.
    pub polled: u64,
    /// What ingesting changed.
    pub results: IngestCounts,
    /// Usage records handed to the sink.
    pub usage_recorded: u64,
    /// Usage records the sink could not price, moved to the dead-letter state.
    pub usage_dead_lettered: u64,
    /// Urgent-lane calls made.
    pub urgent_calls: u64,
    /// Jobs changed by the sweep (stale urgent calls requeued, deadlines applied).
    pub swept: u64,
}

impl StepReport {
    /// Whether the step did anything.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.created == 0
            && self.ended == 0
            && self.results == IngestCounts::default()
            && self.usage_recorded == 0
            && self.usage_dead_lettered == 0
            && self.urgent_calls == 0
            && self.swept == 0
    }
}

/// One engine instance; many may share a PostgreSQL store.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tenantry_queue::{Engine, EngineConfig, PgStore};
///
/// # #[derive(Debug)] struct Ledger;
/// # #[async_trait::async_trait]
/// # impl tenantry_queue::UsageSink for Ledger {
/// #     async fn record(&self, _: &tenantry_queue::UsageRecord)
/// #         -> Result<(), tenantry_queue::SinkError> { Ok(()) }
/// # }
/// let store = PgStore::open(sqlx::PgPool::connect("postgres://localhost/app").await?).await?;
/// let client = tenantry_batch::Client::from_env()?;
/// let engine = Engine::new(store, client, Arc::new(Ledger), EngineConfig::new());
/// engine.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Engine<S> {
    store: S,
    client: Client,
    sink: Arc<dyn UsageSink>,
    config: EngineConfig,
    worker: WorkerId,
    /// Damaged downloads so far, per batch record (this engine's; a restart starts over).
    damaged: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// When this engine last read the gauges into the metrics.
    #[cfg_attr(not(feature = "telemetry"), allow(dead_code))]
    sampled_at: std::sync::Mutex<Option<std::time::Instant>>,
}

fn as_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Error types worth sending again.
fn retryable_kind(kind: &str) -> bool {
    matches!(
        kind,
        "rate_limit_error" | "api_error" | "overloaded_error" | "timeout_error"
    )
}

/// A request that cannot be sent as it is.
fn invalid(job: JobId, message: String) -> ResultItem {
    ResultItem {
        job,
        outcome: ItemOutcome::Failed {
            error: JobError {
                kind: "invalid_request_error".to_owned(),
                message,
            },
            retryable: false,
        },
    }
}

fn outcome(result: ResultOutcome) -> ItemOutcome {
    let failed = |kind: &str, message: String, retryable: bool| ItemOutcome::Failed {
        error: JobError {
            kind: kind.to_owned(),
            message,
        },
        retryable,
    };
    match result {
        // Kept typed: the store encodes it, and an encoding error fails the ingest instead of
        // storing a null message or usage.
        ResultOutcome::Succeeded { message } => ItemOutcome::Succeeded {
            message: Box::new(message),
        },
        ResultOutcome::Errored { error } => {
            let kind = error.error.kind.as_str().to_owned();
            let retryable = retryable_kind(&kind);
            failed(&kind, error.error.message, retryable)
        }
        ResultOutcome::Canceled => failed("canceled", "the batch was canceled".to_owned(), true),
        ResultOutcome::Expired => failed("expired", "the batch expired".to_owned(), true),
        _ => failed("unknown", "unknown result type".to_owned(), false),
    }
}

impl<S: ClaimStore> Engine<S> {
    /// An engine with a fresh [`WorkerId`].
    pub fn new(store: S, client: Client, sink: Arc<dyn UsageSink>, config: EngineConfig) -> Self {
        Self {
            store,
            client,
            sink,
            config,
            worker: WorkerId::generate(),
            damaged: std::sync::Mutex::default(),
            sampled_at: std::sync::Mutex::default(),
        }
    }

    /// This engine's worker id.
    pub fn worker(&self) -> &WorkerId {
        &self.worker
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs steps until `shutdown` completes, then stops claiming and releases what it
    /// holds ([`ClaimStore::release`]).
    ///
    /// # Errors
    ///
    /// Only a failure to release at shutdown; a failing step is logged and retried.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let idle = match self.step().await {
                Ok(report) => report.is_idle(),
                Err(e) => {
                    tracing::warn!(error = %e, "queue engine step failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(self.config.idle) => {}
                }
            } else if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
                break;
            }
        }
        self.store.release(&self.worker).await?;
        Ok(())
    }

    /// One pass of recover, create, poll and usage.
    ///
    /// # Errors
    ///
    /// A database error. API errors are handled in place (a refused create is planned
    /// again, a failed poll or results stream is retried at the next poll).
    #[tracing::instrument(name = "tenantry.engine.step", level = "debug", skip_all,
        fields(worker = %self.worker))]
    pub async fn step(&self) -> Result<StepReport> {
        // Every lease and deadline below is on the database's clock; its offset is measured
        // again when older than 30 s (a read only: nothing to recover if it fails).
        self.store.sync_clock().await?;
        let sweep = tracing::debug_span!("tenantry.engine.sweep", swept = Empty);
        let swept = self
            .store
            .sweep_capped(self.config.max_attempts)
            .instrument(sweep.clone())
            .await?;
        sweep.record("swept", swept);
        let mut report = StepReport {
            swept,
            ..StepReport::default()
        };
        crate::failpoint!("step.swept");
        let taken = self
            .store
            .take_over_expired(&self.worker, self.config.lease)
            .await?;
        crate::failpoint!("step.taken_over");
        for record in taken {
            match record.state {
                crate::claim::BatchState::Creating => {
                    self.renewing(Held::Batch(&record.batch), self.reconcile(&record))
                        .await?;
                }
                _ => report.created += u64::from(self.create(&record.batch).await?),
            }
        }
        while let Some(claim) = self.claim().await? {
            report.created += u64::from(self.create(&claim.batch).await?);
        }
        while let Some(poll) = self
            .store
            .claim_poll(&self.worker, self.config.lease)
            .await?
        {
            crate::failpoint!("poll.claimed");
            match self
                .renewing(Held::Batch(&poll.batch), self.poll(&poll))
                .await
            {
                Ok(Some(counts)) => {
                    report.ended += 1;
                    report.results.add(counts);
                }
                Ok(None) => report.polled += 1,
                Err(e) => {
                    tracing::warn!(batch = %poll.batch, error = %e, "polling a batch failed");
                    let retry = self
                        .store
                        .now()
                        .saturating_add(as_micros(self.config.poll_min));
                    self.store
                        .defer_poll(&poll.batch, &self.worker, retry)
                        .await?;
                }
            }
        }
        for _ in 0..4 {
            let calls = self.urgent_wave(&mut report.results).await?;
            if calls == 0 {
                break;
            }
            report.urgent_calls += calls;
        }
        (report.usage_recorded, report.usage_dead_lettered) = self.flush_usage().await?;
        #[cfg(feature = "telemetry")]
        self.sample().await;
        Ok(report)
    }

    /// Claims the next batch that is due, if any.
    async fn claim(&self) -> Result<Option<crate::claim::BatchClaim>> {
        let span = tracing::debug_span!("tenantry.engine.claim", batch = Empty, jobs = Empty);
        let claim = self
            .store
            .claim_due(&self.worker, self.config.flush, self.config.lease)
            .instrument(span.clone())
            .await?;
        if let Some(claim) = &claim {
            span.record("batch", tracing::field::display(&claim.batch));
            span.record("jobs", claim.jobs.len());
        }
        Ok(claim)
    }

    /// Reads the queue's gauges into the metrics when the last read is older than
    /// [`EngineConfig::sample_every`]; a failed read is logged and tried again next step.
    #[cfg(feature = "telemetry")]
    async fn sample(&self) {
        let now = std::time::Instant::now();
        {
            let mut at = self
                .sampled_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if at.is_some_and(|at| now.duration_since(at) < self.config.sample_every) {
                return;
            }
            *at = Some(now);
        }
        let span = tracing::debug_span!("tenantry.engine.sample");
        match self
            .store
            .snapshot(self.config.tenant_labels)
            .instrument(span)
            .await
        {
            Ok(snapshot) => crate::telemetry::sampled(&snapshot, self.config.tenant_labels),
            Err(e) => tracing::warn!(error = %e, "reading the queue's gauges failed"),
        }
    }

    /// Claims up to `urgent_concurrency` urgent jobs, calls the Messages API for them
    /// concurrently, and stores the answers. Returns the number of calls.
    #[tracing::instrument(name = "tenantry.engine.urgent_wave", level = "debug", skip_all,
        fields(calls = Empty))]
    async fn urgent_wave(&self, counts: &mut IngestCounts) -> Result<u64> {
        let claim = self
            .store
            .claim_urgent(
                &self.worker,
                self.config.urgent_concurrency,
                self.config.lease,
            )
            .await?;
        if claim.requests.is_empty() {
            return Ok(0);
        }
        crate::failpoint!("urgent.claimed");
        let calls = u64::try_from(claim.requests.len()).unwrap_or(u64::MAX);
        tracing::Span::current().record("calls", calls);
        let token = &claim.token;
        let answers = futures::stream::iter(claim.requests)
            .map(|r| async move {
                let span = tracing::info_span!("tenantry.engine.urgent_call",
                    tenant = %r.tenant, job = %r.job, claim = %token,
                    gen_ai.operation.name = "chat",
                    gen_ai.provider.name = crate::telemetry::PROVIDER,
                    gen_ai.request.model = Empty,
                    gen_ai.response.id = Empty,
                    gen_ai.response.model = Empty,
                    gen_ai.usage.input_tokens = Empty,
                    gen_ai.usage.output_tokens = Empty,
                    gen_ai.usage.cache_read.input_tokens = Empty,
                    gen_ai.usage.cache_creation.input_tokens = Empty,
                    error.type = Empty);
                let params = match serde_json::from_value::<MessageParams>(r.params) {
                    Ok(params) => params,
                    Err(e) => return invalid(r.job, e.to_string()),
                };
                span.record("gen_ai.request.model", params.model.as_str());
                // Never sent twice within one attempt: a lost answer is retried as a new,
                // counted attempt.
                let answer = self
                    .client
                    .messages()
                    .create_once(&params)
                    .instrument(span.clone())
                    .await;
                let outcome = match answer {
                    Ok(message) => {
                        span.record("gen_ai.response.id", message.id.as_str());
                        span.record("gen_ai.response.model", message.model.as_str());
                        crate::telemetry::record_usage(&span, &message.usage);
                        outcome(ResultOutcome::Succeeded { message })
                    }
                    Err(e) => {
                        let kind = e.api_error().map_or_else(
                            || "transport_error".to_owned(),
                            |a| a.error.kind.as_str().to_owned(),
                        );
                        span.record("error.type", kind.as_str());
                        ItemOutcome::Failed {
                            error: JobError {
                                kind,
                                message: e.to_string(),
                            },
                            retryable: e.is_retryable(),
                        }
                    }
                };
                ResultItem {
                    job: r.job,
                    outcome,
                }
            })
            .buffer_unordered(self.config.urgent_concurrency)
            .collect();
        let items: Vec<ResultItem> = self.renewing(Held::Urgent(&claim.token), answers).await;
        crate::failpoint!("urgent.answered");
        counts.add(
            self.store
                .ingest(&claim.token, &items, self.config.max_attempts)
                .await?,
        );
        crate::failpoint!("urgent.stored");
        Ok(calls)
    }

    /// Runs `work` (a call for what `held` names), renewing that lease every third of the
    /// lease until the call returns: the client's timeout and retries can outlast one lease,
    /// and another engine must not take the work over and send it again meanwhile.
    async fn renewing<T>(&self, held: Held<'_>, work: impl std::future::Future<Output = T>) -> T {
        let period = (self.config.lease / 3).max(Duration::from_millis(10));
        let renew = async {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                let renewed = match held {
                    Held::Batch(batch) => {
                        self.store
                            .renew_batch(batch, &self.worker, self.config.lease)
                            .await
                    }
                    Held::Urgent(token) => self
                        .store
                        .renew_urgent(token, &self.worker, self.config.lease)
                        .await
                        .map(|n| n > 0),
                };
                match renewed {
                    Ok(true) => {}
                    // Handed on already (a poll deferred) or taken over: the store's
                    // fences keep what this call stores from counting twice.
                    Ok(false) => tracing::debug!(?held, "lease no longer held while renewing"),
                    Err(e) => tracing::warn!(?held, error = %e, "renewing a lease failed"),
                }
            }
        };
        // Both run at once: the work goes on while a renewal waits, since the work may hold
        // the very row lock the renewal waits for (its own transaction on the batch row), and
        // a renewal that only ran between polls of the work would wait for it forever.
        tokio::select! {
            biased;
            out = work => out,
            never = renew => never,
        }
    }

    /// Creates a claimed batch at the API. Returns whether it was created.
    #[tracing::instrument(name = "tenantry.engine.create", level = "info", skip_all,
        fields(batch = %batch, requests = Empty, api_batch_id = Empty,
            gen_ai.provider.name = crate::telemetry::PROVIDER))]
    async fn create(&self, batch: &BatchId) -> Result<bool> {
        let requests = self.store.batch_requests(batch).await?;
        crate::failpoint!("create.read");
        let mut valid = Vec::with_capacity(requests.len());
        let mut rejected = Vec::new();
        for r in requests {
            match serde_json::from_value::<MessageParams>(r.params) {
                Ok(params) => valid.push((r.job, params)),
                Err(e) => rejected.push(invalid(r.job, e.to_string())),
            }
        }
        let send: Vec<JobId> = valid.iter().map(|(job, _)| job.clone()).collect();
        let sent_api_at = self
            .client
            .api_clock_offset()
            .map(|offset| micros(OffsetDateTime::now_utc() + offset));
        let Some(members) = self
            .store
            .begin_create(batch, &self.worker, self.config.lease, &send, sent_api_at)
            .await?
        else {
            return Ok(false);
        };
        crate::failpoint!("create.begun");
        // Only the frozen members are sent: a job canceled since the read above is not one.
        let members: std::collections::HashSet<JobId> = members.into_iter().collect();
        let mut body = BatchRequests::new();
        for (job, params) in valid.iter().filter(|(job, _)| members.contains(job)) {
            if let Err(e) = body.push(job.as_str(), params) {
                // A request the client refuses (e.g. over the size limit) was frozen in: the
                // batch record must match what is sent, so plan the whole batch again after
                // failing it alone.
                rejected.push(invalid(job.clone(), e.to_string()));
            }
        }
        if body.len() != members.len() {
            tracing::warn!(%batch, "a frozen request was refused by the client; planning the batch again");
            self.store
                .ingest(batch, &rejected, self.config.max_attempts)
                .await?;
            self.store
                .abort_create(batch, &self.worker, self.store.now())
                .await?;
            return Ok(false);
        }
        if body.is_empty() {
            // Everything was canceled or rejected: close the record without an API call.
            self.store.finish_create(batch, &self.worker, "").await?;
            crate::failpoint!("create.closed_empty");
            self.store
                .ingest(batch, &rejected, self.config.max_attempts)
                .await?;
            self.store
                .end_batch(
                    batch,
                    &self.worker,
                    self.config.missing,
                    self.config.max_attempts,
                )
                .await?;
            return Ok(false);
        }
        tracing::Span::current().record("requests", body.len());
        let created = self
            .renewing(Held::Batch(batch), self.client.batches().try_create(body))
            .await;
        match created {
            Ok(created) => {
                tracing::Span::current().record("api_batch_id", created.id.as_str());
                crate::failpoint!("create.sent");
                if !self
                    .store
                    .finish_create(batch, &self.worker, &created.id)
                    .await?
                {
                    // Our lease ran out during the call and the batch was taken over (and
                    // is being reconciled or created again): this one is a duplicate.
                    self.drop_duplicate(&created.id, batch).await?;
                    return Ok(false);
                }
                crate::failpoint!("create.finished");
                self.store
                    .ingest(batch, &rejected, self.config.max_attempts)
                    .await?;
                Ok(true)
            }
            Err(tenantry_batch::Error::CreateOutcomeUnknown { candidates, .. }) => {
                // Left in `creating`: whoever takes it over after the lease reconciles it by
                // the `custom_id`s of the candidates' results.
                tracing::warn!(%batch, candidates = candidates.len(), "batch create outcome unknown");
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(%batch, error = %e, "batch create refused; planning it again");
                crate::failpoint!("create.refused");
                let retry_at = self
                    .store
                    .now()
                    .saturating_add(as_micros(self.config.poll_min));
                self.store
                    .abort_create(batch, &self.worker, retry_at)
                    .await?;
                Ok(false)
            }
        }
    }

    /// Finds out whether an interrupted create happened.
    ///
    /// Candidates are the API's batches with as many requests as the create sent, created
    /// at or after its send in the API's clock (or, if the sender did not know that clock,
    /// within the reconcile window before it), and not recorded on any batch (a unique key
    /// enforces that too). While one is still running the decision waits (the batch stays
    /// `creating` and is looked at again after `poll_min`), because a running batch cannot
    /// be told apart. Then a candidate is ours only when a `custom_id` of its results is one
    /// of the create's members: the first one is adopted, any other is a duplicate create,
    /// recorded so that what it billed is recorded too. When no candidate is ours, the
    /// create never happened and the batch is planned again.
    #[tracing::instrument(name = "tenantry.engine.reconcile", level = "info", skip_all,
        fields(batch = %record.batch))]
    async fn reconcile(&self, record: &crate::claim::BatchRecord) -> Result<()> {
        let batch = &record.batch;
        let ours: std::collections::HashSet<String> = self
            .store
            .batch_members(batch)
            .await?
            .into_iter()
            .map(|job| job.to_string())
            .collect();
        let count = u64::try_from(ours.len()).unwrap_or(0);
        let since = record.create_sent_api_at.unwrap_or_else(|| {
            record
                .create_started_at
                .unwrap_or(0)
                .saturating_sub(as_micros(self.config.reconcile_window))
        });
        let again = self
            .store
            .now()
            .saturating_add(as_micros(self.config.poll_min));
        let mut candidates = Vec::new();
        let mut pages = Box::pin(
            self.client
                .batches()
                .list_all(ListParams::default().limit(100), Direction::Older),
        );
        while let Some(page) = pages.next().await {
            let b = match page {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%batch, error = %e, "reconciling: listing batches failed");
                    self.store
                        .defer_reconcile(batch, &self.worker, again)
                        .await?;
                    return Ok(());
                }
            };
            if micros(b.created_at) < since {
                break;
            }
            if b.request_counts.total() == count {
                candidates.push(b);
            }
        }
        crate::failpoint!("reconcile.listed");
        let ids: Vec<String> = candidates.iter().map(|b| b.id.clone()).collect();
        let known = self.store.known_api_batches(&ids).await?;
        let candidates: Vec<_> = candidates
            .into_iter()
            .filter(|b| !known.contains(&b.id))
            .collect();
        if candidates.iter().any(|b| !b.is_ended()) {
            // A running candidate cannot be told apart yet, and it may be a second copy of
            // this very create: decide once every candidate has ended.
            self.store
                .defer_reconcile(batch, &self.worker, again)
                .await?;
            return Ok(());
        }
        let mut adopted = false;
        for candidate in candidates {
            let first = match self.client.batches().results(&candidate.id).await {
                Ok(mut lines) => lines.next().await.transpose(),
                Err(e) => Err(e),
            };
            match first {
                Ok(Some(line)) if ours.contains(&line.custom_id) => {
                    if adopted {
                        // The create happened more than once: keep one, bill the others.
                        self.drop_duplicate(&candidate.id, batch).await?;
                    } else {
                        adopted = self
                            .store
                            .finish_create(batch, &self.worker, &candidate.id)
                            .await?;
                        crate::failpoint!("reconcile.adopted");
                    }
                }
                // Another creator's batch: never touched.
                Ok(_) => {}
                Err(e) if !adopted => {
                    tracing::warn!(%batch, error = %e, "reconciling: reading results failed");
                    self.store
                        .defer_reconcile(batch, &self.worker, again)
                        .await?;
                    return Ok(());
                }
                Err(e) => {
                    // Already adopted: a duplicate that cannot be read now is found by no
                    // one later, so say so loudly.
                    tracing::error!(%batch, api_batch_id = %candidate.id, error = %e,
                        "reconciling: could not check a possible duplicate batch");
                }
            }
        }
        if !adopted {
            // No candidate holds our requests: the create never happened.
            crate::failpoint!("reconcile.before_abort");
            self.store
                .abort_create(batch, &self.worker, self.store.now())
                .await?;
        }
        Ok(())
    }

    /// An API batch that this engine created from `of`'s requests but that no batch record
    /// points to: cancels it (the API ends it soon, with whatever it already processed) and
    /// records it with `of`'s members, so it is polled like ours and every billed result in
    /// it is recorded as extra usage. Never called for a batch this system did not create.
    async fn drop_duplicate(&self, api_batch_id: &str, of: &BatchId) -> Result<()> {
        tracing::warn!(api_batch_id, %of, "duplicate batch at the API; canceling it");
        crate::failpoint!("duplicate.found");
        if let Err(e) = self.client.batches().cancel(api_batch_id).await {
            // Recorded anyway: its results are read when it ends on its own.
            tracing::warn!(api_batch_id, error = %e, "canceling a duplicate batch failed");
        }
        crate::failpoint!("duplicate.canceled");
        self.store.record_duplicate(api_batch_id, of).await?;
        Ok(())
    }

    /// Polls one batch; ingests its results when it has ended.
    ///
    /// The lines that decode are ingested at every download. A damaged file (a line that does
    /// not decode, or lines missing) is downloaded again at the next poll, up to
    /// `DAMAGED_DOWNLOADS` times; then a line that does not decode fails its own job (when
    /// its `custom_id` is readable) with a `malformed_result` error, and jobs left without a
    /// line are settled by [`ClaimStore::end_batch`] as [`EngineConfig::missing_result`] says.
    #[tracing::instrument(name = "tenantry.engine.poll", level = "info", skip_all,
        fields(batch = %poll.batch, api_batch_id = %poll.api_batch_id, ended = Empty,
            gen_ai.provider.name = crate::telemetry::PROVIDER))]
    async fn poll(&self, poll: &crate::claim::PollClaim) -> Result<Option<IngestCounts>, BoxError> {
        if poll.api_batch_id.is_empty() {
            // A create left with nothing to send closed its record without an API batch:
            // nothing to poll, only the record to end.
            let swept = self
                .store
                .end_batch(
                    &poll.batch,
                    &self.worker,
                    self.config.missing,
                    self.config.max_attempts,
                )
                .await?;
            return Ok(Some(swept.unwrap_or_default()));
        }
        let batch = self.client.batches().retrieve(&poll.api_batch_id).await?;
        crate::failpoint!("poll.retrieved");
        tracing::Span::current().record("ended", batch.is_ended());
        if !batch.is_ended() {
            let age = Duration::from_micros(
                u64::try_from(self.store.now().saturating_sub(poll.submitted_at)).unwrap_or(0),
            );
            let interval = (age / 10).clamp(self.config.poll_min, self.config.poll_max);
            let next = self.store.now().saturating_add(as_micros(interval));
            self.store
                .defer_poll(&poll.batch, &self.worker, next)
                .await?;
            return Ok(None);
        }
        let mut results = self.client.batches().results(&poll.api_batch_id).await?;
        let mut counts = IngestCounts::default();
        let mut chunk = Vec::with_capacity(self.config.chunk);
        let mut poisoned = Vec::new();
        let mut damaged = false;
        while let Some(line) = results.next().await {
            let (custom_id, outcome) = match line {
                Ok(line) => (line.custom_id, outcome(line.result)),
                Err(tenantry_batch::Error::MalformedResult {
                    line,
                    custom_id,
                    source,
                }) => {
                    tracing::warn!(batch = %poll.batch, line, ?custom_id, error = %source,
                        "a result line does not decode");
                    damaged = true;
                    let Some(custom_id) = custom_id else {
                        continue; // its job is settled as missing when the batch ends
                    };
                    let failed = ItemOutcome::Failed {
                        error: JobError {
                            kind: "malformed_result".to_owned(),
                            message: format!("result line {line} does not decode: {source}"),
                        },
                        retryable: false,
                    };
                    if let Ok(job) = custom_id.parse::<JobId>() {
                        poisoned.push(ResultItem {
                            job,
                            outcome: failed,
                        });
                    }
                    continue;
                }
                Err(tenantry_batch::Error::MissingResults { received, expected }) => {
                    // The file is whole: its missing requests are settled as missing below.
                    tracing::warn!(batch = %poll.batch, received, expected,
                        "the batch's results file lacks some requests");
                    damaged = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            match custom_id.parse::<JobId>() {
                Ok(job) => chunk.push(ResultItem { job, outcome }),
                Err(_) => {
                    tracing::warn!(%custom_id, "result for an unknown custom_id")
                }
            }
            if chunk.len() >= self.config.chunk {
                counts.add(
                    self.store
                        .ingest(&poll.batch, &chunk, self.config.max_attempts)
                        .await?,
                );
                crate::failpoint!("poll.chunk_stored");
                chunk.clear();
            }
        }
        counts.add(
            self.store
                .ingest(&poll.batch, &chunk, self.config.max_attempts)
                .await?,
        );
        crate::failpoint!("poll.stored");
        if damaged {
            let downloads = {
                let mut damaged = self
                    .damaged
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = damaged.entry(poll.batch.to_string()).or_insert(0);
                *n += 1;
                *n
            };
            if downloads < DAMAGED_DOWNLOADS {
                let next = self
                    .store
                    .now()
                    .saturating_add(as_micros(self.config.poll_min));
                self.store
                    .defer_poll(&poll.batch, &self.worker, next)
                    .await?;
                return Ok(None);
            }
        }
        // The damaged lines that named their request fail it; the others are missing.
        counts.add(
            self.store
                .ingest(&poll.batch, &poisoned, self.config.max_attempts)
                .await?,
        );
        self.damaged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(poll.batch.as_str());
        if let Some(swept) = self
            .store
            .end_batch(
                &poll.batch,
                &self.worker,
                self.config.missing,
                self.config.max_attempts,
            )
            .await?
        {
            counts.add(swept);
        }
        crate::failpoint!("poll.ended");
        Ok(Some(counts))
    }

    /// Hands pending usage to the sink; returns how many records it took and how many it
    /// could not price (dead-lettered: retrying them would fail the same way every step).
    #[tracing::instrument(name = "tenantry.engine.usage_flush", level = "debug", skip_all,
        fields(recorded = Empty, dead_lettered = Empty))]
    async fn flush_usage(&self) -> Result<(u64, u64)> {
        let (recorded, dead_lettered) = self.flush_usage_inner().await?;
        let span = tracing::Span::current();
        span.record("recorded", recorded);
        span.record("dead_lettered", dead_lettered);
        crate::telemetry::usage_flushed(recorded, dead_lettered);
        Ok((recorded, dead_lettered))
    }

    async fn flush_usage_inner(&self) -> Result<(u64, u64)> {
        let (mut recorded, mut dead_lettered) = (0, 0);
        loop {
            let pending = self
                .store
                .claim_usage(&self.worker, 100, self.config.lease)
                .await?;
            if pending.is_empty() {
                return Ok((recorded, dead_lettered));
            }
            crate::failpoint!("usage.claimed");
            let mut done = Vec::with_capacity(pending.len());
            let mut dead = Vec::new();
            for record in &pending {
                let span = tracing::info_span!("tenantry.engine.usage_record",
                    tenant = %record.tenant, job = %record.job, batch = record.batch.as_deref(),
                    feature = %record.feature, lane = record.lane.as_str(),
                    gen_ai.provider.name = crate::telemetry::PROVIDER,
                    gen_ai.request.model = %record.model,
                    gen_ai.usage.input_tokens = Empty,
                    gen_ai.usage.output_tokens = Empty,
                    gen_ai.usage.cache_read.input_tokens = Empty,
                    gen_ai.usage.cache_creation.input_tokens = Empty);
                crate::telemetry::record_usage(&span, &record.usage);
                match self.sink.record(record).instrument(span).await {
                    Ok(()) => {
                        done.push(record.clone());
                        crate::failpoint!("usage.sunk");
                    }
                    Err(e) if e.is_permanent() => {
                        tracing::error!(tenant = %record.tenant, job = %record.job, error = %e,
                            reason = %e.reason(), "usage cannot be priced; dead-lettered");
                        dead.push((record.clone(), e.reason()));
                    }
                    Err(e) => {
                        tracing::warn!(job = %record.job, error = %e, reason = %e.reason(),
                            "usage sink failed; will retry");
                    }
                }
            }
            self.store.mark_recorded(&done).await?;
            crate::failpoint!("usage.marked");
            dead_lettered += self.store.dead_letter_usage(&dead).await?;
            recorded += u64::try_from(done.len()).unwrap_or(0);
            if done.len() + dead.len() < pending.len() {
                // The sink is unavailable: the rest waits for the next step.
                return Ok((recorded, dead_lettered));
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a call in flight holds a lease on.
#[derive(Debug, Clone, Copy)]
enum Held<'a> {
    /// A batch record: its create, reconciliation or poll.
    Batch(&'a BatchId),
    /// The urgent calls of one claim token.
    Urgent(&'a BatchId),
}
