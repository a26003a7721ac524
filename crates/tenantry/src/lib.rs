//! The facade that wires the tenantry crates together for a host application.
//!
//! This crate is not built yet: its work is tracked as issue 8. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
