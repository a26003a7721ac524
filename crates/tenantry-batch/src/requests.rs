//! Building a batch: validation before anything is sent, exact body size, and splitting.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::Bytes;
use serde::Serialize;

use crate::error::{Error, Result, ValidationRule};
use crate::types::MessageParams;

const PREFIX: &[u8] = b"{\"requests\":[";
const SUFFIX: &[u8] = b"]}";

/// The limits a batch must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchLimits {
    /// Requests per batch. Default: 100,000.
    pub max_requests: usize,
    /// Bytes of the serialized `POST` body. Default: 256,000,000 (the API says "256 MB"; this is
    /// the smaller reading of it, so a body within it passes either way).
    pub max_body_bytes: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_requests: 100_000,
            max_body_bytes: 256_000_000,
        }
    }
}

impl BatchLimits {
    /// Limits with a different request count.
    #[must_use]
    pub fn max_requests(mut self, max: usize) -> Self {
        self.max_requests = max;
        self
    }

    /// Limits with a different body size.
    #[must_use]
    pub fn max_body_bytes(mut self, max: u64) -> Self {
        self.max_body_bytes = max;
        self
    }
}

#[derive(Serialize)]
struct ItemRef<'a> {
    custom_id: &'a str,
    params: &'a MessageParams,
}

/// The requests of one batch, validated and serialized as they are added.
///
/// Every [`push`](Self::push) checks the batch rules (custom_id pattern and uniqueness, request
/// count, exact serialized body size, `stream` unset, `max_tokens` ≥ 1) and serializes the
/// request once, straight into the body that [`Batches::create`](crate::Batches::create) sends;
/// a refused request leaves the batch unchanged.
///
/// # Example
///
/// ```
/// use tenantry_batch::BatchRequests;
/// use tenantry_batch::types::{MessageParam, MessageParams};
///
/// let mut batch = BatchRequests::new();
/// let params = MessageParams::new("claude-haiku-4-5", 256, vec![MessageParam::user("Hi")]);
/// batch.push("req-1", &params)?;
/// let err = batch.push("req-1", &params).unwrap_err();
/// assert_eq!(err.to_string(), "batch request #1: custom_id \"req-1\" is already used by request #0");
/// assert_eq!(batch.len(), 1);
/// assert_eq!(batch.body_len(), batch.clone().into_body()?.len() as u64);
/// # Ok::<(), tenantry_batch::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchRequests {
    limits: BatchLimits,
    body: Vec<u8>,
    ids: Vec<Box<str>>,
    index: HashMap<Box<str>, usize>,
}

impl Default for BatchRequests {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchRequests {
    /// An empty batch with the API's limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(BatchLimits::default())
    }

