//! The TypeScript definitions of `tenantry::ts::export` type the envelope of a real finished job
//! under the real `tsc --strict`, and reject a job output of the wrong shape.
//!
//! Uses the TypeScript compiler that `npm ci` installs in `crates/tenantry-envelope/tests/ts/`
//! (`.ci/run` does it).
#![cfg(all(feature = "ts", feature = "sqlite", feature = "emulator"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use tenantry::queue::EngineConfig;
use tenantry::{Envelope, Request, Tenantry, batch::Config, emulator::Emulator};

fn tsc() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenantry-envelope/tests/ts");
    let tsc = dir.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "the TypeScript compiler is not installed: run `npm ci` in {} (needs Node.js and npm)",
        dir.display()
    );
    tsc
}

/// Runs `tsc --strict --noEmit` on `file`; returns whether it passed and what it printed.
fn compile(file: &Path) -> (bool, String) {
    let output = Command::new(tsc())
        .args(["--strict", "--noEmit", "--target", "es2022"])
        .args(["--module", "esnext", "--moduleResolution", "bundler"])
        .arg(file)
        .output()
        .expect("run tsc (needs Node.js on PATH)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// The success envelope of one job run end to end on SQLite and the emulator.
async fn finished_job() -> Envelope<tenantry::JobOutput> {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::builder()
        .api_key("sk-test")
        .start()
        .await
        .unwrap();
    let tenantry = Tenantry::builder()
        .database(format!("sqlite://{}", dir.path().join("ts.db").display()))
        .api(Config::new("sk-test").base_url(emulator.base_url()))
        .engine(
            EngineConfig::new()
                .poll_interval(Duration::from_millis(30), Duration::from_millis(200)),
        )
        .build()
        .await
        .unwrap();
    let engine = tenantry.spawn();
    let mut events = tenantry.subscribe("acme").await.unwrap();
    let params = serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": "Classify: refund request"}]});
    let request = Request::new("classify", "user-1", params).max_wait(Duration::from_millis(10));
    let Envelope::Pending { operation } = tenantry.submit("acme", request).await.unwrap() else {
        panic!("a submit answers pending");
    };
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if event.unwrap().state.is_terminal() {
                return;
            }
        }
    });
    finished.await.expect("the job finishes within 60 s");
    let envelope = tenantry.job("acme", operation.id().as_str()).await.unwrap();
    engine.shutdown().await.unwrap();
    envelope
}

#[tokio::test]
async fn a_finished_jobs_envelope_type_checks_and_a_wrong_one_does_not() {
    let envelope = finished_job().await;
    assert_eq!(envelope.status(), "success");
    let dir = tempfile::tempdir().unwrap();
    let files = tenantry::ts::export(dir.path().join("bindings")).unwrap();
    assert!(
        files.iter().any(|f| f.ends_with("JobOutput.ts")),
        "{files:#?}"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains("bigint"), "{} uses bigint", file.display());
    }

    let json = serde_json::to_string_pretty(&envelope).unwrap();
    let module = format!(
        "import type {{ Envelope }} from \"./bindings/Envelope\";\n\
         import type {{ JobOutput }} from \"./bindings/JobOutput\";\n\
         export const job: Envelope<JobOutput> = {json};\n\
         export function text(e: Envelope<JobOutput>): string {{\n\
         \x20 switch (e.status) {{\n\
         \x20   case \"success\": return e.data.text;\n\
         \x20   case \"error\": return e.error.code;\n\
         \x20   case \"pending\": return e.operation.id;\n\
         \x20 }}\n\
         }}\n"
    );
    let good = dir.path().join("good.ts");
    std::fs::write(&good, module).unwrap();
    let (ok, printed) = compile(&good);
    assert!(ok, "tsc --strict rejected a real job envelope:\n{printed}");

    // The check is only worth something if a wrong shape fails it.
    let mut wrong: serde_json::Value = serde_json::to_value(&envelope).unwrap();
    wrong["data"]["text"] = serde_json::json!(42);
    let module = format!(
        "import type {{ Envelope }} from \"./bindings/Envelope\";\n\
         import type {{ JobOutput }} from \"./bindings/JobOutput\";\n\
         export const job: Envelope<JobOutput> = {wrong};\n"
    );
    let bad = dir.path().join("bad.ts");
    std::fs::write(&bad, module).unwrap();
    let (ok, printed) = compile(&bad);
    assert!(!ok, "tsc accepted a job output whose text is a number");
    assert!(
        printed.contains("Type 'number' is not assignable to type 'string'"),
        "tsc failed for another reason:\n{printed}"
    );
}
