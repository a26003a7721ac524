//! The results file: JSONL lines built lazily from a batch's stored per-request results, with
//! the line faults (CRLF endings, one malformed, garbage or missing line) applied as the lines
//! are built, so memory stays bounded by one chunk.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::batch::{Batch, Class, Outcome, View};

/// Bytes per chunk handed to the HTTP layer.
const CHUNK: usize = 256 * 1024;

/// Line ending of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineEnding {
    Lf,
    CrLf,
}

/// What happens to one line of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Cut in the middle of `result`, padded with spaces to its length.
    Malformed,
    /// Replaced by [`GARBAGE`].
    Garbage,
    /// Left out.
    Drop,
}

/// The replacement of a garbage line: no `custom_id` can be read from it.
pub(crate) const GARBAGE: &[u8] = b"not json at all";

/// How the file is written: line endings, and at most one damaged line (1-based number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) ending: LineEnding,
    pub(crate) damage: Option<(u64, Damage)>,
}

impl Shape {
    /// `\n` endings, every line intact.
    pub(crate) const PLAIN: Self = Self {
        ending: LineEnding::Lf,
        damage: None,
    };
}

impl LineEnding {
    fn bytes(self) -> &'static [u8] {
        match self {
            Self::Lf => b"\n",
            Self::CrLf => b"\r\n",
        }
    }
}

/// Appends the result line of request `i` to `out`; returns where its `result` value starts.
fn push_line(
    out: &mut BytesMut,
    batch: &Batch,
    view: &View,
    i: usize,
    ending: LineEnding,
) -> usize {
    let item = &batch.items[i];
    out.extend_from_slice(b"{\"custom_id\":\"");
    // custom_id matches ^[a-zA-Z0-9_-]{1,64}$, so it needs no escaping.
    out.extend_from_slice(item.custom_id.as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    let result_start = out.len();
    match (batch.class_of(view, i), &item.outcome) {
        (Class::Canceled, _) => out.extend_from_slice(b"{\"type\":\"canceled\"}"),
        (Class::Expired, _) => out.extend_from_slice(b"{\"type\":\"expired\"}"),
        (Class::Processed, Outcome::Succeeded(message)) => {
            out.extend_from_slice(b"{\"type\":\"succeeded\",\"message\":");
            out.extend_from_slice(message.as_bytes());
            out.extend_from_slice(b"}");
        }
        (Class::Processed, Outcome::Errored(error)) => {
            out.extend_from_slice(b"{\"type\":\"errored\",\"error\":");
            out.extend_from_slice(error.as_bytes());
            out.extend_from_slice(b"}");
        }
    }
    out.extend_from_slice(b"}");
    out.extend_from_slice(ending.bytes());
    result_start
}

/// Makes the line that ends `out` (its `result` value starting at `result_start`) invalid
/// JSON without changing its length or its `{"custom_id":"…","result":` prefix: everything
/// from the middle of `result` to the end of the line becomes spaces.
fn malform_last_line(out: &mut BytesMut, result_start: usize, ending: LineEnding) {
    let end = out.len() - ending.bytes().len();
    // `result` is at least `{"type":"expired"}`, so the cut falls after its first byte and
    // well before the line's closing brace: both objects are left unclosed.
    let mut cut = result_start + (end - result_start) / 2;
    // Keep the line valid UTF-8: never cut inside a character.
    while cut > result_start + 1 && (out[cut] & 0b1100_0000) == 0b1000_0000 {
        cut -= 1;
    }
    out[cut..end].fill(b' ');
}

/// The shuffled order in which lines are written (deterministic per batch).
fn order(batch: &Batch) -> Vec<u32> {
    let n = u32::try_from(batch.items.len()).unwrap_or(u32::MAX);
    let mut order: Vec<u32> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(batch.order_seed));
    order
}

