//! Runnable examples of tenantry live next to this file; each one is listed as an
//! `[[example]]` in `Cargo.toml` and runs with `cargo run --example NAME` from the repository
//! root. This library target exists only because Cargo requires a package to have one.
