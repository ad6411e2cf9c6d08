//! Engines run a job's plan over the inputs. Both read through mrpipe's own reader
//! (same typed batches, same bad-line rules) and give the same rows:
//!
//! - [`native`]: the job's [`crate::map::MapReduce`] on rayon (map, shuffle, reduce,
//!   finish), each output table then [`sort`]ed by its declared order;
//! - [`datafusion`]: the job's SQL twin (`jobs/<job>.sql`) run by Apache DataFusion;
//! - [`ballista`]: the same twin run by Apache DataFusion Ballista, on a cluster of
//!   [`cluster`] processes (or one in this process), the logs read on its executors
//!   by [`log_scan`], plans carried to them by [`codec`].

pub mod ballista;
pub mod cluster;
pub mod codec;
pub mod datafusion;
pub mod log_scan;
pub mod native;
pub mod sort;

use std::path::PathBuf;
use std::sync::Arc;

use crate::progress::Progress;
use crate::read::format::Format;
use crate::read::input::InputFile;
use crate::read::{ReadLimits, ReadSummary, Source};
use crate::table::Table;

/// Stack of every worker thread (rayon's and DataFusion's): planning and evaluating a
/// SQL expression recurses once per term, and a few hundred `OR`s must not overflow.
pub const WORKER_STACK_BYTES: usize = 64 << 20;

/// Which engine runs a job (`--engine`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// mrpipe's own map/reduce on rayon.
    #[default]
    Native,
    /// The job's SQL twin, run by Apache DataFusion on the same parsed input.
    Datafusion,
    /// The job's SQL twin, run by Apache DataFusion Ballista, the logs read on its executors.
    Ballista,
}

impl Engine {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Datafusion => "datafusion",
            Engine::Ballista => "ballista",
        }
    }
}

/// Everything an engine needs to run a plan, decided once from the command line.
pub struct RunContext {
    /// Inputs in sorted path order.
    pub inputs: Vec<InputFile>,
    /// Progress display shared by all stages.
    pub progress: Progress,
    /// Where spill files may go.
    pub temp_dir: PathBuf,
    /// Memory bound (bytes) of the engine's groups and sorts, which spill to
    /// `temp_dir` beyond it (`--memory-limit`); no bound when `None`.
    pub memory_limit: Option<u64>,
    /// Line length and bad-line bounds of the read.
    pub read: ReadLimits,
    /// The Ballista cluster's scheduler (`--cluster df://HOST:PORT`); `None` runs one in-process.
    pub cluster: Option<String>,
}

impl RunContext {
    /// The read of the inputs as `format`, under this context's bounds.
    pub fn source<'a>(&'a self, format: &'a Format) -> Source<'a> {
        Source {
            inputs: &self.inputs,
            format,
            progress: &self.progress,
            limits: &self.read,
            scratch: &self.temp_dir,
            columns: None,
        }
    }
}

/// What a plan produced.
pub struct JobOutput {
    /// Result tables in publication order.
    pub tables: Vec<Table>,
    /// Line counts and bad lines; the periods of one backfill read once share it.
    pub read: Arc<ReadSummary>,
    /// Problems that did not fail the run (e.g. skipped side-file rows), one line each.
    pub warnings: Vec<String>,
}

impl JobOutput {
    /// The outputs of several periods computed over one read: each period's tables,
    /// in order, sharing `read`. The warnings (of side files read once for all) go with
    /// the first period only, so they are logged once.
    pub fn shared(periods: Vec<Vec<Table>>, read: ReadSummary, warnings: Vec<String>) -> Vec<JobOutput> {
        let read = Arc::new(read);
        let mut warnings = Some(warnings);
        periods
            .into_iter()
            .map(|tables| JobOutput { tables, read: read.clone(), warnings: warnings.take().unwrap_or_default() })
            .collect()
    }
}
