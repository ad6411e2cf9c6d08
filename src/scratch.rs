//! Scratch space of one run: hidden directories named `.mrpipe-spill-<pid>-*` beside
//! the output (spilled shuffle partitions, sorted runs, spooled bad lines, DataFusion's
//! spill files). Each is removed when dropped, also on error; if the process is
//! killed, the next run that takes a lock there removes it (`sink::lock`), knowing
//! from the pid that its owner is gone.

use std::path::Path;

use tempfile::TempDir;

use crate::error::{Error, Result};

/// The name prefix of every scratch directory, followed by the owner's pid and `-`.
pub const PREFIX: &str = ".mrpipe-spill-";

/// A new scratch directory in `parent` (created if missing), removed when dropped.
pub fn scratch_dir(parent: &Path) -> Result<TempDir> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))
}
