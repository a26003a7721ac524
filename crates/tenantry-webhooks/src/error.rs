//! The crate's one error type.

/// Everything that can go wrong registering endpoints or delivering to them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL does not parse, or is not `http`/`https`.
    #[error("invalid endpoint URL: {0}")]
    InvalidUrl(String),
    /// The endpoint's host resolves to a private, loopback, link-local or otherwise
    /// non-public address, and the host did not allow those
    /// ([`AddressPolicy::allow_private`](crate::AddressPolicy::allow_private)).
    #[error("endpoint address {address} is not public")]
    AddressRefused {
        /// The address refused.
        address: std::net::IpAddr,
    },
    /// The endpoint's host does not resolve.
    #[error("endpoint host `{host}` does not resolve")]
    Unresolvable {
        /// The host name.
        host: String,
    },
    /// A secret that is not `whsec_` and the base64 of 24 to 64 bytes.
    #[error("a webhook secret is `whsec_` and the base64 of 24 to 64 bytes")]
    InvalidSecret,
    /// An event type filter that is empty or too long.
    #[error("event types are 1..=64 bytes")]
    InvalidEventType,
    /// No endpoint with this id for this tenant.
    #[error("webhook endpoint not found")]
    NotFound,
    /// The event stream failed.
    #[error("event stream error")]
    Feed(#[from] tenantry_queue::Error),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The endpoints' schema cannot be migrated.
    #[error("the webhooks schema cannot be migrated")]
    Migrate(#[from] tenantry_core::migrate::MigrateError),
    /// sea-query could not build a statement.
    #[error("could not build SQL")]
    Sql(#[from] sea_query::error::Error),
    /// A stored row this version cannot read.
    #[error("invalid stored endpoint: {0}")]
    InvalidRow(String),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
