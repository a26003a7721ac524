//! [`Lane`]: which API serves a request, and so which price applies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a request reaches the API, and so which price applies.
///
/// # Example
///
/// ```
/// use tenantry_core::Lane;
///
/// assert_eq!("urgent".parse::<Lane>()?, Lane::Urgent);
/// assert_eq!(Lane::Batch.as_str(), "batch");
/// # Ok::<(), tenantry_core::ParseLaneError>(())
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Lane {
    /// Gathered into a Message Batch: half price, results within 24 h.
    #[default]
    Batch,
    /// Sent at once through the synchronous Messages API: full price.
    Urgent,
}

/// A lane name that is neither `batch` nor `urgent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lane {0:?}: expected \"batch\" or \"urgent\"")]
pub struct ParseLaneError(pub String);

impl Lane {
    /// Every lane, in a stable order.
    pub const ALL: [Self; 2] = [Self::Batch, Self::Urgent];

    /// The lane's stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lane {
    type Err = ParseLaneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|lane| lane.as_str() == s)
            .ok_or_else(|| ParseLaneError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip_by_name() {
        for lane in Lane::ALL {
            assert_eq!(lane.as_str().parse::<Lane>(), Ok(lane));
            assert_eq!(serde_json::to_value(lane).unwrap(), lane.as_str());
        }
        assert!("sync".parse::<Lane>().is_err());
    }
}