    /// An empty batch with other limits (e.g. smaller, to leave headroom).
    #[must_use]
    pub fn with_limits(limits: BatchLimits) -> Self {
        Self {
            limits,
            body: PREFIX.to_vec(),
            ids: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Validates and adds one request.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the request's index and the rule it breaks; the batch is
    /// left unchanged.
    pub fn push(
        &mut self,
        custom_id: impl Into<String>,
        params: &MessageParams,
    ) -> Result<&mut Self> {
        let index = self.ids.len();
        let custom_id = custom_id.into();
        check_item(index, &custom_id, params)?;
        if index >= self.limits.max_requests {
            return Err(Error::validation(
                Some(index),
                ValidationRule::TooManyRequests {
                    limit: self.limits.max_requests,
                },
            ));
        }
        if let Some(&first_index) = self.index.get(custom_id.as_str()) {
            return Err(Error::validation(
                Some(index),
                ValidationRule::DuplicateCustomId {
                    custom_id,
                    first_index,
                },
            ));
        }
        let mark = self.body.len();
        if index > 0 {
            self.body.push(b',');
        }
        let item = ItemRef {
            custom_id: &custom_id,
            params,
        };
        if let Err(source) = serde_json::to_writer(&mut self.body, &item) {
            self.body.truncate(mark);
            return Err(Error::Encode {
                what: "batch request",
                source,
            });
        }
        let bytes = self.body_len();
        if bytes > self.limits.max_body_bytes {
            self.body.truncate(mark);
            return Err(Error::validation(
                Some(index),
                ValidationRule::BodyTooLarge {
                    bytes,
                    limit: self.limits.max_body_bytes,
                },
            ));
        }
        let id: Box<str> = custom_id.into();
        self.index.insert(id.clone(), index);
        self.ids.push(id);
        Ok(self)
    }

    /// Adds a request already serialized by a splitter (its rules were checked there).
    fn push_serialized(&mut self, custom_id: Box<str>, json: &[u8]) {
        if !self.ids.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(json);
        self.index.insert(custom_id.clone(), self.ids.len());
        self.ids.push(custom_id);
    }

    /// Number of requests.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no request was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The exact size in bytes of the body [`into_body`](Self::into_body) returns.
    #[must_use]
    pub fn body_len(&self) -> u64 {
        (self.body.len() + SUFFIX.len()) as u64
    }

    /// The custom_ids, in the order they were added.
    pub fn custom_ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ids.iter().map(AsRef::as_ref)
    }

    /// Index of the request with this custom_id.
    #[must_use]
    pub fn position(&self, custom_id: &str) -> Option<usize> {
        self.index.get(custom_id).copied()
    }

    /// The `POST /v1/messages/batches` body.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] with [`ValidationRule::Empty`] when no request was added.
    pub fn into_body(mut self) -> Result<Bytes> {
        if self.ids.is_empty() {
            return Err(Error::validation(None, ValidationRule::Empty));
        }
        self.body.extend_from_slice(SUFFIX);
        Ok(Bytes::from(self.body))
    }
}

/// The per-request rules that do not depend on the rest of the batch.
fn check_item(index: usize, custom_id: &str, params: &MessageParams) -> Result<()> {
    validate_request(custom_id, params).map_err(|rule| Error::validation(Some(index), rule))
}

/// Checks one request against the batch rules that do not depend on the rest of the batch:
/// the `custom_id` pattern, `stream` unset and `max_tokens` ≥ 1.
///
/// These are the checks [`BatchRequests::push`] and [`BatchSplitter::push`] make on each
/// request before the batch-wide ones (uniqueness, count, size), for a caller that accepts
/// requests long before it builds a batch (a queue checking them at submit time).
///
/// # Errors
///
/// The first [`ValidationRule`] the request breaks.
///
/// # Example
///
/// ```
/// use tenantry_batch::{ValidationRule, validate_request};
/// use tenantry_batch::types::{MessageParam, MessageParams};
///
/// let params = MessageParams::new("claude-haiku-4-5", 0, vec![MessageParam::user("Hi")]);
/// assert_eq!(validate_request("req-1", &params), Err(ValidationRule::MaxTokensZero));
/// ```
pub fn validate_request(
    custom_id: &str,
    params: &MessageParams,
) -> std::result::Result<(), ValidationRule> {
    let valid_id = (1..=64).contains(&custom_id.len())
        && custom_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_id {
        return Err(ValidationRule::CustomIdPattern {
            custom_id: custom_id.to_owned(),
        });
    }
    let extra_stream = params
        .extra
        .get("stream")
        .is_some_and(|v| v.as_bool() == Some(true));
    if params.stream == Some(true) || extra_stream {
        return Err(ValidationRule::StreamSet);
    }
    let extra_zero = params
        .extra
        .get("max_tokens")
        .is_some_and(|v| v.as_u64() == Some(0));
    if params.max_tokens == 0 || extra_zero {
        return Err(ValidationRule::MaxTokensZero);
    }
    Ok(())
}

/// Packs any number of requests into the fewest batches that respect both limits.
///
/// Requests are validated as they are added (the same rules as [`BatchRequests::push`], with
/// custom_ids unique across all batches, so every result maps back to one request). Packing is
/// first-fit decreasing by serialized size: when the request count is the binding limit, or
/// requests are much smaller than a batch, it reaches the lower bound
/// `max(⌈n / max_requests⌉, ⌈bytes / max_body_bytes⌉)`; [`BatchSplitter::lower_bound`] reports
/// that bound so a caller can check it.
///
/// # Example
///
/// ```
/// use tenantry_batch::{BatchLimits, BatchSplitter};
/// use tenantry_batch::types::{MessageParam, MessageParams};
///
/// let mut splitter = BatchSplitter::new(BatchLimits::default().max_requests(3));
/// let params = MessageParams::new("claude-haiku-4-5", 64, vec![MessageParam::user("Hi")]);
/// for i in 0..7 {
///     splitter.push(format!("r{i}"), &params)?;
/// }
/// let batches = splitter.finish();
/// assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [3, 3, 1]);
/// # Ok::<(), tenantry_batch::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchSplitter {
    limits: BatchLimits,
    buf: Vec<u8>,
    items: Vec<(Box<str>, usize, usize)>,
    index: HashMap<Box<str>, usize>,
}

