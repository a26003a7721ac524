//! Endpoints: registered per tenant (URL, secret, event types), each with its own cursor in the
//! tenant's event stream; replayed from a position, re-enabled after being disabled.

use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_core::UnixMicros;
use tenantry_core::db::Pool;
use tenantry_queue::{Feed, Position, TenantId};
use url::Url;

use crate::address::AddressPolicy;
use crate::error::{Error, Result};
use crate::schema::Endpoints;
use crate::signing::Secret;

/// The longest event type (or type pattern) accepted, in bytes.
const MAX_TYPE: usize = 64;

/// A new endpoint: where to send, how to sign, which event types.
#[derive(Debug, Clone)]
#[must_use]
pub struct NewEndpoint {
    url: String,
    secret: Secret,
    event_types: Vec<String>,
    from: Option<Position>,
}

impl NewEndpoint {
    /// An endpoint at `url` signed with `secret`. Default: every event type, starting after
    /// the tenant's latest event.
    pub fn new(url: impl Into<String>, secret: Secret) -> Self {
        Self {
            url: url.into(),
            secret,
            event_types: Vec::new(),
            from: None,
        }
    }

    /// Only these event types: exact (`budget.threshold`) or a prefix ending in `.*`
    /// (`job.*`). Default: every type.
    pub fn event_types(mut self, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Starts after this position of the tenant's stream instead (`Position::START`: from the
    /// first event still stored). Default: after the latest event.
    pub fn starting_after(mut self, position: Position) -> Self {
        self.from = Some(position);
        self
    }
}

/// A registered endpoint, as stored (the secret is not read back).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its id (`we_…`).
    pub id: String,
    /// The tenant whose events it receives.
    pub tenant: TenantId,
    /// Where they are sent.
    pub url: String,
    /// The event types it takes (empty: all).
    pub event_types: Vec<String>,
    /// `false` once a run of failures disabled it.
    pub enabled: bool,
    /// The position delivered up to.
    pub position: Position,
    /// Failed attempts in a row.
    pub failures: u32,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

impl Endpoint {
    /// Whether it takes events of type `kind`.
    #[must_use]
    pub fn wants(&self, kind: &str) -> bool {
        wants(&self.event_types, kind)
    }
}

pub(crate) fn wants(types: &[String], kind: &str) -> bool {
    types.is_empty()
        || types.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => t == kind,
        })
}

/// A stored endpoint row.
#[derive(sqlx::FromRow)]
pub(crate) struct EndpointRow {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) event_types: String,
    pub(crate) enabled: bool,
    pub(crate) position: i64,
    pub(crate) generation: i64,
    pub(crate) failures: i64,
    pub(crate) last_error: Option<String>,
}

pub(crate) const COLUMNS: [Endpoints; 10] = [
    Endpoints::Id,
    Endpoints::Tenant,
    Endpoints::Url,
    Endpoints::Secret,
    Endpoints::EventTypes,
    Endpoints::Enabled,
    Endpoints::Position,
    Endpoints::Generation,
    Endpoints::Failures,
    Endpoints::LastError,
];

impl EndpointRow {
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        Ok(Endpoint {
            id: self.id.clone(),
            tenant: TenantId::new(self.tenant.as_str())
                .map_err(|_| Error::InvalidRow("tenant id".into()))?,
            url: self.url.clone(),
            event_types: serde_json::from_str(&self.event_types)
                .map_err(|_| Error::InvalidRow("event types".into()))?,
            enabled: self.enabled,
            position: Position::from_i64(self.position),
            failures: u32::try_from(self.failures).unwrap_or(u32::MAX),
            last_error: self.last_error.clone(),
        })
    }
}

/// The webhooks of one database: endpoints registered per tenant, delivered from the tenants'
/// event streams by a [`Sender`](crate::Sender).
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub(crate) feed: Feed,
    pub(crate) policy: AddressPolicy,
}

impl Webhooks {
    /// The webhooks of the database `feed` reads. Default address policy: public addresses
    /// only ([`with_address_policy`](Self::with_address_policy)).
    #[must_use]
    pub fn new(feed: Feed) -> Self {
        Self {
            feed,
            policy: AddressPolicy::default(),
        }
    }

    /// The same webhooks under another address policy.
    #[must_use]
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn pool(&self) -> &Pool {
        self.feed.pool()
    }

    /// Creates or upgrades the endpoints' table ([`MIGRATIONS`](crate::MIGRATIONS)).
    ///
    /// # Errors
    ///
    /// [`Error::Migrate`].
    pub async fn migrate(&self) -> Result<()> {
        tenantry_core::migrate::migrate(self.pool(), &[&crate::MIGRATIONS]).await?;
        Ok(())
    }

