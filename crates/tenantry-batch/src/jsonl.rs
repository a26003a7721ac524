//! Incremental JSONL decoding of a results file, one chunk at a time.
//!
//! [`ResultDecoder`] is the synchronous core of [`ResultStream`](crate::ResultStream): it splits
//! bytes into lines (`\n` or `\r\n`, blank lines skipped, a trailing unterminated line flushed by
//! [`finish`](ResultDecoder::finish)) and decodes each line into a [`BatchResult`]. Complete lines
//! are parsed straight out of the chunk; only a line cut by a chunk boundary is copied, so memory
//! is bounded by the longest line, not by the file.

use std::collections::VecDeque;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::types::BatchResult;

/// A decoded line: its 1-based line number and the result (or why it could not be decoded).
pub type DecodedLine = (u64, Result<BatchResult>);

/// Splits a byte stream into JSONL lines and decodes each into a [`BatchResult`].
///
/// # Example
///
/// ```
/// use std::collections::VecDeque;
/// use tenantry_batch::jsonl::ResultDecoder;
///
/// let mut decoder = ResultDecoder::new();
/// let mut out = VecDeque::new();
/// decoder.feed(b"{\"custom_id\":\"a\",\"result\":{\"type\":\"canceled\"}}\r\n\n{\"custom_id\":\"b\",", &mut out);
/// decoder.feed(b"\"result\":{\"type\":\"expired\"}}", &mut out);
/// decoder.finish(&mut out);
/// let ids: Vec<_> = out.into_iter().map(|(_, r)| r.unwrap().custom_id).collect();
/// assert_eq!(ids, ["a", "b"]);
/// ```
#[derive(Debug, Default)]
pub struct ResultDecoder {
    partial: Vec<u8>,
    line: u64,
    max_line: usize,
}

impl ResultDecoder {
    /// A decoder at the start of a file.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes every complete line of `chunk` (plus what earlier chunks left) into `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut VecDeque<DecodedLine>) {
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                None => {
                    self.partial.extend_from_slice(chunk);
                    self.max_line = self.max_line.max(self.partial.len());
                    return;
                }
                Some(end) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&chunk[..end]);
                    self.max_line = self.max_line.max(line.len());
                    self.emit(&line, out);
                    line.clear();
                    self.partial = line;
                    chunk = &chunk[end + 1..];
                }
            }
        }
        for line in memchr::memchr_iter(b'\n', chunk).scan(0, |start, end| {
            let line = &chunk[*start..end];
            *start = end + 1;
            Some(line)
        }) {
            self.max_line = self.max_line.max(line.len());
            self.emit(line, out);
        }
        let rest = memchr::memrchr(b'\n', chunk).map_or(chunk, |end| &chunk[end + 1..]);
        self.partial.extend_from_slice(rest);
        self.max_line = self.max_line.max(self.partial.len());
    }

    /// Flushes a trailing line that had no terminating newline (end of file).
    pub fn finish(&mut self, out: &mut VecDeque<DecodedLine>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, out);
        }
    }

    /// Drops an unterminated line (the connection was lost in the middle of it).
    pub fn discard_partial(&mut self) {
        self.partial.clear();
    }

    /// Whether bytes of an unterminated line are buffered.
    #[must_use]
    pub fn has_partial(&self) -> bool {
        !self.partial.iter().all(u8::is_ascii_whitespace)
    }

    /// Lines seen so far (blank lines included, as a text editor counts them).
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// The longest line seen so far, in bytes: what bounds this decoder's memory.
    #[must_use]
    pub fn longest_line(&self) -> usize {
        self.max_line
    }

    /// Starts over for a new copy of the file (line numbers restart at 1).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.line = 0;
    }

    fn emit(&mut self, line: &[u8], out: &mut VecDeque<DecodedLine>) {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        out.push_back((self.line, decode_line(self.line, line)));
    }
}

