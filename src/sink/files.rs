//! The layout of file outputs (Parquet and TSV), and the names SQLite's files share
//! with it: one rule for where tables, manifests, rejects files and locks go.
//!
//! A directory output `DIR` holds `DIR/<table>.<ext>`, or for one period of a split
//! run the Hive partition `DIR/<table>/<key>=<period>/part-0.<ext>` (`month=2026-11`,
//! `as_of=20261123T000000Z`; a directory DuckDB, pyarrow, polars and Spark read as one
//! table, the `month` column also kept in the files), never both for one table, with
//! `DIR/_<unit>.manifest.json` and `DIR/_<unit>.rejects.tsv`; several jobs may
//! share one directory. A named file `PATH` (one table) gets `-<period>` before its
//! extension for a period, and keeps `PATH.manifest.json` (`PATH.<period>.manifest.json`)
//! and `PATH.<unit>.rejects.tsv` beside it. `<unit>` is `<job>` or `<job>-<period>`.
//!
//! The run lock is what is written, not how `--output` is spelled: `.<job>.lock` in
//! the canonical directory the files go to, for a directory and for a named file
//! alike (`-o out/` and `-o ./out/sales_rank.parquet` take the same lock).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lock::{self, RunLock};
use super::{Recorded, Unit};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, digest_file};
use crate::table::Period;
// The store's layout and path rules belong to the generations kept in it.
pub use super::generation::{STORE, canonical_dir, parent_dir};

/// Where a file output's parts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A directory of `<table>.<ext>` files.
    Dir(PathBuf),
    /// One named file (a one-table job).
    File(PathBuf),
}

/// `PATH.<suffix>`: a file kept beside `path`.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", path.display()))
}

/// The lock file of `job` for the file `path`: `.<file>.<job>.lock` beside it, in
/// its canonical directory (a database file is one output, however it is spelled).
pub fn lock_beside(path: &Path, job: &str) -> Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(canonical_dir(&parent_dir(path))?.join(format!(".{name}.{job}.lock")))
}

/// Takes the lock at `path`, then removes what dead runs left in `dir`.
pub fn lock_and_clean(path: &Path, dir: &Path, wait: Option<Duration>) -> Result<RunLock> {
    let held = lock::acquire(path, wait)?;
    lock::remove_stale_temporaries(dir)?;
    Ok(held)
}

/// Reads a manifest file; `None` when it does not exist.
pub fn load_manifest(path: &Path) -> Result<Option<Manifest>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        _ => Manifest::load(path).map(Some),
    }
}

