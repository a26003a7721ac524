//! The `tenantry-emulator` binary: serves the emulated Anthropic API until killed.
//!
//! Prints the base URL (e.g. `http://127.0.0.1:41234`) as the first line on stdout.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tenantry_emulator::{Emulator, FaultPlan};

/// A faithful local Anthropic API server (Message Batches + Messages) with fault injection.
///
/// Prints the base URL as the first line on stdout, then serves until killed.
#[derive(Debug, Parser)]
#[command(name = "tenantry-emulator", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// Accepted API key (repeatable). Without it any non-empty key is accepted.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,

    /// Virtual milliseconds from a batch's creation until it ends.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    batch_latency_ms: u64,

    /// Seed of ids, results order and probabilistic faults.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,

    /// Virtual clock speed (1 = real time; 3600 = an hour per second).
    #[arg(long, value_name = "N", default_value_t = 1)]
    time_scale: u32,

    /// Largest accepted batch create body in bytes (413 above it).
    #[arg(long, value_name = "BYTES", default_value_t = tenantry_emulator::MAX_BATCH_BODY_BYTES)]
    max_batch_bytes: usize,

    /// Requests per (virtual) minute per workspace; beyond it 429 with retry-after, and
    /// every answer carries anthropic-ratelimit-requests-* headers. Default: no limit.
    #[arg(long, value_name = "N")]
    requests_per_minute: Option<u64>,

    /// Fault to inject (repeatable): ENDPOINT:FAULT[:TIMES|@PROBABILITY].
    ///
    /// ENDPOINT: create, retrieve, list, cancel, delete, results, messages, count_tokens.
    /// FAULT: 429[=RETRY_AFTER_MS], 529, 500, 404, reset (before the work), lost (after
    /// the work: the batch is created, the message billed, but no answer), truncate=BYTES,
    /// slow=CHUNK/MS; on results only also crlf, badline=N (line N cut after its
    /// custom_id), garbage=N (line N replaced by non-JSON), dropline=N (line N left out),
    /// lines counted from 1; errors take a +retry / +noretry suffix for x-should-retry.
    /// TIMES scripts the next N calls (default 1); @P fires with probability P (@1: every
    /// call, e.g. results:dropline=3@1 loses line 3 from every download).
    /// Also errored=SHARE[/ERROR_TYPE]: that share of batch requests end errored
    /// (default type api_error).
    /// Examples: create:529:2, results:truncate=100, retrieve:429=500@0.1, create:lost,
    /// results:badline=3, errored=0.05.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let mut message = format!("tenantry-emulator: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut plan = FaultPlan::new();
    for spec in &args.faults {
        plan = plan.with_spec(spec)?;
    }
    let mut builder = Emulator::builder()
        .addr(args.addr)
        .batch_latency(Duration::from_millis(args.batch_latency_ms))
        .seed(args.seed)
        .time_scale(args.time_scale)
        .max_batch_bytes(args.max_batch_bytes)
        .faults(plan);
    if let Some(limit) = args.requests_per_minute {
        builder = builder.requests_per_minute(limit);
    }
    for key in args.api_keys {
        builder = builder.api_key(key);
    }
    let emulator = builder.start().await?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", emulator.base_url())?;
        stdout.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("{}", emulator.fault_counts());
    emulator.shutdown().await;
    Ok(())
}
