//! JSON pointers (RFC 6901) that name the bad field of a request.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// A JSON pointer (RFC 6901) into the request body, e.g. `/items/3/name`.
///
/// The empty pointer `""` means the whole document. Build one from its segments with
/// [`JsonPointer::from_segments`] (which escapes `~` and `/`), or check a ready string with
/// [`JsonPointer::parse`].
///
/// # Example
///
/// ```
/// use tenantry_envelope::JsonPointer;
///
/// let pointer = JsonPointer::from_segments(["params", "max_tokens"]);
/// assert_eq!(pointer.as_str(), "/params/max_tokens");
/// assert_eq!(JsonPointer::from_segments(["a/b", "c~d"]).as_str(), "/a~1b/c~0d");
/// assert_eq!(JsonPointer::parse("/items/0")?.as_str(), "/items/0");
/// # Ok::<(), tenantry_envelope::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JsonPointer(String);

impl JsonPointer {
    /// The pointer to the whole document, `""`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::JsonPointer;
    ///
    /// assert_eq!(JsonPointer::root().as_str(), "");
    /// ```
    #[must_use]
    pub fn root() -> JsonPointer {
        JsonPointer(String::new())
    }

    /// Builds a pointer from unescaped segments (object keys or array indices).
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::JsonPointer;
    ///
    /// assert_eq!(JsonPointer::from_segments(["requests", "0", "params"]).as_str(), "/requests/0/params");
    /// ```
    #[must_use]
    pub fn from_segments<I, S>(segments: I) -> JsonPointer
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut pointer = String::new();
        for segment in segments {
            pointer.push('/');
            for c in segment.as_ref().chars() {
                match c {
                    '~' => pointer.push_str("~0"),
                    '/' => pointer.push_str("~1"),
                    c => pointer.push(c),
                }
            }
        }
        JsonPointer(pointer)
    }

    /// Checks an escaped pointer string.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPointer`] if a non-empty pointer does not start with `/`, or a `~` is not
    /// followed by `0` or `1`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::JsonPointer;
    ///
    /// assert_eq!(JsonPointer::parse("/a~1b/0")?.as_str(), "/a~1b/0");
    /// assert!(JsonPointer::parse("a/b").is_err());
    /// # Ok::<(), tenantry_envelope::Error>(())
    /// ```
    pub fn parse(pointer: impl Into<String>) -> Result<JsonPointer, Error> {
        let pointer = pointer.into();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(Error::InvalidPointer {
                pointer,
                reason: "a non-empty pointer starts with `/`",
            });
        }
        let mut chars = pointer.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(Error::InvalidPointer {
                    pointer,
                    reason: "`~` must be followed by `0` or `1`",
                });
            }
        }
        Ok(JsonPointer(pointer))
    }

    /// The escaped pointer string.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_envelope::JsonPointer;
    ///
    /// assert_eq!(JsonPointer::from_segments(["a"]).as_str(), "/a");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JsonPointer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        JsonPointer::parse(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_and_parse_back() {
        let pointer = JsonPointer::from_segments(["a/b", "m~n", "0"]);
        assert_eq!(pointer.as_str(), "/a~1b/m~0n/0");
        assert_eq!(JsonPointer::parse(pointer.as_str()).unwrap(), pointer);
        assert_eq!(
            JsonPointer::from_segments::<[&str; 0], &str>([]),
            JsonPointer::root()
        );
    }

    #[test]
    fn malformed_pointers_are_rejected_by_parse_and_serde() {
        assert!(JsonPointer::parse("items/0").is_err());
        assert!(JsonPointer::parse("/a~2").is_err());
        assert!(JsonPointer::parse("/a~").is_err());
        let err = serde_json::from_str::<JsonPointer>("\"items\"").unwrap_err();
        assert!(
            err.to_string().contains("invalid JSON pointer `items`"),
            "{err}"
        );
    }
}
