//! [`Tenantry`]: the handle a host keeps, with the few calls it needs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tenantry_batch::Client;
use tenantry_cost::{HoldRequest, Ledger, SpendQuery, SpendRow, UnixMicros};
use tenantry_envelope::{Envelope, OperationState};
use tenantry_queue::{
    Engine, EngineConfig, HoldId, JobId, JobState, Lane, Position, Subscription, TenantId,
};

use crate::builder::TenantryBuilder;
use crate::db::Store;
use crate::engine::EngineTask;
use crate::error::{Error, Result};
use crate::holds::{HoldReleaser, reconcile_holds};
use crate::input::{InputTokens, input_tokens};
use crate::jobs::Jobs;
use crate::output::{JobOutput, envelope, operation};
use crate::repair::Repair;
use crate::request::Request;
use crate::sink::{Assignments, LedgerSink, ledger_lane};
use crate::telemetry::Telemetry;

/// The notice on a pending envelope's operation whose urgent request was sent down the batch
/// lane because its budget passed a soft limit
/// ([`BudgetPolicy::with_soft_limit`](tenantry_cost::BudgetPolicy::with_soft_limit)).
pub const SOFT_LIMIT_NOTICE: &str = "budget_soft_limit_batch_lane";

/// How often the engine task releases budget holds whose time ran out.
const HOLD_SWEEP: Duration = Duration::from_secs(60);
/// How often the engine task gives back the holds of jobs that ended without usage.
const HOLD_RELEASE: Duration = Duration::from_millis(500);

/// The handle a host keeps: submit AI requests for tenants, read their results as envelopes,
/// follow their events, and report their cost. Cheap to clone.
///
/// # Example
///
/// ```
/// # #[cfg(all(feature = "sqlite", feature = "emulator"))]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.db");
/// use futures::StreamExt;
/// use tenantry::{Envelope, Request, Tenantry, batch::Config, emulator::Emulator};
///
/// let emulator = Emulator::builder().api_key("sk-test").start().await?;
/// let tenantry = Tenantry::builder()
///     .database(format!("sqlite://{}", path.display()))
///     .api(Config::new("sk-test").base_url(emulator.base_url()))
///     .engine(tenantry::queue::EngineConfig::new()
///         .poll_interval(std::time::Duration::from_millis(50), std::time::Duration::from_millis(200))
///         .idle(std::time::Duration::from_millis(20)))
///     .build()
///     .await?;
/// let engine = tenantry.spawn();
/// let mut events = tenantry.subscribe("acme").await?;
///
/// let request = Request::new("summaries", "user-7", serde_json::json!({
///     "model": "claude-haiku-4-5", "max_tokens": 100,
///     "messages": [{"role": "user", "content": "Summarise: the parcel arrived late."}]
/// }))
/// .max_wait(std::time::Duration::from_millis(10));
/// let Envelope::Pending { operation } = tenantry.submit("acme", request).await? else {
///     panic!("a new job is pending");
/// };
/// let id = operation.id().to_string();
///
/// while let Some(event) = events.next().await {
///     if event?.state.is_terminal() { break; }
/// }
/// let output = tenantry.job("acme", &id).await?.into_result().expect("succeeded");
/// assert!(output.text.contains("parcel"));
/// engine.shutdown().await?;
/// # Ok(()) }
/// # #[cfg(not(all(feature = "sqlite", feature = "emulator")))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct Tenantry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) ledger: Ledger,
    pub(crate) client: Client,
    pub(crate) engine: EngineConfig,
    pub(crate) status_path: String,
    pub(crate) hold_ttl: Duration,
    pub(crate) hold_reconcile: Duration,
    pub(crate) input_tokens: InputTokens,
    pub(crate) assignments: Arc<Assignments>,
    /// `(tenant, user)` pairs already recorded for the metrics by this process.
    /// Rendered SQL of the metrics queries asked so far, by shape.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_cache: tenantry_metrics::MetricsCache,
    #[cfg(feature = "metrics")]
    pub(crate) registered: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

pub(crate) fn tenant_id(tenant: &str) -> Result<TenantId> {
    Ok(TenantId::new(tenant)?)
}

pub(crate) fn job_id(id: &str) -> Result<JobId> {
    id.parse()
        .map_err(|_| Error::Queue(tenantry_queue::Error::NotFound { id: id.to_owned() }))
}

