//! Signed webhooks for tenantry: each tenant's durable event stream (job events, budget
//! alerts) delivered to the endpoints the host registers for that tenant, signed the way the
//! [Standard Webhooks](https://www.standardwebhooks.com/) specification says.
//!
//! # Example
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tenantry_queue::{Feed, SqliteStore};
//! use tenantry_webhooks::{AddressPolicy, NewEndpoint, Secret, Webhooks};
//!
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let hooks = Webhooks::new(Feed::from(SqliteStore::open(pool).await?));
//! hooks.migrate().await?;
//! let acme = "acme".parse()?;
//! // Loopback and private addresses are refused unless the host allows them.
//! let local = NewEndpoint::new("http://127.0.0.1:8080/hooks", Secret::generate());
//! assert!(hooks.register(&acme, local.clone()).await.is_err());
//! let hooks = hooks.with_address_policy(AddressPolicy::public_only().allow_private(true));
//! let endpoint = hooks.register(&acme, local.event_types(["budget.threshold"])).await?;
//! assert!(endpoint.enabled && endpoint.wants("budget.threshold"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Delivery
//!
//! A [`Sender`] reads each endpoint's tenant stream from the endpoint's own cursor and POSTs
//! every event the endpoint takes, in order, at least once: the cursor is saved after the
//! sends it covers, so a sender killed mid-round sends the unsaved ones again (same
//! `webhook-id`) and loses none. A failed send is retried after a backoff that doubles with
//! each failure in a row; a run of failures disables the endpoint until it is enabled again or
//! replayed ([`Webhooks::replay`]) from a position.
//!
//! # Signatures
//!
//! Each request carries `webhook-id` (`evt_<position>`, the same on every attempt),
//! `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), keyed by the endpoint's
//! [`Secret`] (`whsec_<base64>`). [`Secret::verify`] checks one on the receiving side.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `postgres` | yes | endpoints and delivery on PostgreSQL |
//! | `sqlite` | yes | endpoints and delivery on SQLite |
//! | `rustls` | yes | HTTPS endpoints through rustls |
//! | `native-tls` | no | HTTPS endpoints through the platform's TLS |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address;
mod delivery;
mod endpoint;
mod error;
mod schema;
mod signing;

pub use address::AddressPolicy;
pub use delivery::{Round, Sender, SenderConfig, message_id, payload};
pub use endpoint::{Endpoint, NewEndpoint, Webhooks};
pub use error::{Error, Result};
pub use schema::MIGRATIONS;
pub use signing::Secret;
