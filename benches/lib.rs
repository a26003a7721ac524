//! Criterion benchmarks of tenantry's hot paths live next to this file; each one is listed as a
//! `[[bench]]` in `Cargo.toml` (with `harness = false`) and runs with `cargo bench` from the
//! repository root. Their figures are recorded in `docs/benchmarks.md`.
