//! TSV sink: a header line, then one line per row, to stdout or to files published
//! atomically. Money is written with exactly two fraction digits, nulls as empty.

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::atomic::{StagedFile, write_staged};
use super::{Sink, SinkUrl, Written, publish_with_manifest};
use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::table::Table;

/// Writes tables as TSV: to stdout (several tables each preceded by a `# <table>`
/// line), to one file (single-table jobs), or to `DIR/<table>.tsv`.
pub struct TsvSink {
    url: SinkUrl,
    tables: usize,
    period: Option<Period>,
    staged: Vec<StagedFile>,
}

impl TsvSink {
    /// A TSV sink for a `-`, `tsv:FILE` or `tsv:DIR/` output; `tables` is how many tables the job writes.
    pub fn new(url: SinkUrl, tables: usize, period: Option<Period>) -> Self {
        TsvSink { url, tables, period, staged: Vec::new() }
    }
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

impl Sink for TsvSink {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let dest = match &self.url {
            SinkUrl::TsvStdout => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                if self.tables > 1 {
                    writeln!(out, "# {}", table.name).map_err(Error::stdout)?;
                }
                let rows = write_tsv(&mut out, table, &Error::stdout)?;
                out.flush().map_err(Error::stdout)?;
                return Ok(Written { rows, location: "stdout".into(), blake3: None });
            }
            SinkUrl::TsvFile(_) if self.tables > 1 => {
                return Err(Error::Usage(
                    "this job writes several tables; give tsv:DIR/ to write DIR/<table>.tsv".to_string(),
                ));
            }
            url => PathBuf::from(url.table_location(table.name, self.period.as_ref())),
        };
        let mut rows = 0;
        let (staged, hash) = write_staged(&dest, |w| {
            rows = write_tsv(w, table, &|e| Error::io(&dest, e))?;
            Ok(())
        })?;
        self.staged.push(staged);
        Ok(Written { rows, location: dest.display().to_string(), blake3: Some(hash.to_hex().to_string()) })
    }

    fn commit(self: Box<Self>, manifest: &Manifest, manifest_file: Option<&Path>) -> Result<()> {
        publish_with_manifest(self.staged, manifest, manifest_file)
    }
}
