//! Holds: the worst-case cost of a request held against its budgets before dispatch, settled
//! to the actual cost when the usage lands, or released.
//!
//! Holding takes the tenant's budget rows `FOR UPDATE` on PostgreSQL (SQLite serializes
//! writers with `BEGIN IMMEDIATE`), then checks `spent + held + requested ≤ limit` for the
//! tenant-wide budget and the feature's budget, and inserts the hold, in one
//! transaction. Settling records the actual line and closes the hold in one
//! transaction under the same lock, so no admission can see neither of them.

use sea_query::{Expr, ExprTrait, Order, Query, UpdateStatement};
use serde::{Deserialize, Serialize};
use tenantry_core::{Lane, TenantId, UnixMicros};

use crate::budget::{BudgetStatus, load_status};
use crate::error::{Error, Result};
use crate::formula::{self, TokenBuckets};
use crate::ledger::{Ledger, LedgerEntry, Recorded};
use crate::money::Nanos;
use crate::schema::Reservation;

/// Holds inserted per statement by [`Ledger::hold_many`]: 6 bound values a row, far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bound values per statement.
const HOLD_CHUNK: usize = 1_000;

/// A request about to be dispatched, to hold its worst-case cost for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HoldRequest {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The feature.
    pub feature: String,
    /// The model the request names.
    pub model: String,
    /// Batch or synchronous.
    pub lane: Lane,
    /// The data-residency the request asks for, if any.
    pub inference_geo: Option<String>,
    /// The feature tier whose multiplier will apply.
    pub feature_tier: Option<String>,
    /// The region whose multiplier will apply.
    pub region: Option<String>,
    /// Counted input tokens (e.g. from the count-tokens endpoint).
    pub input_tokens: i64,
    /// The request's `max_tokens`.
    pub max_tokens: i64,
    /// When the request is made.
    pub at: UnixMicros,
    /// How long the hold lasts before it stops counting.
    pub ttl_micros: i64,
}

impl HoldRequest {
    /// How long a hold lasts by default: 25 hours, longer than a batch may take (24 hours) so
    /// a hold never lapses under a request the API may still answer.
    pub const DEFAULT_TTL_MICROS: i64 = 25 * 3_600 * 1_000_000;

    /// A request of `tenant_id`'s `feature` to `model` on `lane` that may write up to
    /// `max_tokens`, made at `at`. No counted input tokens yet
    /// ([`with_input_tokens`](Self::with_input_tokens)), a TTL of
    /// [`DEFAULT_TTL_MICROS`](Self::DEFAULT_TTL_MICROS), no residency or multipliers (set the
    /// public fields).
    #[must_use]
    pub fn new(
        tenant_id: TenantId,
        feature: impl Into<String>,
        model: impl Into<String>,
        lane: Lane,
        max_tokens: i64,
        at: UnixMicros,
    ) -> Self {
        Self {
            tenant_id,
            feature: feature.into(),
            model: model.into(),
            lane,
            inference_geo: None,
            feature_tier: None,
            region: None,
            input_tokens: 0,
            max_tokens,
            at,
            ttl_micros: Self::DEFAULT_TTL_MICROS,
        }
    }

    /// Sets the counted input tokens (e.g. from the count-tokens endpoint).
    #[must_use]
    pub fn with_input_tokens(mut self, input_tokens: i64) -> Self {
        self.input_tokens = input_tokens;
        self
    }

    /// Sets how long the hold lasts before it stops counting.
    #[must_use]
    pub fn with_ttl_micros(mut self, ttl_micros: i64) -> Self {
        self.ttl_micros = ttl_micros;
        self
    }
}

/// Money held against the budgets for one request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hold {
    /// The hold's id, to pass to [`Ledger::settle`] or [`Ledger::release`].
    pub id: i64,
    /// The worst-case amount held.
    pub amount: Nanos,
    /// When it stops counting if neither settled nor released.
    pub expires_at: UnixMicros,
}

/// Moves a live hold to `state`, linking the line that settled it. With `tenant_id`,
/// only that tenant's hold matches (a line never settles another tenant's hold).
pub(crate) fn close_hold(
    id: i64,
    state: &str,
    line_id: Option<i64>,
    tenant_id: Option<&str>,
) -> UpdateStatement {
    let mut q = Query::update();
    q.table(Reservation::Table)
        .value(Reservation::State, state)
        .value(Reservation::LineId, line_id)
        .and_where(Expr::col(Reservation::Id).eq(id))
        .and_where(Expr::col(Reservation::State).eq("held"));
    if let Some(t) = tenant_id {
        q.and_where(Expr::col(Reservation::TenantId).eq(t));
    }
    q
}

