//! [`TenantryBuilder`]: database, API client, price book, budgets and multipliers in, a
//! [`Tenantry`] handle out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tenantry_batch::{Client, Config};
use tenantry_cost::{BudgetPolicy, Ledger, Nanos, PriceBook, UnixMicros, Window};
use tenantry_queue::EngineConfig;

use crate::db::{Database, Store};
use crate::error::Result;
use crate::handle::{Inner, Tenantry};
use crate::input::InputTokens;
use crate::sink::Assignments;

/// The default path clients poll a job at; the job id is appended.
pub const DEFAULT_STATUS_PATH: &str = "/v1/jobs/";
/// How long a budget hold lasts when nothing settles or releases it: the ledger's
/// [`HoldRequest::DEFAULT_TTL_MICROS`](tenantry_cost::HoldRequest::DEFAULT_TTL_MICROS), 25 h,
/// longer than the batch API's 24 h processing window. [`Tenantry::cancel`](crate::Tenantry::cancel) gives
/// back the hold of a job not yet sent, and a running engine the holds of jobs that end failed,
/// or canceled or expired before they were sent, within about a second; the TTL is the
/// backstop when no engine runs, and for a job canceled or expired after it was sent that the
/// API does not bill.
pub const DEFAULT_HOLD_TTL: Duration =
    Duration::from_micros(tenantry_cost::HoldRequest::DEFAULT_TTL_MICROS.unsigned_abs());
/// How often a running engine reconciles the live budget holds with the jobs, and how old a
/// hold must be to be looked at. Default 60 s.
pub const DEFAULT_HOLD_RECONCILE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum DatabaseSetting {
    Url(String),
    Ready(Database),
}

#[derive(Debug, Clone)]
struct Budget {
    tenant: String,
    feature: Option<String>,
    period: Window,
    limit: Nanos,
    alerts: Vec<u16>,
    soft: Option<u16>,
}

/// Builds a [`Tenantry`]. Owned setters; every setter states its default.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.db");
/// use tenantry::{Tenantry, batch::Config, cost::{Nanos, Window}};
///
/// let tenantry = Tenantry::builder()
///     .database(format!("sqlite://{}", path.display()))
///     .api(Config::new("sk-test").base_url("http://127.0.0.1:9"))
///     .budget("acme", Window::Month, Nanos::from_usd_micros(50_000_000)) // $50 a month
///     .feature_tier("premium", 12_000) // 1.2×
///     .tenant_tier("acme", "premium")
///     .build()
///     .await?;
/// # let _ = tenantry;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct TenantryBuilder {
    database: Option<DatabaseSetting>,
    api: Option<Config>,
    book: Option<PriceBook>,
    budgets: Vec<Budget>,
    tiers: Vec<(String, i64)>,
    regions: Vec<(String, i64)>,
    assignments: Assignments,
    engine: EngineConfig,
    status_path: String,
    hold_ttl: Duration,
    hold_reconcile: Duration,
    input_tokens: InputTokens,
    event_poll: Option<Duration>,
}

impl Default for TenantryBuilder {
    fn default() -> Self {
        Self {
            database: None,
            api: None,
            book: None,
            budgets: Vec::new(),
            tiers: Vec::new(),
            regions: Vec::new(),
            assignments: Assignments {
                tiers: HashMap::new(),
                regions: HashMap::new(),
            },
            engine: EngineConfig::new(),
            status_path: DEFAULT_STATUS_PATH.to_owned(),
            hold_ttl: DEFAULT_HOLD_TTL,
            hold_reconcile: DEFAULT_HOLD_RECONCILE,
            input_tokens: InputTokens::Estimate,
            event_poll: None,
        }
    }
}

