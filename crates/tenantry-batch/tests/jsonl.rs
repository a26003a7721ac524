//! Property tests of the JSONL results decoder: any chunking, any line endings, any garbage.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use tenantry_batch::ResultStream;
use tenantry_batch::jsonl::ResultDecoder;

fn line(i: usize) -> String {
    match i % 3 {
        0 => format!(r#"{{"custom_id":"r{i}","result":{{"type":"canceled"}}}}"#),
        1 => format!(
            r#"{{"custom_id":"r{i}","result":{{"type":"succeeded","message":{{"id":"msg_{i}","type":"message","role":"assistant","model":"m","content":[{{"type":"text","text":"line\nbreak é {i}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{i},"output_tokens":1}}}}}}}}"#
        ),
        _ => format!(
            r#"{{"custom_id":"r{i}","result":{{"type":"errored","error":{{"type":"error","error":{{"type":"api_error","message":"x"}},"request_id":null}}}}}}"#
        ),
    }
}

fn decode(chunks: &[&[u8]]) -> Vec<Result<String, u64>> {
    let mut decoder = ResultDecoder::new();
    let mut out = VecDeque::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut out);
    }
    decoder.finish(&mut out);
    out.into_iter()
        .map(|(n, r)| r.map(|r| r.custom_id).map_err(|_| n))
        .collect()
}

proptest! {
    #[test]
    fn any_chunking_and_endings_give_every_result_once(
        n in 0usize..12,
        endings in proptest::collection::vec(0u8..3, 12),
        blanks in proptest::collection::vec(0u8..3, 12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        trailing_newline in any::<bool>(),
    ) {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&line(i));
            let last = i + 1 == n;
            if !last || trailing_newline {
                text.push_str(match endings[i] { 0 => "\n", 1 => "\r\n", _ => "\n" });
            }
            if !last {
                for _ in 0..blanks[i] { text.push_str(if blanks[i] == 1 { "\n" } else { "\r\n" }); }
            }
        }
        let bytes = text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points { chunks.push(&bytes[start..p]); start = p; }
        chunks.push(&bytes[start..]);
        let got = decode(&chunks);
        let want: Vec<Result<String, u64>> = (0..n).map(|i| Ok(format!("r{i}"))).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_carry_line_numbers(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        split in any::<prop::sample::Index>(),
    ) {
        let at = split.index(data.len() + 1);
        let got = decode(&[&data[..at], &data[at..]]);
        let lines = data.split(|&b| b == b'\n').count() as u64;
        for item in got {
            if let Err(line) = item {
                prop_assert!(line >= 1 && line <= lines);
            }
        }
    }
}

#[tokio::test]
async fn stream_reports_malformed_and_truncated_input() {
    let text = format!(
        "{}\n{{\"custom_id\":\"half\",\"res\n{}\n{}",
        line(0),
        line(1),
        &line(2)[..20]
    );
    let stream = ResultStream::from_bytes(
        futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(text))]),
        Some(4),
    );
    let got: Vec<_> = stream
        .map(|r| r.map(|r| r.custom_id).map_err(|e| e.to_string()))
        .collect()
        .await;
    assert_eq!(got[0], Ok("r0".to_owned()));
    assert_eq!(
        got[1],
        Err("malformed result on line 2 (custom_id half)".to_owned())
    );
    assert_eq!(got[2], Ok("r1".to_owned()));
    assert_eq!(
        got[3],
        Err("results stream truncated after 3 result(s) of 4".to_owned())
    );
    assert_eq!(got.len(), 4);
}
