//! A faithful local Anthropic API server with fault injection.
//!
//! This crate is not built yet: its work is tracked as issue 3. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