/// Decodes one line, naming its number and (if readable) its `custom_id` when it is malformed.
pub(crate) fn decode_line(line_no: u64, line: &[u8]) -> Result<BatchResult> {
    // One UTF-8 check of the whole line, then a parser that trusts it: `from_slice` checks
    // each string on its own, which cost more than the rest of the parse but the scan. A line
    // that is not UTF-8 goes through `from_slice`, so its error is the one it always was.
    let decoded = match std::str::from_utf8(line) {
        Ok(text) => serde_json::from_str::<BatchResult>(text),
        Err(_) => serde_json::from_slice::<BatchResult>(line),
    };
    decoded.map_err(|source| Error::MalformedResult {
        line: line_no,
        custom_id: peek_custom_id(line),
        source,
    })
}

fn peek_custom_id(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        custom_id: String,
    }
    if let Ok(id) = serde_json::from_slice::<Id>(line) {
        return Some(id.custom_id);
    }
    // The line may be cut short: look for the key textually.
    let key = b"\"custom_id\":\"";
    let start = memchr::memmem::find(line, key)? + key.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    let id = std::str::from_utf8(&line[start..start + len]).ok()?;
    Some(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"custom_id":"a","result":{"type":"canceled"}}"#;
    const B: &str = r#"{"custom_id":"b","result":{"type":"expired"}}"#;

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<(u64, std::result::Result<String, String>)> {
        let mut decoder = ResultDecoder::new();
        let mut out = VecDeque::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out.into_iter()
            .map(|(n, r)| (n, r.map(|r| r.custom_id).map_err(|e| e.to_string())))
            .collect()
    }

    #[test]
    fn lf_crlf_blank_and_trailing_line() {
        let text = format!("{A}\r\n\n  \r\n{B}");
        let got = decode_chunks(&[text.as_bytes()]);
        assert_eq!(got, vec![(1, Ok("a".into())), (4, Ok("b".into()))]);
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let text = format!("{A}\r\n{B}\n\n{A}");
        let bytes = text.as_bytes();
        let whole = decode_chunks(&[bytes]);
        for cut in 0..=bytes.len() {
            for cut2 in cut..=bytes.len() {
                let got = decode_chunks(&[&bytes[..cut], &bytes[cut..cut2], &bytes[cut2..]]);
                assert_eq!(got, whole, "cuts at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn malformed_line_names_line_and_custom_id_and_decoding_goes_on() {
        let text = format!("{A}\n{{\"custom_id\":\"bad-1\",\"result\":{{\"type\":\n{B}\n");
        let got = decode_chunks(&[text.as_bytes()]);
        assert_eq!(got[0], (1, Ok("a".into())));
        assert_eq!(got[1].0, 2);
        let err = got[1].1.clone().unwrap_err();
        assert!(
            err.starts_with("malformed result on line 2 (custom_id bad-1)"),
            "{err}"
        );
        assert_eq!(got[2], (3, Ok("b".into())));
    }

    #[test]
    fn malformed_line_without_custom_id() {
        let got = decode_chunks(&[b"not json\n"]);
        assert_eq!(got[0].1, Err("malformed result on line 1".to_owned()));
    }

    #[test]
    fn memory_is_bounded_by_the_longest_line() {
        let mut decoder = ResultDecoder::new();
        let mut out = VecDeque::new();
        for _ in 0..1000 {
            decoder.feed(format!("{A}\n").as_bytes(), &mut out);
            out.clear();
        }
        assert_eq!(decoder.longest_line(), A.len());
        assert!(decoder.partial.capacity() <= 2 * A.len());
    }

    #[test]
    fn discard_partial_drops_a_cut_line() {
        let mut decoder = ResultDecoder::new();
        let mut out = VecDeque::new();
        decoder.feed(format!("{A}\n{{\"custom_id\":\"b\"").as_bytes(), &mut out);
        assert!(decoder.has_partial());
        decoder.discard_partial();
        decoder.finish(&mut out);
        assert_eq!(out.len(), 1);
    }
}
