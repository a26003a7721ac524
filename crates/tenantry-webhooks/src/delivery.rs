//! Delivery: each endpoint reads its tenant's event stream from its own cursor, in order, and
//! sends every event it takes as a signed POST; the cursor moves only past events delivered.
//!
//! At least once: the cursor is saved after the sends it covers, so a sender killed between a
//! send and the save sends those events again on its next round (the `webhook-id` is the
//! same, for the receiver to deduplicate); nothing is skipped. In order per endpoint: an event
//! is sent only after every earlier one it takes was accepted. A failed send (no answer, or a
//! status other than 2xx) stops the endpoint's round; it is tried again after a backoff that
//! doubles with each failure in a row, and disabled after
//! [`disable_after`](SenderConfig::disable_after) of them, until
//! [`Webhooks::enable`](crate::Webhooks::enable) or a replay.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use sea_query::{Expr, ExprTrait, Query};
use tenantry_core::UnixMicros;
use tenantry_queue::{FeedEvent, Position, TenantId};
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::endpoint::{COLUMNS, EndpointRow, Webhooks, wants};
use crate::error::Result;
use crate::schema::Endpoints;
use crate::signing::Secret;

/// How a [`Sender`] paces itself. Every setter states its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct SenderConfig {
    timeout: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    disable_after: u32,
    concurrency: usize,
    save_every: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3_600),
            disable_after: 10,
            concurrency: 16,
            save_every: 100,
        }
    }
}

impl SenderConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long one send may take before it counts as failed. Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The wait after the first failure in a row; it doubles with each further one up to
    /// `max`. Default 5 s, up to 1 h.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Failures in a row that disable an endpoint. Default 10.
    pub fn disable_after(mut self, failures: u32) -> Self {
        self.disable_after = Ord::max(failures, 1);
        self
    }

    /// Endpoints delivered to at once (each in its own order). Default 16.
    pub fn concurrency(mut self, endpoints: usize) -> Self {
        self.concurrency = Ord::max(endpoints, 1);
        self
    }

    /// Events delivered between two saves of an endpoint's cursor (at most this many are sent
    /// again after a crash). Default 100.
    pub fn save_every(mut self, events: usize) -> Self {
        self.save_every = Ord::max(events, 1);
        self
    }

    fn backoff_after(&self, failures: u32) -> Duration {
        let doublings = Ord::min(failures.saturating_sub(1), 30);
        self.backoff_base
            .saturating_mul(1_u32 << doublings)
            .min(self.backoff_max)
    }
}

/// What one [`Sender::round`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Round {
    /// Events accepted by endpoints.
    pub delivered: u64,
    /// Events passed over (types an endpoint does not take).
    pub skipped: u64,
    /// Endpoints whose send failed this round.
    pub failed: u64,
    /// Endpoints disabled this round.
    pub disabled: u64,
}

impl Round {
    fn add(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.disabled += other.disabled;
    }
}

/// Sends the tenants' events to their endpoints. Run one per database.
///
/// ```no_run
/// # async fn demo(feed: tenantry_queue::Feed) -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_webhooks::{NewEndpoint, Secret, Sender, SenderConfig, Webhooks};
///
/// let hooks = Webhooks::new(feed);
/// hooks.migrate().await?;
/// let acme = "acme".parse()?;
/// let secret = Secret::generate(); // hand `secret.expose()` to the endpoint's owner
/// hooks.register(&acme, NewEndpoint::new("https://billing.example.com/hooks", secret)
///     .event_types(["budget.threshold", "job.*"])).await?;
/// let sender = Sender::new(hooks, SenderConfig::new())?;
/// sender.run(std::future::pending()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Sender {
    hooks: Webhooks,
    client: reqwest::Client,
    config: SenderConfig,
}

/// Why a send failed, as stored on the endpoint.
struct Failed(String);

