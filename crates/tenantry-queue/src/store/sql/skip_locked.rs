//! Claiming rows other workers hold: `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on
//! SQLite (its single writer has nothing to skip), and the name of a claim's picked rows.

use sea_query::{LockBehavior, LockType, SelectStatement};
use tenantry_core::db::Backend;

pub(crate) fn lock_skip(select: &mut SelectStatement, backend: Backend) {
    // SQLite has a single writer (`BEGIN IMMEDIATE`), so there is nothing to skip.
    if backend == Backend::Postgres {
        select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
}

/// The name of the claim's common table expression.
#[derive(Debug, Clone, Copy, sea_query::Iden)]
#[iden(rename = "picked")]
pub(crate) struct Picked;
