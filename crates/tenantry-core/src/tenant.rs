//! [`TenantId`]: the tenant every read, write and event is scoped by.

use std::fmt;
use std::str::FromStr;

/// The longest tenant id accepted, in bytes.
pub const TENANT_ID_MAX: usize = 128;

/// A tenant's id, checked once where it enters the system.
///
/// 1 to 128 characters of `[A-Za-z0-9_.:@-]`, so it is safe in logs, URLs, notification
/// payloads and metric labels.
///
/// # Example
///
/// ```
/// use tenantry_core::TenantId;
///
/// let tenant: TenantId = "team-42".parse()?;
/// assert_eq!(tenant.to_string(), "team-42");
/// assert!(TenantId::new("no spaces").is_err());
/// # Ok::<(), tenantry_core::InvalidTenantId>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// A tenant id that is empty, longer than [`TENANT_ID_MAX`] or has other characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a tenant id is 1 to {max} characters of [A-Za-z0-9_.:@-]")]
#[non_exhaustive]
pub struct InvalidTenantId {
    /// The longest id accepted, in bytes.
    pub max: usize,
}

impl TenantId {
    /// Checks and wraps a tenant id.
    ///
    /// # Errors
    ///
    /// [`InvalidTenantId`] when it is empty, too long or has other characters.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidTenantId> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= TENANT_ID_MAX
            && id.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-')
            });
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidTenantId { max: TENANT_ID_MAX })
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_at_the_edge() {
        assert!(TenantId::new("a").is_ok());
        assert!(TenantId::new("org:1/team").is_err());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("x".repeat(TENANT_ID_MAX)).is_ok());
        assert!(TenantId::new("x".repeat(TENANT_ID_MAX + 1)).is_err());
        assert!(serde_json::from_str::<TenantId>(r#""a b""#).is_err());
        assert_eq!(
            serde_json::to_string(&TenantId::new("t-1").unwrap()).unwrap(),
            r#""t-1""#
        );
    }
}
