//! Parquet output (the default kind): a directory of `<table>.parquet` files, or one
//! named `*.parquet` file, laid out as [`super::files`] says. Files are written with
//! fixed writer properties so the same rows give the same bytes, staged under
//! temporary names and renamed into place on commit, the manifest last.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::files::{self, Layout};
use super::generation::Generation;
use super::text::write_rows;
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Table, TableSpec};

/// A Parquet directory or file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetTarget(Layout);

impl ParquetTarget {
    /// A path ending in `.parquet` is one file; anything else a directory.
    pub fn parse(path: &str) -> ParquetTarget {
        ParquetTarget(Layout::parse(path, "parquet"))
    }
}

impl fmt::Display for ParquetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.path().display())
    }
}

/// Writer properties fixed for byte reproducibility: no time or host in the metadata.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("mrpipe {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The rows of a Parquet file as TSV lines; `None` when the file is not there.
pub fn read_rows(path: &Path) -> Result<Option<Vec<String>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let fail = |e: &dyn fmt::Display| Error::sink(path.display().to_string(), e);
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| fail(&e))?;
    let mut text = Vec::new();
    for batch in reader {
        write_rows(&mut text, &batch.map_err(|e| fail(&e))?).map_err(|e| Error::io(path, e))?;
    }
    Ok(Some(String::from_utf8_lossy(&text).lines().map(str::to_string).collect()))
}

impl Target for ParquetTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        self.0.lock(job, wait).map(Some)
    }

    fn open(&self, unit: Unit<'_>, _tables: usize) -> Result<Box<dyn Publication>> {
        Ok(Box::new(ParquetPublication {
            target: self.clone(),
            period: unit.period.cloned(),
            manifest: self.0.manifest_path(unit),
            generation: Generation::start(self.0.store(unit))?,
            tables: 0,
        }))
    }

    fn table_location(&self, table: &str, period: Option<&Period>) -> String {
        self.0.table_path(table, "parquet", period).display().to_string()
    }

    fn check_shape(&self, table: &str, period: Option<&Period>) -> Result<()> {
        self.0.check_shape(table, "parquet", period)
    }

    fn manifest_location(&self, unit: Unit<'_>) -> Option<String> {
        Some(self.0.manifest_path(unit).display().to_string())
    }

    fn default_rejects(&self, unit: Unit<'_>) -> PathBuf {
        self.0.rejects_path(unit)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.0.dir()
    }

    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        self.0.last_manifest(job, which)
    }

    fn published_rows(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>> {
        read_rows(Path::new(slice.location))
    }

    fn published_hash(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<String>> {
        files::file_hash(slice.location)
    }

    fn relocated(&self, dir: &Path) -> Box<dyn Target> {
        Box::new(ParquetTarget(self.0.relocated(dir)))
    }
}

/// Tables written as Parquet files of a new generation, published together on commit.
struct ParquetPublication {
    target: ParquetTarget,
    period: Option<Period>,
    manifest: PathBuf,
    generation: Generation,
    tables: usize,
}

impl Publication for ParquetPublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        if matches!(self.target.0, Layout::File(_)) && self.tables > 0 {
            return Err(Error::Usage(format!(
                "output '{}' is one Parquet file, but the job writes several tables; give a directory",
                self.target
            )));
        }
        let dest = PathBuf::from(self.target.table_location(table.name, self.period.as_ref()));
        let (writer, in_place) = self.generation.create(&dest)?;
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
        let hash = writer.finish(&dest, in_place)?;
        self.tables += 1;
        Ok(Written {
            rows,
            location: dest.display().to_string(),
            blake3: Some(hash.to_hex().to_string()),
            months: None,
        })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest) -> Result<()> {
        super::generation::write_manifest(&mut self.generation, &self.manifest, manifest)?;
        self.generation.commit()
    }
}
