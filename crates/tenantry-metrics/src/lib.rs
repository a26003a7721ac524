//! Tenant metrics defined once, evaluated in Rust and rendered as SQL with sea-query.
//!
//! This crate is not built yet: its work is tracked as issue 6. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
