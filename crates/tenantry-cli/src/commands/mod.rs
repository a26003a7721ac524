//! One module per command; each reads its arguments, calls the libraries and prints.

pub(crate) mod batches;
pub(crate) mod budgets;
pub(crate) mod dead_letters;
pub(crate) mod doctor;
pub(crate) mod jobs;
pub(crate) mod migrate;
pub(crate) mod spend;
