//! The DataFusion engine: runs a plan's SQL twin ([`Twin`]) instead of its map/reduce.
//!
//! read (mrpipe's reader: same batches, same quarantine) -> register the input, the
//! side tables and the job's functions -> plan each statement of `jobs/<job>.sql`
//! with its parameters bound -> execute -> conform the result to the spec's table
//! (same names, types, non-null) so that the sinks write the same bytes as for the
//! native engine. The statements' ORDER BY gives the output order.
//!
//! When only the first statement reads the input (every built-in twin), the input is
//! a stream: the reader feeds its batches through a bounded channel into the running
//! query, so memory holds a few batches of input, not all of it. Otherwise the input
//! is read whole into memory first, since several statements scan it.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, new_empty_array};
use arrow::compute::{CastOptions, cast_with_options, concat};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement};
use tokio::runtime::Runtime;

use super::{JobOutput, RunContext};
use crate::error::{Error, Result};
use crate::read;
use crate::read::format::Format;
use crate::scratch::scratch_dir;
use crate::table::{Table, TableSpec};

/// A job's SQL file, `jobs/<job>.sql`: one statement per output table, in output
/// order. Parameters are `$name` placeholders, bound to typed values, never spliced
/// into the text.
pub struct SqlFile {
    /// Where it lives in the source tree, for error messages.
    pub path: &'static str,
    /// The statements.
    pub text: &'static str,
}

/// A plan as SQL: what this engine runs.
pub struct Twin {
    /// The statements.
    pub sql: &'static SqlFile,
    /// The name the inputs have in the SQL, and how they are read.
    pub input: (&'static str, Format),
    /// Values of the `$name` placeholders (a NULL for an option not given).
    pub params: Vec<(String, ScalarValue)>,
    /// Side tables the SQL joins with, already read (skipped rows are in `warnings`).
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// Functions the SQL calls besides DataFusion's own.
    pub functions: Vec<ScalarUDF>,
    /// The tables the first statements produce; each is also readable by later ones.
    pub outputs: Vec<&'static TableSpec>,
    /// Problems met while preparing the side tables.
    pub warnings: Vec<String>,
    /// Publish only the rows whose text column (first) holds the value (second): one
    /// period of a job whose statements compute every period. Later statements still
    /// read every row of earlier outputs.
    pub published_rows: Option<(String, String)>,
}

/// A DataFusion session and the runtime its futures run on.
pub struct Session {
    /// Runs DataFusion's async work.
    pub runtime: Runtime,
    /// Tables, functions and configuration.
    pub ctx: SessionContext,
    /// Where operators spill, when memory is limited.
    _spill: Option<crate::scratch::Scratch>,
}

impl Session {
    /// A session with `threads` partitions and workers; with a memory limit, operators
    /// spill to `temp_dir` beyond it.
    pub fn new(threads: usize, memory_limit: Option<u64>, temp_dir: &Path) -> Result<Session> {
        Session::build(threads, memory_limit, temp_dir, SessionConfig::new(), |_, state| {
            Ok(SessionContext::new_with_state(state))
        })
    }

    /// [`Session::new`] from a base `config`, the context made from the session state
    /// by `connect` (which may start or reach a cluster on the runtime).
    pub(super) fn build(
        threads: usize,
        memory_limit: Option<u64>,
        temp_dir: &Path,
        config: SessionConfig,
        connect: impl FnOnce(&Runtime, SessionState) -> Result<SessionContext>,
    ) -> Result<Session> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            // Deep expressions recurse while they run, as while they are planned.
            .thread_stack_size(super::WORKER_STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| Error::sink("DataFusion runtime", e))?;
        let mut env = RuntimeEnvBuilder::new();
        let mut config = config.with_target_partitions(threads.max(1));
        let mut spill = None;
        if let Some(limit) = memory_limit {
            let dir = scratch_dir(temp_dir)?;
            let disk = DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![dir.path().into()]));
            spill = Some(dir);
            env = env
                .with_memory_pool(Arc::new(FairSpillPool::new(usize::try_from(limit).unwrap_or(usize::MAX))))
                .with_disk_manager_builder(disk);
            // Sorts that spill hold this much back for merging their runs (10 MB by
            // default); scaled down so that small limits still leave room to work.
            let reserve = (limit / (4 * threads.max(1) as u64)).min(10 << 20);
            config = config.with_sort_spill_reservation_bytes(reserve as usize);
        }
        let env = env.build_arc().map_err(|e| Error::sink("DataFusion runtime", e))?;
        let state =
            SessionStateBuilder::new().with_config(config).with_runtime_env(env).with_default_features().build();
        let ctx = connect(&runtime, state)?;
        Ok(Session { runtime, ctx, _spill: spill })
    }

    /// Registers batches in memory as a table; `partitions` are scanned in parallel.
    pub fn register(&self, name: &str, schema: SchemaRef, mut partitions: Vec<Vec<RecordBatch>>) -> Result<()> {
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        let table = MemTable::try_new(schema, partitions).map_err(|e| Error::sink(name, e))?;
        self.ctx.register_table(name, Arc::new(table)).map_err(|e| Error::sink(name, e))?;
        Ok(())
    }
}