/// Checks one budget for a call that asks to hold `requested` against it, `urgent` of it on the
/// urgent lane; returns what the budget has used with the call's holds.
///
/// Past the soft limit, a call with urgent requests is refused as [`Error::SoftLimitReached`]
/// (it may go down the batch lane); past the limit, as [`Error::BudgetExceeded`].
fn admit(s: &BudgetStatus, requested: i64, urgent: i64) -> Result<i64> {
    let total = s.spent.0.saturating_add(s.held.0).saturating_add(requested);
    if let Some(soft) = s.policy.soft_limit_permille
        && urgent > 0
        && i128::from(total) * 1000 > i128::from(s.policy.limit.0) * i128::from(soft)
    {
        return Err(Error::SoftLimitReached {
            tenant_id: s.policy.tenant_id.clone(),
            feature: s.policy.feature.clone(),
            soft_limit_permille: soft,
            limit: s.policy.limit,
            spent: s.spent,
            held: s.held,
            requested: Nanos(requested),
        });
    }
    if total > s.policy.limit.0 {
        return Err(Error::BudgetExceeded {
            tenant_id: s.policy.tenant_id.clone(),
            feature: s.policy.feature.clone(),
            limit: s.policy.limit,
            spent: s.spent,
            held: s.held,
            requested: Nanos(requested),
            window_start: s.window_start.0,
            window_end: s.window_end.0,
        });
    }
    Ok(total)
}

impl Ledger {
    /// The worst-case cost of a request: counted input tokens at the input rate plus
    /// `max_tokens` at the output rate, after long-context selection and every multiplier the
    /// request will get (batch, data residency, feature tier, region).
    ///
    /// Cache writes cost more than plain input (1.25× or 2×); a request that writes the cache
    /// can therefore settle above its estimate, and settling records the actual cost anyway.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] naming `input_tokens` or `max_tokens` when either is negative or
    /// above [`MAX_TOKENS`](formula::MAX_TOKENS); as [`Ledger::record`]'s pricing: an
    /// unpriceable request fails closed.
    pub async fn estimate(&self, req: &HoldRequest) -> Result<Nanos> {
        self.estimate_cached(req, &mut std::collections::HashMap::new())
            .await
    }

