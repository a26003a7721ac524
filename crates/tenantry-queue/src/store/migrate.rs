//! Applying the shipped migrations, on either backend, in one transaction.

use std::collections::HashSet;

use sea_query::{Func, Query};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::store::exec::Tx;
use crate::store::schema::{self, Dialect, Migrations};
use crate::validate::micros;

/// Advisory lock key serialising migrations across processes on PostgreSQL
/// (`pg_advisory_xact_lock(int8)`); SQLite's `BEGIN IMMEDIATE` already does.
const MIGRATION_LOCK: i64 = 0x7471_6d69_6772_6174;

/// Applies every shipped migration not applied yet, then commits.
///
/// # Errors
///
/// A database error, or [`Error::SchemaTooNew`] when the database was migrated by a newer
/// version of this crate.
pub(crate) async fn migrate(mut tx: Tx) -> Result<()> {
    let dialect = match tx {
        #[cfg(feature = "postgres")]
        Tx::Postgres(_) => Dialect::Postgres,
        #[cfg(feature = "sqlite")]
        Tx::Sqlite(_) => Dialect::Sqlite,
    };
    if dialect == Dialect::Postgres {
        let lock = Query::select()
            .expr(Func::cust("pg_advisory_xact_lock").arg(MIGRATION_LOCK))
            .to_owned();
        tx.execute(&lock).await?;
    }
    tx.execute_schema(&schema::migrations_table(dialect))
        .await?;
    let applied: Vec<(i64,)> = tx
        .fetch_all(
            &Query::select()
                .column(Migrations::Version)
                .from(Migrations::Table)
                .to_owned(),
        )
        .await?;
    let applied: HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    let shipped = schema::migrations(dialect);
    let newest = shipped.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.iter().max()
        && found > newest
    {
        return Err(Error::SchemaTooNew {
            found,
            supported: newest,
        });
    }
    for m in shipped
        .into_iter()
        .filter(|m| !applied.contains(&m.version))
    {
        for stmt in &m.statements {
            tx.execute_schema(stmt).await?;
        }
        tx.execute(
            Query::insert()
                .into_table(Migrations::Table)
                .columns([Migrations::Version, Migrations::Name, Migrations::AppliedAt])
                .values_panic([
                    m.version.into(),
                    m.name.into(),
                    micros(OffsetDateTime::now_utc()).into(),
                ]),
        )
        .await?;
    }
    tx.commit().await
}
