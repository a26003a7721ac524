//! Fuzzes the results JSONL decoder: any bytes, cut into chunks anywhere, must decode without
//! panicking; the lines it yields are numbered within the input; decoding is independent of how
//! the input is chunked.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use tenantry_batch::jsonl::ResultDecoder;

fn decode(chunks: &[&[u8]]) -> Vec<(u64, Result<String, String>)> {
    let mut decoder = ResultDecoder::new();
    let mut out = VecDeque::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut out);
    }
    decoder.finish(&mut out);
    out.into_iter()
        .map(|(line, result)| (line, result.map(|r| r.custom_id).map_err(|e| e.to_string())))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, the rest is the file.
    let Some((&size, file)) = data.split_first() else {
        return;
    };
    let size = usize::from(size).max(1);
    let whole = decode(&[file]);
    let chunks: Vec<&[u8]> = file.chunks(size).collect();
    let chunked = decode(&chunks);
    assert_eq!(whole, chunked, "decoding depends on chunking");
    let lines = file.split(|&b| b == b'\n').count() as u64;
    for (line, _) in &whole {
        assert!(*line >= 1 && *line <= lines);
    }
});