    /// [`Ledger::estimate`] with a rate cache shared across requests.
    async fn estimate_cached(
        &self,
        req: &HoldRequest,
        cache: &mut std::collections::HashMap<(&'static str, String, UnixMicros), i64>,
    ) -> Result<Nanos> {
        // Named after the request's own fields, so a caller learns which one is too large
        // (the same bound every ledger line's token buckets have).
        formula::check_range("input_tokens", req.input_tokens, 0, formula::MAX_TOKENS)?;
        formula::check_range("max_tokens", req.max_tokens, 0, formula::MAX_TOKENS)?;
        let probe = LedgerEntry {
            source: String::new(),
            request_id: String::new(),
            tenant_id: req.tenant_id.clone(),
            user_id: None,
            feature: req.feature.clone(),
            model: req.model.clone(),
            lane: req.lane,
            occurred_at: req.at,
            job_id: None,
            batch_id: None,
            tokens: TokenBuckets {
                input: req.input_tokens,
                output: req.max_tokens,
                ..TokenBuckets::default()
            },
            inference_geo: req.inference_geo.clone(),
            feature_tier: req.feature_tier.clone(),
            region: req.region.clone(),
        };
        let snapshot = self.full_snapshot(&probe, cache).await?;
        Ok(formula::line_cost(&probe.tokens, &snapshot)?.cost)
    }

    /// Holds the request's worst-case cost against the tenant's budget and the feature's
    /// budget, atomically. Without any budget policy the hold is still recorded (it
    /// simply cannot fail on a limit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tenantry_cost::{BudgetPolicy, Lane, Ledger, Nanos, Window, PriceBook,
    ///     HoldRequest, UnixMicros};
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
    ///     .connect("sqlite::memory:").await?;
    /// let ledger = Ledger::sqlite(pool,
    ///     PriceBook::anthropic_default());
    /// ledger.migrate().await?;
    /// let at = UnixMicros::from_ymd(2026, 3, 1)?;
    /// ledger.budgets().set(&BudgetPolicy::new("acme".parse()?, Window::Month,
    ///     Nanos(10_000_000), at)).await?;
    /// let req = HoldRequest::new("acme".parse()?, "chat", "claude-haiku-4-5", Lane::Urgent,
    ///     1_000, at).with_input_tokens(1_000).with_ttl_micros(600_000_000);
    /// let held = ledger.hold(&req).await?; // $0.006 of $0.01
    /// assert_eq!(held.amount, Nanos(6_000_000));
    /// let err = ledger.hold(&req).await.unwrap_err();
    /// assert!(err.is_budget_exceeded());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BudgetExceeded`] with the limit, spent, held and requested amounts;
    /// pricing errors as [`Ledger::estimate`]; [`Error::Database`].
    pub async fn hold(&self, req: &HoldRequest) -> Result<Hold> {
        let amount = self.estimate(req).await?;
        let expires_at = UnixMicros(req.at.0.saturating_add(Ord::max(req.ttl_micros, 0)));
        let insert = Query::insert()
            .into_table(Reservation::Table)
            .columns([
                Reservation::TenantId,
                Reservation::Feature,
                Reservation::AmountNanos,
                Reservation::CreatedAt,
                Reservation::ExpiresAt,
                Reservation::State,
            ])
            .values([
                req.tenant_id.as_str().into(),
                req.feature.as_str().into(),
                amount.0.into(),
                req.at.0.into(),
                expires_at.0.into(),
                "held".into(),
            ])?
            .returning_col(Reservation::Id)
            .to_owned();
        let mut tx = self.pool.begin().await?;
        let statuses = load_status(&mut tx, &req.tenant_id, &req.feature, req.at).await?;
        let urgent = if req.lane == Lane::Urgent {
            amount.0
        } else {
            0
        };
        let mut used = Vec::with_capacity(statuses.len());
        for s in statuses {
            let total = admit(&s, amount.0, urgent)?;
            used.push((s, total));
        }
        let (id,): (i64,) = tx.fetch_one(&insert).await?;
        let alerts = crate::alert::fire(&mut tx, self.alert_sink(), &used, req.at).await?;
        self.commit_alerts(tx, &alerts).await?;
        Ok(Hold {
            id,
            amount,
            expires_at,
        })
    }

    /// Holds many requests' worst-case costs in one transaction, all or nothing.
    ///
    /// Each budget in force for any of the requests (tenant-wide or per feature, in the window
    /// containing each request's `at`) is locked and read once, and checked once for the sum of
    /// the requests it covers: `spent + held + Σ requested ≤ limit`. Then the holds are
    /// inserted, 1,000 per statement in the same transaction, so any number of requests fits
    /// the databases' bound-value limits. If any budget would be exceeded, nothing is held. Returns one
    /// [`Hold`] per request, in order; an empty slice holds nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tenantry_cost::{BudgetPolicy, Lane, Ledger, Nanos, Window, PriceBook,
    ///     HoldRequest, UnixMicros};
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
    ///     .connect("sqlite::memory:").await?;
    /// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
    /// ledger.migrate().await?;
    /// let at = UnixMicros::from_ymd(2026, 3, 1)?;
    /// ledger.budgets().set(&BudgetPolicy::new("acme".parse()?, Window::Month,
    ///     Nanos(15_000_000), at)).await?;
    /// let req = HoldRequest::new("acme".parse()?, "chat", "claude-haiku-4-5", Lane::Urgent,
    ///     1_000, at).with_input_tokens(1_000).with_ttl_micros(600_000_000);
    /// let held = ledger.hold_many(&[req.clone(), req.clone()]).await?; // $0.012 of $0.015
    /// assert_eq!(held.len(), 2);
    /// let err = ledger.hold_many(&[req]).await.unwrap_err();
    /// assert!(err.is_budget_exceeded());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BudgetExceeded`] for the first budget the batch would exceed, with the limit,
    /// spent, held and the batch's total requested against that budget; pricing errors as
    /// [`Ledger::estimate`] (nothing is held); [`Error::Database`].
    pub async fn hold_many(&self, reqs: &[HoldRequest]) -> Result<Vec<Hold>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut cache = std::collections::HashMap::new();
        let mut amounts = Vec::with_capacity(reqs.len());
        for r in reqs {
            let amount = self.estimate_cached(r, &mut cache).await?;
            let expires_at = UnixMicros(r.at.0.saturating_add(Ord::max(r.ttl_micros, 0)));
            amounts.push((amount, expires_at));
        }
        // One multi-row insert per chunk, all in the transaction below: a single statement for
        // every hold would bind 6 values per request and pass SQLite's 32,766 bound variables
        // at about 5,400 requests (PostgreSQL's 65,535 at about 10,900).
        let mut inserts = Vec::with_capacity(reqs.len().div_ceil(HOLD_CHUNK));
        for (chunk, chunk_amounts) in reqs.chunks(HOLD_CHUNK).zip(amounts.chunks(HOLD_CHUNK)) {
            let mut insert = Query::insert();
            insert.into_table(Reservation::Table).columns([
                Reservation::TenantId,
                Reservation::Feature,
                Reservation::AmountNanos,
                Reservation::CreatedAt,
                Reservation::ExpiresAt,
                Reservation::State,
            ]);
            for (r, (amount, expires_at)) in chunk.iter().zip(chunk_amounts) {
                insert.values([
                    r.tenant_id.as_str().into(),
                    r.feature.as_str().into(),
                    amount.0.into(),
                    r.at.0.into(),
                    expires_at.0.into(),
                    "held".into(),
                ])?;
            }
            insert.returning_col(Reservation::Id);
            inserts.push(insert);
        }
        let mut tx = self.pool.begin().await?;
        // One entry per budget window: its status, the batch's total against it and the part
        // of that total on the urgent lane.
        let mut checks: Vec<(BudgetStatus, i64, i64)> = Vec::new();
        let mut loaded: std::collections::HashMap<(&str, &str, UnixMicros), Vec<usize>> =
            std::collections::HashMap::new();
        // Lock tenants in one order, so two batches over the same tenants cannot deadlock.
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by(|&a, &b| reqs[a].tenant_id.cmp(&reqs[b].tenant_id));
        for i in order {
            let (r, (amount, _)) = (&reqs[i], &amounts[i]);
            let key = (r.tenant_id.as_str(), r.feature.as_str(), r.at);
            if let std::collections::hash_map::Entry::Vacant(slot) = loaded.entry(key) {
                let statuses = load_status(&mut tx, &r.tenant_id, &r.feature, r.at).await?;
                let mut idx = Vec::with_capacity(statuses.len());
                for s in statuses {
                    let same = checks.iter().position(|(c, _, _)| {
                        c.policy.tenant_id == s.policy.tenant_id
                            && c.policy.feature == s.policy.feature
                            && c.window_start == s.window_start
                    });
                    idx.push(same.unwrap_or_else(|| {
                        checks.push((s, 0, 0));
                        checks.len() - 1
                    }));
                }
                slot.insert(idx);
            }
            for &i in &loaded[&key] {
                checks[i].1 = checks[i].1.saturating_add(amount.0);
                if r.lane == Lane::Urgent {
                    checks[i].2 = checks[i].2.saturating_add(amount.0);
                }
            }
        }
        let mut used = Vec::with_capacity(checks.len());
        for (s, requested, urgent) in checks {
            let total = admit(&s, requested, urgent)?;
            used.push((s, total));
        }
        let mut ids = Vec::with_capacity(reqs.len());
        for insert in &inserts {
            let rows: Vec<(i64,)> = tx.fetch_all(insert).await?;
            let mut chunk_ids: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
            // One statement draws its ids in row order on both backends, and a later
            // statement draws larger ones; RETURNING does not promise an order, so sort
            // each chunk's ids back into it.
            chunk_ids.sort_unstable();
            ids.extend(chunk_ids);
        }
        if ids.len() != reqs.len() {
            return Err(Error::InvalidRow(format!(
                "inserted {} holds for {} requests",
                ids.len(),
                reqs.len()
            )));
        }
        let latest = reqs.iter().map(|r| r.at).max().unwrap_or(UnixMicros(0));
        let alerts = crate::alert::fire(&mut tx, self.alert_sink(), &used, latest).await?;
        self.commit_alerts(tx, &alerts).await?;
        Ok(ids
            .into_iter()
            .zip(&amounts)
            .map(|(id, &(amount, expires_at))| Hold {
                id,
                amount,
                expires_at,
            })
            .collect())
    }

