//! TSV output: a header line, then one line per row, to stdout (`-`), to one file
//! (`tsv:FILE`, one-table jobs) or to `DIR/<table>.tsv` (`tsv:DIR/`), files laid out
//! as [`super::files`] says and published atomically. Money is written with exactly
//! two fraction digits, nulls as empty.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::files::{self, Layout};
use super::generation::{self, Generation};
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Table, TableSpec};

/// Where TSV goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsvTarget {
    /// Standard output; several tables each follow a `# <table>` line.
    Stdout,
    /// Files.
    Files(Layout),
}

impl TsvTarget {
    /// `-`, a directory (ending in `/` or existing), or a file.
    pub fn parse(path: &str) -> TsvTarget {
        if path == "-" {
            return TsvTarget::Stdout;
        }
        let p = PathBuf::from(path);
        TsvTarget::Files(if path.ends_with('/') || p.is_dir() { Layout::Dir(p) } else { Layout::File(p) })
    }

    fn layout(&self) -> Option<&Layout> {
        match self {
            TsvTarget::Stdout => None,
            TsvTarget::Files(layout) => Some(layout),
        }
    }
}

impl fmt::Display for TsvTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsvTarget::Stdout => write!(f, "-"),
            TsvTarget::Files(Layout::File(p)) => write!(f, "tsv:{}", p.display()),
            TsvTarget::Files(Layout::Dir(p)) => write!(f, "tsv:{}/", p.display().to_string().trim_end_matches('/')),
        }
    }
}

impl Target for TsvTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        self.layout().map(|l| l.lock(job, wait)).transpose()
    }

    fn open(&self, unit: Unit<'_>, tables: usize) -> Result<Box<dyn Publication>> {
        let generation = match self.layout() {
            Some(l) => Some((Generation::start(l.store(unit))?, l.manifest_path(unit))),
            None => None,
        };
        Ok(Box::new(TsvPublication { target: self.clone(), tables, period: unit.period.cloned(), generation }))
    }

    fn table_location(&self, table: &str, period: Option<&Period>) -> String {
        match self.layout() {
            None => "stdout".into(),
            Some(l) => l.table_path(table, "tsv", period).display().to_string(),
        }
    }

    fn manifest_location(&self, unit: Unit<'_>) -> Option<String> {
        self.layout().map(|l| l.manifest_path(unit).display().to_string())
    }

    fn default_rejects(&self, unit: Unit<'_>) -> PathBuf {
        match self.layout() {
            None => super::rejects_in_working_dir(unit),
            Some(l) => l.rejects_path(unit),
        }
    }

    fn scratch_dir(&self) -> PathBuf {
        self.layout().map_or_else(std::env::temp_dir, Layout::dir)
    }

    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        match self.layout() {
            None => Ok(None),
            Some(l) => l.last_manifest(job, which),
        }
    }

    fn published_rows(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>> {
        let path = Path::new(slice.location);
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text.lines().skip(1).map(str::to_string).collect())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn published_hash(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<String>> {
        files::file_hash(slice.location)
    }

    fn relocated(&self, dir: &Path) -> Box<dyn Target> {
        Box::new(match self {
            TsvTarget::Stdout => TsvTarget::Stdout,
            TsvTarget::Files(l) => TsvTarget::Files(l.relocated(dir)),
        })
    }

    fn keeps_results(&self) -> bool {
        self.layout().is_some()
    }
}

/// Tables written as TSV: straight to stdout, or files of a new generation (with the
/// manifest's path) published together on commit.
struct TsvPublication {
    target: TsvTarget,
    tables: usize,
    period: Option<Period>,
    generation: Option<(Generation, PathBuf)>,
}

/// Writes a header and the rows of `table` as TSV; returns the row count. `io` wraps write errors.
pub fn write_tsv(out: &mut dyn Write, table: Table, io: &dyn Fn(std::io::Error) -> Error) -> Result<u64> {
    let names: Vec<&str> = table.schema.fields().iter().map(|f| f.name().as_str()).collect();
    writeln!(out, "{}", names.join("\t")).map_err(io)?;
    let mut rows = 0u64;
    for batch in table.batches {
        rows += write_rows(out, &batch?).map_err(io)?;
    }
    Ok(rows)
}

/// Writes the rows of a batch as TSV lines (no header).
pub fn write_rows(out: &mut dyn Write, batch: &RecordBatch) -> std::io::Result<u64> {
    let options = FormatOptions::default();
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    for row in 0..batch.num_rows() {
        for (i, f) in formatters.iter().enumerate() {
            if i > 0 {
                out.write_all(b"\t")?;
            }
            write!(out, "{}", f.value(row))?;
        }
        out.write_all(b"\n")?;
    }
    Ok(batch.num_rows() as u64)
}

impl Publication for TsvPublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let dest = match &self.target {
            TsvTarget::Stdout => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                if self.tables > 1 {
                    writeln!(out, "# {}", table.name).map_err(Error::stdout)?;
                }
                let rows = write_tsv(&mut out, table, &Error::stdout)?;
                out.flush().map_err(Error::stdout)?;
                return Ok(Written { rows, location: "stdout".into(), blake3: None, months: None });
            }
            TsvTarget::Files(Layout::File(_)) if self.tables > 1 => {
                return Err(Error::Usage(
                    "this job writes several tables; give tsv:DIR/ to write DIR/<table>.tsv".to_string(),
                ));
            }
            target => PathBuf::from(target.table_location(table.name, self.period.as_ref())),
        };
        let mut rows = 0;
        let Some((generation, _)) = self.generation.as_mut() else {
            return Err(Error::sink(dest.display().to_string(), "no generation for a file output"));
        };
        let hash = generation.write(&dest, |w| {
            rows = write_tsv(w, table, &|e| Error::io(&dest, e))?;
            Ok(())
        })?;
        Ok(Written {
            rows,
            location: dest.display().to_string(),
            blake3: Some(hash.to_hex().to_string()),
            months: None,
        })
    }

    fn commit(self: Box<Self>, manifest: &Manifest) -> Result<()> {
        match self.generation {
            Some((mut generation, path)) => {
                generation::write_manifest(&mut generation, &path, manifest)?;
                generation.commit()
            }
            None => Ok(()),
        }
    }
}
