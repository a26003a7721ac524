//! Typed async client for Anthropic's Messages and Message Batches APIs.
//!
//! This crate is not built yet: its work is tracked as issue 4. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
