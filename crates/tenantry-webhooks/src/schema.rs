//! The endpoints table and its migrations, the `webhooks` component of the shared runner.

use sea_query::{ColumnDef, Iden, Index, Table};
use tenantry_core::db::Backend;
use tenantry_core::migrate::{Component, Migration};

/// `tenantry_webhook_endpoints`: one row per endpoint, with its delivery cursor.
#[derive(Debug, Clone, Copy, Iden)]
pub(crate) enum Endpoints {
    #[iden = "tenantry_webhook_endpoints"]
    Table,
    Id,
    Tenant,
    Url,
    /// `whsec_…`: the endpoint's signing secret.
    Secret,
    /// JSON array of event types (empty: every type).
    EventTypes,
    Enabled,
    /// The position in the tenant's event stream delivered up to.
    Position,
    /// Bumped by a replay, so a delivery round that read the old cursor cannot move it on.
    Generation,
    /// Failed attempts in a row.
    Failures,
    /// No attempt before this time (microseconds), after a failure.
    RetryAt,
    LastError,
    CreatedAt,
    DisabledAt,
}

/// The endpoints' schema as a migration component, named `webhooks` in `tenantry_migrations`.
pub const MIGRATIONS: Component = Component::new("webhooks", migrations);

fn migrations(backend: Backend) -> Vec<Migration> {
    vec![Migration::new(
        1,
        "webhook endpoints",
        v1_endpoints(backend),
    )]
}

fn v1_endpoints(backend: Backend) -> Vec<String> {
    let text = |c: Endpoints| ColumnDef::new(c).text().not_null().to_owned();
    let big = |c: Endpoints| ColumnDef::new(c).big_integer().not_null().to_owned();
    let table = Table::create()
        .table(Endpoints::Table)
        .if_not_exists()
        .col(text(Endpoints::Id).primary_key())
        .col(text(Endpoints::Tenant))
        .col(text(Endpoints::Url))
        .col(text(Endpoints::Secret))
        .col(text(Endpoints::EventTypes))
        .col(ColumnDef::new(Endpoints::Enabled).boolean().not_null())
        .col(big(Endpoints::Position))
        .col(big(Endpoints::Generation))
        .col(big(Endpoints::Failures))
        .col(ColumnDef::new(Endpoints::RetryAt).big_integer().null())
        .col(ColumnDef::new(Endpoints::LastError).text().null())
        .col(big(Endpoints::CreatedAt))
        .col(ColumnDef::new(Endpoints::DisabledAt).big_integer().null())
        .to_owned();
    let by_tenant = Index::create()
        .if_not_exists()
        .name("tenantry_webhook_endpoints_tenant")
        .table(Endpoints::Table)
        .col(Endpoints::Tenant)
        .to_owned();
    vec![
        backend.render_schema(&table),
        backend.render_schema(&by_tenant),
    ]
}
