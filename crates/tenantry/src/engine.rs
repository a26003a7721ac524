//! [`EngineTask`]: a spawned engine and the way to stop it.

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// A running engine from [`Tenantry::spawn`](crate::Tenantry::spawn). Dropping it stops the
/// engine without waiting; [`shutdown`](Self::shutdown) stops it and waits until its claims are
/// released.
#[derive(Debug)]
pub struct EngineTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl EngineTask {
    pub(crate) fn new(stop: oneshot::Sender<()>, task: JoinHandle<Result<()>>) -> Self {
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the engine after its current step and waits for it to release its claims.
    ///
    /// # Errors
    ///
    /// The engine's own error, or [`Error::Engine`] if its task panicked.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(Error::Engine)?,
            None => Ok(()),
        }
    }
}

impl Drop for EngineTask {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
