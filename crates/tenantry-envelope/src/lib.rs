//! Typed response envelopes (success, error, pending) with a TypeScript-friendly wire shape.
//!
//! This crate is not built yet: its work is tracked as issue 2. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