impl Tenantry {
    /// A builder with every default; see [`TenantryBuilder`].
    pub fn builder() -> TenantryBuilder {
        TenantryBuilder::default()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Submits one request for a tenant: holds its worst-case cost against the tenant's
    /// budgets, then queues the job. Returns a pending envelope whose operation carries the job
    /// id and its status URL (`202 Accepted` with `Location` when returned from an axum handler).
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] with [`InvalidRequest`](tenantry_queue::InvalidRequest) for a bad tenant
    /// id or request (nothing is held or stored), [`Error::Cost`] when a budget would be exceeded
    /// ([`Error::is_budget_exceeded`]) or the model is not in the price book, or a database
    /// error.
    #[tracing::instrument(level = "info", name = "tenantry.submit", skip_all, fields(tenant = %tenant))]
    pub async fn submit(&self, tenant: &str, request: Request) -> Result<Envelope<JobOutput>> {
        let mut all = self.submit_many(tenant, vec![request]).await?;
        all.pop()
            .ok_or_else(|| Error::Config("the queue returned no job for one request".into()))
    }

    /// Submits many requests for a tenant, all or nothing: every budget hold is taken first in
    /// one ledger transaction (each budget checked once for the sum), then every job is stored
    /// in one transaction; if anything after the holds fails (recording the tenant's user for
    /// the metrics, storing the jobs), the holds are given back. Any number of requests fits
    /// one call. Returns one pending envelope per request, in order.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), with [`InvalidRequest::Item`](tenantry_queue::InvalidRequest)
    /// naming the first refused request; nothing is held or stored when any request is refused.
    #[tracing::instrument(level = "info", name = "tenantry.submit_many", skip_all, fields(tenant = %tenant, requests = requests.len()))]
    pub async fn submit_many(
        &self,
        tenant: &str,
        requests: Vec<Request>,
    ) -> Result<Vec<Envelope<JobOutput>>> {
        let tenant = tenant_id(tenant)?;
        // Before any hold: a `max_tokens` past what any model allows would otherwise reach the
        // worst-case cost as a number the ledger cannot price, an internal error.
        for (index, r) in requests.iter().enumerate() {
            tenantry_queue::check_max_tokens(r.params()).map_err(|reason| {
                tenantry_queue::InvalidRequest::Item {
                    index,
                    reason: Box::new(reason),
                }
            })?;
        }
        let mut requests = requests;
        let (holds, moved) = self.hold_within_soft_limits(&tenant, &mut requests).await?;
        tenantry_queue::failpoint!("submit.held");
        let keyed: Vec<bool> = requests.iter().map(|r| r.key().is_some()).collect();
        // Until the jobs are stored, only this call knows the holds: whatever fails in between
        // gives them back here, or they would block the tenant's budget until their TTL.
        let ids = match self.store_jobs(&tenant, requests, &holds).await {
            Ok(ids) => ids,
            Err(e) => {
                self.release_all(&holds).await;
                return Err(e);
            }
        };
        tenantry_queue::failpoint!("submit.stored");
        let mut out = Vec::with_capacity(ids.len());
        for (((id, hold), keyed), moved) in ids.iter().zip(&holds).zip(keyed).zip(moved) {
            let mut state = OperationState::Queued;
            let mut notice = moved.then_some(SOFT_LIMIT_NOTICE);
            if keyed {
                // An idempotency key may have returned an earlier job: its own hold stands.
                let job = self.inner.store.jobs().job(&tenant, id).await?;
                if job.hold != Some(HoldId::new(*hold)) {
                    // The earlier job keeps the lane it was stored with.
                    notice = None;
                    self.inner.ledger.release(*hold).await?;
                }
                if job.state == JobState::Submitted {
                    state = OperationState::Running;
                }
                if job.state.is_terminal() {
                    out.push(envelope(&self.inner.status_path, job)?);
                    continue;
                }
            }
            let mut pending = operation(&self.inner.status_path, id.as_str(), state)?;
            if let Some(notice) = notice {
                pending = pending.with_notice(notice);
            }
            out.push(Envelope::pending(pending));
        }
        Ok(out)
    }

