//! Effective-dated feature-tier and region multipliers, reached through [`Ledger::multipliers`]:
//! a ledger line copies the ones in force at its `occurred_at`.

use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_core::UnixMicros;

use crate::error::Result;
use crate::formula::{self, MAX_TENANT_BP};
use crate::ledger::Ledger;
use crate::schema::{Multiplier, MultiplierTable};

/// The host's feature-tier and region multipliers: [`Ledger::multipliers`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tenantry_cost::{Ledger, PriceBook, UnixMicros};
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
///     .connect("sqlite::memory:").await?;
/// let ledger = Ledger::sqlite(pool, PriceBook::anthropic_default());
/// ledger.migrate().await?;
/// // Lines of the `premium` tier cost 1.5× from 2026 on.
/// ledger.multipliers().set_feature_tier("premium", 15_000, UnixMicros::from_ymd(2026, 1, 1)?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Multipliers<'a> {
    ledger: &'a Ledger,
}

impl Ledger {
    /// The feature-tier and region multipliers that new lines copy.
    #[must_use]
    pub fn multipliers(&self) -> Multipliers<'_> {
        Multipliers { ledger: self }
    }
}

impl Multipliers<'_> {
    /// Sets the multiplier of a feature tier from `effective_from` on (basis points,
    /// `10_000` = 1×). Earlier lines keep the multiplier they copied.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) above 10×, [`Error::Database`](crate::Error::Database).
    pub async fn set_feature_tier(
        &self,
        name: &str,
        multiplier_bp: i64,
        effective_from: UnixMicros,
    ) -> Result<()> {
        self.set(
            MultiplierTable::FeatureTiers,
            name,
            multiplier_bp,
            effective_from,
        )
        .await
    }

    /// Sets the multiplier of a region from `effective_from` on (basis points, `10_000` = 1×).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) above 10×, [`Error::Database`](crate::Error::Database).
    pub async fn set_region(
        &self,
        name: &str,
        multiplier_bp: i64,
        effective_from: UnixMicros,
    ) -> Result<()> {
        self.set(
            MultiplierTable::Regions,
            name,
            multiplier_bp,
            effective_from,
        )
        .await
    }

    async fn set(
        &self,
        table: MultiplierTable,
        name: &str,
        multiplier_bp: i64,
        effective_from: UnixMicros,
    ) -> Result<()> {
        formula::check_range("multiplier_bp", multiplier_bp, 0, MAX_TENANT_BP)?;
        let stmt = Query::insert()
            .into_table(table)
            .columns([
                Multiplier::Name,
                Multiplier::EffectiveFrom,
                Multiplier::MultiplierBp,
            ])
            .values([name.into(), effective_from.0.into(), multiplier_bp.into()])?
            .to_owned();
        self.ledger.pool.execute(&stmt).await?;
        Ok(())
    }
}

/// The multiplier of `name` in `table` in force at `at`.
pub(crate) fn effective_select(
    table: MultiplierTable,
    name: &str,
    at: UnixMicros,
) -> sea_query::SelectStatement {
    Query::select()
        .column(Multiplier::MultiplierBp)
        .from(table)
        .and_where(Expr::col(Multiplier::Name).eq(name))
        .and_where(Expr::col(Multiplier::EffectiveFrom).lte(at.0))
        .order_by(Multiplier::EffectiveFrom, Order::Desc)
        .limit(1)
        .to_owned()
}
