//! Run locks: at most one run per (job, output) at a time, so cron runs that overlap
//! never interleave their writes. An OS file lock (`flock`), released by the kernel
//! when the process dies, on a hidden file beside the output; the holder writes its
//! pid and start time into it so a refused run can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sink::SinkUrl;
use crate::sink::postgres::{PostgresUrl, describe};

/// A held run lock; released when dropped (or when the process ends).
pub struct RunLock {
    _held: Held,
    path: PathBuf,
}

/// What keeps a lock held: an open locked file, or a PostgreSQL session holding an
/// advisory lock (released by the server when the session ends, also on a crash).
enum Held {
    File(#[allow(dead_code)] File),
    Postgres(#[allow(dead_code)] Box<postgres::Client>),
    Mysql(#[allow(dead_code)] Box<mysql::Conn>),
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunLock({})", self.path.display())
    }
}

impl RunLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of `job` writing to `output`: `DIR/.<job>.lock` for a directory,
/// `.<file>.<job>.lock` beside a file or database; none for stdout.
pub fn lock_path(output: &SinkUrl, job: &str) -> Option<PathBuf> {
    match output {
        SinkUrl::ParquetDir(d) | SinkUrl::TsvDir(d) => Some(d.join(format!(".{job}.lock"))),
        SinkUrl::ParquetFile(p) | SinkUrl::Sqlite(p) | SinkUrl::TsvFile(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Some(p.with_file_name(format!(".{name}.{job}.lock")))
        }
        SinkUrl::TsvStdout | SinkUrl::Postgres(_) | SinkUrl::Mysql(_) => None,
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
    Ok(RunLock { _held: Held::File(file), path: path.to_path_buf() })
}

/// Takes the MySQL/MariaDB named lock (`GET_LOCK`) of `job` on `url`'s database.
pub fn acquire_mysql(url: &crate::sink::mysql::MysqlUrl, job: &str, wait: Option<Duration>) -> Result<RunLock> {
    let conn = crate::sink::mysql::acquire_lock(url, job, wait)?;
    Ok(RunLock { _held: Held::Mysql(Box::new(conn)), path: PathBuf::from(format!("{} lock", url.display)) })
}

/// Takes a PostgreSQL session advisory lock for `job` writing to `url`'s database and
/// schema, waiting up to `wait`. The holder is named by its connection's
/// `application_name` (`mrpipe pid N`) and start time.
pub fn acquire_postgres(url: &PostgresUrl, job: &str, wait: Option<Duration>) -> Result<RunLock> {
    let mut client = url.connect()?;
    let key = crate::map::fixed_hash(&format!("mrpipe/{job}/{}", url.schema.as_deref().unwrap_or("public"))) as i64;
    let deadline = wait.map(|w| Instant::now() + w);
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    loop {
        let got: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).map_err(fail)?.get(0);
        if got {
            let path = PathBuf::from(format!("{} advisory lock {key}", url.display));
            return Ok(RunLock { _held: Held::Postgres(Box::new(client)), path });
        }
        if deadline.is_some_and(|d| Instant::now() < d) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let holder = client
            .query_opt(
                "SELECT a.application_name || ', started ' || to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                 WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
                &[&key],
            )
            .map_err(fail)?
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_else(|| "unknown".into());
        return Err(Error::Locked { path: PathBuf::from(format!("{} advisory lock", url.display)), holder });
    }
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
        if let Some(rest) = name.strip_prefix(".mrpipe-spill-") {
            if owner_is_gone(rest.split('-').next().unwrap_or("")) {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
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

/// Whether the process that owns a temporary has exited. Unknown (no `/proc`, or a
/// name that is not a pid) counts as alive, so nothing is removed by mistake.
fn owner_is_gone(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else { return false };
    pid != std::process::id() && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
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
        std::fs::create_dir(d.join(format!(".mrpipe-spill-{dead}-abc"))).unwrap();
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