impl BatchSplitter {
    /// An empty splitter for batches with these limits.
    #[must_use]
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            items: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Validates and adds one request.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the request's index (among all added) and the rule: bad
    /// custom_id, duplicate custom_id, `stream`, `max_tokens`, or a request too large to fit a
    /// batch even alone. The splitter is left unchanged.
    pub fn push(
        &mut self,
        custom_id: impl Into<String>,
        params: &MessageParams,
    ) -> Result<&mut Self> {
        let index = self.items.len();
        let custom_id = custom_id.into();
        check_item(index, &custom_id, params)?;
        let id: Box<str> = custom_id.into();
        let slot = match self.index.entry(id.clone()) {
            Entry::Occupied(first) => {
                return Err(Error::validation(
                    Some(index),
                    ValidationRule::DuplicateCustomId {
                        custom_id: id.into(),
                        first_index: *first.get(),
                    },
                ));
            }
            Entry::Vacant(slot) => slot,
        };
        let start = self.buf.len();
        let item = ItemRef {
            custom_id: &id,
            params,
        };
        if let Err(source) = serde_json::to_writer(&mut self.buf, &item) {
            self.buf.truncate(start);
            return Err(Error::Encode {
                what: "batch request",
                source,
            });
        }
        let bytes = (PREFIX.len() + SUFFIX.len() + self.buf.len() - start) as u64;
        if bytes > self.limits.max_body_bytes {
            self.buf.truncate(start);
            return Err(Error::validation(
                Some(index),
                ValidationRule::BodyTooLarge {
                    bytes,
                    limit: self.limits.max_body_bytes,
                },
            ));
        }
        slot.insert(index);
        self.items.push((id, start, self.buf.len()));
        Ok(self)
    }

    /// Number of requests added.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no request was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// No packing can use fewer batches than this.
    #[must_use]
    pub fn lower_bound(&self) -> usize {
        if self.items.is_empty() {
            return 0;
        }
        let by_count = self.items.len().div_ceil(self.limits.max_requests.max(1));
        // Each batch holds the prefix/suffix once and n - 1 commas.
        let per_batch = (PREFIX.len() + SUFFIX.len()) as u64;
        let payload: u64 = self.items.iter().map(|(_, s, e)| (e - s + 1) as u64).sum();
        let room = self
            .limits
            .max_body_bytes
            .saturating_sub(per_batch)
            .saturating_add(1)
            .max(1);
        let by_size = usize::try_from(payload.div_ceil(room)).unwrap_or(usize::MAX);
        by_count.max(by_size)
    }

