//! The official Python SDK (`anthropic`, a client nobody here wrote) drives the emulator
//! through every batch operation, error class and retry; see `tests/sdk/sdk_check.py`.
//!
//! The interpreter is `TENANTRY_PYTHON` (set by `cargo xtask test` to a virtual environment
//! that has the SDK), else `python3` from `PATH`.

use std::path::PathBuf;
use std::time::Duration;

use tenantry_emulator::{Emulator, Endpoint, FaultKind};

/// The interpreter that has the SDK: the one `cargo xtask test` provisioned, else `python3`.
fn python() -> std::ffi::OsString {
    std::env::var_os("TENANTRY_PYTHON").unwrap_or_else(|| "python3".into())
}

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_works_against_the_emulator() {
    let requirements = sdk_dir().join("requirements.txt");
    let probe = tokio::process::Command::new(python())
        .args(["-c", "import anthropic"])
        .output()
        .await
        .expect(
            "Python 3 must be installed to run the SDK check (`cargo xtask test` provisions it)",
        );
    assert!(
        probe.status.success(),
        "the official Anthropic Python SDK is missing from {:?}: run `cargo xtask test`, which \
         installs it into a virtual environment, or `pip install -r {}` ({})",
        python(),
        requirements.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let emu = Emulator::builder()
        .api_key("sk-test")
        .batch_latency(Duration::from_millis(200))
        .max_batch_bytes(1 << 20)
        .seed(11)
        .start()
        .await
        .expect("emulator starts");
    let run = tokio::process::Command::new(python())
        .arg(sdk_dir().join("sdk_check.py"))
        .arg(emu.base_url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the SDK check finishes within 5 minutes")
        .expect("the Python interpreter runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python sdk check: ok"), "{stdout}");

    // The SDK's retries are visible in the counters.
    let counts = emu.fault_counts();
    assert_eq!(
        counts.injected(Endpoint::CreateBatch, FaultKind::Overloaded),
        5
    );
    assert_eq!(
        counts.injected(Endpoint::CreateMessage, FaultKind::RateLimited),
        3
    );
    assert_eq!(
        counts.injected(Endpoint::RetrieveBatch, FaultKind::ConnectionReset),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::RetrieveBatch, FaultKind::ApiError),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::BatchResults, FaultKind::Truncated),
        1
    );
    assert_eq!(
        counts.injected(Endpoint::CreateBatch, FaultKind::ErroredResult),
        2
    );
    emu.shutdown().await;
}