/// The results file as a stream of chunks; lines are built as the stream is polled.
pub(crate) fn stream(
    batch: Arc<Batch>,
    view: View,
    shape: Shape,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let ending = shape.ending;
    let order = order(&batch);
    futures_util::stream::unfold(
        (batch, order, 0_usize),
        move |(batch, order, mut pos)| async move {
            if pos >= order.len() {
                return None;
            }
            let mut out = BytesMut::with_capacity(CHUNK + 4096);
            while pos < order.len() && out.len() < CHUNK {
                let i = usize::try_from(order[pos]).unwrap_or(usize::MAX);
                let line = u64::try_from(pos).unwrap_or(u64::MAX).saturating_add(1);
                pos += 1;
                match shape.damage {
                    Some((n, Damage::Drop)) if n == line => {}
                    Some((n, Damage::Garbage)) if n == line => {
                        out.extend_from_slice(GARBAGE);
                        out.extend_from_slice(ending.bytes());
                    }
                    Some((n, Damage::Malformed)) if n == line => {
                        let result_start = push_line(&mut out, &batch, &view, i, ending);
                        malform_last_line(&mut out, result_start, ending);
                    }
                    _ => {
                        push_line(&mut out, &batch, &view, i, ending);
                    }
                }
            }
            if out.is_empty() {
                // Only a dropped last line was left: the file ends here, cleanly.
                return None;
            }
            Some((Ok(out.freeze()), (batch, order, pos)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Item;
    use futures_util::StreamExt;
    use std::time::Duration;
    use time::OffsetDateTime;

    async fn collect(batch: Arc<Batch>, at: OffsetDateTime, ending: LineEnding) -> String {
        let shape = Shape {
            ending,
            damage: None,
        };
        collect_shaped(batch, at, shape).await
    }

    async fn collect_shaped(batch: Arc<Batch>, at: OffsetDateTime, shape: Shape) -> String {
        let view = batch.view(at);
        let chunks: Vec<_> = stream(batch, view, shape).collect().await;
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn sample() -> Arc<Batch> {
        let items = (0..50)
            .map(|i| Item {
                custom_id: format!("req-{i}").into(),
                outcome: if i == 7 {
                    Outcome::Errored(r#"{"type":"error","error":{"type":"api_error","message":"x"},"request_id":null}"#.into())
                } else {
                    Outcome::Succeeded(r#"{"id":"msg_1"}"#.into())
                },
            })
            .collect();
        Arc::new(Batch::new(
            "b".into(),
            "w".into(),
            OffsetDateTime::UNIX_EPOCH,
            Duration::from_secs(1),
            items,
            9,
        ))
    }

    #[tokio::test]
    async fn lines_are_json_lf_terminated_and_shuffled() {
        let batch = sample();
        let text = collect(
            batch.clone(),
            batch.created_at + Duration::from_secs(2),
            LineEnding::Lf,
        )
        .await;
        assert!(text.ends_with('\n'));
        assert!(!text.contains("\n\n") && !text.contains('\r'));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 50);
        let ids: Vec<&str> = lines
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| id[4..].parse::<u32>().unwrap());
        assert_ne!(ids, sorted, "results should not come back in request order");
        let errored = lines.iter().find(|l| l["custom_id"] == "req-7").unwrap();
        assert_eq!(errored["result"]["error"]["error"]["type"], "api_error");
        let again = collect(
            batch.clone(),
            batch.created_at + Duration::from_secs(2),
            LineEnding::Lf,
        )
        .await;
        assert_eq!(text, again, "the order is deterministic");
    }

    #[tokio::test]
    async fn crlf_and_canceled_lines() {
        let batch = sample();
        batch.cancel(batch.created_at).unwrap();
        let text = collect(
            batch.clone(),
            batch.created_at + Duration::from_secs(2),
            LineEnding::CrLf,
        )
        .await;
        assert_eq!(text.matches("\r\n").count(), 50);
        assert_eq!(text.matches(r#"{"type":"canceled"}"#).count(), 49);
    }

    async fn damaged(batch: &Arc<Batch>, line: u64, damage: Damage) -> String {
        let shape = Shape {
            ending: LineEnding::Lf,
            damage: Some((line, damage)),
        };
        collect_shaped(
            batch.clone(),
            batch.created_at + Duration::from_secs(2),
            shape,
        )
        .await
    }

    #[tokio::test]
    async fn one_line_malformed_garbage_or_dropped_the_rest_intact() {
        let batch = sample();
        let at = batch.created_at + Duration::from_secs(2);
        let plain = collect(batch.clone(), at, LineEnding::Lf).await;
        let lines: Vec<&str> = plain.lines().collect();
        for n in [1, 17, 50] {
            let k = n - 1;
            let malformed = damaged(&batch, n as u64, Damage::Malformed).await;
            let got: Vec<&str> = malformed.lines().collect();
            assert_eq!(malformed.len(), plain.len(), "same length");
            assert_eq!(got.len(), 50);
            for (i, (a, b)) in got.iter().zip(&lines).enumerate() {
                if i != k {
                    assert_eq!(a, b);
                }
            }
            let prefix_end = lines[k].find("\"result\":").unwrap() + "\"result\":".len() + 1;
            assert_eq!(got[k][..prefix_end], lines[k][..prefix_end], "{}", got[k]);
            assert!(got[k].ends_with(' '), "{}", got[k]);
            assert!(serde_json::from_str::<serde_json::Value>(got[k]).is_err());

            let garbage = damaged(&batch, n as u64, Damage::Garbage).await;
            let got: Vec<&str> = garbage.lines().collect();
            assert_eq!(got.len(), 50);
            assert_eq!(got[k], "not json at all");
            assert_eq!(
                got.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != k)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>(),
                lines
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != k)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>()
            );

            let dropped = damaged(&batch, n as u64, Damage::Drop).await;
            let mut expected = lines.clone();
            expected.remove(k);
            assert_eq!(dropped.lines().collect::<Vec<_>>(), expected);
            assert!(dropped.ends_with('\n'));
        }
        // A line number past the end changes nothing.
        assert_eq!(damaged(&batch, 51, Damage::Drop).await, plain);
        assert_eq!(damaged(&batch, 0, Damage::Garbage).await, plain);
    }

    #[test]
    fn malformed_lines_stay_valid_utf8() {
        for pad in 0..8 {
            let mut out = BytesMut::new();
            out.extend_from_slice(b"{\"custom_id\":\"a\",\"result\":");
            let start = out.len();
            let result = format!("{{\"t\":\"{}{}\"}}", "x".repeat(pad), "é€".repeat(6));
            out.extend_from_slice(format!("{result}}}\n").as_bytes());
            let len = out.len();
            malform_last_line(&mut out, start, LineEnding::Lf);
            assert_eq!(out.len(), len);
            let line = std::str::from_utf8(&out).unwrap();
            assert!(
                line.starts_with("{\"custom_id\":\"a\",\"result\":{\"t"),
                "{line}"
            );
            assert!(serde_json::from_str::<serde_json::Value>(line).is_err());
        }
    }
}
