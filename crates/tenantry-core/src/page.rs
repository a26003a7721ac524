//! `Page`: one page of a list, with an opaque cursor to the next one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// One page of a list: the items, the cursor to the next page, and whether there is one.
///
/// `has_more` is true exactly when `next_cursor` is present; the constructors keep it so and
/// reading a page that breaks it fails. `next_cursor` is always on the wire (`null` on the last
/// page), so a TypeScript client reads `page.next_cursor` without an `in` check.
///
/// # Example
///
/// ```
/// use tenantry_core::{Cursor, Page};
///
/// let page = Page::more(vec![1, 2], Cursor::new("after:2"));
/// let json = serde_json::to_string(&page)?;
/// assert_eq!(json, r#"{"items":[1,2],"next_cursor":"after:2","has_more":true}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<Cursor>,
    has_more: bool,
}

impl<T> Page<T> {
    /// A page with a cursor when more items follow, without one on the last page.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Page;
    ///
    /// let page: Page<u8> = Page::new(vec![], None);
    /// assert!(!page.has_more());
    /// ```
    #[must_use]
    pub fn new(items: Vec<T>, next_cursor: Option<Cursor>) -> Page<T> {
        Page {
            items,
            has_more: next_cursor.is_some(),
            next_cursor,
        }
    }

    /// The last page: no cursor, `has_more` false.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Page;
    ///
    /// let page = Page::last(vec![1, 2]);
    /// assert!(!page.has_more() && page.next_cursor().is_none());
    /// ```
    #[must_use]
    pub fn last(items: Vec<T>) -> Page<T> {
        Page::new(items, None)
    }

    /// A page followed by more, fetched with `next_cursor`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::{Cursor, Page};
    ///
    /// let page = Page::more(vec![1], Cursor::new("after:1"));
    /// assert!(page.has_more());
    /// ```
    #[must_use]
    pub fn more(items: Vec<T>, next_cursor: Cursor) -> Page<T> {
        Page::new(items, Some(next_cursor))
    }

    /// The items of this page.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Page;
    ///
    /// assert_eq!(Page::last(vec!["a"]).items(), &["a"]);
    /// ```
    #[must_use]
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The items, by value.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Page;
    ///
    /// assert_eq!(Page::last(vec![1, 2]).into_items(), vec![1, 2]);
    /// ```
    #[must_use]
    pub fn into_items(self) -> Vec<T> {
        self.items
    }

    /// The cursor of the next page, if there is one.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::{Cursor, Page};
    ///
    /// let page = Page::more(vec![1], Cursor::new("after:1"));
    /// assert_eq!(page.next_cursor().map(Cursor::as_str), Some("after:1"));
    /// ```
    #[must_use]
    pub fn next_cursor(&self) -> Option<&Cursor> {
        self.next_cursor.as_ref()
    }

    /// Whether another page follows.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::{Cursor, Page};
    ///
    /// assert!(Page::more(vec![1], Cursor::new("c")).has_more());
    /// assert!(!Page::last(vec![1]).has_more());
    /// ```
    #[must_use]
    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// Transforms the items, keeping the cursor.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Page;
    ///
    /// let page = Page::last(vec![1, 2]).map(|n| n * 10);
    /// assert_eq!(page.items(), &[10, 20]);
    /// ```
    #[must_use]
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            has_more: self.has_more,
        }
    }
}

/// A page whose `has_more` disagrees with its `next_cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "page has_more is {has_more} but next_cursor is {}",
    if *has_more { "missing" } else { "present" }
)]
pub struct InconsistentPage {
    /// The page's `has_more`.
    pub has_more: bool,
}

#[derive(Deserialize)]
struct PageWire<T> {
    items: Vec<T>,
    next_cursor: Option<Cursor>,
    has_more: bool,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = PageWire::<T>::deserialize(deserializer)?;
        if wire.has_more != wire.next_cursor.is_some() {
            return Err(serde::de::Error::custom(InconsistentPage {
                has_more: wire.has_more,
            }));
        }
        Ok(Page {
            items: wire.items,
            next_cursor: wire.next_cursor,
            has_more: wire.has_more,
        })
    }
}

/// An opaque position in a list. Clients pass it back unchanged to get the next page; only the
/// server that made it knows what it means.
///
/// # Example
///
/// ```
/// use tenantry_core::Cursor;
///
/// let cursor = Cursor::new("eyJpZCI6NDJ9");
/// assert_eq!(cursor.as_str(), "eyJpZCI6NDJ9");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Cursor(String);

impl Cursor {
    /// A cursor holding `value`.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Cursor;
    ///
    /// assert_eq!(Cursor::new(String::from("after:9")).to_string(), "after:9");
    /// ```
    #[must_use]
    pub fn new(value: impl Into<String>) -> Cursor {
        Cursor(value.into())
    }

    /// The cursor's string.
    ///
    /// # Example
    ///
    /// ```
    /// use tenantry_core::Cursor;
    ///
    /// assert_eq!(Cursor::new("after:9").as_str(), "after:9");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_page_sends_a_null_cursor() {
        let json = serde_json::to_string(&Page::last(vec!["a"])).unwrap();
        assert_eq!(
            json,
            r#"{"items":["a"],"next_cursor":null,"has_more":false}"#
        );
    }

    #[test]
    fn inconsistent_pages_are_rejected() {
        let err =
            serde_json::from_str::<Page<u8>>(r#"{"items":[],"next_cursor":null,"has_more":true}"#)
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("has_more is true but next_cursor is missing"),
            "{err}"
        );
        let err =
            serde_json::from_str::<Page<u8>>(r#"{"items":[],"next_cursor":"c","has_more":false}"#)
                .unwrap_err();
        assert!(err.to_string().contains("next_cursor is present"), "{err}");
    }

    #[test]
    fn pages_round_trip() {
        for page in [
            Page::last(vec![1_u64, u64::MAX]),
            Page::more(vec![], Cursor::new("c")),
        ] {
            let back: Page<u64> =
                serde_json::from_str(&serde_json::to_string(&page).unwrap()).unwrap();
            assert_eq!(back, page);
        }
    }
}