impl Sender {
    /// A sender of `hooks`' endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) if the HTTP client cannot be built.
    pub fn new(hooks: Webhooks, config: SenderConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::InvalidUrl(format!("HTTP client: {e}")))?;
        Ok(Self {
            hooks,
            client,
            config,
        })
    }

    /// Delivers until `shutdown` completes: a round, then another at once if it delivered
    /// anything, else on the next wake-up of the event stream (or its poll interval).
    ///
    /// # Errors
    ///
    /// A database error that a round could not get past (the caller may start it again).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut changes = self.hooks.feed.changes().await?;
        tokio::pin!(shutdown);
        loop {
            let round = self.round().await?;
            if round.delivered > 0 || round.skipped > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = changes.next() => {}
            }
        }
    }

    /// One round: every enabled endpoint not waiting out a backoff gets the events after its
    /// cursor, up to its first failure.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn round(&self) -> Result<Round> {
        let now = UnixMicros::now().0;
        let select = Query::select()
            .columns(COLUMNS)
            .from(Endpoints::Table)
            .and_where(Expr::col(Endpoints::Enabled).eq(true))
            .and_where(
                Expr::col(Endpoints::RetryAt)
                    .is_null()
                    .or(Expr::col(Endpoints::RetryAt).lte(now)),
            )
            .to_owned();
        let rows: Vec<EndpointRow> = self.hooks.pool().fetch_all(&select).await?;
        let mut total = Round::default();
        let mut rounds = futures::stream::iter(rows)
            .map(|row| self.endpoint_round(row))
            .buffer_unordered(self.config.concurrency);
        while let Some(r) = rounds.next().await {
            total.add(r?);
        }
        Ok(total)
    }

    async fn endpoint_round(&self, row: EndpointRow) -> Result<Round> {
        let mut round = Round::default();
        let ready = match (Secret::parse(&row.secret), Url::parse(&row.url)) {
            (Ok(secret), Ok(url)) => match self.hooks.policy.check(&url).await {
                Ok(()) => Ok((secret, url)),
                Err(e) => Err(Failed(e.to_string())),
            },
            _ => Err(Failed("stored URL or secret is unreadable".into())),
        };
        let (secret, url) = match ready {
            Ok(ready) => ready,
            Err(failed) => {
                return self
                    .failed(&row, Position::from_i64(row.position), failed, round)
                    .await;
            }
        };
        let types: Vec<String> = serde_json::from_str(&row.event_types).unwrap_or_default();
        let tenant = TenantId::new(row.tenant.as_str())
            .map_err(|_| crate::Error::InvalidRow("tenant id".into()))?;
        let mut position = Position::from_i64(row.position);
        let mut unsaved = 0;
        loop {
            let events = self
                .hooks
                .feed
                .events_after(&tenant, position, PAGE)
                .await?;
            let full = events.len() >= PAGE as usize;
            for event in events {
                if wants(&types, &event.kind) {
                    if let Err(failed) = self.send(&url, &secret, &event).await {
                        return self.failed(&row, position, failed, round).await;
                    }
                    round.delivered += 1;
                    tenantry_queue::failpoint!("webhook.sent");
                } else {
                    round.skipped += 1;
                }
                position = event.position;
                unsaved += 1;
                if unsaved >= self.config.save_every {
                    self.save(&row, position).await?;
                    unsaved = 0;
                }
            }
            if !full {
                break;
            }
        }
        if unsaved > 0 || row.failures > 0 {
            self.save(&row, position).await?;
        }
        Ok(round)
    }

    /// Moves the cursor to `position` and clears the failures, unless a replay came between.
    async fn save(&self, row: &EndpointRow, position: Position) -> Result<()> {
        let update = Query::update()
            .table(Endpoints::Table)
            .value(Endpoints::Position, position.get())
            .value(Endpoints::Failures, 0_i64)
            .value(Endpoints::RetryAt, Option::<i64>::None)
            .value(Endpoints::LastError, Option::<String>::None)
            .and_where(Expr::col(Endpoints::Id).eq(row.id.as_str()))
            .and_where(Expr::col(Endpoints::Generation).eq(row.generation))
            .to_owned();
        self.hooks.pool().execute(&update).await?;
        tenantry_queue::failpoint!("webhook.saved");
        Ok(())
    }

    /// Records a failed send: the cursor up to what was delivered, one more failure, the next
    /// try after the backoff, and the endpoint disabled after a run of them.
    async fn failed(
        &self,
        row: &EndpointRow,
        position: Position,
        failed: Failed,
        mut round: Round,
    ) -> Result<Round> {
        let failures = u32::try_from(row.failures)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let now = UnixMicros::now().0;
        let wait =
            i64::try_from(self.config.backoff_after(failures).as_micros()).unwrap_or(i64::MAX);
        let disable = failures >= self.config.disable_after;
        tracing::warn!(endpoint = %row.id, failures, disable, error = %failed.0, "webhook delivery failed");
        let mut update = Query::update();
        update
            .table(Endpoints::Table)
            .value(Endpoints::Position, position.get())
            .value(Endpoints::Failures, i64::from(failures))
            .value(Endpoints::RetryAt, now.saturating_add(wait))
            .value(Endpoints::LastError, failed.0)
            .and_where(Expr::col(Endpoints::Id).eq(row.id.as_str()))
            .and_where(Expr::col(Endpoints::Generation).eq(row.generation));
        if disable {
            update
                .value(Endpoints::Enabled, false)
                .value(Endpoints::DisabledAt, now);
            round.disabled += 1;
        }
        self.hooks.pool().execute(&update).await?;
        round.failed += 1;
        Ok(round)
    }

    /// One signed POST of one event.
    async fn send(&self, url: &Url, secret: &Secret, event: &FeedEvent) -> Result<(), Failed> {
        let body = serde_json::to_vec(&payload(event)).map_err(|e| Failed(e.to_string()))?;
        let id = message_id(event.position);
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = secret.sign(&id, timestamp, &body);
        let response = self
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| Failed(format!("no answer: {}", e.without_url())))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Failed(format!("status {}", response.status().as_u16())))
        }
    }
}

/// Events read per page.
const PAGE: u32 = 500;

/// The `webhook-id` of an event: the same on every attempt, unique across tenants (positions
/// are drawn from one sequence).
#[must_use]
pub fn message_id(position: Position) -> String {
    format!("evt_{}", position.get())
}

/// The body of an event's webhook, in Standard Webhooks' shape: `type`, `timestamp` (when the
/// event committed) and `data` (the tenant, the position, and the job or the event's detail).
#[must_use]
pub fn payload(event: &FeedEvent) -> serde_json::Value {
    let mut data = serde_json::json!({
        "tenant": event.tenant.as_str(),
        "position": event.position.get(),
    });
    if let Some(job) = &event.job_id {
        data["job_id"] = job.as_str().into();
    }
    if let Some(detail) = &event.detail {
        data["detail"] = detail.clone();
    }
    serde_json::json!({
        "type": event.kind,
        "timestamp": event.at.format(&Rfc3339).unwrap_or_default(),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let c = SenderConfig::new().backoff(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<u128> = (1..=6).map(|f| c.backoff_after(f).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    }
}
