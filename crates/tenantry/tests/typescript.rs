//! The TypeScript definitions of `tenantry::ts::export` type the envelope of a real finished job
//! under the real `tsc --strict`, and reject a job output of the wrong shape.
//!
//! Uses the TypeScript compiler that `npm ci` installs in `crates/tenantry-envelope/tests/ts/`
//! (`cargo xtask test` does it).
#![cfg(all(feature = "ts", feature = "sqlite", feature = "emulator"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tenantry::{Database, Envelope};

mod support;
use support::{builder, emulator, pending_id, request, until_terminal};

fn tsc() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenantry-envelope/tests/ts");
    let tsc = dir.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "the TypeScript compiler is not installed: run `cargo xtask test`, or `npm ci` in {} \
         (needs Node.js and npm)",
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
    let db = tenantry_testkit::SqliteDatabase::create().await;
    let emulator = emulator(Duration::ZERO).await;
    let tenantry = builder(Database::Sqlite(db.pool().clone()), &emulator)
        .build()
        .await
        .unwrap();
    let engine = tenantry.spawn();
    let mut events = tenantry.subscribe("acme").await.unwrap();
    let submitted = tenantry.submit("acme", request("Classify: refund request"));
    let id = pending_id(&submitted.await.unwrap());
    until_terminal(&mut events, 1).await;
    let envelope = tenantry.job("acme", &id).await.unwrap();
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
