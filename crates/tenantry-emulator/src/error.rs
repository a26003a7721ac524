//! The one error type of this crate: what can go wrong while starting or configuring an emulator.

use std::net::SocketAddr;

/// Errors raised while configuring or starting an [`Emulator`](crate::Emulator).
///
/// Requests the emulator serves never produce this type: a bad request gets the real API's
/// error response instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot bind the emulator to {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket did not report its local address.
    #[error("cannot read the emulator's local address")]
    LocalAddr(#[source] std::io::Error),
    /// A fault specification (from the command line or [`FaultPlan::with_spec`](crate::FaultPlan::with_spec))
    /// could not be parsed.
    #[error("invalid fault specification {spec:?}: {reason}")]
    FaultSpec {
        /// The specification as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn message_does_not_repeat_cause() {
        let err = Error::LocalAddr(std::io::Error::other("boom"));
        assert!(!err.to_string().contains("boom"));
    }
}
