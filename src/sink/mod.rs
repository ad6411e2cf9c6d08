//! The `sink` stage: result [`Table`]s in, published outputs out.
//!
//! `--output` is parsed once into a [`SinkUrl`]; [`open`] makes the [`Sink`]. A sink
//! writes every table of a run to a staging place (temporary files, an open SQL
//! transaction), hashing what it writes, and makes everything visible only in
//! `commit`, together with the run's manifest, so a failed or killed run leaves the
//! previous result intact.

pub mod atomic;
pub mod mysql;
pub mod parquet;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod tsv;

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::table::Table;

/// What writing one table produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Rows written.
    pub rows: u64,
    /// Where the table goes: a file path, `sqlite:PATH`, or `stdout`.
    pub location: String,
    /// BLAKE3 of the file's bytes (file sinks) or of the rows as TSV (SQL sinks); none for stdout.
    pub blake3: Option<String>,
}

/// Writes a run's tables and publishes them together.
pub trait Sink {
    /// Writes one table to the staging place.
    fn write_table(&mut self, table: Table) -> Result<Written>;
    /// Publishes every table written, with the run's manifest: as a JSON file at
    /// `manifest_file` when given, and in the `mrpipe_runs` table of SQL sinks.
    fn commit(self: Box<Self>, manifest: &Manifest, manifest_file: Option<&Path>) -> Result<()>;
}

/// A parsed `--output` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkUrl {
    /// A directory of `<table>.parquet` files (the default kind).
    ParquetDir(PathBuf),
    /// One `*.parquet` file.
    ParquetFile(PathBuf),
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `-`: TSV on standard output.
    TsvStdout,
    /// `tsv:PATH`.
    TsvFile(PathBuf),
    /// `tsv:DIR/`.
    TsvDir(PathBuf),
    /// `postgres://user@host:port/db[?schema=s]`.
    Postgres(postgres::PostgresUrl),
    /// `mysql://user@host:port/db` (MySQL or MariaDB).
    Mysql(mysql::MysqlUrl),
}

impl SinkUrl {
    /// Parses an `--output` value; an unknown scheme is a usage error naming it.
    pub fn parse(s: &str) -> Result<SinkUrl> {
        if s == "-" {
            return Ok(SinkUrl::TsvStdout);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(Error::Usage(format!("output '{s}' names no database file")));
            }
            return Ok(SinkUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(path) = s.strip_prefix("tsv:") {
            if path == "-" {
                return Ok(SinkUrl::TsvStdout);
            }
            let p = PathBuf::from(path);
            return Ok(if path.ends_with('/') || p.is_dir() { SinkUrl::TsvDir(p) } else { SinkUrl::TsvFile(p) });
        }
        if let Some(path) = s.strip_prefix("parquet:") {
            return Ok(SinkUrl::parquet(path));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(SinkUrl::Postgres(postgres::PostgresUrl::parse(s)?));
        }
        if s.starts_with("mysql://") || s.starts_with("mariadb://") {
            return Ok(SinkUrl::Mysql(mysql::MysqlUrl::parse(&s.replacen("mariadb://", "mysql://", 1))?));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::Usage(format!(
                "output '{s}': '{scheme}://' is not a supported sink here (use a directory, *.parquet, sqlite:PATH, postgres://..., mysql://..., tsv:PATH or -)"
            )));
        }
        Ok(SinkUrl::parquet(s))
    }

    fn parquet(path: &str) -> SinkUrl {
        if path.ends_with(".parquet") {
            SinkUrl::ParquetFile(PathBuf::from(path))
        } else {
            SinkUrl::ParquetDir(PathBuf::from(path))
        }
    }

    /// A directory near the output where temporary files may go, if it is on disk.
    pub fn local_dir(&self) -> Option<PathBuf> {
        let parent = |p: &PathBuf| p.parent().map(PathBuf::from).filter(|d| !d.as_os_str().is_empty());
        match self {
            SinkUrl::ParquetDir(d) | SinkUrl::TsvDir(d) => Some(d.clone()),
            SinkUrl::ParquetFile(p) | SinkUrl::Sqlite(p) | SinkUrl::TsvFile(p) => {
                parent(p).or(Some(PathBuf::from(".")))
            }
            SinkUrl::TsvStdout | SinkUrl::Postgres(_) | SinkUrl::Mysql(_) => None,
        }
    }

    /// Where `table` goes: `DIR/<table>.parquet`, or for one period of a split run
    /// `DIR/<table>/<table>-<period>.parquet` (a directory readers take as one table);
    /// a named file gets `-<period>` before its extension.
    pub fn table_location(&self, table: &str, period: Option<&Period>) -> String {
        let in_dir = |d: &Path, ext: &str| match period {
            None => d.join(format!("{table}.{ext}")),
            Some(p) => d.join(table).join(format!("{table}-{}.{ext}", p.label)),
        };
        let named = |f: &Path| match (period, f.extension()) {
            (None, _) => f.to_path_buf(),
            (Some(p), Some(ext)) => f.with_extension(format!("{}.{}", p.label, ext.to_string_lossy())),
            (Some(p), None) => PathBuf::from(format!("{}-{}", f.display(), p.label)),
        };
        let path = match self {
            SinkUrl::ParquetDir(d) => in_dir(d, "parquet"),
            SinkUrl::TsvDir(d) => in_dir(d, "tsv"),
            SinkUrl::ParquetFile(f) | SinkUrl::TsvFile(f) => named(f),
            SinkUrl::Sqlite(p) => return format!("sqlite:{}", p.display()),
            SinkUrl::Postgres(u) => return u.display.clone(),
            SinkUrl::Mysql(u) => return u.display.clone(),
            SinkUrl::TsvStdout => return "stdout".into(),
        };
        path.display().to_string()
    }