    /// Takes every request's hold as [`hold_all`](Self::hold_all) does; when that would take a
    /// budget past its soft limit with urgent requests, sends the call's urgent requests down
    /// the batch lane instead and holds them at the batch price (refused only if even that
    /// exceeds a limit). Returns the holds and which requests were moved.
    async fn hold_within_soft_limits(
        &self,
        tenant: &TenantId,
        requests: &mut [Request],
    ) -> Result<(Vec<i64>, Vec<bool>)> {
        match self.hold_all(tenant, requests).await {
            Err(Error::Cost(e)) if e.is_soft_limit_reached() => {
                let moved: Vec<bool> = requests.iter().map(|r| r.lane() == Lane::Urgent).collect();
                for r in requests.iter_mut().filter(|r| r.lane() == Lane::Urgent) {
                    r.send_by_batch();
                }
                tracing::info!(tenant = %tenant, "budget past its soft limit: urgent requests go down the batch lane");
                let holds = self.hold_all(tenant, requests).await?;
                Ok((holds, moved))
            }
            other => other.map(|holds| {
                let moved = vec![false; holds.len()];
                (holds, moved)
            }),
        }
    }

    /// Takes every request's budget hold in one ledger transaction, all or nothing.
    pub(crate) async fn hold_all(
        &self,
        tenant: &TenantId,
        requests: &[Request],
    ) -> Result<Vec<i64>> {
        let ttl = i64::try_from(self.inner.hold_ttl.as_micros()).unwrap_or(i64::MAX);
        let inputs = input_tokens(self.inner.input_tokens, &self.inner.client, requests).await;
        let at = UnixMicros::now();
        let reqs: Vec<HoldRequest> = requests
            .iter()
            .zip(inputs)
            .map(|(r, input_tokens)| {
                let lane = ledger_lane(r.lane()).ok_or_else(|| {
                    Error::Config(format!("lane `{}` has no ledger price", r.lane().as_str()))
                })?;
                let mut hold = HoldRequest::new(
                    tenant.clone(),
                    r.feature().to_owned(),
                    r.model().to_owned(),
                    lane.lane,
                    r.max_tokens().max(0),
                    at,
                )
                .with_input_tokens(input_tokens)
                .with_ttl_micros(ttl);
                hold.inference_geo = r
                    .params()
                    .get("inference_geo")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                hold.feature_tier = self.inner.assignments.tier(tenant.as_str());
                hold.region = self.inner.assignments.region(tenant.as_str());
                Ok(hold)
            })
            .collect::<Result<_>>()?;
        let held = self
            .inner
            .ledger
            .hold_many(&reqs)
            .await
            .map_err(|e| match e {
                // A request the queue would refuse anyway: report the queue's reason.
                tenantry_cost::Error::UnknownModel { .. }
                    if requests.iter().any(|r| r.model().is_empty()) =>
                {
                    Error::from(tenantry_queue::InvalidRequest::Model)
                }
                other => Error::Cost(other),
            })?;
        Ok(held.into_iter().map(|h| h.id).collect())
    }

    /// Records the users for the metrics, then stores the jobs, each carrying its hold.
    async fn store_jobs(
        &self,
        tenant: &TenantId,
        requests: Vec<Request>,
        holds: &[i64],
    ) -> Result<Vec<JobId>> {
        for r in &requests {
            self.register(tenant.as_str(), r.user()).await?;
        }
        let submissions: Vec<_> = requests
            .into_iter()
            .zip(holds)
            .map(|(r, hold)| r.into_submission(Some(HoldId::new(*hold))))
            .collect();
        Ok(self
            .inner
            .store
            .jobs()
            .submit_many(tenant, &submissions)
            .await?)
    }

    /// Gives back the holds of a call that stored no job.
    pub(crate) async fn release_all(&self, holds: &[i64]) {
        if let Err(e) = self.inner.ledger.release_many(holds).await {
            tracing::warn!(holds = holds.len(), error = %e, "releasing budget holds failed; they lapse at their TTL");
        }
    }

    /// Records the tenant, the user and the membership for the user-based metrics, once per
    /// process.
    #[cfg(feature = "metrics")]
    async fn register(&self, tenant: &str, user: &str) -> Result<()> {
        let key = (tenant.to_owned(), user.to_owned());
        let known = self
            .inner
            .registered
            .lock()
            .map(|set| set.contains(&key))
            .unwrap_or(false);
        if !known {
            self.inner.store.register(tenant, user).await?;
            if let Ok(mut set) = self.inner.registered.lock() {
                set.insert(key);
            }
        }
        Ok(())
    }

