//! Scratch space of one run: hidden directories named `.mrpipe-spill-<pid>-*` beside
//! the output, or in the system temp directory for stdout (spilled shuffle
//! partitions, sorted runs, spooled bad lines, DataFusion's spill files).
//!
//! A [`Scratch`] is removed when dropped, also on error. Its owner holds an exclusive
//! `flock` on the `.owner` file inside it for as long as it lives, so a directory
//! whose lock can be taken belongs to a run that is gone (killed, or in another PID
//! namespace whose pids mean nothing here): every new scratch directory, and every
//! run lock taken beside an output, first removes those, best effort.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

use crate::error::{Error, Result};

/// The name prefix of every scratch directory, followed by the owner's pid and `-`.
pub const PREFIX: &str = ".mrpipe-spill-";

/// The lock file inside a scratch directory, held by its owner.
const OWNER: &str = ".owner";

/// A directory without an owner file younger than this may be one being created.
const GRACE: Duration = Duration::from_secs(60);

/// A scratch directory of this process, removed when dropped.
pub struct Scratch {
    dir: TempDir,
    /// Holds the exclusive lock that tells other runs this directory is in use.
    _owner: File,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({})", self.path().display())
    }
}

/// A new scratch directory in `parent` (created if missing), removed when dropped;
/// scratch directories that dead runs left in `parent` are removed first.
pub fn scratch_dir(parent: &Path) -> Result<Scratch> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    remove_stale(parent);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let path = dir.path().join(OWNER);
    let owner = File::create(&path).map_err(|e| Error::io(&path, e))?;
    if !try_lock(&owner) {
        return Err(Error::sink("scratch", format!("{}: cannot be locked", path.display())));
    }
    Ok(Scratch { dir, _owner: owner })
}

/// Removes the scratch directories in `dir` whose owner is gone; errors are ignored
/// (a leftover that cannot be removed must not stop a run).
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(PREFIX) {
            remove_if_stale(&entry.path());
        }
    }
}

/// Removes the scratch directory `path` if its owner is gone.
pub fn remove_if_stale(path: &Path) {
    // Only a real directory: a file or a link that looks like one is left alone.
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let stale = match File::open(path.join(OWNER)) {
        Ok(owner) => try_lock(&owner),
        // Made by an older mrpipe, or being created: judged by age and pid.
        Err(_) => older_than(path, GRACE) && named_pid_is_gone(path),
    };
    if stale {
        let _ = std::fs::remove_dir_all(path);
    }
}

fn try_lock(file: &File) -> bool {
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).is_ok_and(|d| d > age))
}

/// Whether the pid in a scratch directory's name is no live process here.
fn named_pid_is_gone(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    pid_is_gone(name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()).unwrap_or(""))
}

/// Whether `pid` (as text) is no live process here. Unknown (no `/proc`, or text that
/// is not a pid) counts as alive, so nothing is removed by mistake.
pub fn pid_is_gone(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else { return false };
    pid != std::process::id() && Path::new("/proc/self").exists() && !PathBuf::from(format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_scratch_is_kept_and_a_dead_ones_removed() {
        let parent = tempfile::tempdir().unwrap();
        let live = scratch_dir(parent.path()).unwrap();
        // A dead run's directory: its owner file is there but nobody holds the lock.
        let dead = parent.path().join(format!("{PREFIX}1-dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER), "").unwrap();
        // A file named like one is not touched, nor is the caller stopped by it.
        let stray = parent.path().join(format!("{PREFIX}2-file"));
        std::fs::write(&stray, "y").unwrap();
        let other = scratch_dir(parent.path()).unwrap();
        assert!(live.path().exists(), "a live run's scratch (the lock is held) must stay");
        assert!(!dead.exists(), "an unlocked scratch belongs to a dead run");
        assert!(stray.exists());
        let path = other.path().to_path_buf();
        drop(other);
        assert!(!path.exists(), "removed when dropped");
    }
}