    /// The same kind of output placed under `dir` (what `mrpipe verify` re-runs into);
    /// SQLite for a PostgreSQL or MySQL output.
    pub fn relocated(&self, dir: &Path) -> SinkUrl {
        let name = |p: &PathBuf| dir.join(p.file_name().unwrap_or(std::ffi::OsStr::new("output")));
        match self {
            SinkUrl::ParquetDir(_) => SinkUrl::ParquetDir(dir.join("out")),
            SinkUrl::TsvDir(_) => SinkUrl::TsvDir(dir.join("out")),
            SinkUrl::ParquetFile(p) => SinkUrl::ParquetFile(name(p)),
            SinkUrl::Sqlite(p) => SinkUrl::Sqlite(name(p)),
            SinkUrl::TsvFile(p) => SinkUrl::TsvFile(name(p)),
            SinkUrl::TsvStdout => SinkUrl::TsvStdout,
            // Never the server itself: a re-run must not publish. SQLite hashes rows alike.
            SinkUrl::Postgres(_) | SinkUrl::Mysql(_) => SinkUrl::Sqlite(dir.join("rerun.db")),
        }
    }
}

impl fmt::Display for SinkUrl {
    /// The canonical `--output` spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkUrl::ParquetDir(p) | SinkUrl::ParquetFile(p) => write!(f, "{}", p.display()),
            SinkUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            SinkUrl::TsvStdout => write!(f, "-"),
            SinkUrl::TsvFile(p) => write!(f, "tsv:{}", p.display()),
            SinkUrl::TsvDir(p) => write!(f, "tsv:{}/", p.display().to_string().trim_end_matches('/')),
            SinkUrl::Postgres(u) => write!(f, "{}", u.display),
            SinkUrl::Mysql(u) => write!(f, "{}", u.display),
        }
    }
}

/// Opens the sink for a run (or one `period` of it) that writes `tables` tables.
pub fn open(url: &SinkUrl, tables: usize, period: Option<&Period>) -> Result<Box<dyn Sink>> {
    Ok(match url {
        SinkUrl::ParquetDir(_) | SinkUrl::ParquetFile(_) => {
            Box::new(parquet::ParquetSink::new(url.clone(), period.cloned()))
        }
        SinkUrl::Sqlite(path) => Box::new(sqlite::SqliteSink::open(path.clone(), period.cloned())?),
        SinkUrl::Postgres(u) => Box::new(postgres::PostgresSink::open(u.clone(), period.cloned())?),
        SinkUrl::Mysql(u) => Box::new(mysql::MysqlSink::open(u.clone(), period.cloned())?),
        SinkUrl::TsvStdout | SinkUrl::TsvFile(_) | SinkUrl::TsvDir(_) => {
            Box::new(tsv::TsvSink::new(url.clone(), tables, period.cloned()))
        }
    })
}

/// SQL tables hold a period only through a column (`month`): a period without one
/// (one of several sales-rank rankings) cannot share a table with the others.
pub fn check_sql_period(period: Option<&Period>) -> Result<()> {
    if period.is_some_and(|p| p.column.is_none()) {
        return Err(Error::Usage(
            "several rankings cannot share one SQL table; give a directory output for a sales-rank backfill".into(),
        ));
    }
    Ok(())
}

/// Publishes staged outputs, then the manifest (staged last, renamed last), so a
/// manifest never describes outputs that are not in place.
pub fn publish_with_manifest(staged: Vec<atomic::StagedFile>, manifest: &Manifest, file: Option<&Path>) -> Result<()> {
    let manifest = match file.map(|path| (path, manifest)) {
        Some((path, m)) => {
            let json = m.to_json()?;
            let write = |w: &mut atomic::StagedWriter| w.write_all(json.as_bytes()).map_err(|e| Error::io(path, e));
            Some(atomic::write_staged(path, write)?.0)
        }
        None => None,
    };
    atomic::publish_all(staged)?;
    atomic::publish_all(manifest.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_urls_and_prints_them_back() {
        let p = PathBuf::from;
        let cases = [
            ("-", SinkUrl::TsvStdout),
            ("out", SinkUrl::ParquetDir(p("out"))),
            ("x/r.parquet", SinkUrl::ParquetFile(p("x/r.parquet"))),
            ("sqlite:db/m.db", SinkUrl::Sqlite(p("db/m.db"))),
            ("tsv:r.tsv", SinkUrl::TsvFile(p("r.tsv"))),
            ("tsv:out/", SinkUrl::TsvDir(p("out/"))),
        ];
        for (text, url) in cases {
            assert_eq!(SinkUrl::parse(text).unwrap(), url);
            assert_eq!(url.to_string(), text);
        }
        let err = SinkUrl::parse("ftp://x").unwrap_err().to_string();
        assert!(err.contains("'ftp://'"), "{err}");
    }
}
