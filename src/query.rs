//! `mrpipe query`: ad-hoc SQL, run by DataFusion, over named tables. A table is a
//! Parquet file or directory (mrpipe's outputs, a period directory), or raw logs
//! read through mrpipe's own reader with one job's input schema, so log tables get
//! the same typed columns, and the same bad-line rules, as the jobs. The result goes
//! to the terminal as an aligned table, to a pipe as TSV, or to any `--output` sink.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::ParquetReadOptions;

use crate::engine::datafusion::Session;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::format::{FORMAT_NAMES, Format};
use crate::read::input::resolve_inputs;
use crate::read::{ReadLimits, Source, read_fold};
use crate::sink::Target;

/// Rows a query prints on a terminal unless `--limit` says otherwise.
pub const TERMINAL_ROWS: u64 = 40;

/// Input formats a log table can be read as (`--as`).
pub const LOG_FORMATS: &[&str] = FORMAT_NAMES;

/// One `--table NAME=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableArg {
    /// The table's name in SQL.
    pub name: String,
    /// A Parquet file or directory, or log inputs.
    pub path: String,
}

impl TableArg {
    /// Parses `NAME=PATH`.
    pub fn parse(s: &str) -> std::result::Result<TableArg, String> {
        match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                Ok(TableArg { name: name.to_string(), path: path.to_string() })
            }
            _ => Err("expected NAME=PATH".into()),
        }
    }
}

/// A validated `mrpipe query`.
pub struct QueryOptions {
    /// The SQL text.
    pub sql: String,
    /// Rows printed at most (`--limit`; 0: all); `None`: [`TERMINAL_ROWS`] on a
    /// terminal, all elsewhere.
    pub limit: Option<u64>,
    /// Named tables.
    pub tables: Vec<TableArg>,
    /// Formats of the log tables, in order (one applies to all).
    pub formats: Vec<String>,
    /// Where the result goes (`None`: the terminal or a pipe).
    pub output: Option<Box<dyn Target>>,
    /// Worker threads.
    pub threads: Option<usize>,
}

/// The result of a query.
pub struct QueryResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// Rows.
    pub batches: Vec<RecordBatch>,
    /// Bad lines skipped while reading log tables, with the table name.
    pub skipped: Vec<(String, u64)>,
}

/// The job input format named by `--as`.
fn log_format(name: &str) -> Result<Format> {
    Format::by_name(name)
        .ok_or_else(|| Error::Usage(format!("unknown --as '{name}' (use one of {})", LOG_FORMATS.join(", "))))
}

/// Whether a path is read as Parquet: a `.parquet` file, or a directory holding them
/// (in Hive partitions `key=value/` too).
fn is_parquet(path: &Path) -> bool {
    first_parquet(path, 3).is_some()
}

/// The first `.parquet` file (by name) at `path` or under it, `depth` levels down at most;
/// hidden entries (the store, spill directories) are skipped.
fn first_parquet(path: &Path, depth: usize) -> Option<PathBuf> {
    if !path.is_dir() {
        return path.extension().is_some_and(|x| x == "parquet").then(|| path.to_path_buf());
    }
    if depth == 0 {
        return None;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| first_parquet(&p, depth - 1))
}

/// The Hive partition keys of a Parquet directory (`as_of` of `as_of=20261123T000000Z/`) that
/// its files do not hold as a column, as text columns: DuckDB's `hive_partitioning`. A key the
/// files also hold (`month` of mrpipe's monthly outputs) is read from the files.
fn partition_columns(dir: &Path) -> Result<Vec<(String, DataType)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.split_once('=')).map(|(k, _)| k.to_string()))
        .filter(|k| !k.is_empty() && !k.starts_with('.'))
        .collect();
    keys.sort();
    keys.dedup();
    let Some(file) = first_parquet(dir, 3) else { return Ok(Vec::new()) };
    let opened = std::fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(opened)
        .map_err(|e| Error::Usage(format!("'{}' is not a Parquet file: {e}", file.display())))?;
    let schema = builder.schema();
    Ok(keys.into_iter().filter(|k| schema.field_with_name(k).is_err()).map(|k| (k, DataType::Utf8)).collect())
}

