//! Durable multi-tenant queue that turns AI requests into Message Batches and results into events.
//!
//! This crate is not built yet: its work is tracked as issue 7. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
