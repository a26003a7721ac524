//! A job's id. (The tenant's id is [`TenantId`](crate::TenantId), from `tenantry-core`.)

use std::fmt;
use std::str::FromStr;

/// A job's id: `job_` followed by the 32 hex digits of a UUIDv7.
///
/// Ids sort by creation time, and the id is also the request's `custom_id` in a Message
/// Batch (36 characters of `[a-z0-9_]`, within the API's 64-character limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct JobId(String);

const JOB_PREFIX: &str = "job_";

impl JobId {
    /// A fresh, time-ordered id.
    #[must_use]
    pub fn generate() -> Self {
        Self(format!("{JOB_PREFIX}{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UUID inside the id.
    #[must_use]
    pub fn uuid(&self) -> uuid::Uuid {
        // Construction guarantees the suffix is a valid simple UUID.
        uuid::Uuid::parse_str(&self.0[JOB_PREFIX.len()..]).unwrap_or_default()
    }
}

/// The text is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a job id (expected `job_` and 32 hex digits)")]
pub struct ParseJobIdError;

impl FromStr for JobId {
    type Err = ParseJobIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(JOB_PREFIX).ok_or(ParseJobIdError)?;
        let valid = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseJobIdError)
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_sort_by_creation() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert!(a < b, "{a} then {b}");
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(a.as_str().parse::<JobId>(), Ok(a.clone()));
        assert_eq!(a.uuid().get_version_num(), 7);
    }

    #[test]
    fn malformed_job_ids_are_rejected() {
        for bad in [
            "",
            "job_",
            "job_XYZ",
            "task_0190b2c3d4e5f60718293a4b5c6d7e8f",
            "job_0190B2C3D4E5F60718293A4B5C6D7E8F",
        ] {
            assert_eq!(bad.parse::<JobId>(), Err(ParseJobIdError), "{bad}");
        }
    }

    #[test]
    fn tenant_ids_are_checked() {
        use crate::{TENANT_ID_MAX, TenantId};

        assert!(TenantId::new("acme-prod_1").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("a b").is_err());
        assert!(TenantId::new("x".repeat(TENANT_ID_MAX + 1)).is_err());
        assert!(serde_json::from_str::<TenantId>("\"bad tenant\"").is_err());
    }
}