    /// Registers an endpoint for a tenant's events.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], [`Error::AddressRefused`], [`Error::Unresolvable`],
    /// [`Error::InvalidEventType`]; a database error.
    pub async fn register(&self, tenant: &TenantId, new: NewEndpoint) -> Result<Endpoint> {
        let url = Url::parse(&new.url).map_err(|e| Error::InvalidUrl(e.to_string()))?;
        self.policy.check(&url).await?;
        if new
            .event_types
            .iter()
            .any(|t| t.is_empty() || t.len() > MAX_TYPE)
        {
            return Err(Error::InvalidEventType);
        }
        let from = match new.from {
            Some(p) => p,
            None => self.feed.latest_position(tenant).await?,
        };
        let id = format!("we_{}", uuid::Uuid::now_v7().simple());
        let insert = Query::insert()
            .into_table(Endpoints::Table)
            .columns([
                Endpoints::Id,
                Endpoints::Tenant,
                Endpoints::Url,
                Endpoints::Secret,
                Endpoints::EventTypes,
                Endpoints::Enabled,
                Endpoints::Position,
                Endpoints::Generation,
                Endpoints::Failures,
                Endpoints::CreatedAt,
            ])
            .values([
                id.as_str().into(),
                tenant.as_str().into(),
                url.as_str().into(),
                new.secret.expose().into(),
                serde_json::to_string(&new.event_types)
                    .unwrap_or_else(|_| "[]".into())
                    .into(),
                true.into(),
                from.get().into(),
                0_i64.into(),
                0_i64.into(),
                UnixMicros::now().0.into(),
            ])?
            .to_owned();
        self.pool().execute(&insert).await?;
        self.endpoint(tenant, &id).await
    }

    /// One of a tenant's endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also for another tenant's endpoint); a database error.
    pub async fn endpoint(&self, tenant: &TenantId, id: &str) -> Result<Endpoint> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(Endpoints::Table)
            .and_where(Expr::col(Endpoints::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(Endpoints::Id).eq(id))
            .to_owned();
        let row: Option<EndpointRow> = self.pool().fetch_optional(&select).await?;
        row.ok_or(Error::NotFound)?.endpoint()
    }

    /// A tenant's endpoints, oldest first.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        let select = Query::select()
            .columns(COLUMNS)
            .from(Endpoints::Table)
            .and_where(Expr::col(Endpoints::Tenant).eq(tenant.as_str()))
            .order_by(Endpoints::Id, Order::Asc)
            .to_owned();
        let rows: Vec<EndpointRow> = self.pool().fetch_all(&select).await?;
        rows.iter().map(EndpointRow::endpoint).collect()
    }

    /// Delivers again every event after `after` (the endpoint's receiver deduplicates by
    /// `webhook-id`), and re-enables the endpoint. A delivery round running meanwhile cannot
    /// move the cursor past the replay.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a database error.
    pub async fn replay(&self, tenant: &TenantId, id: &str, after: Position) -> Result<()> {
        self.reset(tenant, id, Some(after)).await
    }

    /// Re-enables a disabled endpoint where its cursor stands, clearing its failures.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a database error.
    pub async fn enable(&self, tenant: &TenantId, id: &str) -> Result<()> {
        self.reset(tenant, id, None).await
    }

    async fn reset(&self, tenant: &TenantId, id: &str, position: Option<Position>) -> Result<()> {
        let mut update = Query::update();
        update
            .table(Endpoints::Table)
            .value(Endpoints::Enabled, true)
            .value(Endpoints::Failures, 0_i64)
            .value(Endpoints::RetryAt, Option::<i64>::None)
            .value(Endpoints::DisabledAt, Option::<i64>::None)
            .value(
                Endpoints::Generation,
                Expr::col(Endpoints::Generation).add(1),
            )
            .and_where(Expr::col(Endpoints::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(Endpoints::Id).eq(id));
        if let Some(p) = position {
            update.value(Endpoints::Position, p.get());
        }
        if self.pool().execute(&update).await? == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Deletes an endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a database error.
    pub async fn delete(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let delete = Query::delete()
            .from_table(Endpoints::Table)
            .and_where(Expr::col(Endpoints::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(Endpoints::Id).eq(id))
            .to_owned();
        if self.pool().execute(&delete).await? == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_filters_match_exactly_or_by_prefix() {
        let types = vec!["job.*".to_owned(), "budget.threshold".to_owned()];
        assert!(wants(&types, "job.succeeded"));
        assert!(wants(&types, "budget.threshold"));
        assert!(!wants(&types, "budget.other"));
        assert!(wants(&[], "anything"));
    }
}
