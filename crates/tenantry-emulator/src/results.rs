//! The results file: JSONL lines built lazily from a batch's stored per-request results.

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

/// Appends the result line of request `i` to `out`.
fn push_line(out: &mut BytesMut, batch: &Batch, view: &View, i: usize, ending: LineEnding) {
    let item = &batch.items[i];
    out.extend_from_slice(b"{\"custom_id\":\"");
    // custom_id matches ^[a-zA-Z0-9_-]{1,64}$, so it needs no escaping.
    out.extend_from_slice(item.custom_id.as_bytes());
    out.extend_from_slice(b"\",\"result\":");
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
    match ending {
        LineEnding::Lf => out.extend_from_slice(b"\n"),
        LineEnding::CrLf => out.extend_from_slice(b"\r\n"),
    }
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
    ending: LineEnding,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
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
                push_line(&mut out, &batch, &view, i, ending);
                pos += 1;
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
        let view = batch.view(at);
        let chunks: Vec<_> = stream(batch, view, ending).collect().await;
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
}
