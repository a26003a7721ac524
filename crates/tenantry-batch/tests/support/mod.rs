//! Shared test support: an in-process emulator and a client pointed at it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tenantry_batch::types::{MessageParam, MessageParams};
use tenantry_batch::{BatchRequests, Client, Config, PollPolicy, RetryPolicy};
use tenantry_emulator::{Emulator, FaultPlan};

/// The key the emulator accepts; tests check it never leaks.
pub const KEY: &str = "sk-ant-test-3f9c2a7e-never-print-me";

pub async fn emulator(plan: FaultPlan) -> Emulator {
    Emulator::builder()
        .api_key(KEY)
        .seed(7)
        .batch_latency(Duration::from_millis(150))
        .faults(plan)
        .start()
        .await
        .expect("emulator starts")
}

/// Fast, deterministic retries: 20 ms, 40 ms, … without jitter.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(20))
        .jitter(false)
}

pub fn config(emu: &Emulator) -> Config {
    Config::new(KEY)
        .base_url(emu.base_url())
        .retry(fast_retries())
}

pub fn client(emu: &Emulator) -> Client {
    Client::new(config(emu)).expect("client builds")
}

pub fn params(text: &str) -> MessageParams {
    MessageParams::new("claude-haiku-4-5", 32, vec![MessageParam::user(text)])
}

pub fn requests(n: usize) -> BatchRequests {
    let mut batch = BatchRequests::new();
    for i in 0..n {
        batch
            .push(
                format!("req-{i:04}"),
                &params(&format!("Question number {i}?")),
            )
            .expect("valid");
    }
    batch
}

pub fn poll() -> PollPolicy {
    PollPolicy::default()
        .initial(Duration::from_millis(25))
        .max(Duration::from_millis(100))
}
