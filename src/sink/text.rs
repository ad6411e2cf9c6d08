//! Delimited text output, TSV or CSV: a header line, then one line per row, to stdout
//! (`-`, `csv:-`), to one file (`tsv:FILE`, `csv:FILE`, one-table jobs) or to
//! `DIR/<table>.tsv|csv` (`tsv:DIR/`, `csv:DIR/`), files laid out as [`super::files`]
//! says and published atomically. Money is written with exactly two fraction digits.
//!
//! TSV escaping follows PostgreSQL's `COPY ... (FORMAT text)` (also MySQL's `LOAD DATA`
//! default and ClickHouse's `TabSeparated`), so any value round-trips: in a value, TAB,
//! LF, CR and `\` are written `\t`, `\n`, `\r`, `\\`, and NULL is `\N`. The rejects
//! file escapes these four the same way.
//!
//! CSV is RFC 4180 (written by `arrow-csv`, on the `csv` crate): comma-separated, a
//! value holding a comma, quote, CR or LF is quoted with `"` (inner quotes doubled),
//! lines end in LF, NULL is an empty field.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::files::{self, Layout};
use super::generation::{self, Generation};
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Table, TableSpec};

/// Which delimited text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Tab-separated, values escaped (module docs).
    Tsv,
    /// RFC 4180 comma-separated, values quoted when needed.
    Csv,
}

impl Dialect {
    /// The file extension and `--output` scheme: `tsv`, `csv`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Tsv => "tsv",
            Dialect::Csv => "csv",
        }
    }

    /// Writes a header and the rows of `table`; returns the row count. `io` wraps write errors.
    pub fn write_table(self, out: &mut dyn Write, table: Table, io: &dyn Fn(std::io::Error) -> Error) -> Result<u64> {
        match self {
            Dialect::Tsv => write_tsv(out, table, io),
            Dialect::Csv => write_csv(out, table, io),
        }
    }
}

/// Where delimited text goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextTarget {
    dialect: Dialect,
    /// Files, or `None` for standard output (TSV: several tables each follow a `# <table>` line).
    layout: Option<Layout>,
}

impl TextTarget {
    /// TSV on standard output (`-`).
    pub fn stdout() -> TextTarget {
        TextTarget { dialect: Dialect::Tsv, layout: None }
    }

    /// The part after `tsv:` or `csv:`: `-`, a directory (ending in `/` or existing), or a file.
    pub fn parse(dialect: Dialect, path: &str) -> TextTarget {
        if path == "-" {
            return TextTarget { dialect, layout: None };
        }
        let p = PathBuf::from(path);
        let layout = if path.ends_with('/') || p.is_dir() { Layout::Dir(p) } else { Layout::File(p) };
        TextTarget { dialect, layout: Some(layout) }
    }
}

impl fmt::Display for TextTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.dialect.name();
        match &self.layout {
            None if self.dialect == Dialect::Tsv => write!(f, "-"),
            None => write!(f, "{scheme}:-"),
            Some(Layout::File(p)) => write!(f, "{scheme}:{}", p.display()),
            Some(Layout::Dir(p)) => write!(f, "{scheme}:{}/", p.display().to_string().trim_end_matches('/')),
        }
    }
}

impl Target for TextTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        self.layout.as_ref().map(|l| l.lock(job, wait)).transpose()
    }

    fn open(&self, unit: Unit<'_>, tables: usize) -> Result<Box<dyn Publication>> {
        let generation = match &self.layout {
            Some(l) => Some((Generation::start(l.store(unit))?, l.manifest_path(unit))),
            None => None,
        };
        Ok(Box::new(TextPublication { target: self.clone(), tables, period: unit.period.cloned(), generation }))
    }

    fn table_location(&self, table: &str, period: Option<&Period>) -> String {
        match &self.layout {
            None => "stdout".into(),
            Some(l) => l.table_path(table, self.dialect.name(), period).display().to_string(),
        }
    }

    fn check_shape(&self, table: &str, period: Option<&Period>) -> Result<()> {
        self.layout.as_ref().map_or(Ok(()), |l| l.check_shape(table, self.dialect.name(), period))
    }

    fn manifest_location(&self, unit: Unit<'_>) -> Option<String> {
        self.layout.as_ref().map(|l| l.manifest_path(unit).display().to_string())
    }

    fn default_rejects(&self, unit: Unit<'_>) -> PathBuf {
        match &self.layout {
            None => super::rejects_in_working_dir(unit),
            Some(l) => l.rejects_path(unit),
        }
    }

    fn scratch_dir(&self) -> PathBuf {
        self.layout.as_ref().map_or_else(std::env::temp_dir, Layout::dir)
    }

    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        match &self.layout {
            None => Ok(None),
            Some(l) => l.last_manifest(job, which),
        }
    }

    fn published_rows(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>> {
        let path = Path::new(slice.location);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        match self.dialect {
            Dialect::Tsv => {
                let text = String::from_utf8(bytes).map_err(|e| Error::sink(slice.location, e))?;
                Ok(Some(text.lines().skip(1).map(str::to_string).collect()))
            }
            // As TSV lines, the form every output's rows are compared in.
            Dialect::Csv => csv::Reader::from_reader(bytes.as_slice())
                .records()
                .map(|r| r.map(|record| line(record.iter().map(Some))))
                .collect::<Result<_, _>>()
                .map(Some)
                .map_err(|e| Error::sink(slice.location, e)),
        }
    }

    fn published_hash(&self, _spec: &TableSpec, slice: Slice<'_>) -> Result<Option<String>> {
        files::file_hash(slice.location)
    }

    fn relocated(&self, dir: &Path) -> Box<dyn Target> {
        Box::new(TextTarget { dialect: self.dialect, layout: self.layout.as_ref().map(|l| l.relocated(dir)) })
    }

    fn keeps_results(&self) -> bool {
        self.layout.is_some()
    }
}

