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

pub mod sql_file;
pub mod sql_job;

use std::path::PathBuf;

use arrow::array::RecordBatch;
use clap::{ArgMatches, Command, FromArgMatches};
use datafusion::logical_expr::ScalarUDF;
use datafusion::scalar::ScalarValue;

use crate::engine::ReadSummary;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::format::Format;
use crate::read::input::InputFile;
use crate::table::{Table, TableSpec};

/// The options every job takes (`mrpipe run JOB --output ...`): no job parameter may
/// take one of these names. `cli` checks that the list is complete.
pub const COMMON_OPTIONS: &[&str] = &[
    "inputs",
    "output",
    "engine",
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
    /// The output tables.
    pub outputs: &'static [&'static TableSpec],
    /// Example command lines shown by `--help`.
    pub example: &'static str,
}

impl JobInfo {
    /// The output tables' names.
    pub fn output_names(&self) -> Vec<&'static str> {
        self.outputs.iter().map(|t| t.name).collect()
    }
}

/// Everything a plan needs to run, decided once from the command line.
pub struct RunContext {
    /// Inputs in sorted path order.
    pub inputs: Vec<InputFile>,
    /// Progress display shared by all stages.
    pub progress: Progress,
    /// Where spill files may go.
    pub temp_dir: PathBuf,
}

/// What a plan produced.
pub struct JobOutput {
    /// Result tables in publication order.
    pub tables: Vec<Table>,
    /// Line counts and bad lines.
    pub read: ReadSummary,
    /// Problems that did not fail the run (e.g. skipped side-file rows), one line each.
    pub warnings: Vec<String>,
}

/// A job as its file implements it.
pub trait Job: Sync {
    /// The job's own command-line arguments.
    type Args: clap::Args;

    /// Name, description and example.
    fn info(&self) -> &'static JobInfo;

    /// Validates the arguments into runnable plans, one per period (one plan when the
    /// run is not split into periods); a bad value is `Error::Usage`.
    fn configure(&self, args: Self::Args) -> Result<Vec<Box<dyn Plan>>>;
}

pub use crate::table::Period;

/// A configured job, ready to run.
pub trait Plan: Send + Sync {
    /// Runs the job over the context's inputs.
    fn run(&self, ctx: &RunContext) -> Result<JobOutput>;

    /// The effective job arguments as command-line words, with every default and relative
    /// value resolved (`--as-of now` becomes an instant): what a manifest records and
    /// `mrpipe verify` replays.
    fn args(&self) -> Vec<String>;

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

/// A job's SQL file, `jobs/<job>.sql`: one statement per output table, in output
/// order. Parameters are `$name` placeholders, bound to typed values, never spliced
/// into the text.
pub struct SqlFile {
    /// Where it lives in the source tree, for error messages.
    pub path: &'static str,
    /// The statements.
    pub text: &'static str,
}

/// A plan as SQL: what [`crate::engine::datafusion`] needs to run it.
pub struct Twin {
    /// The statements.
    pub sql: &'static SqlFile,
    /// The name the inputs have in the SQL, and how they are read.
    pub input: (&'static str, Format),
    /// Values of the `$name` placeholders (a NULL for an option not given).
    pub params: Vec<(&'static str, ScalarValue)>,
    /// Side tables the SQL joins with, already read (skipped rows are in `warnings`).
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// Functions the SQL calls besides DataFusion's own.
    pub functions: Vec<ScalarUDF>,
    /// The tables the first statements produce; each is also readable by later ones.
    pub outputs: Vec<&'static TableSpec>,
    /// Problems met while preparing the side tables.
    pub warnings: Vec<String>,
    /// Memory bound for the query's operators, which spill to disk beyond it.
    pub memory_limit: Option<u64>,
}

/// A [`Job`] with its argument type erased, as the registry holds it.
pub trait AnyJob: Sync {
    /// Name, description and example.
    fn info(&self) -> &'static JobInfo;
    /// Adds the job's arguments to its subcommand.
    fn augment(&self, cmd: Command) -> Command;
    /// Reads the job's arguments back and configures it.
    fn configure_from(&self, matches: &ArgMatches) -> Result<Vec<Box<dyn Plan>>>;

    /// The file the job was loaded from, for a job written as SQL.
    fn source(&self) -> Option<&std::path::Path> {
        None
    }

    /// Configures the job from its own arguments as words, as a manifest records them
    /// ([`Plan::args`]); words that no longer parse are a usage error.
    fn configure_from_words(&self, words: &[String]) -> Result<Vec<Box<dyn Plan>>> {
        let name = self.info().name;
        let matches = self
            .augment(Command::new(name).no_binary_name(true))
            .try_get_matches_from(words)
            .map_err(|e| Error::Usage(format!("the recorded arguments of {name} no longer parse: {e}")))?;
        self.configure_from(&matches)
    }
}

impl<J: Job> AnyJob for J {
    fn info(&self) -> &'static JobInfo {
        Job::info(self)
    }

    fn augment(&self, cmd: Command) -> Command {
        <J::Args as clap::Args>::augment_args(cmd)
    }

    fn configure_from(&self, matches: &ArgMatches) -> Result<Vec<Box<dyn Plan>>> {
        let args = J::Args::from_arg_matches(matches).map_err(|e| Error::Usage(e.to_string()))?;
        self.configure(args)
    }
}
