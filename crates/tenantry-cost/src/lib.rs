//! Price book, exact cost attribution, and a usage ledger with generated cost columns.
//!
//! This crate is not built yet: its work is tracked as issue 5. It compiles so that the
//! workspace layout is in place, and it exports nothing.
#![deny(missing_docs)]
