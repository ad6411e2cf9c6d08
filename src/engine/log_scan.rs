//! mrpipe's log reader as a DataFusion table ([`LogTable`]) whose scan (a file
//! scan of a [`LogSource`]) reads, checks and decodes the logs where it runs: on
//! Ballista's executors, not in the client. Both are plain data ([`ScanSpec`]) that
//! Ballista's codecs carry as bytes ([`ScanSpec::encode`]).
//!
//! The client plans the read ([`read::plan_read`]) and cuts it into parts, one per scan
//! partition. A partition reads its part with the same decoder, bad-line rules and
//! block hashes as a local read, streams the batches, and before its stream ends
//! writes its [`PartReport`] to the run's report directory; the client merges the
//! reports into the run's counts, rejects and input hashes ([`ScanSpec::finish`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{
    FileGroup, FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::bad::Spool;
use crate::read::format::Format;
use crate::read::input::{Encoding, InputFile, path_text, text_path};
use crate::read::part::{self, PartReport};
use crate::read::{self, ReadLimits, ReadPlan, ReadSummary, Source, Unit};

/// Everything a scan of the logs needs, planned by the client: what the codecs carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanSpec {
    /// mrpipe's version where the spec was made: a node of another version refuses it.
    pub version: String,
    /// The input format, by its `--as` name.
    pub format: String,
    /// The inputs as [`path_text`], in input order, and how each is read.
    pub inputs: Vec<(String, Encoding)>,
    /// The planned read.
    pub plan: ReadPlan,
    /// The units each scan partition reads.
    pub parts: Vec<Vec<Unit>>,
    /// `--max-line-bytes`.
    pub max_line_bytes: usize,
    /// The bad-line count budget, if any: a partition stops reading past it, too.
    pub stop_after_bad: Option<u64>,
    /// The directory the partitions write their reports to ([`path_text`]): shared
    /// by the client and every executor.
    pub reports: String,
}

/// This build's version, which every node of a cluster must run.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// First bytes of an encoded spec: tells mrpipe's payloads from Ballista's own.
const MAGIC: &[u8] = b"mrpipe-scan\0";

impl ScanSpec {
    /// A scan of `inputs` as `format` in `partitions` parts, its reports going to
    /// `reports`. Errors: an input cannot be opened or measured.
    pub fn plan(
        inputs: &[InputFile],
        format: &str,
        limits: &ReadLimits,
        partitions: usize,
        reports: &Path,
    ) -> Result<ScanSpec> {
        let plan = read::plan_read(inputs, partitions)?;
        let parts = part::split(&plan.units, partitions, plan.block);
        Ok(ScanSpec {
            version: VERSION.to_string(),
            format: format.to_string(),
            // Absolute: executors resolve a relative path against their own directory.
            inputs: inputs
                .iter()
                .map(|f| (path_text(&std::path::absolute(&f.path).unwrap_or_else(|_| f.path.clone())), f.encoding))
                .collect(),
            plan,
            parts,
            max_line_bytes: limits.max_line_bytes,
            stop_after_bad: limits.stop_after_bad,
            reports: path_text(&std::path::absolute(reports).unwrap_or_else(|_| reports.to_path_buf())),
        })
    }

    /// The spec as bytes for a codec.
    pub fn encode(&self, buf: &mut Vec<u8>) -> DfResult<()> {
        buf.extend_from_slice(MAGIC);
        serde_json::to_writer(buf, self).map_err(|e| DataFusionError::Internal(format!("mrpipe scan: {e}")))
    }

    /// The spec in `buf`, `None` when it holds something else. Errors: a spec made by
    /// another version of mrpipe, or damaged.
    pub fn decode(buf: &[u8]) -> Option<DfResult<ScanSpec>> {
        let json = buf.strip_prefix(MAGIC)?;
        Some(match serde_json::from_slice::<ScanSpec>(json) {
            Ok(spec) if spec.version == VERSION => Ok(spec),
            Ok(spec) => Err(DataFusionError::Plan(format!(
                "this node runs mrpipe {VERSION} and the client mrpipe {}: run the same mrpipe on every node",
                spec.version
            ))),
            // A spec of another version may not even parse: say so rather than how.
            Err(e) => Err(DataFusionError::Plan(format!(
                "this node (mrpipe {VERSION}) cannot read the client's scan ({e}): run the same mrpipe on every node"
            ))),
        })
    }

    fn format(&self) -> DfResult<Format> {
        Format::by_name(&self.format).ok_or_else(|| DataFusionError::Plan(format!("unknown format '{}'", self.format)))
    }

    fn input_files(&self) -> Vec<InputFile> {
        self.inputs.iter().map(|(path, encoding)| InputFile { path: text_path(path), encoding: *encoding }).collect()
    }

    fn limits(&self) -> ReadLimits {
        ReadLimits { max_line_bytes: self.max_line_bytes, stop_after_bad: self.stop_after_bad }
    }

    /// Where partition `k` writes its report.
    fn report_path(&self, k: usize) -> PathBuf {
        text_path(&self.reports).join(format!("part-{k}"))
    }