/// BLAKE3 of a published file's bytes as they are now; `None` when it is gone.
pub fn file_hash(location: &str) -> Result<Option<String>> {
    match digest_file(Path::new(location)) {
        Ok(d) => Ok(Some(d.blake3)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Layout {
    /// A directory, or one file when the path ends in `.<ext>` (unless it ends in `/`).
    pub fn parse(path: &str, ext: &str) -> Layout {
        if path.ends_with(&format!(".{ext}")) {
            Layout::File(PathBuf::from(path))
        } else {
            Layout::Dir(PathBuf::from(path))
        }
    }

    /// The output's path as given.
    pub fn path(&self) -> &Path {
        match self {
            Layout::Dir(p) | Layout::File(p) => p,
        }
    }

    /// Where `table` of `period` goes.
    pub fn table_path(&self, table: &str, ext: &str, period: Option<&Period>) -> PathBuf {
        match (self, period) {
            (Layout::Dir(d), None) => d.join(format!("{table}.{ext}")),
            (Layout::Dir(d), Some(p)) => {
                d.join(table).join(format!("{}={}", p.key, p.label)).join(format!("part-0.{ext}"))
            }
            (Layout::File(f), None) => f.clone(),
            (Layout::File(f), Some(p)) => match f.extension() {
                Some(x) => f.with_extension(format!("{}.{}", p.label, x.to_string_lossy())),
                None => PathBuf::from(format!("{}-{}", f.display(), p.label)),
            },
        }
    }

    /// [`super::Target::check_shape`] for a file output: in a directory, a table is either
    /// `DIR/<table>.<ext>` or partitions under `DIR/<table>/`, never both.
    pub fn check_shape(&self, table: &str, ext: &str, period: Option<&Period>) -> Result<()> {
        let Layout::Dir(d) = self else { return Ok(()) };
        let whole = d.join(format!("{table}.{ext}"));
        let partitions = d.join(table);
        let holds_partitions = std::fs::read_dir(&partitions)
            .is_ok_and(|mut e| e.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))));
        match period {
            Some(p) if std::fs::symlink_metadata(&whole).is_ok() => Err(Error::Usage(format!(
                "'{}' holds {table} from a run over every period, and this run would add the partition {}={} \
                 under '{}/': a table is never both a file and a directory of partitions. Remove '{}' (and its \
                 manifest), or publish to another directory",
                whole.display(),
                p.key,
                p.label,
                partitions.display(),
                whole.display()
            ))),
            None if holds_partitions => Err(Error::Usage(format!(
                "'{}/' holds {table} as partitions from runs of single periods (--month, --from/--to, repeated \
                 --as-of), and this run would write '{}' beside them: a table is never both a file and a directory \
                 of partitions. Republish the periods with --from/--to, or publish to another directory",
                partitions.display(),
                whole.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Where the manifest of `unit` goes.
    pub fn manifest_path(&self, unit: Unit<'_>) -> PathBuf {
        match (self, unit.period) {
            (Layout::Dir(d), _) => d.join(format!("_{}.manifest.json", unit.name())),
            (Layout::File(f), None) => beside(f, "manifest.json"),
            (Layout::File(f), Some(p)) => beside(f, &format!("{}.manifest.json", p.label)),
        }
    }

    /// The default rejects file of `unit`.
    pub fn rejects_path(&self, unit: Unit<'_>) -> PathBuf {
        match self {
            Layout::Dir(d) => d.join(format!("_{}.rejects.tsv", unit.name())),
            Layout::File(f) => beside(f, &format!("{}.rejects.tsv", unit.name())),
        }
    }

    /// The store of `unit`'s generations ([`super::generation`]).
    /// `DIR/.mrpipe/<job>/` (`.mrpipe/<file>@<job>/` for a named file), and a period's
    /// in a subdirectory named by its label, so that a job's stores are all under one
    /// directory that its lock covers.
    pub fn store(&self, unit: Unit<'_>) -> PathBuf {
        let job = self.job_store(unit.job);
        match unit.period {
            None => job,
            Some(p) => job.join(&p.label),
        }
    }

    fn job_store(&self, job: &str) -> PathBuf {
        match self {
            Layout::Dir(d) => d.join(STORE).join(job),
            Layout::File(f) => {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.dir().join(STORE).join(format!("{name}@{job}"))
            }
        }
    }

    /// The directory the output's files live in.
    pub fn dir(&self) -> PathBuf {
        match self {
            Layout::Dir(d) => d.clone(),
            Layout::File(f) => parent_dir(f),
        }
    }

    /// Takes the run lock of `job` and clears what dead runs left in the output's directory.
    pub fn lock(&self, job: &str, wait: Option<Duration>) -> Result<RunLock> {
        if let Layout::Dir(d) = self
            && d.exists()
            && !d.is_dir()
        {
            return Err(Error::Usage(format!(
                "output '{}' is a file, not a directory: give a directory, or a file ending in .parquet",
                d.display()
            )));
        }
        let path = canonical_dir(&self.dir())?.join(format!(".{job}.lock"));
        let held = lock_and_clean(&path, &self.dir(), wait)?;
        // Under the job's lock no run of it is publishing: what a killed one left goes now,
        // also when this run will skip every period (--skip-unchanged).
        super::generation::clean_job_store(&self.job_store(job))?;
        Ok(held)
    }

    /// The manifest of the last run of `job` published here: that of one unit, or the
    /// newest (by `finished`) of every unit's.
    pub fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        if let Recorded::Unit(period) = which {
            return load_manifest(&self.manifest_path(Unit { job, period }));
        }
        let (dir, prefix) = match self {
            Layout::Dir(d) => (d.clone(), format!("_{job}")),
            Layout::File(f) => {
                (self.dir(), f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            }
        };
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(None) };
        let mut newest: Option<Manifest> = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || !name.ends_with(".manifest.json") {
                continue;
            }
            // Another job's manifest may share the prefix (`_sales` of `_sales-rank`).
            let Ok(m) = Manifest::load(&entry.path()) else { continue };
            if m.job == job && newest.as_ref().is_none_or(|n| m.finished > n.finished) {
                newest = Some(m);
            }
        }
        Ok(newest)
    }

    /// The same layout under `dir`.
    pub fn relocated(&self, dir: &Path) -> Layout {
        match self {
            Layout::Dir(_) => Layout::Dir(dir.join("out")),
            Layout::File(f) => Layout::File(dir.join(f.file_name().unwrap_or(std::ffi::OsStr::new("output")))),
        }
    }
}
