//! Parquet sink: each table to `DIR/<table>.parquet` (or one named `*.parquet` file),
//! written with fixed writer properties so the same rows give the same bytes.

use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::atomic::StagedFile;
use super::{Sink, SinkUrl, Written, publish_with_manifest};
use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::table::Table;

/// Writes tables as Parquet files, published together on commit.
pub struct ParquetSink {
    url: SinkUrl,
    period: Option<Period>,
    staged: Vec<StagedFile>,
}

impl ParquetSink {
    /// A Parquet sink for a directory or `*.parquet` output, for one period if given.
    pub fn new(url: SinkUrl, period: Option<Period>) -> Self {
        ParquetSink { url, period, staged: Vec::new() }
    }
}

/// Writer properties fixed for byte reproducibility: no time or host in the metadata.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("mrpipe {}", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Sink for ParquetSink {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        if matches!(self.url, SinkUrl::ParquetFile(_)) && !self.staged.is_empty() {
            return Err(Error::Usage(format!(
                "output '{}' is one Parquet file, but the job writes several tables; give a directory",
                self.url
            )));
        }
        let dest = PathBuf::from(self.url.table_location(table.name, self.period.as_ref()));
        let (staged, writer) = StagedFile::create(&dest)?;
        let fail = |e: parquet::errors::ParquetError| Error::sink(dest.display().to_string(), e);
        let mut parquet =
            ArrowWriter::try_new(writer, table.schema.clone(), Some(writer_properties())).map_err(fail)?;
        let mut rows = 0u64;
        for batch in table.batches {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            parquet.write(&batch).map_err(fail)?;
        }
        let writer = parquet.into_inner().map_err(fail)?;
        let hash = staged.seal(writer)?;
        self.staged.push(staged);
        Ok(Written { rows, location: dest.display().to_string(), blake3: Some(hash.to_hex().to_string()) })
    }

    fn commit(self: Box<Self>, manifest: &Manifest, manifest_file: Option<&Path>) -> Result<()> {
        publish_with_manifest(self.staged, manifest, manifest_file)
    }
}