    /// Without the metrics there is no registry to keep.
    #[cfg(not(feature = "metrics"))]
    #[expect(
        clippy::unused_async,
        reason = "the same signature as with the metrics"
    )]
    async fn register(&self, _tenant: &str, _user: &str) -> Result<()> {
        Ok(())
    }

    /// The job's envelope: pending while it waits or runs, success with the model's output
    /// ([`JobOutput`]), or an error with a stable code (`JOB_FAILED`, `JOB_CANCELED`,
    /// `JOB_EXPIRED`).
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] not found ([`Error::is_not_found`]) when the tenant has no such job
    /// (also when it is another tenant's), or a database error.
    #[tracing::instrument(level = "info", name = "tenantry.job", skip_all, fields(tenant = %tenant, job = %id))]
    pub async fn job(&self, tenant: &str, id: &str) -> Result<Envelope<JobOutput>> {
        let job = self
            .inner
            .store
            .jobs()
            .job(&tenant_id(tenant)?, &job_id(id)?)
            .await?;
        envelope(&self.inner.status_path, job)
    }

    /// Cancels a job and returns its state afterwards (`canceled`). A job not yet sent is never
    /// sent and its budget hold is given back; a job already sent is billed if the API billed it.
    ///
    /// # Errors
    ///
    /// Not found as [`job`](Self::job); [`Error::Queue`] with `AlreadyFinished` (code
    /// `CONFLICT`) when it already succeeded, failed or expired; a database error.
    #[tracing::instrument(level = "info", name = "tenantry.cancel", skip_all, fields(tenant = %tenant, job = %id))]
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<JobState> {
        let tenant = tenant_id(tenant)?;
        let id = job_id(id)?;
        let after = self.inner.store.jobs().cancel(&tenant, &id).await?;
        tenantry_queue::failpoint!("cancel.canceled");
        // A job whose request never left keeps no batch; one whose request may be out keeps
        // its batch, and its hold waits for the usage (or its TTL).
        if after.batch_id.is_none()
            && let Some(hold) = after.hold
        {
            self.inner.ledger.release(hold.get()).await?;
        }
        Ok(after.state)
    }

    /// The tenant's job events from now on: a stream of [`JobEvent`](tenantry_queue::JobEvent)s
    /// in order, without gaps, never another tenant's.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error while setting up.
    #[tracing::instrument(level = "info", name = "tenantry.subscribe", skip_all, fields(tenant = %tenant))]
    pub async fn subscribe(&self, tenant: &str) -> Result<Subscription> {
        Ok(self
            .inner
            .store
            .jobs()
            .subscribe(&tenant_id(tenant)?)
            .await?)
    }

    /// The tenant's events after a position seen earlier, then on to new ones (resume).
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    #[tracing::instrument(level = "info", name = "tenantry.subscribe", skip_all, fields(tenant = %tenant, after = after.get()))]
    pub async fn subscribe_after(&self, tenant: &str, after: Position) -> Result<Subscription> {
        Ok(self
            .inner
            .store
            .jobs()
            .subscribe_after(&tenant_id(tenant)?, after)
            .await?)
    }

    /// A spend report from the ledger: cost and the synchronous-price cost of the same usage
    /// (`standard_cost`), grouped by tenant, feature, user, model or lane.
    ///
    /// # Errors
    ///
    /// A database error.
    #[tracing::instrument(level = "info", name = "tenantry.spend", skip_all, fields(tenant = query.tenant_id.as_ref().map(TenantId::as_str)))]
    pub async fn spend(&self, query: &SpendQuery) -> Result<Vec<SpendRow>> {
        Ok(self.inner.ledger.reports().spend(query).await?)
    }

    /// Runs a metrics query on the same database (tenants and users are recorded as they
    /// submit; usage comes from the ledger). The handle keeps the rendered SQL of each query
    /// shape it has run (a [`MetricsCache`](tenantry_metrics::MetricsCache) shared by its
    /// clones), so a dashboard that asks the same query with other values skips rendering.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`] when the query cannot be built or run.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[tracing::instrument(level = "info", name = "tenantry.metrics", skip_all)]
    pub async fn metrics(
        &self,
        query: &tenantry_metrics::MetricsQuery,
    ) -> Result<Vec<tenantry_metrics::MetricRow>> {
        let pool = self.inner.store.metrics_pool();
        Ok(query.fetch_cached(&self.inner.metrics_cache, &pool).await?)
    }

    /// Adds a tenant to the tenant tree the metrics roll up over, under `parent` (which must
    /// have been added first). Tenants that submit are added at the top level automatically;
    /// add organizations and their workspaces here first to get roll-ups. A tenant already in
    /// the tree is left where it is.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error (also when `parent` is unknown).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[tracing::instrument(level = "info", name = "tenantry.add_tenant", skip_all, fields(tenant = %tenant))]
    pub async fn add_tenant(&self, tenant: &str, parent: Option<&str>) -> Result<()> {
        let tenant = tenant_id(tenant)?;
        if let Some(p) = parent {
            tenant_id(p)?;
        }
        self.inner.store.add_tenant(tenant.as_str(), parent).await
    }

    /// Records that `user` is a member of `tenant`, for the user-based metrics (users, adoption).
    /// Users who submit are recorded automatically. Idempotent.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[tracing::instrument(level = "info", name = "tenantry.add_member", skip_all, fields(tenant = %tenant))]
    pub async fn add_member(&self, tenant: &str, user: &str) -> Result<()> {
        let tenant = tenant_id(tenant)?;
        self.register(tenant.as_str(), user).await
    }

    /// The tenant's billed usage that the ledger could not price (a model missing from the
    /// price book, inconsistent cache counts, a count out of range, an unknown multiplier),
    /// oldest first, at most `limit`, each with the ledger's reason. Each one was announced
    /// on the tenant's event stream as
    /// [`JobState::UsageUnpriced`](tenantry_queue::JobState::UsageUnpriced); its spend is
    /// missing from the ledger (and its budget hold stays held) until
    /// [`reprice_usage`](Self::reprice_usage).
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error.
    #[tracing::instrument(level = "info", name = "tenantry.dead_usage", skip_all, fields(tenant = %tenant))]
    pub async fn dead_usage(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<tenantry_queue::DeadUsage>> {
        Ok(self
            .inner
            .store
            .jobs()
            .dead_usage(&tenant_id(tenant)?, limit)
            .await?)
    }

    /// Hands the tenant's dead-lettered usage back to the engine once the price book (or
    /// the multipliers) are fixed: a running engine with the fixed price book records each
    /// one at its next step, settling its hold. The ledger line is the same one it would have
    /// been (recorded once per request, whatever happened before). Returns how many records
    /// were handed back.
    ///
    /// # Errors
    ///
    /// A bad tenant id, or a database error.
    #[tracing::instrument(level = "info", name = "tenantry.reprice_usage", skip_all, fields(tenant = %tenant))]
    pub async fn reprice_usage(&self, tenant: &str) -> Result<u64> {
        Ok(self
            .inner
            .store
            .jobs()
            .reprice_usage(&tenant_id(tenant)?)
            .await?)
    }

    /// How many usage records are dead letters, every tenant together: spend missing from
    /// the ledger, for an operator's dashboard or alert.
    ///
    /// # Errors
    ///
    /// A database error.
    #[tracing::instrument(level = "info", name = "tenantry.dead_usage_count", skip_all)]
    pub async fn dead_usage_count(&self) -> Result<u64> {
        self.inner.store.dead_usage_count().await
    }

    /// Every tenant's whole event stream: job events and budget alerts
    /// ([`BUDGET_THRESHOLD`](crate::BUDGET_THRESHOLD)), in one order per tenant. Follow one
    /// tenant with [`Feed::subscribe_after`](tenantry_queue::Feed::subscribe_after); signed
    /// webhooks deliver it to other systems.
    #[must_use]
    pub fn feed(&self) -> tenantry_queue::Feed {
        self.inner.store.feed()
    }

    /// The signed webhooks of this database's tenant event streams (see [`feed`](Self::feed)):
    /// register endpoints per tenant, then run a [`Sender`](tenantry_webhooks::Sender) in one
    /// process to deliver them.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(tenantry: tenantry::Tenantry) -> Result<(), Box<dyn std::error::Error>> {
    /// use tenantry::webhooks::{NewEndpoint, Secret, Sender, SenderConfig};
    ///
    /// let hooks = tenantry.webhooks();
    /// hooks.migrate().await?;
    /// let secret = Secret::generate();
    /// let endpoint = NewEndpoint::new("https://billing.example.com/hooks", secret)
    ///     .event_types(["budget.threshold"]);
    /// hooks.register(&"acme".parse()?, endpoint).await?;
    /// let sender = Sender::new(hooks, SenderConfig::new())?;
    /// // Until the process is told to stop.
    /// sender.run(async { tokio::signal::ctrl_c().await.unwrap_or(()) }).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    #[must_use]
    pub fn webhooks(&self) -> tenantry_webhooks::Webhooks {
        tenantry_webhooks::Webhooks::new(self.feed())
    }

    /// The cost ledger, for budgets, reports and corrections beyond the calls above.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The tenants' jobs and event logs, read-only: listing, one job as stored, events.
    /// Submitting and canceling go through this handle, which keeps the budget holds in step.
    #[must_use]
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs::new(self.inner.store.jobs())
    }

    /// Dead letters and repairs: failed jobs and unpriced usage listed, jobs retried with a new
    /// budget hold, usage re-priced, finished jobs and old events purged.
    #[must_use]
    pub fn repair(&self) -> Repair<'_> {
        Repair::new(self)
    }

    /// The API client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Runs the engine until `shutdown` completes: flushes queued jobs into batches, polls them,
    /// stores results, records their cost in the ledger (settling budget holds), gives back the
    /// holds of jobs that fail, or are canceled or expire before they were sent (within about a
    /// second), and releases holds whose time ran out. Any number of engines may share a PostgreSQL database.
    ///
    /// # Errors
    ///
    /// A database error when releasing its claims at shutdown; failing steps are logged and
    /// retried.
    #[tracing::instrument(level = "info", name = "tenantry.run", skip_all)]
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let config = self.inner.engine;
        let telemetry = Arc::new(Telemetry::new(config.has_tenant_labels()));
        let sink = Arc::new(LedgerSink {
            ledger: self.inner.ledger.clone(),
            assignments: self.inner.assignments.clone(),
            telemetry: telemetry.clone(),
        });
        let client = self.inner.client.clone();
        let ledger = self.inner.ledger.clone();
        let jobs = self.inner.store.clone();
        let reconcile_every = self.inner.hold_reconcile;
        let sweep = async move {
            let mut releaser = HoldReleaser::default();
            let mut swept: Option<tokio::time::Instant> = None;
            let mut reconciled = tokio::time::Instant::now();
            let mut sampled: Option<tokio::time::Instant> = None;
            loop {
                if sampled.is_none_or(|t| t.elapsed() >= config.sample_interval()) {
                    telemetry.sample_budgets(&ledger).await;
                    sampled = Some(tokio::time::Instant::now());
                }
                if swept.is_none_or(|t| t.elapsed() >= HOLD_SWEEP) {
                    if let Err(e) = ledger.release_expired(UnixMicros::now()).await {
                        tracing::warn!(error = %e, "releasing expired budget holds failed");
                    }
                    swept = Some(tokio::time::Instant::now());
                }
                if reconciled.elapsed() >= reconcile_every {
                    if let Err(e) = reconcile_holds(&ledger, &jobs, reconcile_every).await {
                        tracing::warn!(error = %e, "reconciling budget holds with jobs failed");
                    }
                    reconciled = tokio::time::Instant::now();
                }
                if let Err(e) = releaser.step(&ledger, &jobs).await {
                    tracing::warn!(error = %e, "releasing the holds of unbilled jobs failed");
                }
                tokio::time::sleep(HOLD_RELEASE).await;
            }
        };
        let engine = async {
            match &self.inner.store {
                #[cfg(feature = "sqlite")]
                Store::Sqlite(s) => {
                    Engine::new(s.clone(), client, sink, config)
                        .run(shutdown)
                        .await
                }
                #[cfg(feature = "postgres")]
                Store::Postgres(s) => {
                    Engine::new(s.clone(), client, sink, config)
                        .run(shutdown)
                        .await
                }
            }
        };
        tokio::select! {
            r = engine => Ok(r?),
            () = sweep => Ok(()),
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime; stop it with
    /// [`EngineTask::shutdown`].
    #[must_use]
    pub fn spawn(&self) -> EngineTask {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.run(async {
                let _ = rx.await;
            })
            .await
        });
        EngineTask::new(tx, task)
    }
}
