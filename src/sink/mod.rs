//! The `sink` stage: result [`Table`]s in, published outputs out.
//!
//! `--output` is parsed once into a [`SinkUrl`]; [`open`] makes the [`Sink`]. A sink
//! writes every table of a run to a staging place (temporary files, an open SQL
//! transaction) and makes them visible only in `commit`, so a failed or killed run
//! leaves the previous result intact.

pub mod atomic;
pub mod parquet;
pub mod sqlite;
pub mod tsv;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::table::Table;

/// Writes a run's tables and publishes them together.
pub trait Sink {
    /// Writes one table to the staging place; returns its row count.
    fn write_table(&mut self, table: Table) -> Result<u64>;
    /// Publishes every table written; returns where each table went (a path or URL per
    /// table, in write order; nothing for stdout).
    fn commit(self: Box<Self>) -> Result<Vec<String>>;
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
            return Ok(if path.ends_with('/') || p.is_dir() {
                SinkUrl::TsvDir(p)
            } else {
                SinkUrl::TsvFile(p)
            });
        }
        if let Some(path) = s.strip_prefix("parquet:") {
            return Ok(SinkUrl::parquet(path));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::Usage(format!(
                "output '{s}': '{scheme}://' is not a supported sink here (use a directory, *.parquet, sqlite:PATH, tsv:PATH or -)"
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
            SinkUrl::TsvStdout => None,
        }
    }
}

/// Opens the sink for a run that writes `tables` tables.
pub fn open(url: &SinkUrl, tables: usize) -> Result<Box<dyn Sink>> {
    Ok(match url {
        SinkUrl::ParquetDir(dir) => Box::new(parquet::ParquetSink::dir(dir.clone())),
        SinkUrl::ParquetFile(path) => Box::new(parquet::ParquetSink::file(path.clone())),
        SinkUrl::Sqlite(path) => Box::new(sqlite::SqliteSink::open(path.clone())?),
        SinkUrl::TsvStdout => Box::new(tsv::TsvSink::new(tsv::TsvTarget::Stdout, tables)),
        SinkUrl::TsvFile(path) => Box::new(tsv::TsvSink::new(tsv::TsvTarget::File(path.clone()), tables)),
        SinkUrl::TsvDir(dir) => Box::new(tsv::TsvSink::new(tsv::TsvTarget::Dir(dir.clone()), tables)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_urls() {
        let p = PathBuf::from;
        assert_eq!(SinkUrl::parse("-").unwrap(), SinkUrl::TsvStdout);
        assert_eq!(SinkUrl::parse("out").unwrap(), SinkUrl::ParquetDir(p("out")));
        assert_eq!(
            SinkUrl::parse("x/r.parquet").unwrap(),
            SinkUrl::ParquetFile(p("x/r.parquet"))
        );
        assert_eq!(SinkUrl::parse("sqlite:db/m.db").unwrap(), SinkUrl::Sqlite(p("db/m.db")));
        assert_eq!(SinkUrl::parse("tsv:r.tsv").unwrap(), SinkUrl::TsvFile(p("r.tsv")));
        assert_eq!(SinkUrl::parse("tsv:out/").unwrap(), SinkUrl::TsvDir(p("out/")));
        let err = SinkUrl::parse("ftp://x").unwrap_err().to_string();
        assert!(err.contains("'ftp://'"), "{err}");
    }
}
