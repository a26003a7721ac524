//! Exit codes scripts can rely on, and how each failure maps to one.

use std::fmt;

use tenantry_core::ErrorKind;

/// Everything went as asked.
pub(crate) const OK: u8 = 0;
/// An unexpected error.
pub(crate) const INTERNAL: u8 = 1;
/// A bad flag or value (clap uses the same code for its own parse errors).
pub(crate) const USAGE: u8 = 2;
/// No such job, batch or tenant data.
pub(crate) const NOT_FOUND: u8 = 3;
/// The database could not be reached.
pub(crate) const UNAVAILABLE: u8 = 4;
/// `doctor` found problems, or the schema is not current.
pub(crate) const PROBLEMS: u8 = 5;
/// Refused: the job's state does not allow it, or a budget refused the hold.
pub(crate) const REFUSED: u8 = 6;

/// Why a command stopped, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A stable name of the code, for `--json` output.
    pub(crate) fn name(&self) -> &'static str {
        match self.code {
            USAGE => "usage",
            NOT_FOUND => "not_found",
            UNAVAILABLE => "unavailable",
            PROBLEMS => "problems",
            REFUSED => "refused",
            _ => "internal",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message of an error and of each of its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

impl From<tenantry::Error> for Failure {
    fn from(e: tenantry::Error) -> Self {
        let code = match e.kind() {
            ErrorKind::InvalidInput => USAGE,
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::Unavailable => UNAVAILABLE,
            ErrorKind::Conflict | ErrorKind::BudgetExceeded => REFUSED,
            _ => INTERNAL,
        };
        Self::new(code, chain(&e))
    }
}

impl From<tenantry::queue::Error> for Failure {
    fn from(e: tenantry::queue::Error) -> Self {
        tenantry::Error::from(e).into()
    }
}

impl From<tenantry::cost::Error> for Failure {
    fn from(e: tenantry::cost::Error) -> Self {
        tenantry::Error::from(e).into()
    }
}
