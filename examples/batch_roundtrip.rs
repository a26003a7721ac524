//! Creates a Message Batch, waits for it with progress, and prints every result.
//!
//! `cargo run --example batch_roundtrip` from the repository root.
//!
//! - With `ANTHROPIC_API_KEY` set, it talks to the real API (or to `ANTHROPIC_BASE_URL` when
//!   that is set too) — and a real batch costs money, at half the synchronous price.
//! - With neither set, it starts the emulator in-process, so it runs unattended anywhere.

use std::time::Duration;

use futures_util::StreamExt;
use tenantry_batch::types::{MessageParam, MessageParams, ResultOutcome};
use tenantry_batch::{BatchRequests, Client, Config, PollPolicy};
use tenantry_emulator::Emulator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let has_key = std::env::var_os("ANTHROPIC_API_KEY").is_some();
    let has_url = std::env::var_os("ANTHROPIC_BASE_URL").is_some();
    // Keep the emulator alive for the whole run when we start one.
    let (client, _emulator) = if has_key {
        println!(
            "using the API at {}",
            std::env::var("ANTHROPIC_BASE_URL")
                .unwrap_or_else(|_| "https://api.anthropic.com".into())
        );
        (Client::from_env()?, None)
    } else if has_url {
        let url = std::env::var("ANTHROPIC_BASE_URL")?;
        println!("using the API at {url} with a placeholder key");
        (Client::new(Config::new("sk-example").base_url(url))?, None)
    } else {
        let emulator = Emulator::builder()
            .api_key("sk-example")
            .batch_latency(Duration::from_secs(2))
            .start()
            .await?;
        println!(
            "no ANTHROPIC_API_KEY: started the emulator at {}",
            emulator.base_url()
        );
        (
            Client::new(Config::new("sk-example").base_url(emulator.base_url()))?,
            Some(emulator),
        )
    };

    let questions = [
        ("capital-fr", "What is the capital of France? One word."),
        ("prime-7", "Is 7 a prime number? Answer yes or no."),
        ("haiku-sea", "Write a haiku about the sea."),
    ];
    let mut requests = BatchRequests::new();
    for (id, question) in questions {
        let params =
            MessageParams::new("claude-haiku-4-5", 128, vec![MessageParam::user(question)]);
        requests.push(id, &params)?;
    }
    println!(
        "sending {} requests ({} bytes)",
        requests.len(),
        requests.body_len()
    );

    let batch = client.batches().create(requests).await?;
    println!("created {} ({})", batch.id, batch.processing_status);

    let poll = PollPolicy::default()
        .initial(Duration::from_millis(500))
        .max(Duration::from_secs(30));
    let ended = client
        .batches()
        .wait(&batch.id, poll, |b| {
            let c = b.request_counts;
            println!(
                "  {}: processing {} succeeded {} errored {} canceled {} expired {}",
                b.processing_status, c.processing, c.succeeded, c.errored, c.canceled, c.expired
            );
        })
        .await?;
    println!("ended at {:?}", ended.ended_at);

    let mut results = client.batches().results(&batch.id).await?;
    while let Some(line) = results.next().await {
        let line = line?;
        match &line.result {
            ResultOutcome::Succeeded { message } => println!(
                "{}: {:?} ({} in / {} out tokens)",
                line.custom_id,
                message.text(),
                message.usage.input_tokens,
                message.usage.output_tokens
            ),
            ResultOutcome::Errored { error } => {
                println!(
                    "{}: errored, {}: {}",
                    line.custom_id, error.error.kind, error.error.message
                );
            }
            other => println!("{}: {other:?}", line.custom_id),
        }
    }
    Ok(())
}