impl TenantryBuilder {
    /// The database URL: `sqlite://PATH` (created if missing) or `postgres://…`. Default:
    /// `sqlite://tenantry.db` in the working directory.
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Some(DatabaseSetting::Url(url.into()));
        self
    }

    /// A database the host already connected (for example to share its pool).
    pub fn database_pool(mut self, database: Database) -> Self {
        self.database = Some(DatabaseSetting::Ready(database));
        self
    }

    /// The API client configuration (key, base URL, timeouts, retries). Point `base_url` at
    /// the emulator for tests. Default: [`Config::from_env`] (`ANTHROPIC_API_KEY`, and
    /// `ANTHROPIC_BASE_URL` if set).
    pub fn api(mut self, config: Config) -> Self {
        self.api = Some(config);
        self
    }

    /// The price book. Default: [`PriceBook::anthropic_default`].
    pub fn price_book(mut self, book: PriceBook) -> Self {
        self.book = Some(book);
        self
    }

    /// A budget for every feature of a tenant together. Default: none (submits are still held
    /// against the ledger, but never refused).
    pub fn budget(mut self, tenant: impl Into<String>, period: Window, limit: Nanos) -> Self {
        self.budgets.push(Budget {
            tenant: tenant.into(),
            feature: None,
            period,
            limit,
            alerts: Vec::new(),
            soft: None,
        });
        self
    }

    /// A budget for one feature of a tenant. Default: none.
    pub fn feature_budget(
        mut self,
        tenant: impl Into<String>,
        feature: impl Into<String>,
        period: Window,
        limit: Nanos,
    ) -> Self {
        self.budgets.push(Budget {
            tenant: tenant.into(),
            feature: Some(feature.into()),
            period,
            limit,
            alerts: Vec::new(),
            soft: None,
        });
        self
    }

    /// A budget with every option of a [`BudgetPolicy`]: alert thresholds
    /// ([`BudgetPolicy::with_alerts`]: one `budget.threshold` event per threshold per window on
    /// the tenant's event stream) and a soft limit ([`BudgetPolicy::with_soft_limit`]: past it,
    /// urgent requests go down the batch lane, and their pending envelope's operation carries
    /// [`SOFT_LIMIT_NOTICE`](crate::SOFT_LIMIT_NOTICE)). The policy's `effective_from` is not
    /// used: a budget starts when it is first stored. Default: none.
    pub fn budget_policy(mut self, policy: BudgetPolicy) -> Self {
        self.budgets.push(Budget {
            tenant: policy.tenant_id.as_str().to_owned(),
            feature: policy.feature,
            period: policy.window,
            limit: policy.limit,
            alerts: policy.alert_permille,
            soft: policy.soft_limit_permille,
        });
        self
    }

    /// Defines a feature tier's cost multiplier in basis points (`10_000` = 1×). A tier defined
    /// once keeps its first multiplier; change it later with
    /// [`Multipliers::set_feature_tier`](tenantry_cost::Multipliers::set_feature_tier) (via [`Tenantry::ledger`]). Default: no tiers.
    pub fn feature_tier(mut self, name: impl Into<String>, multiplier_bp: i64) -> Self {
        self.tiers.push((name.into(), multiplier_bp));
        self
    }

    /// Defines a region's cost multiplier in basis points, like [`feature_tier`](Self::feature_tier).
    pub fn region(mut self, name: impl Into<String>, multiplier_bp: i64) -> Self {
        self.regions.push((name.into(), multiplier_bp));
        self
    }

    /// Puts a tenant on a feature tier: its lines and holds get the tier's multiplier.
    /// Default: no tier (1×).
    pub fn tenant_tier(mut self, tenant: impl Into<String>, tier: impl Into<String>) -> Self {
        self.assignments.tiers.insert(tenant.into(), tier.into());
        self
    }

    /// Puts a tenant in a region: its lines and holds get the region's multiplier. Default: none (1×).
    pub fn tenant_region(mut self, tenant: impl Into<String>, region: impl Into<String>) -> Self {
        self.assignments
            .regions
            .insert(tenant.into(), region.into());
        self
    }

    /// How the engine paces itself (flush policy, poll intervals, leases). Default:
    /// [`EngineConfig::new`].
    pub fn engine(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// The path prefix of job status URLs in pending envelopes; the job id is appended.
    /// Default [`DEFAULT_STATUS_PATH`].
    pub fn status_path(mut self, prefix: impl Into<String>) -> Self {
        self.status_path = prefix.into();
        self
    }

    /// How long a budget hold lasts when nothing settles or releases it. Default
    /// [`DEFAULT_HOLD_TTL`].
    pub fn hold_ttl(mut self, ttl: Duration) -> Self {
        self.hold_ttl = ttl;
        self
    }

    /// How often a running engine reconciles the live budget holds with the jobs, giving back
    /// those no job can bill any more: a hold whose submit died before storing its job, and the
    /// hold of a job closed while a create that turned out never to have happened was in
    /// flight. A hold is looked at once it is this old. Default [`DEFAULT_HOLD_RECONCILE`].
    pub fn hold_reconcile_interval(mut self, interval: Duration) -> Self {
        self.hold_reconcile = interval;
        self
    }

    /// How `submit` sizes each prompt for its budget hold. Default [`InputTokens::Estimate`]
    /// (no API call).
    pub fn input_tokens(mut self, policy: InputTokens) -> Self {
        self.input_tokens = policy;
        self
    }

    /// How often subscriptions read the events table without a wake-up. Default: the queue's 2 s.
    pub fn event_poll_interval(mut self, poll: Duration) -> Self {
        self.event_poll = Some(poll);
        self
    }

    /// Connects, migrates the queue, ledger and metrics tables, stores the budgets and
    /// multipliers, and returns the handle.
    ///
    /// Budgets are stored once: a policy equal to one already in force is not added again, so
    /// every instance can build with the same settings at start-up.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a bad URL or status path,
    /// [`Error::Client`](crate::Error::Client) when no API key is configured, a queue error for
    /// a budget whose tenant id is not valid, a database, queue or cost error when migrating or
    /// storing the settings fails.
    pub async fn build(self) -> Result<Tenantry> {
        crate::output::operation(
            &self.status_path,
            "job_0",
            tenantry_envelope::OperationState::Queued,
        )?;
        let client = Client::new(match self.api {
            Some(c) => c,
            None => Config::from_env()?,
        })?;
        let database = match self.database {
            Some(DatabaseSetting::Ready(d)) => d,
            Some(DatabaseSetting::Url(url)) => Database::connect(&url).await?,
            None => Database::connect("sqlite://tenantry.db").await?,
        };
        let book = self.book.unwrap_or_else(PriceBook::anthropic_default);
        let (store, ledger) = Store::open(database, book, self.event_poll).await?;
        for (name, bp) in &self.tiers {
            define(
                ledger
                    .multipliers()
                    .set_feature_tier(name, *bp, UnixMicros(0))
                    .await,
            )?;
        }
        for (name, bp) in &self.regions {
            define(
                ledger
                    .multipliers()
                    .set_region(name, *bp, UnixMicros(0))
                    .await,
            )?;
        }
        for b in &self.budgets {
            store_budget(&ledger, b).await?;
        }
        Ok(Tenantry::from_inner(Inner {
            store,
            ledger,
            client,
            engine: self.engine,
            status_path: self.status_path,
            hold_ttl: self.hold_ttl,
            hold_reconcile: self.hold_reconcile,
            input_tokens: self.input_tokens,
            assignments: Arc::new(self.assignments),
            #[cfg(feature = "metrics")]
            metrics_cache: tenantry_metrics::MetricsCache::default(),
            #[cfg(feature = "metrics")]
            registered: std::sync::Mutex::new(std::collections::HashSet::new()),
        }))
    }
}

