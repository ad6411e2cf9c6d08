//! Parquet sink: each table to `DIR/<table>.parquet` (or one named `*.parquet` file),
//! written with fixed writer properties so the same rows give the same bytes.

use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::atomic::{StagedFile, publish_all};
use super::{Sink, Written, stage_manifest};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::Table;

/// Writes tables as Parquet files, published together on commit.
pub struct ParquetSink {
    target: Target,
    staged: Vec<StagedFile>,
}

enum Target {
    Dir(PathBuf),
    File(PathBuf),
}

impl ParquetSink {
    /// Parquet files `DIR/<table>.parquet`.
    pub fn dir(dir: PathBuf) -> Self {
        ParquetSink { target: Target::Dir(dir), staged: Vec::new() }
    }

    /// One Parquet file (single-table jobs).
    pub fn file(path: PathBuf) -> Self {
        ParquetSink { target: Target::File(path), staged: Vec::new() }
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
        let dest = match &self.target {
            Target::Dir(dir) => dir.join(format!("{}.parquet", table.name)),
            Target::File(path) if self.staged.is_empty() => path.clone(),
            Target::File(path) => {
                return Err(Error::Usage(format!(
                    "output '{}' is one Parquet file, but the job writes several tables; give a directory",
                    path.display()
                )));
            }
        };
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

    fn commit(self: Box<Self>, manifest: Option<(&Path, &Manifest)>) -> Result<()> {
        let manifest = stage_manifest(manifest)?;
        publish_all(self.staged)?;
        publish_all(manifest.into_iter().collect())
    }
}