    /// Records the actual usage of a held request and closes the hold, in one
    /// transaction: the actual cost lands, the rest of the hold is released. If the usage was
    /// already recorded (a duplicate delivery), the hold is released and nothing is
    /// charged twice.
    ///
    /// # Errors
    ///
    /// As [`Ledger::record`].
    pub async fn settle(&self, hold_id: i64, record: &LedgerEntry) -> Result<Recorded> {
        let snapshot = self
            .full_snapshot(record, &mut std::collections::HashMap::new())
            .await?;
        self.insert_one(record, &snapshot, None, Some(hold_id))
            .await
    }

    /// Releases a live hold (the request failed or was canceled). Returns `false` when
    /// it was no longer held.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn release(&self, hold_id: i64) -> Result<bool> {
        let stmt = close_hold(hold_id, "released", None, None);
        Ok(self.pool.execute(&stmt).await? == 1)
    }

    /// Releases many live holds in one transaction (a call whose work was never
    /// stored); those no longer held are left as they are. Returns how many were released.
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; then none is released.
    pub async fn release_many(&self, hold_ids: &[i64]) -> Result<u64> {
        let updates: Vec<UpdateStatement> = hold_ids
            .chunks(HOLD_CHUNK)
            .map(|ids| {
                Query::update()
                    .table(Reservation::Table)
                    .value(Reservation::State, "released")
                    .and_where(Expr::col(Reservation::Id).is_in(ids.iter().copied()))
                    .and_where(Expr::col(Reservation::State).eq("held"))
                    .to_owned()
            })
            .collect();
        if updates.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut released = 0;
        for update in &updates {
            released += tx.execute(update).await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// The tenants that have at least one live hold at `at` (held and not yet expired), in
    /// order: the tenants whose holds a caller may have to give back.
    ///
    /// # Errors
    ///
    /// [`Error::Database`]; [`Error::InvalidRow`] for a stored tenant id that is not valid.
    pub async fn held_tenants(&self, at: UnixMicros) -> Result<Vec<TenantId>> {
        let stmt = Query::select()
            .distinct()
            .column(Reservation::TenantId)
            .from(Reservation::Table)
            .and_where(Expr::col(Reservation::State).eq("held"))
            .and_where(Expr::col(Reservation::ExpiresAt).gt(at.0))
            .order_by(Reservation::TenantId, Order::Asc)
            .to_owned();
        let rows: Vec<(String,)> = self.pool.fetch_all(&stmt).await?;
        rows.into_iter()
            .map(|(tenant,)| crate::ledger::stored_tenant(tenant))
            .collect()
    }

    /// The ids of a tenant's live holds (held, not expired at `at`) taken before
    /// `taken_before`, oldest first: the holds a caller reconciling them with its own records
    /// looks at, leaving the ones taken moments ago to the call taking them.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn holds_in_force(
        &self,
        tenant_id: &TenantId,
        taken_before: UnixMicros,
        at: UnixMicros,
    ) -> Result<Vec<i64>> {
        let stmt = Query::select()
            .column(Reservation::Id)
            .from(Reservation::Table)
            .and_where(Expr::col(Reservation::TenantId).eq(tenant_id.as_str()))
            .and_where(Expr::col(Reservation::State).eq("held"))
            .and_where(Expr::col(Reservation::ExpiresAt).gt(at.0))
            .and_where(Expr::col(Reservation::CreatedAt).lt(taken_before.0))
            .order_by(Reservation::Id, Order::Asc)
            .to_owned();
        let rows: Vec<(i64,)> = self.pool.fetch_all(&stmt).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Marks holds whose time ran out as released (they already stopped counting
    /// against budgets when they expired; this only tidies their state). Returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn release_expired(&self, now: UnixMicros) -> Result<u64> {
        let stmt = Query::update()
            .table(Reservation::Table)
            .value(Reservation::State, "released")
            .and_where(Expr::col(Reservation::State).eq("held"))
            .and_where(Expr::col(Reservation::ExpiresAt).lte(now.0))
            .to_owned();
        Ok(self.pool.execute(&stmt).await?)
    }
}