/// Runs the query.
pub fn run_query(opts: &QueryOptions) -> Result<QueryResult> {
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(crate::engine::WORKER_STACK_BYTES)
        .build()
        .map_err(|e| Error::sink("thread pool", e))?;
    let session = Session::new(threads, None, &std::env::temp_dir())?;
    let (runtime, ctx) = (&session.runtime, &session.ctx);
    // A directory table holds its files at any depth (Hive partitions of a period output).
    ctx.state_ref().write().config_mut().options_mut().execution.listing_table_ignore_subdirectory = false;
    let mut skipped = Vec::new();
    let mut log_tables = 0;
    for table in &opts.tables {
        let path = PathBuf::from(&table.path);
        if is_parquet(&path) {
            let options =
                ParquetReadOptions { table_partition_cols: partition_columns(&path)?, ..ParquetReadOptions::default() };
            runtime
                .block_on(ctx.register_parquet(&table.name, &table.path, options))
                .map_err(|e| Error::Usage(format!("table {}: {e}", table.name)))?;
            continue;
        }
        let format_name = match opts.formats.as_slice() {
            [] => {
                return Err(Error::Usage(format!(
                    "table {} is not Parquet: say how to read it with --as FORMAT",
                    table.name
                )));
            }
            [one] => one,
            many => many.get(log_tables).ok_or_else(|| Error::Usage(format!("no --as for table {}", table.name)))?,
        };
        log_tables += 1;
        let format = log_format(format_name)?;
        let inputs = resolve_inputs(&[PathBuf::from(&table.path)])?;
        let outcome = pool.install(|| {
            let progress = Progress::hidden();
            let (limits, scratch) = (ReadLimits::default(), std::env::temp_dir());
            let source = Source {
                inputs: &inputs,
                format: &format,
                progress: &progress,
                limits: &limits,
                scratch: &scratch,
                columns: None,
            };
            read_fold(&source, Vec::new, |batches: &mut Vec<RecordBatch>, b| {
                batches.push(b);
                Ok(())
            })
        })?;
        if outcome.stats.bad > 0 {
            skipped.push((table.name.clone(), outcome.stats.bad));
        }
        session.register(&table.name, format.schema(), outcome.states)?;
    }
    // `FROM 'out/x.parquet'` reads that file, as in DuckDB, besides the named tables.
    let ctx = ctx.clone().enable_url_table();
    // Read-only: no COPY ... TO, CREATE EXTERNAL TABLE or SET (a query file may come
    // from someone else; results are written by -o, under mrpipe's rules).
    let read_only = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = runtime.block_on(ctx.sql_with_options(&opts.sql, read_only)).map_err(|e| sql_error(&opts.sql, &e))?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = runtime.block_on(frame.collect()).map_err(|e| sql_error(&opts.sql, &e))?;
    Ok(QueryResult { schema, batches, skipped })
}

/// A DataFusion error as a usage error; when it names a position, the query is shown
/// with a caret under it.
fn sql_error(sql: &str, e: &datafusion::error::DataFusionError) -> Error {
    let message = crate::engine::datafusion::error_text(e);
    let position = message.rfind("Line: ").and_then(|at| {
        let rest = &message[at + 6..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((line.trim().parse::<usize>().ok()?, column.parse::<usize>().ok()?))
    });
    match position.and_then(|(line, column)| Some((sql.lines().nth(line.checked_sub(1)?)?, column))) {
        Some((text, column)) => {
            Error::Usage(format!("{message}\n  {text}\n  {}^", " ".repeat(column.saturating_sub(1))))
        }
        None => Error::Usage(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_args_and_caret() {
        assert_eq!(TableArg::parse("t=out/x.parquet"), Ok(TableArg { name: "t".into(), path: "out/x.parquet".into() }));
        assert!(TableArg::parse("=x").is_err());
        assert!(TableArg::parse("t").is_err());
        let e = datafusion::error::DataFusionError::Plan(
            "Expected: an expression, found: FROM at Line: 1, Column: 8".into(),
        );
        let msg = sql_error("SELECT FROM t", &e).to_string();
        assert!(msg.ends_with("  SELECT FROM t\n         ^"), "{msg:?}");
    }
}
