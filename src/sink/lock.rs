//! Run locks: at most one run per (job, output) at a time, so cron runs that overlap
//! never interleave their writes. File outputs take an OS file lock (`flock`),
//! released by the kernel when the process dies, on a hidden file beside the output;
//! the holder writes its pid and start time into it so a refused run can name it.
//! SQL servers hold a lock in a database session instead (see their targets).

use std::fs::{OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::scratch::pid_is_gone as owner_is_gone;

/// A held run lock; released when dropped (or when the process ends).
pub struct RunLock {
    /// What holds it: an open locked file, or a database session holding a named lock.
    _guard: Box<dyn Send>,
    what: String,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunLock({})", self.what)
    }
}

impl RunLock {
    /// A lock held as long as `guard` lives; `what` names it in messages.
    pub fn held(guard: Box<dyn Send>, what: String) -> RunLock {
        RunLock { _guard: guard, what }
    }

    /// What is locked: the lock file, or the server's lock.
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Takes the lock at `path`, waiting up to `wait` for a running holder to finish.
pub fn acquire(path: &Path, wait: Option<Duration>) -> Result<RunLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if deadline.is_some_and(|d| Instant::now() < d) {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() { "unknown".into() } else { holder.to_string() },
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
    let me = format!("pid {}, started {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    let stamp = (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(me.as_bytes())?;
        file.sync_data()
    })();
    stamp.map_err(|e| Error::io(path, e))?;
    Ok(RunLock::held(Box::new(file), path.display().to_string()))
}

/// Removes temporaries that killed runs left in `dir` and its table subdirectories:
/// staged files `.<name>.mrpipe-tmp-<pid>` and spill directories `.mrpipe-spill-<pid>-*`
/// whose process is gone. Temporaries of live processes are kept: another job may be
/// publishing into the same directory under its own lock.
pub fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(crate::scratch::PREFIX) {
            crate::scratch::remove_if_stale(&path);
        } else if let Some((_, pid)) = name.rsplit_once(".mrpipe-tmp-") {
            if name.starts_with('.') && owner_is_gone(pid) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        } else if !name.starts_with('.') && path.is_dir() {
            // A period's files live in DIR/<table>/; one level down is enough.
            remove_stale_in(&path)?;
        }
    }
    Ok(())
}

fn remove_stale_in(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, pid)) = name.rsplit_once(".mrpipe-tmp-")
            && name.starts_with('.')
            && owner_is_gone(pid)
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".job.lock");
        let first = acquire(&path, None).unwrap();
        let err = acquire(&path, Some(Duration::from_millis(250))).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        acquire(&path, None).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid above the kernel's maximum (2^22) belongs to no process.
        let dead = 4_194_999;
        let alive = std::process::id();
        std::fs::write(d.join("t.parquet"), "x").unwrap();
        std::fs::write(d.join(format!(".t.parquet.mrpipe-tmp-{dead}")), "x").unwrap();
        std::fs::write(d.join(format!(".u.parquet.mrpipe-tmp-{alive}")), "x").unwrap();
        // A scratch directory whose owner lock nobody holds.
        std::fs::create_dir(d.join(format!(".mrpipe-spill-{dead}-abc"))).unwrap();
        std::fs::write(d.join(format!(".mrpipe-spill-{dead}-abc/.owner")), "").unwrap();
        std::fs::create_dir_all(d.join("t")).unwrap();
        std::fs::write(d.join(format!("t/.t-2026-11.parquet.mrpipe-tmp-{dead}")), "x").unwrap();
        std::fs::write(d.join("t/t-2026-11.parquet"), "x").unwrap();
        remove_stale_temporaries(d).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec![format!(".u.parquet.mrpipe-tmp-{alive}"), "t".to_string(), "t.parquet".to_string()]);
        let inner: Vec<String> = std::fs::read_dir(d.join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(inner, vec!["t-2026-11.parquet"]);
    }
}
