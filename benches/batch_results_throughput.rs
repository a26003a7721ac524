//! Measures tenantry-batch on a full-size batch against the emulator, next to the official
//! Python SDK on the same batch, and prints the figures.
//!
//! Run in release from the repository root:
//! `cargo bench --bench batch_results_throughput -- [REQUESTS] [RUNS]` (defaults 100,000 and 3;
//! with `CI` set, a smoke run of 2,000 and 1).
//!
//! Every phase runs in its own process so each peak-RSS figure is that phase's alone:
//! 1. `serve`: the emulator, in a child process, answering each request with ~1,700
//!    characters of text (so 100,000 results are ≈ 200 MB of JSONL);
//! 2. `create`: builds, validates and serializes the batch (time, peak RSS), sends it and
//!    waits for it to end;
//! 3. the parent downloads the results raw (size, loopback ceiling), and right after it
//! 4. `results`: streams and decodes every result into typed values (time, peak RSS); steps 3
//!    and 4 alternate for every run, so the decode/raw ratio compares runs under the same load;
//! 5. `$TENANTRY_PYTHON crates/tenantry-batch/scripts/python_results.py` (the interpreter
//!    `cargo xtask provision` prints, else `python3`): the official SDK iterating
//!    `client.messages.batches.results()` over the same batch (time, peak RSS).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use tenantry_batch::types::{MessageParam, MessageParams, ResultOutcome};
use tenantry_batch::{BatchRequests, Client, Config, PollPolicy};
use tenantry_emulator::{Emulator, MessageRequest, Reply, Responder};

const KEY: &str = "sk-bench";
const PROMPT_CHARS: usize = 1_000;
const ANSWER_CHARS: usize = 1_700;

type Fallible<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Peak RSS (`VmHWM`) of this process in MiB, from `/proc/self/status`.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Answers with the prompt repeated to `ANSWER_CHARS` characters.
#[derive(Debug)]
struct LongEcho;

impl Responder for LongEcho {
    fn respond(&self, request: &MessageRequest<'_>) -> Reply {
        let prompt = request.params["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("echo");
        let text: String = prompt.chars().cycle().take(ANSWER_CHARS).collect();
        Reply::Text(text)
    }
}

fn client(url: &str) -> Fallible<Client> {
    Ok(Client::new(
        Config::new(KEY)
            .base_url(url)
            .request_timeout(Duration::from_secs(1800)),
    )?)
}

async fn serve() -> Fallible {
    let emulator = Emulator::builder()
        .api_key(KEY)
        .batch_latency(Duration::from_millis(500))
        .responder(LongEcho)
        .start()
        .await?;
    println!("{}", emulator.base_url());
    // Serve until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            line.clear();
        }
    })
    .await?;
    emulator.shutdown().await;
    Ok(())
}

async fn create(url: &str, requests: usize) -> Fallible {
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(PROMPT_CHARS)
        .collect();
    let started = Instant::now();
    let mut batch = BatchRequests::new();
    for i in 0..requests {
        let params = MessageParams::new(
            "claude-haiku-4-5",
            1024,
            vec![MessageParam::user(format!("{i} {filler}"))],
        );
        batch.push(format!("req-{i:06}"), &params)?;
    }
    let build = started.elapsed();
    println!(
        "BUILD {} {} {:.3} {:.1}",
        batch.len(),
        batch.body_len(),
        build.as_secs_f64(),
        peak_rss_mib()
    );
    let client = client(url)?;
    let sent = Instant::now();
    let created = client.batches().create(batch).await?;
    let send = sent.elapsed();
    let poll = PollPolicy::default()
        .initial(Duration::from_millis(200))
        .max(Duration::from_secs(2));
    client
        .batches()
        .wait(&created.id, poll, |b| {
            eprintln!("  progress: {:?}", b.request_counts)
        })
        .await?;
    println!("CREATE {} {:.3}", created.id, send.as_secs_f64());
    Ok(())
}