/// A DataFusion error as text: the parser's message unwrapped from its Debug form
/// (`SQL error: ParserError("...")`), everything else as DataFusion prints it.
pub fn error_text(e: &datafusion::error::DataFusionError) -> String {
    let text = e.to_string();
    match text.split_once("ParserError(\"") {
        Some((before, inside)) => format!("{before}{}", inside.strip_suffix("\")").unwrap_or(inside)),
        None => text,
    }
}

/// Runs a plan's twin over the context's inputs.
pub fn run_twin(twin: Twin, ctx: &RunContext) -> Result<JobOutput> {
    let sql_error = |e: &dyn std::fmt::Display| Error::Job { job: twin.sql.path, message: e.to_string() };
    let statements = DFParser::parse_sql(twin.sql.text).map_err(|e| sql_error(&e))?;
    if statements.len() < twin.outputs.len() {
        return Err(sql_error(&format!("{} statements for {} tables", statements.len(), twin.outputs.len())));
    }
    let (name, format) = &twin.input;
    let threads = rayon::current_num_threads();
    let session = Session::new(threads, ctx.memory_limit, &ctx.temp_dir)?;
    for (name, batch) in &twin.tables {
        session.register(name, batch.schema(), vec![vec![batch.clone()]])?;
    }
    for function in &twin.functions {
        session.ctx.register_udf(function.clone());
    }
    let params = ParamValues::from(twin.params.clone());
    let execute = |spec: &TableSpec, statement: Statement| {
        execute_statement(&session, &params, &twin, spec, statement, ctx.memory_limit)
    };

    let reads_input = |statement: &Statement| {
        let refs = session.ctx.state().resolve_table_references(statement);
        refs.map_or(true, |refs| refs.iter().any(|r| r.table() == *name))
    };
    let streamed = !twin.outputs.is_empty() && statements.iter().skip(1).all(|s| !reads_input(s));
    let (schema, input) = (format.schema(), Arc::new(InputStream::new(format.schema(), 2 * threads)));
    let table = StreamingTable::try_new(schema.clone(), vec![input.clone()]).map_err(|e| Error::sink(*name, e))?;
    session.ctx.register_table(*name, Arc::new(table)).map_err(|e| Error::sink(*name, e))?;
    // A stream is scanned once: a first statement that scans the input twice (a
    // UNION, a self-join, a subquery over it) has it read into memory instead.
    let streamed = streamed && statements.front().is_some_and(|first| scans(&session, &params, first) <= 1);
    let mut statements = statements.into_iter();
    let mut results = Vec::with_capacity(twin.outputs.len());
    let read = if streamed {
        ctx.progress.set_message("read + sql");
        let first = statements.next().expect("at least one statement");
        let tx = input.sender().expect("the sender is taken once");
        let (outcome, first) = std::thread::scope(|scope| {
            // Planning recurses once per term, as in the runtime's workers (deep ORs).
            let query = std::thread::Builder::new().stack_size(super::WORKER_STACK_BYTES).spawn_scoped(scope, || {
                let result = execute(twin.outputs[0], first);
                // A plan that never scanned the input must not leave the reader blocked.
                input.close();
                result
            });
            if query.is_err() {
                input.close(); // no query to feed: the read below only counts and hashes
            }
            let outcome = read::read_fold(
                &ctx.source(format),
                || (),
                |(), batch| {
                    // A query that stopped reading (done, or failed) only drops the rest:
                    // the read goes on, for the counts, the rejects and the hashes.
                    let _ = tx.blocking_send(Ok(batch));
                    Ok(())
                },
            );
            drop(tx);
            (outcome, query.map(|q| q.join()))
        });
        let (_, read) = outcome?.split();
        if read.stopped {
            // Over the bad-line budget: the run fails on it; the query saw a partial read.
            return Ok(JobOutput { tables: Vec::new(), read: read.into(), warnings: twin.warnings });
        }
        let first = first.map_err(|e| sql_error(&format!("cannot start the query thread: {e}")))?;
        results.push(first.map_err(|_| sql_error(&"the query thread panicked"))??);
        read
    } else {
        ctx.progress.set_message("read");
        let outcome = read::read_fold(&ctx.source(format), Vec::new, |batches, batch| {
            batches.push(batch);
            Ok(())
        })?;
        let (partitions, read) = outcome.split();
        if read.stopped {
            // Over the bad-line budget: the run fails on it; no query on a partial read.
            return Ok(JobOutput { tables: Vec::new(), read: read.into(), warnings: twin.warnings });
        }
        ctx.progress.set_message("sql");
        session.ctx.deregister_table(*name).map_err(|e| Error::sink(*name, e))?;
        session.register(name, schema, partitions)?;
        read
    };
    let tables = run_statements(&session, &twin, statements, results, ctx.memory_limit)?;
    Ok(JobOutput { tables, read: read.into(), warnings: twin.warnings })
}

