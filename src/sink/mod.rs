//! The `sink` stage: result [`Table`]s in, published outputs out.
//!
//! `--output` is parsed once, by [`parse`], into a [`Target`]: the only place that
//! knows every kind of output. A target owns everything about its output: the run
//! lock, where tables, manifests and default rejects files go, opening a
//! [`Publication`] (every table staged, then made visible together with the run's
//! manifest in one commit, so a failed or killed run leaves the previous result
//! intact), and reading back what a job published, for `mrpipe verify`, `--notify`
//! and `--skip-unchanged`. Nothing outside this module names a kind of output.
//!
//! Kinds, one file each: [`parquet`] (a directory or one file), [`text`] (TSV or CSV
//! to stdout, a file or a directory), [`sqlite`], [`postgres`], [`mysql`] (MySQL and MariaDB).
//! Shared parts: [`files`] (the layout of file outputs), [`sql`] (Arrow cells as SQL
//! values, which rows a run replaces), [`atomic`] (staged files), [`lock`] (run locks).
//! Adding a kind means one file and one arm in [`parse`].

pub mod atomic;
pub mod files;
pub mod generation;
pub mod lock;
pub mod mysql;
pub mod parquet;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod text;
pub mod tls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, TableDigest, hash_lines};
use crate::table::{Period, Table, TableSpec};

pub use lock::RunLock;

/// What writing one table produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Rows written.
    pub rows: u64,
    /// Where the table goes: a file path, `sqlite:PATH`, a server URL (no password), or `stdout`.
    pub location: String,
    /// BLAKE3 of the file's bytes (file outputs) or of the rows as TSV (SQL outputs); none for stdout.
    pub blake3: Option<String>,
    /// SQL outputs, tables with a `month` column: the months whose rows the run replaces.
    pub months: Option<Vec<String>>,
}

impl Written {
    /// The manifest's record of the table `name`.
    pub fn digest(&self, name: &str) -> TableDigest {
        TableDigest {
            name: name.to_string(),
            rows: self.rows,
            location: self.location.clone(),
            blake3: self.blake3.clone().unwrap_or_default(),
            months: self.months.clone(),
        }
    }
}

/// What a target publishes as one unit: a job's run, or one period of it.
#[derive(Clone, Copy, Debug)]
pub struct Unit<'a> {
    /// The job's name (`sales-rank`, `query`).
    pub job: &'a str,
    /// The period, when the run is split into periods.
    pub period: Option<&'a Period>,
}

impl Unit<'_> {
    /// `<job>` for a whole run, `<job>-<period>` for one period of it: the name files carry.
    pub fn name(&self) -> String {
        match self.period {
            None => self.job.to_string(),
            Some(p) => format!("{}-{}", self.job, p.label),
        }
    }
}

/// Which published rows of a table to read back: what a manifest recorded of it.
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a> {
    /// The table's location as written ([`Written::location`]); file outputs read it.
    pub location: &'a str,
    /// SQL outputs: only the rows of these months (`None`: every row).
    pub months: Option<&'a [String]>,
}

impl<'a> Slice<'a> {
    /// The rows a manifest's table record describes.
    pub fn of(table: &'a TableDigest) -> Slice<'a> {
        Slice { location: &table.location, months: table.months.as_deref() }
    }
}

/// Which recorded run [`Target::last_manifest`] looks for.
#[derive(Clone, Copy, Debug)]
pub enum Recorded<'a> {
    /// The last run that published this unit (whole run, or one period).
    Unit(Option<&'a Period>),
    /// The newest run of the job, whatever its period.
    Newest,
}

/// One kind of output, parsed from `--output`. `Display` gives its canonical
/// spelling (with any password hidden), as manifests record it.
pub trait Target: fmt::Display + fmt::Debug + Send + Sync {
    /// Takes the run lock of `job` on this output, waiting up to `wait` for a holder;
    /// `Error::Locked` when it stays taken. Local outputs also remove the temporaries of
    /// dead runs once the lock is held. `None` when nothing needs locking (stdout).
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>>;

    /// Opens the publication of `unit`, which writes `tables` tables.
    fn open(&self, unit: Unit<'_>, tables: usize) -> Result<Box<dyn Publication>>;

    /// Where `table` of `period` goes, as messages and `--dry-run` show it.
    fn table_location(&self, table: &str, period: Option<&Period>) -> String;

    /// Where the manifest of `unit` goes, as `--dry-run` shows it; `None` when it is
    /// kept only in a database (`mrpipe_runs`) or not at all.
    fn manifest_location(&self, _unit: Unit<'_>) -> Option<String> {
        None
    }

    /// The rejects file of `unit` when `--rejects` is not given; always names the job
    /// (and period), so jobs sharing an output never overwrite each other's. An output
    /// with no directory of its own (stdout, a server) puts it in the working directory.
    fn default_rejects(&self, unit: Unit<'_>) -> PathBuf {
        rejects_in_working_dir(unit)
    }

    /// A local directory for scratch and spill files, near the output when it is on disk.
    fn scratch_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }

