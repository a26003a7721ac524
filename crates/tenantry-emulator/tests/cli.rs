//! The binary: prints its base URL first, serves, documents its flags.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_tenantry-emulator");

#[tokio::test]
async fn prints_base_url_then_serves_with_flags() {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--api-key",
            "sk-cli",
            "--batch-latency-ms",
            "0",
            "--seed",
            "3",
        ])
        .args(["--fault", "list:529:1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("http://127.0.0.1:") && !first.ends_with('/'),
        "{first}"
    );
    let client = reqwest::Client::new();
    let list = |key: &'static str| {
        client
            .get(format!("{first}/v1/messages/batches"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .send()
    };
    assert_eq!(list("sk-other").await.unwrap().status(), 401);
    assert_eq!(list("sk-cli").await.unwrap().status(), 529);
    assert_eq!(list("sk-cli").await.unwrap().status(), 200);
    let counts: serde_json::Value = client
        .get(format!("{first}/_emulator/fault_counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["list"]["injected"]["overloaded"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn help_documents_every_flag() {
    let output = tokio::process::Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--addr",
        "--api-key",
        "--batch-latency-ms",
        "--seed",
        "--time-scale",
        "--max-batch-bytes",
        "--requests-per-minute",
        "--fault",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn bad_fault_spec_is_rejected() {
    let output = tokio::process::Command::new(BIN)
        .args(["--fault", "nowhere:529"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid fault specification"));
}
