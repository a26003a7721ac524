//! Measures the emulator with a full-size batch: 100,000 requests (about 200 MB) accepted,
//! then the results stream read several times over loopback, in MB/s, next to a static
//! body of the same size served by a bare axum route (the loopback ceiling).
//!
//! Run in release: `cargo bench --bench emulator_throughput`
//! (optional arguments: number of requests, prompt characters per request).
//! Prints create time, results throughput, and the process's peak and current RSS.
//! With `CI` set in the environment (the CI smoke run of every example) it defaults to
//! 2,000 requests.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tenantry_emulator::Emulator;

/// `VmHWM` (peak RSS) and `VmRSS` in MiB, from `/proc/self/status` (Linux).
fn memory_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The create body, generated chunk by chunk so the client never holds a copy of it.
fn body_stream(
    requests: usize,
    prompt_chars: usize,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(prompt_chars)
        .collect();
    let pieces = std::iter::once(b"{\"requests\":[".to_vec())
        .chain((0..requests).step_by(500).map(move |first| {
            let last = (first + 500).min(requests);
            let mut out = Vec::with_capacity((last - first) * (prompt_chars + 150));
            for i in first..last {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(
                    format!(
                        "{{\"custom_id\":\"req-{i}\",\"params\":{{\"model\":\"claude-haiku-4-5\",\"max_tokens\":256,\
                         \"messages\":[{{\"role\":\"user\",\"content\":\"{i} {filler}\"}}]}}}}"
                    )
                    .as_bytes(),
                );
            }
            out
        }))
        .chain(std::iter::once(b"]}".to_vec()));
    futures_util::stream::iter(pieces.map(Ok))
}

async fn read_all(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u64, Duration), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let response = client
        .get(url)
        .header("x-api-key", "sk-bench")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await?
        .error_for_status()?;
    let mut stream = response.bytes_stream();
    let mut bytes = 0_u64;
    while let Some(chunk) = stream.next().await {
        bytes += u64::try_from(chunk?.len())?;
    }
    Ok((bytes, started.elapsed()))
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().filter(|a| a != "--bench").skip(1);
    // CI runs every example in a debug build as a smoke test: a small batch keeps it quick.
    let smoke = std::env::var_os("CI").is_some();
    let default_requests = if smoke { 2_000 } else { 100_000 };
    let requests: usize = args.next().map_or(Ok(default_requests), |a| a.parse())?;
    if smoke {
        println!("CI is set: smoke run with {requests} requests (figures are not benchmarks)");
    }
    let prompt_chars: usize = args.next().map_or(Ok(1_900), |a| a.parse())?;
    let (_, rss_start) = memory_mib();

    let emu = Emulator::builder()
        .batch_latency(Duration::ZERO)
        .start()
        .await?;
    let client = reqwest::Client::new();
    let body_bytes: u64 = {
        let mut total = 0_u64;
        let mut s = std::pin::pin!(body_stream(requests, prompt_chars));
        while let Some(piece) = s.next().await {
            total += u64::try_from(piece?.len())?;
        }
        total
    };
    let started = Instant::now();
    let created: serde_json::Value = client
        .post(format!("{}/v1/messages/batches", emu.base_url()))
        .header("x-api-key", "sk-bench")
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .header("content-length", body_bytes)
        .body(reqwest::Body::wrap_stream(body_stream(
            requests,
            prompt_chars,
        )))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let create_time = started.elapsed();
    let (hwm_after_create, rss_after_create) = memory_mib();
    let id = created["id"].as_str().ok_or("no batch id")?;
    let url = format!("{}/v1/messages/batches/{id}/results", emu.base_url());

    println!(
        "batch: {requests} requests, {:.1} MB create body",
        body_bytes as f64 / 1e6
    );
    println!(
        "create: {:.2} s ({:.0} MB/s accepted and answered)",
        create_time.as_secs_f64(),
        mb_per_s(body_bytes, create_time)
    );

    // The loopback ceiling: a static body of the same size on a bare axum route.
    let (results_bytes, _) = read_all(&client, &url).await?;
    let static_body = bytes::Bytes::from(vec![b'x'; usize::try_from(results_bytes)?]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let static_url = format!("http://{}/static", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/static",
        axum::routing::get(move || {
            let body = static_body.clone();
            async move { body }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let runs = 5;
    let mut emulator_rates = Vec::new();
    let mut static_rates = Vec::new();
    for _ in 0..runs {
        let (bytes, elapsed) = read_all(&client, &url).await?;
        emulator_rates.push(mb_per_s(bytes, elapsed));
        let (bytes, elapsed) = read_all(&client, &static_url).await?;
        static_rates.push(mb_per_s(bytes, elapsed));
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (hwm_end, rss_end) = memory_mib();
    println!(
        "results: {:.1} MB per read, {runs} reads",
        results_bytes as f64 / 1e6
    );
    println!(
        "results stream: median {:.0} MB/s (best {:.0}) | static body, same size: median {:.0} MB/s (best {:.0})",
        median(&mut emulator_rates),
        emulator_rates.last().copied().unwrap_or(0.0),
        median(&mut static_rates),
        static_rates.last().copied().unwrap_or(0.0),
    );
    println!(
        "memory (MiB): start RSS {rss_start}, after create RSS {rss_after_create} / peak {hwm_after_create}, \
         end RSS {rss_end} / peak {hwm_end} (includes one static copy of the results for the comparison)"
    );
    emu.shutdown().await;
    Ok(())
}
