//! [`Jobs`]: a tenant's jobs and events, read-only.

use tenantry_queue::{Cursor, Job, JobEvent, JobFilter, JobId, JobStore, Page, Position, TenantId};

use crate::error::Result;

/// Read access to the queue's jobs and event logs, from [`Tenantry::jobs`](crate::Tenantry::jobs).
///
/// Only reads: submitting and canceling go through [`Tenantry`](crate::Tenantry), which takes
/// and gives back the budget holds that go with them.
///
/// # Example
///
/// ```no_run
/// # async fn demo(tenantry: tenantry::Tenantry) -> tenantry::Result<()> {
/// use tenantry::queue::{JobFilter, TenantId};
///
/// let acme = TenantId::new("acme")?;
/// let page = tenantry.jobs().list(&acme, &JobFilter::new().limit(50), None).await?;
/// for job in page.items() {
///     println!("{} {}", job.id, job.state);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    store: &'a dyn JobStore,
}

impl std::fmt::Debug for Jobs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl<'a> Jobs<'a> {
    pub(crate) fn new(store: &'a dyn JobStore) -> Self {
        Self { store }
    }

    /// One job of the tenant, as stored.
    ///
    /// # Errors
    ///
    /// Not found for an unknown id or another tenant's job; a database error.
    pub async fn job(&self, tenant: &TenantId, id: &JobId) -> Result<Job> {
        Ok(self.store.job(tenant, id).await?)
    }

    /// One page of the tenant's jobs, newest first.
    ///
    /// # Errors
    ///
    /// A cursor this list did not make; a database error.
    pub async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Job>> {
        Ok(self.store.list(tenant, filter, cursor).await?)
    }

    /// The tenant's events after `after`, in order, at most `limit` of them.
    ///
    /// # Errors
    ///
    /// A database error.
    pub async fn events_after(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        Ok(self.store.events_after(tenant, after, limit).await?)
    }
}