/// Runs one statement of `twin` for the table `spec` with its parameters bound, and
/// conforms the result to the table. Errors: the SQL's, naming the file and table.
pub(super) fn execute_statement(
    session: &Session,
    params: &ParamValues,
    twin: &Twin,
    spec: &TableSpec,
    statement: Statement,
    memory_limit: Option<u64>,
) -> Result<RecordBatch> {
    let sql_error = |e: &dyn std::fmt::Display| Error::Job { job: twin.sql.path, message: e.to_string() };
    let state = session.ctx.state();
    let (schema, batches) = session
        .runtime
        .block_on(async {
            let plan = state.statement_to_plan(statement).await?.with_param_values(params.clone())?;
            let frame = session.ctx.execute_logical_plan(plan).await?;
            let schema = frame.schema().as_arrow().clone();
            Ok::<_, datafusion::error::DataFusionError>((schema, frame.collect().await?))
        })
        .map_err(|e| {
            memory_error(memory_limit, spec, &e).unwrap_or_else(|| sql_error(&format!("{}: {e}", spec.name)))
        })?;
    conform(spec, &schema, &batches).map_err(|e| sql_error(&format!("{}: {e}", spec.name)))
}

/// The twin's tables: `done` holds the results of its first statements, `statements`
/// are the rest, run in order. Each result is registered under its table's name for
/// the statements after it, and then cut to the published period's rows.
pub(super) fn run_statements(
    session: &Session,
    twin: &Twin,
    mut statements: impl Iterator<Item = Statement>,
    done: Vec<RecordBatch>,
    memory_limit: Option<u64>,
) -> Result<Vec<Table>> {
    let sql_error = |e: &dyn std::fmt::Display| Error::Job { job: twin.sql.path, message: e.to_string() };
    let params = ParamValues::from(twin.params.clone());
    let mut tables = Vec::with_capacity(twin.outputs.len());
    for (i, spec) in twin.outputs.iter().enumerate() {
        let batch = match done.get(i) {
            Some(batch) => batch.clone(),
            None => {
                let statement = statements.next().expect("a statement per output");
                execute_statement(session, &params, twin, spec, statement, memory_limit)?
            }
        };
        session.register(spec.name, batch.schema(), vec![vec![batch.clone()]])?;
        let batch = match &twin.published_rows {
            Some((column, value)) => {
                only_rows(&batch, column, value).map_err(|e| sql_error(&format!("{}: {e}", spec.name)))?
            }
            None => batch,
        };
        tables.push(Table::from_batch(spec, batch));
    }
    Ok(tables)
}

