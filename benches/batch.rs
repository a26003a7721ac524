//! tenantry-batch hot paths: decoding results JSONL into typed results, and building a batch
//! (validation + serialization).
//!
//! `cargo bench -p tenantry-benches --bench batch`

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tenantry_batch::BatchRequests;
use tenantry_batch::jsonl::ResultDecoder;
use tenantry_batch::types::{MessageParam, MessageParams};

/// A results file shaped like the API's: `type` first, ~2 KB per succeeded line, with some
/// errored and canceled lines.
fn results_file(lines: usize) -> Vec<u8> {
    let text: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(1_700)
        .collect();
    let mut out = Vec::new();
    for i in 0..lines {
        let line = match i % 50 {
            0 => format!(
                r#"{{"custom_id":"req-{i:06}","result":{{"type":"errored","error":{{"type":"error","error":{{"type":"overloaded_error","message":"Overloaded"}},"request_id":null}}}}}}"#
            ),
            1 => format!(r#"{{"custom_id":"req-{i:06}","result":{{"type":"canceled"}}}}"#),
            _ => format!(
                r#"{{"custom_id":"req-{i:06}","result":{{"type":"succeeded","message":{{"id":"msg_01DD9iHzKBZFbLHHetVbBC{i:02}","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":483,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"output_tokens":425,"service_tier":"batch"}}}}}}}}"#
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn decode(c: &mut Criterion) {
    let file = results_file(10_000);
    let mut group = c.benchmark_group("batch/results_decode");
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("10k_lines_64KiB_chunks", |b| {
        b.iter(|| {
            let mut decoder = ResultDecoder::new();
            let mut out = VecDeque::new();
            let mut ok = 0usize;
            for chunk in file.chunks(64 * 1024) {
                decoder.feed(chunk, &mut out);
                ok += out.drain(..).filter(|(_, r)| r.is_ok()).count();
            }
            decoder.finish(&mut out);
            ok += out.drain(..).filter(|(_, r)| r.is_ok()).count();
            assert_eq!(ok, 10_000);
            black_box(ok)
        });
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(1_000)
        .collect();
    let params: Vec<MessageParams> = (0..10_000)
        .map(|i| {
            MessageParams::new(
                "claude-haiku-4-5",
                1024,
                vec![MessageParam::user(format!("{i} {filler}"))],
            )
        })
        .collect();
    let mut group = c.benchmark_group("batch/build");
    group.throughput(Throughput::Elements(params.len() as u64));
    group.bench_function("10k_requests_validate_serialize", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut batch = BatchRequests::new();
                for (i, p) in params.iter().enumerate() {
                    batch.push(format!("req-{i:06}"), p).expect("valid");
                }
                black_box(batch.into_body().expect("non-empty").len())
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, decode, build);
criterion_main!(benches);