async fn results(url: &str, id: &str) -> Fallible {
    let client = client(url)?;
    let started = Instant::now();
    let mut stream = client.batches().results(id).await?;
    let (mut count, mut succeeded, mut output_tokens) = (0u64, 0u64, 0u64);
    while let Some(result) = stream.try_next().await? {
        count += 1;
        if let ResultOutcome::Succeeded { message } = &result.result {
            succeeded += 1;
            output_tokens += message.usage.output_tokens;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "RESULTS {count} {succeeded} {output_tokens} {seconds:.3} {:.1}",
        peak_rss_mib()
    );
    Ok(())
}

/// Runs this executable in another mode and returns its stdout.
fn phase(args: &[&str]) -> Fallible<String> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("phase {args:?} failed").into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The fields after `tag` on the first line of `stdout` that starts with it.
fn fields(stdout: &str, tag: &str) -> Fallible<Vec<String>> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .ok_or_else(|| format!("no {tag} line in {stdout:?}"))?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

fn num(fields: &[String], i: usize) -> Fallible<f64> {
    Ok(fields.get(i).ok_or("missing field")?.parse()?)
}

async fn raw_download(url: &str, id: &str) -> Fallible<(u64, f64)> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let response = http
        .get(format!("{url}/v1/messages/batches/{id}/results"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await?
        .error_for_status()?;
    let mut body = response.bytes_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn drive(requests: usize, runs: usize) -> Fallible {
    let exe = std::env::current_exe()?;
    let mut server: Child = Command::new(exe)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    BufReader::new(server.stdout.take().ok_or("no stdout")?).read_line(&mut url)?;
    let url = url.trim().to_owned();
    println!(
        "emulator (child process) at {url}; load average before: {}",
        load_average()
    );

    let out = phase(&["create", &url, &requests.to_string()])?;
    let build = fields(&out, "BUILD")?;
    let created = fields(&out, "CREATE")?;
    let id = created[0].clone();
    println!(
        "build + validate + serialize: {} requests, {:.1} MB body, {:.2} s, peak RSS {:.0} MiB; send: {:.2} s",
        build[0],
        num(&build, 1)? / 1e6,
        num(&build, 2)?,
        num(&build, 3)?,
        num(&created, 1)?
    );

    let mut bytes = 0;
    let mut raw_s = Vec::new();
    let mut rust_s = Vec::new();
    let mut rust_rss = Vec::new();
    for run in 1..=runs {
        // The raw download right before each decoding run: the machine's load moves between
        // runs, so each ratio compares two downloads made under the same load.
        let (raw_bytes, raw) = raw_download(&url, &id).await?;
        bytes = raw_bytes;
        let out = fields(&phase(&["results", &url, &id])?, "RESULTS")?;
        assert_eq!(out[0], requests.to_string(), "every result decoded");
        let decode = num(&out, 3)?;
        println!(
            "  run {run}: raw download {:.0} MB/s, tenantry-batch {:.0} MB/s ({:.2}x raw), peak RSS {:.0} MiB",
            raw_bytes as f64 / 1e6 / raw,
            raw_bytes as f64 / 1e6 / decode,
            raw / decode,
            num(&out, 4)?
        );
        raw_s.push(raw);
        rust_s.push(decode);
        rust_rss.push(num(&out, 4)?);
    }
    let mb = bytes as f64 / 1e6;
    let raw = median(raw_s);
    println!(
        "results file: {mb:.1} MB; raw download (reqwest, no decoding), median: {:.0} MB/s",
        mb / raw
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/tenantry-batch/scripts/python_results.py"
    );
    // The interpreter `cargo xtask provision` set up with the SDK, else the system's.
    let python = std::env::var_os("TENANTRY_PYTHON").unwrap_or_else(|| "python3".into());
    let mut py_s = Vec::new();
    let mut py_rss = Vec::new();
    for _ in 0..runs {
        let output = Command::new(&python)
            .args([script, &url, &id, KEY])
            .stderr(Stdio::inherit())
            .output()?;
        if !output.status.success() {
            return Err(
                "the Python SDK run failed: run `cargo xtask provision` and export \
                        TENANTRY_PYTHON as it prints (or pip install anthropic)"
                    .into(),
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        assert_eq!(
            report["results"].as_u64(),
            Some(requests as u64),
            "python saw every result"
        );
        py_s.push(report["seconds"].as_f64().unwrap_or(f64::NAN));
        py_rss.push(report["max_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0);
    }
    let (rs, rr, ps, pr) = (
        median(rust_s),
        median(rust_rss),
        median(py_s),
        median(py_rss),
    );
    println!("results, median of {runs} runs, each in a fresh process:");
    println!(
        "  tenantry-batch: {rs:.2} s = {:.0} MB/s ({:.2}x the raw download), peak RSS {rr:.0} MiB",
        mb / rs,
        raw / rs
    );
    println!(
        "  python SDK:     {ps:.2} s = {:.0} MB/s, peak RSS {pr:.0} MiB",
        mb / ps
    );
    println!(
        "  ratio: {:.1}x faster, {:.1}x less memory",
        ps / rs,
        pr / rr
    );
    println!("load average after: {}", load_average());

    drop(server.stdin.take());
    server.wait()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Fallible {
    let args: Vec<String> = std::env::args()
        .filter(|a| a != "--bench")
        .skip(1)
        .collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve().await,
        Some("create") => create(&args[1], args[2].parse()?).await,
        Some("results") => results(&args[1], &args[2]).await,
        _ => {
            // CI runs a smoke run: every phase, small.
            let smoke = std::env::var_os("CI").is_some();
            let (requests, runs) = if smoke { (2_000, 1) } else { (100_000, 3) };
            let requests = args.first().map_or(Ok(requests), |n| n.parse())?;
            let runs = args.get(1).map_or(Ok(runs), |n| n.parse())?;
            drive(requests, runs).await
        }
    }
}