/// How many times the physical plan of `statement` scans the streamed input (the only
/// streaming table); `usize::MAX` when it cannot be planned (the error then comes from
/// running it on the input read into memory).
fn scans(session: &Session, params: &ParamValues, statement: &Statement) -> usize {
    fn count(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> usize {
        let node: &dyn std::any::Any = plan.as_ref();
        let here = usize::from(node.is::<datafusion::physical_plan::streaming::StreamingTableExec>());
        here + plan.children().into_iter().map(count).sum::<usize>()
    }
    let state = session.ctx.state();
    let planned = session.runtime.block_on(async {
        let plan = state.statement_to_plan(statement.clone()).await?.with_param_values(params.clone())?;
        state.create_physical_plan(&plan).await
    });
    planned.map_or(usize::MAX, |plan| count(&plan))
}

/// DataFusion's running out of its memory pool, as a usage error naming our setting
/// (DataFusion names its own); under a tiny pool some operators fail with an internal
/// error instead. Ballista's executors return the error as text. `None` for every
/// other error.
fn memory_error(limit: Option<u64>, spec: &TableSpec, e: &datafusion::error::DataFusionError) -> Option<Error> {
    let limit = limit?;
    let text = e.to_string();
    let exhausted = matches!(e.find_root(), datafusion::error::DataFusionError::ResourcesExhausted(_))
        || out_of_memory(&text)
        || (limit < 8 << 20 && text.contains("Internal error"));
    exhausted.then(|| {
        Error::Usage(format!(
            "{}: --memory-limit {limit} bytes is too small for DataFusion's working memory \
             (it needs several MiB per operator); raise it, or use --engine native ({e})",
            spec.name
        ))
    })
}

/// Whether an error's text says a memory pool ran out: DataFusion's own wording, or
/// the error's debug form as Ballista's executors send it back.
pub(super) fn out_of_memory(text: &str) -> bool {
    text.contains("Resources exhausted") || text.contains("ResourcesExhausted(")
}

type BatchSender = tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>;

/// The input as one partition that DataFusion scans once, fed by the reader through
/// a channel of a few batches (so the reader waits while the query is busy).
struct InputStream {
    schema: SchemaRef,
    /// Taken by the reader: the stream ends when the reader drops it.
    sender: std::sync::Mutex<Option<BatchSender>>,
    /// Taken by the scan; dropped by [`InputStream::close`] if no scan took it.
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for InputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputStream")
    }
}

impl InputStream {
    fn new(schema: SchemaRef, batches: usize) -> InputStream {
        let builder = RecordBatchReceiverStream::builder(schema.clone(), batches.max(1));
        let sender = std::sync::Mutex::new(Some(builder.tx()));
        InputStream { schema, sender, stream: std::sync::Mutex::new(Some(builder.build())) }
    }

    /// The reader's end of the channel, once.
    fn sender(&self) -> Option<BatchSender> {
        self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Drops the receiving end if no scan took it, so that sending fails instead of waiting.
    fn close(&self) {
        let stream = self.stream.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        drop(stream);
    }
}

impl PartitionStream for InputStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        taken.unwrap_or_else(|| {
            // A second scan of a stream read once: an error, not silently no rows.
            let builder = RecordBatchReceiverStream::builder(self.schema.clone(), 1);
            let error = datafusion::error::DataFusionError::Execution("the input stream was scanned twice".into());
            let _ = builder.tx().try_send(Err(error));
            builder.build()
        })
    }
}

/// The rows of `batch` whose text `column` holds `value` (all rows without such a column).
fn only_rows(batch: &RecordBatch, column: &str, value: &str) -> std::result::Result<RecordBatch, String> {
    let Some(values) = batch.column_by_name(column) else { return Ok(batch.clone()) };
    let keep = arrow::compute::kernels::cmp::eq(values, &arrow::array::StringArray::new_scalar(value))
        .map_err(|e| e.to_string())?;
    arrow::compute::filter_record_batch(batch, &keep).map_err(|e| e.to_string())
}