    /// Packs the requests into batches; each batch keeps the requests' original order.
    #[must_use]
    pub fn finish(self) -> Vec<BatchRequests> {
        let limits = self.limits;
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.items[i].2 - self.items[i].1));
        // (requests, body bytes, members)
        let mut bins: Vec<(usize, u64, Vec<usize>)> = Vec::new();
        let empty = (PREFIX.len() + SUFFIX.len()) as u64;
        for i in order {
            let len = (self.items[i].2 - self.items[i].1) as u64;
            let fits = |bin: &(usize, u64, Vec<usize>)| {
                let comma = u64::from(bin.0 > 0);
                bin.0 < limits.max_requests && bin.1 + comma + len <= limits.max_body_bytes
            };
            let bin = match bins.iter().position(fits) {
                Some(b) => b,
                None => {
                    bins.push((0, empty, Vec::new()));
                    bins.len() - 1
                }
            };
            let bin = &mut bins[bin];
            bin.1 += u64::from(bin.0 > 0) + len;
            bin.0 += 1;
            bin.2.push(i);
        }
        let mut batches: Vec<(usize, BatchRequests)> = bins
            .into_iter()
            .map(|(_, bytes, mut members)| {
                members.sort_unstable();
                let mut batch = BatchRequests::with_limits(limits);
                batch.body.reserve(usize::try_from(bytes).unwrap_or(0));
                for &i in &members {
                    let (id, start, end) = &self.items[i];
                    batch.push_serialized(id.clone(), &self.buf[*start..*end]);
                }
                (members[0], batch)
            })
            .collect();
        batches.sort_by_key(|(first, _)| *first);
        batches.into_iter().map(|(_, batch)| batch).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MessageParam;

    fn params(text: &str) -> MessageParams {
        MessageParams::new("claude-haiku-4-5", 16, vec![MessageParam::user(text)])
    }

    fn rule(e: Error) -> (Option<usize>, ValidationRule) {
        match e {
            Error::Validation { index, rule } => (index, rule),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn custom_id_pattern() {
        let mut b = BatchRequests::new();
        for ok in ["a", "A-z_0-9", &"x".repeat(64)] {
            b.push(ok, &params("hi")).unwrap();
        }
        for bad in ["", "has space", "dot.", &"x".repeat(65), "é"] {
            let (index, r) = rule(b.push(bad, &params("hi")).unwrap_err());
            assert_eq!(index, Some(3));
            assert!(matches!(r, ValidationRule::CustomIdPattern { .. }), "{bad}");
        }
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn stream_and_max_tokens() {
        let mut b = BatchRequests::new();
        let mut p = params("hi");
        p.stream = Some(true);
        assert_eq!(
            rule(b.push("a", &p).unwrap_err()),
            (Some(0), ValidationRule::StreamSet)
        );
        let p = params("hi").extra("stream", serde_json::json!(true));
        assert_eq!(
            rule(b.push("a", &p).unwrap_err()),
            (Some(0), ValidationRule::StreamSet)
        );
        let mut p = params("hi");
        p.stream = Some(false);
        b.push("ok", &p).unwrap();
        let mut p = params("hi");
        p.max_tokens = 0;
        assert_eq!(
            rule(b.push("b", &p).unwrap_err()),
            (Some(1), ValidationRule::MaxTokensZero)
        );
    }

    #[test]
    fn count_limit() {
        let mut b = BatchRequests::with_limits(BatchLimits::default().max_requests(2));
        b.push("a", &params("1"))
            .unwrap()
            .push("b", &params("2"))
            .unwrap();
        assert_eq!(
            rule(b.push("c", &params("3")).unwrap_err()),
            (Some(2), ValidationRule::TooManyRequests { limit: 2 })
        );
    }

    #[test]
    fn size_is_exact_at_the_boundary() {
        let mut probe = BatchRequests::new();
        probe
            .push("a", &params("x"))
            .unwrap()
            .push("b", &params("y"))
            .unwrap();
        let exact = probe.body_len();
        let body = probe.clone().into_body().unwrap();
        assert_eq!(body.len() as u64, exact);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["requests"][1]["custom_id"], "b");

        let mut fits = BatchRequests::with_limits(BatchLimits::default().max_body_bytes(exact));
        fits.push("a", &params("x"))
            .unwrap()
            .push("b", &params("y"))
            .unwrap();
        let mut over = BatchRequests::with_limits(BatchLimits::default().max_body_bytes(exact - 1));
        over.push("a", &params("x")).unwrap();
        let before = over.body_len();
        assert_eq!(
            rule(over.push("b", &params("y")).unwrap_err()),
            (
                Some(1),
                ValidationRule::BodyTooLarge {
                    bytes: exact,
                    limit: exact - 1
                }
            )
        );
        assert_eq!(
            over.body_len(),
            before,
            "a refused request leaves no bytes behind"
        );
        over.push("c", &params("z")).unwrap_err();
    }

    #[test]
    fn empty_batch_has_no_body() {
        assert_eq!(
            rule(BatchRequests::new().into_body().unwrap_err()),
            (None, ValidationRule::Empty)
        );
    }

    #[test]
    fn splitter_respects_both_limits_and_reaches_the_lower_bound() {
        let one = {
            let mut b = BatchRequests::new();
            b.push("r000", &params("0123456789")).unwrap();
            b.body_len()
        };
        // Room for exactly 4 items of this size per batch, and at most 5 requests.
        let item = one - (PREFIX.len() + SUFFIX.len()) as u64;
        let max_body = (PREFIX.len() + SUFFIX.len()) as u64 + 4 * item + 3;
        let limits = BatchLimits::default()
            .max_requests(5)
            .max_body_bytes(max_body);
        let mut s = BatchSplitter::new(limits);
        for i in 0..10 {
            s.push(format!("r{i:03}"), &params("0123456789")).unwrap();
        }
        assert_eq!(s.lower_bound(), 3);
        let batches = s.finish();
        assert_eq!(batches.len(), 3);
        let mut all = Vec::new();
        for b in &batches {
            assert!(b.len() <= 5);
            assert!(b.body_len() <= max_body);
            all.extend(b.custom_ids().map(str::to_owned));
            let v: serde_json::Value =
                serde_json::from_slice(&b.clone().into_body().unwrap()).unwrap();
            assert_eq!(v["requests"].as_array().unwrap().len(), b.len());
        }
        all.sort();
        assert_eq!(all, (0..10).map(|i| format!("r{i:03}")).collect::<Vec<_>>());
    }

    #[test]
    fn splitter_mixed_sizes_packs_big_ones_first() {
        // Two big requests fit one batch, a third does not: FFD pairs the big ones first.
        let limits = BatchLimits::default().max_body_bytes(2_100);
        let mut s = BatchSplitter::new(limits);
        for i in 0..6 {
            let text = if i % 2 == 0 {
                "x".repeat(900)
            } else {
                "y".repeat(100)
            };
            s.push(format!("m{i}"), &params(&text)).unwrap();
        }
        let bound = s.lower_bound();
        let batches = s.finish();
        assert!(batches.iter().all(|b| b.body_len() <= 2_100));
        assert_eq!(bound, 2);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].custom_ids().collect::<Vec<_>>(), ["m0", "m2"]);
        assert_eq!(batches.iter().map(BatchRequests::len).sum::<usize>(), 6);
    }

    #[test]
    fn splitter_rejects_duplicates_across_batches_and_oversized_items() {
        let mut s = BatchSplitter::new(BatchLimits::default().max_requests(1).max_body_bytes(300));
        s.push("a", &params("x")).unwrap();
        let (index, r) = rule(s.push("a", &params("x")).unwrap_err());
        assert_eq!(index, Some(1));
        assert!(matches!(
            r,
            ValidationRule::DuplicateCustomId { first_index: 0, .. }
        ));
        let (_, r) = rule(s.push("big", &params(&"z".repeat(400))).unwrap_err());
        assert!(matches!(r, ValidationRule::BodyTooLarge { .. }));
        assert_eq!(s.len(), 1);
    }
}