    /// Reads part `k` here, `on_batch` taking each batch of `columns`, and writes its
    /// report. `scratch` takes the part's bad lines beyond memory.
    fn read_part(
        &self,
        k: usize,
        columns: Option<&[&str]>,
        scratch: &Path,
        on_batch: impl Fn(arrow::array::RecordBatch) + Sync + Send,
    ) -> Result<()> {
        let format = self.format().map_err(|e| Error::Job { job: "scan", message: e.to_string() })?;
        let inputs = self.input_files();
        let limits = self.limits();
        let progress = Progress::hidden();
        let source =
            Source { inputs: &inputs, format: &format, progress: &progress, limits: &limits, scratch, columns };
        let spool = Arc::new(Spool::new(scratch, limits.stop_after_bad));
        let units = self.parts.get(k).map(Vec::as_slice).unwrap_or_default();
        // One thread: the executor runs as many partitions at once as it has task slots.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| Error::Job { job: "scan", message: e.to_string() })?;
        let (_, report) = pool.install(|| {
            read::read_units(
                &source,
                units,
                &spool,
                || (),
                |(), batch| {
                    on_batch(batch);
                    Ok(())
                },
            )
        })?;
        report.write(&spool, &self.report_path(k)).map_err(|e| {
            Error::Cluster(format!(
                "part {k}: cannot write its read report ({e}); the reports directory {} must be at the same path, \
                 writable, on the client and every executor",
                text_path(&self.reports).display()
            ))
        })
    }

    /// The whole read's summary from the partitions' reports. A part whose report is
    /// missing (a plan that needed none of its rows) is read here for it when
    /// `read_missing`; otherwise there is no summary (`None`). Errors: a report or
    /// input cannot be read.
    pub fn finish(&self, scratch: &Path, read_missing: bool) -> Result<Option<ReadSummary>> {
        let inputs = self.input_files();
        let spool = Arc::new(Spool::new(scratch, self.stop_after_bad));
        let mut reports = Vec::with_capacity(self.parts.len());
        for k in 0..self.parts.len() {
            let path = self.report_path(k);
            if !path.exists() {
                if !read_missing {
                    return Ok(None);
                }
                self.read_part(k, None, scratch, |_| ())?;
            }
            reports.push(PartReport::load(&path, &spool)?);
        }
        let (stats, bad_lines, digests, stopped) = read::finish_read(&self.plan, &inputs, spool, reports)?;
        Ok(Some(ReadSummary { stats, bad_lines, digests, stopped }))
    }
}

/// The logs as a table: a scan of them is a [`LogSource`] file scan (plus a projection).
#[derive(Debug)]
pub struct LogTable {
    /// The planned scan.
    pub spec: Arc<ScanSpec>,
    schema: SchemaRef,
}

impl LogTable {
    /// The table of `spec`'s inputs. Errors: an unknown format.
    pub fn new(spec: ScanSpec) -> DfResult<LogTable> {
        let schema = spec.format()?.schema();
        Ok(LogTable { spec: Arc::new(spec), schema })
    }
}