    /// The manifest of a run of `job` published here, if any.
    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>>;

    /// The rows of a published table as TSV lines in the table's order (what its
    /// manifest hashed); `None` when the table is not there.
    fn published_rows(&self, spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>>;

    /// The BLAKE3 of a published table as it is now, computed the way the run hashed it;
    /// `None` when the table is not there.
    fn published_hash(&self, spec: &TableSpec, slice: Slice<'_>) -> Result<Option<String>> {
        Ok(self.published_rows(spec, slice)?.map(|rows| hash_lines(&rows)))
    }

    /// Refuses (a usage error saying what to do) to publish `table` of `period` where the
    /// output already holds the table in the other shape: a file for a run over every
    /// period beside a directory of period partitions. Checked under the run lock,
    /// before anything is read.
    fn check_shape(&self, _table: &str, _period: Option<&Period>) -> Result<()> {
        Ok(())
    }

    /// The same kind of output placed under `dir`: where `mrpipe verify` re-runs. A
    /// server becomes a SQLite file there (a re-run must never publish to it).
    fn relocated(&self, dir: &Path) -> Box<dyn Target>;

    /// Whether the output keeps what was published (stdout does not), which
    /// `--notify` and `--skip-unchanged` need.
    fn keeps_results(&self) -> bool {
        true
    }
}

/// A unit's tables being written to a staging place (temporary files, an open SQL
/// transaction), hashing what is written; nothing is visible until `commit`.
pub trait Publication {
    /// Writes one table to the staging place.
    fn write_table(&mut self, table: Table) -> Result<Written>;

    /// Publishes every table written, with the run's manifest. Dropping a publication
    /// without committing it discards what it staged.
    fn commit(self: Box<Self>, manifest: &Manifest) -> Result<()>;
}

/// `./mrpipe-<unit>.rejects.tsv`: the rejects file of an output with no directory of its own.
pub fn rejects_in_working_dir(unit: Unit<'_>) -> PathBuf {
    PathBuf::from(format!("mrpipe-{}.rejects.tsv", unit.name()))
}

/// Parses an `--output` value; an unknown scheme is a usage error naming it.
pub fn parse(s: &str) -> Result<Box<dyn Target>> {
    if s == "-" {
        return Ok(Box::new(text::TextTarget::stdout()));
    }
    if let Some(path) = s.strip_prefix("sqlite:") {
        return Ok(Box::new(sqlite::SqliteTarget::parse(s, path)?));
    }
    if let Some(path) = s.strip_prefix("tsv:") {
        return Ok(Box::new(text::TextTarget::parse(text::Dialect::Tsv, path)));
    }
    if let Some(path) = s.strip_prefix("csv:") {
        return Ok(Box::new(text::TextTarget::parse(text::Dialect::Csv, path)));
    }
    if let Some(path) = s.strip_prefix("parquet:") {
        return Ok(Box::new(parquet::ParquetTarget::parse(path)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresTarget::parse(s)?));
    }
    if s.starts_with("mysql://") || s.starts_with("mariadb://") {
        return Ok(Box::new(mysql::MysqlTarget::parse(s)?));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(Error::Usage(format!(
            "output '{}': '{scheme}://' is not a supported sink here (use a directory, *.parquet, sqlite:PATH, postgres://..., mysql://..., tsv:PATH, csv:PATH or -)",
            postgres::redact(s)
        )));
    }
    Ok(Box::new(parquet::ParquetTarget::parse(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_urls_and_prints_them_back() {
        for text in
            ["-", "out", "x/r.parquet", "sqlite:db/m.db", "tsv:r.tsv", "tsv:out/", "csv:r.csv", "csv:out/", "csv:-"]
        {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        assert_eq!(parse("parquet:x").unwrap().to_string(), "x");
        assert_eq!(parse("tsv:-").unwrap().to_string(), "-");
        let err = parse("ftp://x").unwrap_err().to_string();
        assert!(err.contains("'ftp://'"), "{err}");
        assert!(parse("sqlite:").is_err());
    }

    #[test]
    fn every_kind_names_the_job_in_its_default_rejects_file() {
        let period = crate::params::month_period((2026, 11));
        for text in ["-", "out", "x/r.parquet", "sqlite:db/m.db", "tsv:r.tsv", "tsv:out/"] {
            let target = parse(text).unwrap();
            let whole = target.default_rejects(Unit { job: "spending", period: None });
            let month = target.default_rejects(Unit { job: "spending", period: Some(&period) });
            assert!(whole.to_string_lossy().contains("spending"), "{text}: {}", whole.display());
            assert!(month.to_string_lossy().contains("spending-2026-11"), "{text}: {}", month.display());
        }
    }
}