/// A multiplier defined before (same name, same start) is kept.
fn define(result: tenantry_cost::Result<()>) -> Result<()> {
    match result {
        Err(tenantry_cost::Error::Database(sqlx::Error::Database(e)))
            if e.is_unique_violation() =>
        {
            Ok(())
        }
        other => Ok(other?),
    }
}

async fn store_budget(ledger: &Ledger, b: &Budget) -> Result<()> {
    let now = UnixMicros::now();
    let feature = b.feature.clone().unwrap_or_default();
    let tenant = tenantry_cost::TenantId::new(b.tenant.as_str())?;
    let in_force = ledger.budgets().status(&tenant, &feature, now).await?;
    let mut policy =
        BudgetPolicy::new(tenant, b.period, b.limit, now).with_alerts(b.alerts.clone());
    if let Some(feature) = &b.feature {
        policy = policy.for_feature(feature);
    }
    if let Some(soft) = b.soft {
        policy = policy.with_soft_limit(soft);
    }
    let same = in_force.iter().any(|s| {
        s.policy.feature == policy.feature
            && s.policy.window == policy.window
            && s.policy.limit == policy.limit
            && s.policy.alert_permille == policy.alert_permille
            && s.policy.soft_limit_permille == policy.soft_limit_permille
    });
    if !same {
        ledger.budgets().set(&policy).await?;
    }
    Ok(())
}