/// Tables written as text: straight to stdout, or files of a new generation (with the
/// manifest's path) published together on commit.
struct TextPublication {
    target: TextTarget,
    tables: usize,
    period: Option<Period>,
    generation: Option<(Generation, PathBuf)>,
}

/// How NULL is written.
pub const NULL: &str = "\\N";

/// `value` with TAB, LF, CR and `\` escaped (`\t`, `\n`, `\r`, `\\`); borrowed when none occurs.
pub fn escape(value: &str) -> Cow<'_, str> {
    if !value.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r' | b'\\')) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One TSV line (without its newline) of cells read back from a SQL output, `None` for NULL:
/// the form [`write_rows`] hashes, so a table re-read from a database hashes as it was written.
pub fn line<S: AsRef<str>>(cells: impl IntoIterator<Item = Option<S>>) -> String {
    let mut out = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match cell {
            Some(value) => out.push_str(&escape(value.as_ref())),
            None => out.push_str(NULL),
        }
    }
    out
}

/// Whether values of `ty` can hold characters that need escaping (text and its kin).
fn may_need_escaping(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => may_need_escaping(value),
        _ => false,
    }
}

/// The value at `row` of a text column, borrowed (no formatting); `None` for other types.
fn text_at(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

/// Writes the rows of a batch as TSV lines (no header), values escaped, NULL as `\N`.
pub fn write_rows(out: &mut dyn Write, batch: &RecordBatch) -> std::io::Result<u64> {
    let options = FormatOptions::default();
    let columns: Vec<(&dyn Array, ArrayFormatter, bool)> = batch
        .columns()
        .iter()
        .map(|c| {
            let formatter = ArrayFormatter::try_new(c.as_ref(), &options)?;
            Ok((c.as_ref(), formatter, may_need_escaping(c.data_type())))
        })
        .collect::<Result<_, arrow::error::ArrowError>>()
        .map_err(std::io::Error::other)?;
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (i, (array, formatter, escaped)) in columns.iter().enumerate() {
            if i > 0 {
                out.write_all(b"\t")?;
            }
            if array.is_null(row) {
                out.write_all(NULL.as_bytes())?;
            } else if let Some(value) = text_at(*array, row) {
                out.write_all(escape(value).as_bytes())?;
            } else if *escaped {
                text.clear();
                write!(text, "{}", formatter.value(row)).map_err(std::io::Error::other)?;
                out.write_all(escape(&text).as_bytes())?;
            } else {
                write!(out, "{}", formatter.value(row))?;
            }
        }
        out.write_all(b"\n")?;
    }
    Ok(batch.num_rows() as u64)
}

/// Writes a header and the rows of `table` as TSV; returns the row count. `io` wraps write errors.
pub fn write_tsv(out: &mut dyn Write, table: Table, io: &dyn Fn(std::io::Error) -> Error) -> Result<u64> {
    let names = line(table.schema.fields().iter().map(|f| Some(f.name().as_str())));
    writeln!(out, "{names}").map_err(io)?;
    let mut rows = 0u64;
    for batch in table.batches {
        rows += write_rows(out, &batch?).map_err(io)?;
    }
    Ok(rows)
}

/// Writes a header and the rows of `table` as RFC 4180 CSV; returns the row count.
pub fn write_csv(out: &mut dyn Write, table: Table, io: &dyn Fn(std::io::Error) -> Error) -> Result<u64> {
    let csv_error = |e: arrow::error::ArrowError| match e {
        arrow::error::ArrowError::IoError(_, e) => io(e),
        other => io(std::io::Error::other(other)),
    };
    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(out);
    let mut rows = 0u64;
    let mut header_written = false;
    for batch in table.batches {
        let batch = batch?;
        writer.write(&batch).map_err(csv_error)?;
        header_written = true;
        rows += batch.num_rows() as u64;
    }
    if !header_written {
        // arrow-csv writes the header with the first batch; a table without rows still has one.
        writer.write(&RecordBatch::new_empty(table.schema)).map_err(csv_error)?;
    }
    Ok(rows)
}

impl Publication for TextPublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let dialect = self.target.dialect;
        let one_file = !matches!(self.target.layout, Some(Layout::Dir(_)));
        if self.tables > 1 && one_file && !(dialect == Dialect::Tsv && self.target.layout.is_none()) {
            let scheme = dialect.name();
            return Err(Error::Usage(format!(
                "this job writes several tables; give {scheme}:DIR/ to write DIR/<table>.{scheme}"
            )));
        }
        if self.target.layout.is_none() {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if self.tables > 1 {
                writeln!(out, "# {}", table.name).map_err(Error::stdout)?;
            }
            let rows = dialect.write_table(&mut out, table, &Error::stdout)?;
            out.flush().map_err(Error::stdout)?;
            return Ok(Written { rows, location: "stdout".into(), blake3: None, months: None });
        }
        let dest = PathBuf::from(self.target.table_location(table.name, self.period.as_ref()));
        let mut rows = 0;
        let Some((generation, _)) = self.generation.as_mut() else {
            return Err(Error::sink(dest.display().to_string(), "no generation for a file output"));
        };
        let hash = generation.write(&dest, |w| {
            rows = dialect.write_table(w, table, &|e| Error::io(&dest, e))?;
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
