//! The job interface: what a job file implements, and the type-erased form the
//! registry and CLI use.
//!
//! A job declares its command-line arguments (a clap `Args` struct), validates them
//! into a [`Plan`] (`configure`), and the plan runs read -> map -> shuffle -> reduce
//! through [`crate::engine::native`] and returns its result [`Table`]s, or hands its
//! SQL twin ([`Twin`]) to [`crate::engine::datafusion`]. Jobs never see where the
//! tables go; the runner publishes them.
//!
//! [`sql_file`] reads the form of a job written as one SQL file (a `-- key: value`
//! declaration header, then one statement per output; `shared/spec/sql-jobs.md`).

pub mod spec;
pub mod sql_file;
pub mod sql_job;

use std::path::PathBuf;

use clap::{ArgMatches, Command};

pub use crate::engine::datafusion::{SqlFile, Twin};
pub use crate::engine::{JobOutput, RunContext};
use crate::error::Result;
use crate::read::format::Format;
use crate::table::TableSpec;
use spec::{ParamSpec, Values};

/// The options every job takes (`mrpipe run JOB --output ...`): no job parameter may
/// take one of these names. `cli` checks that the list is complete.
pub const COMMON_OPTIONS: &[&str] = &[
    "inputs",
    "output",
    "engine",
    "cluster",
    "threads",
    "rejects",
    "max-bad-lines",
    "strict",
    "quiet",
    "verbose",
    "log-format",
    "skip-unchanged",
    "dry-run",
    "notify",
    "config",
    "wait",
    "jobs-dir",
    "memory-limit",
    "metrics-file",
    "max-line-bytes",
    "help",
    "version",
];

/// What `mrpipe jobs` and `--help` say about a job.
pub struct JobInfo {
    /// The name typed on the command line (`sales-rank`).
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
    /// The input format, one line.
    pub input: &'static str,
    /// The job's own options, declared once: its command line, its manifest record and
    /// its SQL twin's parameters come from them.
    pub params: &'static [ParamSpec],
    /// The output tables.
    pub outputs: &'static [&'static TableSpec],
    /// Example command lines shown by `--help`.
    pub example: &'static str,
    /// A run on this repository's sample data: the input (`sample_data/sales`), then
    /// any options it needs to publish rows; for the tests that go over every job.
    /// Empty for a SQL job.
    pub sample: &'static [&'static str],
}

impl JobInfo {
    /// The output tables' names.
    pub fn output_names(&self) -> Vec<&'static str> {
        self.outputs.iter().map(|t| t.name).collect()
    }
}

/// A job: its declaration, and how its option values become runnable plans.
pub trait Job: Sync {
    /// Name, description, options, outputs and example.
    fn info(&self) -> &'static JobInfo;

    /// Validates the option values into runnable plans, one per period (one plan when
    /// the run is not split into periods); a bad value is `Error::Usage`.
    fn configure(&self, values: &Values) -> Result<Vec<Box<dyn Plan>>>;

    /// The file the job was loaded from, for a job written as SQL.
    fn source(&self) -> Option<&std::path::Path> {
        None
    }

    /// Adds the job's options to its subcommand.
    fn augment(&self, cmd: Command) -> Command {
        spec::augment(cmd, self.info().params)
    }

    /// Configures the job from what clap parsed.
    fn configure_from(&self, matches: &ArgMatches) -> Result<Vec<Box<dyn Plan>>> {
        self.configure(&Values::from_matches(self.info().params, matches)?)
    }

    /// Configures the job from the values a manifest recorded ([`Plan::values`] as
    /// JSON); values that no longer fit the job's options are a usage error.
    fn configure_from_json(&self, json: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<Box<dyn Plan>>> {
        self.configure(&Values::from_json(self.info().params, json)?)
    }
}

pub use crate::table::Period;

/// A configured job, ready to run.
pub trait Plan: Send + Sync + std::any::Any {
    /// Runs the job over the context's inputs.
    fn run(&self, ctx: &RunContext) -> Result<JobOutput>;

    /// Runs this plan and `rest` (the later periods of the same backfill, from the same
    /// [`Job::configure`]) with the native engine over one read of the inputs, in
    /// memory: one output per plan, this one's first. `None` when the job cannot share
    /// a read; the runner then runs each plan on its own read.
    fn run_with(&self, rest: &[&dyn Plan], ctx: &RunContext) -> Option<Result<Vec<JobOutput>>> {
        let _ = (rest, ctx);
        None
    }

    /// The plan's effective option values, every default and relative value resolved
    /// (`--as-of now` is an instant, a backfill's month is `--month`): what a manifest
    /// records and `mrpipe verify` configures the job from again.
    fn values(&self) -> &Values;

    /// The period this plan publishes, if the run is split into periods.
    fn period(&self) -> Option<Period> {
        None
    }

    /// Side files read besides the inputs (seller maps, incomes...), recorded in the manifest.
    fn side_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The same computation as SQL, for `--engine datafusion`; it must give the same rows.
    fn twin(&self) -> Result<Twin>;
}

/// `first` and `rest` as plans of `first`'s type (the periods of one backfill), for a
/// [`Plan::run_with`]; `None` if any is of another type.
pub fn same_kind<'a, P: Plan>(first: &'a P, rest: &[&'a dyn Plan]) -> Option<Vec<&'a P>> {
    std::iter::once(Some(first)).chain(rest.iter().map(|p| (*p as &dyn std::any::Any).downcast_ref::<P>())).collect()
}

// `Twin` and `SqlFile` are the DataFusion engine's input types; a job builds its
// twin from its declaration with this constructor, which is why it lives here.
impl Twin {
    /// A twin reading its input as `input` into `outputs`, its `$name` parameters the
    /// plan's option values (`--as-of` is `$as_of`; a NULL for an option not given).
    pub fn new(
        sql: &'static SqlFile,
        input: (&'static str, Format),
        outputs: Vec<&'static TableSpec>,
        job: &JobInfo,
        values: &Values,
    ) -> Twin {
        Twin {
            sql,
            input,
            params: values.sql_params(job.params),
            tables: Vec::new(),
            functions: Vec::new(),
            outputs,
            warnings: Vec::new(),
            published_rows: None,
        }
    }
}