#[async_trait::async_trait]
impl TableProvider for LogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let parts: Vec<usize> = (0..self.spec.parts.len().max(1)).collect();
        // The reader builds only the projected columns (checking every field all the
        // same), in the format's order; a projection in another order is put back in
        // its own by a projection of column references.
        let mut read: Option<Vec<usize>> = projection.cloned();
        if let Some(columns) = read.as_mut() {
            columns.sort_unstable();
            columns.dedup();
        }
        let scan = LogSource::scan(self.spec.clone(), &parts, read.clone())?;
        let (Some(wanted), Some(read)) = (projection, read) else { return Ok(scan) };
        if *wanted == read {
            return Ok(scan);
        }
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = wanted
            .iter()
            .map(|i| {
                let at = read.iter().position(|r| r == i).unwrap_or_default();
                let name = self.schema.field(*i).name().clone();
                (Arc::new(Column::new(&name, at)) as Arc<dyn PhysicalExpr>, name)
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// The name of part `k` as a "file" of the scan.
fn part_file(k: usize) -> String {
    format!("mrpipe-part-{k}")
}

/// The part a scan "file" stands for.
fn file_part(file: &PartitionedFile) -> DfResult<usize> {
    let name = file.object_meta.location.as_ref();
    name.strip_prefix("mrpipe-part-")
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| DataFusionError::Internal(format!("'{name}' is not a part of an mrpipe scan")))
}

/// mrpipe's log reader as a DataFusion file source: the "files" of its scan are the
/// parts of the planned read (`mrpipe-part-K`), one file group each. A scan is then a
/// plain `DataSourceExec`, which Ballista knows how to give each task only its own
/// partitions of (a scan node of its own would be read whole by every task).
#[derive(Clone)]
pub struct LogSource {
    /// The planned scan.
    pub spec: Arc<ScanSpec>,
    /// The columns read (indexes into the format's, ascending); all when `None`.
    pub columns: Option<Vec<usize>>,
    table_schema: TableSchema,
    metrics: ExecutionPlanMetricsSet,
}

/// What a codec carries of a scan besides its spec.
#[derive(Serialize, Deserialize)]
struct ScanTask {
    /// The parts this scan (one task's, once Ballista restricted it) reads.
    parts: Vec<usize>,
    /// See [`LogSource::columns`].
    columns: Option<Vec<usize>>,
}

impl LogSource {
    /// A scan of `parts` of `spec`'s read, one partition each, of the `columns` (indexes
    /// into the format's, ascending; all when `None`). Errors: an unknown format, a
    /// column out of range.
    pub fn scan(spec: Arc<ScanSpec>, parts: &[usize], columns: Option<Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = spec.format()?.schema();
        let schema = match &columns {
            Some(columns) => Arc::new(schema.project(columns)?),
            None => schema,
        };
        let table_schema = TableSchema::from(schema);
        let source = Arc::new(LogSource { spec, columns, table_schema, metrics: ExecutionPlanMetricsSet::new() });
        let groups: Vec<FileGroup> =
            parts.iter().map(|&k| FileGroup::new(vec![PartitionedFile::new(part_file(k), 0)])).collect();
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source).with_file_groups(groups).build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// The source of `plan` and the parts it reads, if `plan` is a scan of one.
    pub fn of_plan(plan: &dyn ExecutionPlan) -> Option<(&LogSource, Vec<usize>)> {
        let exec = plan.downcast_ref::<DataSourceExec>()?;
        let source: &dyn std::any::Any = exec.data_source().as_ref();
        let config = source.downcast_ref::<FileScanConfig>()?;
        let log = config.file_source().downcast_ref::<LogSource>()?;
        let parts = config.file_groups.iter().flat_map(|g| g.files().iter().map(file_part)).collect::<DfResult<_>>();
        Some((log, parts.ok()?))
    }

    /// The scan of `parts` as bytes for a codec: what they are, then the spec.
    pub fn encode(&self, parts: Vec<usize>, buf: &mut Vec<u8>) -> DfResult<()> {
        let task = ScanTask { parts, columns: self.columns.clone() };
        serde_json::to_writer(&mut *buf, &task).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        buf.push(b'\n');
        self.spec.encode(buf)
    }

    /// The scan in `buf`, `None` when it holds something else.
    pub fn decode(buf: &[u8]) -> Option<DfResult<Arc<dyn ExecutionPlan>>> {
        let newline = memchr::memchr(b'\n', buf)?;
        let (task, spec) = (&buf[..newline], &buf[newline + 1..]);
        let spec = match ScanSpec::decode(spec)? {
            Ok(spec) => spec,
            Err(e) => return Some(Err(e)),
        };
        Some(
            serde_json::from_slice::<ScanTask>(task)
                .map_err(|e| DataFusionError::Internal(format!("mrpipe scan task: {e}")))
                .and_then(|task| LogSource::scan(Arc::new(spec), &task.parts, task.columns)),
        )
    }
}

impl FileSource for LogSource {
    fn create_file_opener(
        &self,
        _store: Arc<dyn ObjectStore>,
        _config: &FileScanConfig,
        _partition: usize,
    ) -> DfResult<Arc<dyn FileOpener>> {
        let names = match &self.columns {
            Some(columns) => {
                let all = self.spec.format()?.columns();
                Some(columns.iter().map(|&i| all[i].name).collect())
            }
            None => None,
        };
        Ok(Arc::new(LogOpener { spec: self.spec.clone(), columns: names }))
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, _batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(self.clone()) // batches are the decoder's own size
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "mrpipe-log"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue) // no filter or projection of its own
    }

    fn fmt_extra(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, ", format={}, inputs={}", self.spec.format, self.spec.inputs.len())
    }
}

/// Reads one part (a "file" of the scan) where the scan runs, and writes its report.
struct LogOpener {
    spec: Arc<ScanSpec>,
    /// The columns built into the batches (all when `None`).
    columns: Option<Vec<&'static str>>,
}

impl FileOpener for LogOpener {
    fn open(&self, file: PartitionedFile) -> DfResult<FileOpenFuture> {
        let part = file_part(&file)?;
        let (spec, columns) = (self.spec.clone(), self.columns.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        tokio::task::spawn_blocking(move || {
            // An executor dying as it starts reading, for the test of Ballista's retries.
            crate::failpoint::failpoint("scan-part");
            let scratch = std::env::temp_dir();
            // A consumer that stopped (a LIMIT met, a failed task) only drops the rest:
            // the part is read to its end all the same, for its report.
            let send = |batch| {
                let _ = tx.blocking_send(Ok(batch));
            };
            if let Err(e) = spec.read_part(part, columns.as_deref(), &scratch, send) {
                let _ = tx.blocking_send(Err(DataFusionError::Execution(e.to_string())));
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Box::pin(async move { Ok(futures::StreamExt::boxed(stream)) }))
    }
}