/// The query's result as one batch of the spec's layout: the same column names in the
/// same order, cast to the spec's types (a value that does not fit is an error, not a
/// NULL), and no NULLs.
fn conform(spec: &TableSpec, schema: &Schema, batches: &[RecordBatch]) -> std::result::Result<RecordBatch, String> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let want: Vec<&str> = spec.columns.iter().map(|c| c.0).collect();
    if names != want {
        return Err(format!("the statement returns columns {names:?}, the table has {want:?}"));
    }
    let strict = CastOptions { safe: false, ..CastOptions::default() };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(want.len());
    for (i, (name, data_type)) in spec.columns.iter().enumerate() {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        let column = match parts.as_slice() {
            [] => new_empty_array(schema.field(i).data_type()),
            parts => concat(parts).map_err(|e| e.to_string())?,
        };
        columns.push(cast_with_options(&column, data_type, &strict).map_err(|e| format!("column {name}: {e}"))?);
    }
    spec.batch(columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Int64Array, StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::table::Sort::Asc;

    static SPEC: TableSpec = TableSpec {
        name: "t",
        columns: &[("k", DataType::Utf8), ("n", DataType::Int64), ("m", DataType::Decimal128(18, 2))],
        indexes: &[],
        order: &[Asc("k")],
        notify_key: &[],
    };

    fn result(names: [&str; 3], n: Option<u64>, cents: i128) -> (Schema, Vec<RecordBatch>) {
        let schema = Schema::new(vec![
            Field::new(names[0], DataType::Utf8, true),
            Field::new(names[1], DataType::UInt64, true),
            Field::new(names[2], DataType::Decimal128(28, 2), true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(UInt64Array::from(vec![n])),
            Arc::new(Decimal128Array::from(vec![cents]).with_precision_and_scale(28, 2).unwrap()),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap();
        (schema, vec![batch])
    }

    #[test]
    fn results_are_cast_to_the_spec_or_rejected() {
        let (schema, batches) = result(["k", "n", "m"], Some(3), 1050);
        let batch = conform(&SPEC, &schema, &batches).unwrap();
        assert_eq!(batch.schema(), SPEC.schema());
        assert_eq!(batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3);

        let (schema, batches) = result(["k", "count", "m"], Some(3), 1050);
        assert!(conform(&SPEC, &schema, &batches).unwrap_err().contains("returns columns"));
        let (schema, batches) = result(["k", "n", "m"], None, 1050);
        assert!(conform(&SPEC, &schema, &batches).unwrap_err().contains("null"));
        let (schema, batches) = result(["k", "n", "m"], Some(3), 10i128.pow(20));
        assert!(conform(&SPEC, &schema, &batches).unwrap_err().contains("column m"));
        let (schema, _) = result(["k", "n", "m"], Some(3), 0);
        assert_eq!(conform(&SPEC, &schema, &[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn plans_are_inspected_for_how_often_they_scan_the_streamed_input() {
        let temp = tempfile::tempdir().unwrap();
        let session = Session::new(2, None, temp.path()).unwrap();
        let schema = Format::UrlList.schema();
        let input = Arc::new(InputStream::new(schema.clone(), 2));
        session.ctx.register_table("u", Arc::new(StreamingTable::try_new(schema, vec![input]).unwrap())).unwrap();
        let params = ParamValues::from(Vec::<(String, ScalarValue)>::new());
        let scans_of = |sql: &str| scans(&session, &params, &DFParser::parse_sql(sql).unwrap()[0]);
        assert_eq!(scans_of("SELECT url, COUNT(*) FROM u GROUP BY url"), 1);
        assert_eq!(scans_of("SELECT url FROM u UNION ALL SELECT url FROM u"), 2);
        assert_eq!(scans_of("SELECT url FROM u WHERE url IN (SELECT url FROM u WHERE url > 'm')"), 2);
        assert_eq!(scans_of("SELECT 1 AS one"), 0);
        assert_eq!(scans_of("SELECT nope FROM u"), usize::MAX, "an error is left to the run");
    }
}
