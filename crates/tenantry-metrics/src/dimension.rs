//! Ledger dimensions a query can group by besides the tenant: feature, model, lane.

/// A column of the usage ledger that splits each tenant group into one row per value
/// ([`MetricsQuery::group_by`](crate::MetricsQuery::group_by)).
///
/// Every aggregate of a query grouped by a dimension must read the usage ledger: memberships and
/// effective access have no feature or model, and a metric over them is
/// [`Error::DimensionSource`](crate::Error::DimensionSource) when the query is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dimension {
    /// The product feature (`feature`).
    Feature,
    /// The model (`model`).
    Model,
    /// `batch` or `sync` (`lane`).
    Lane,
}

impl Dimension {
    /// The ledger column, by its default name.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Dimension::Feature => "feature",
            Dimension::Model => "model",
            Dimension::Lane => "lane",
        }
    }
}
