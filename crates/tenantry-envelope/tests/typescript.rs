//! The exported TypeScript definitions compile under the real `tsc --strict`, together with
//! values the Rust types actually serialize and a consumer that narrows on `status` (and would
//! stop compiling if the wire shapes drifted).
//!
//! Needs the TypeScript compiler installed by `npm ci` in `tests/ts/` (`cargo xtask test` does it).
#![cfg(feature = "ts")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use tenantry_envelope::{
    Code, Cursor, CustomCode, Envelope, FieldError, JsonPointer, Limit, Meta, Operation,
    OperationState, Page, Problem,
};

fn ts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("ts")
}

fn tsc() -> PathBuf {
    let tsc = ts_dir().join("node_modules").join(".bin").join("tsc");
    assert!(
        tsc.exists(),
        "the TypeScript compiler is not installed: run `cargo xtask test`, or `npm ci` in {} \
         (needs Node.js and npm)",
        ts_dir().display()
    );
    tsc
}

/// Exports the bindings into `dir/bindings` and copies the consumer next to them.
fn prepare(dir: &Path) -> Vec<PathBuf> {
    let files = tenantry_envelope::ts::export(dir.join("bindings")).expect("export the bindings");
    std::fs::copy(ts_dir().join("consumer.ts"), dir.join("consumer.ts")).expect("copy consumer.ts");
    files
}

/// Runs `tsc --strict --noEmit` on `files`; returns whether it passed and what it printed.
fn compile(files: &[PathBuf]) -> (bool, String) {
    let output = Command::new(tsc())
        .current_dir(ts_dir())
        .args([
            "--strict",
            "--noEmit",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
        ])
        .args(files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "could not run {} (needs Node.js on PATH): {err}",
                tsc().display()
            )
        });
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// A TypeScript module that assigns values serialized by Rust to their exported types.
fn samples() -> String {
    const SEATS: CustomCode = CustomCode::new("SEAT_LIMIT_REACHED", StatusCode::FORBIDDEN);
    let page = Page::more(
        vec!["summary 1".to_owned(), "summary 2".to_owned()],
        Cursor::new("after:2"),
    );
    let envelopes: Vec<(&str, Envelope<Page<String>>)> = vec![
        ("success", Envelope::success(page.clone())),
        (
            "successWithMeta",
            Envelope::success_with_meta(
                Page::last(vec![]),
                Meta::new()
                    .with_request_id("req_1")
                    .with_extra("api_version", "2026-11-01")
                    .with_extra("n", 3),
            ),
        ),
        (
            "validation",
            Problem::validation_failed([FieldError::new(
                JsonPointer::from_segments(["items", "0"]),
                "is empty",
            )])
            .with_request_id("req_2")
            .into(),
        ),
        (
            "budget",
            Problem::budget_exceeded(
                "spent",
                Limit::new("monthly_spend", "usd_micros", u64::MAX)
                    .with_actual(9_007_199_254_740_993),
            )
            .into(),
        ),
        (
            "rateLimited",
            Problem::rate_limited("slow down", Duration::from_secs(2)).into(),
        ),
        ("custom", Problem::new(SEATS, "all seats taken").into()),
        (
            "pending",
            Operation::new("0190f3a0-7c1e-7000-8000-000000000001", "/v1/jobs/0190f3a0")
                .expect("valid operation")
                .with_state(OperationState::Running)
                .with_retry_after(Duration::from_secs(5))
                .into(),
        ),
    ];
    let mut module = String::from(
        "import type { Envelope } from \"./bindings/Envelope\";\n\
         import type { Page } from \"./bindings/Page\";\n\
         import type { ProblemDetails } from \"./bindings/ProblemDetails\";\n\
         import { view } from \"./consumer\";\n\n",
    );
    for (name, envelope) in &envelopes {
        let json = serde_json::to_string_pretty(envelope).expect("serialize");
        writeln!(
            module,
            "export const {name}: Envelope<Page<string>> = {json};\nview({name});\n"
        )
        .expect("write");
    }
    let details = Problem::new(Code::ValidationFailed, "bad")
        .with_field_error(FieldError::new(JsonPointer::from_segments(["a"]), "bad"))
        .with_limit(Limit::new("n", "u", 1))
        .to_problem_details()
        .with_type_base("https://docs.example.com/problems#")
        .with_instance("/v1/jobs");
    let json = serde_json::to_string_pretty(&details).expect("serialize");
    writeln!(module, "export const details: ProblemDetails = {json};").expect("write");
    module
}

#[test]
fn bindings_compile_under_strict_tsc_with_the_consumer_and_real_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = prepare(dir.path());
    std::fs::write(dir.path().join("samples.ts"), samples()).expect("write samples.ts");
    let (ok, printed) = compile(&[
        dir.path().join("consumer.ts"),
        dir.path().join("samples.ts"),
    ]);
    assert!(
        ok,
        "tsc --strict failed:\n{printed}\n\nbindings: {files:#?}"
    );
}

#[test]
fn tsc_rejects_a_value_of_the_wrong_shape() {
    // The check above is only worth something if a wrong shape fails it.
    let dir = tempfile::tempdir().expect("temp dir");
    prepare(dir.path());
    std::fs::write(
        dir.path().join("wrong.ts"),
        "import type { Envelope } from \"./bindings/Envelope\";\n\
         export const wrong: Envelope<number> = { status: \"error\", error: { code: \"NOT_FOUND\", status: 404, message: \"m\" } };\n",
    )
    .expect("write wrong.ts");
    let (ok, printed) = compile(&[dir.path().join("wrong.ts")]);
    assert!(!ok, "tsc accepted an error envelope without `retryable`");
    assert!(
        printed.contains("retryable"),
        "tsc failed for another reason:\n{printed}"
    );
}

#[test]
fn no_binding_uses_bigint_and_every_wire_type_is_exported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = prepare(dir.path());
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "Code.ts",
        "Cursor.ts",
        "Details.ts",
        "Envelope.ts",
        "FieldError.ts",
        "FieldProblem.ts",
        "JsonPointer.ts",
        "Limit.ts",
        "Meta.ts",
        "Operation.ts",
        "OperationId.ts",
        "OperationState.ts",
        "Page.ts",
        "Problem.ts",
        "ProblemDetails.ts",
        "JsonValue.ts",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read binding");
        assert!(
            !text.contains("bigint"),
            "{} uses bigint:\n{text}",
            file.display()
        );
    }
    let envelope = std::fs::read_to_string(dir.path().join("bindings").join("Envelope.ts"))
        .expect("Envelope.ts");
    for variant in [
        r#""status": "success""#,
        r#""status": "error""#,
        r#""status": "pending""#,
    ] {
        assert!(
            envelope.contains(variant),
            "Envelope.ts lacks {variant}:\n{envelope}"
        );
    }
    let code =
        std::fs::read_to_string(dir.path().join("bindings").join("Code.ts")).expect("Code.ts");
    for built_in in Code::BUILT_IN {
        assert!(
            code.contains(&format!("\"{}\"", built_in.as_str())),
            "Code.ts lacks {built_in}"
        );
    }
}
