//! TypeScript definitions of everything a browser or Node.js client of a tenantry service
//! receives: the envelope types of [`envelope`](crate::envelope) and, with a store feature,
//! [`JobOutput`](crate::JobOutput), the `data` of a finished job's success envelope.
//!
//! A frontend types the answer of a job endpoint as `Envelope<JobOutput>` and narrows on
//! `status`. Run [`export`] from a build script or a test of your service, into your frontend's
//! source tree.
//!
//! # Example
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let files = tenantry::ts::export(dir.path())?;
//! assert!(files.iter().any(|file| file.ends_with("Envelope.ts")));
//! # #[cfg(feature = "sqlite")]
//! assert!(files.iter().any(|file| file.ends_with("JobOutput.ts")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use tenantry_envelope::Error;

/// Writes the TypeScript definitions into `dir` (created if missing) and returns the files
/// written, sorted.
///
/// # Errors
///
/// [`Error::TypeScriptExport`] if a file cannot be written.
pub fn export(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let dir = dir.as_ref();
    #[cfg(feature = "_handle")]
    {
        use ts_rs::TS;
        let config = ts_rs::Config::new().with_out_dir(dir);
        crate::JobOutput::export_all(&config).map_err(Error::TypeScriptExport)?;
    }
    // The envelope's export lists every file in `dir`, ours included.
    tenantry_envelope::ts::export(dir)
}
