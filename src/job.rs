//! The job interface: what a job file implements, and the type-erased form the
//! registry and CLI use.
//!
//! A job declares its command-line arguments (a clap `Args` struct), validates them
//! into a [`Plan`] (`configure`), and the plan runs read -> map -> shuffle -> reduce
//! through [`crate::engine`] and returns its result [`Table`]s. Jobs never see where
//! the tables go; the runner publishes them.

use std::path::PathBuf;

use clap::{ArgMatches, Command, FromArgMatches};

use crate::engine::ReadSummary;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::read::input::InputFile;
use crate::table::Table;

/// What `mrpipe jobs` and `--help` say about a job.
pub struct JobInfo {
    /// The name typed on the command line (`sales-rank`).
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
    /// The input format, one line.
    pub input: &'static str,
    /// The output tables.
    pub outputs: &'static [&'static str],
    /// Example command lines shown by `--help`.
    pub example: &'static str,
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

/// The slice of results a plan publishes as its own unit: one month of a monthly job,
/// or one ranking instant of a sales-rank backfill. Each period has its own output
/// files and manifest; SQL sinks replace only the rows whose `column` holds `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// Used in file names (`2026-11`, `20261123T000000Z`).
    pub label: String,
    /// The column that holds the period in the output rows, if they carry it (`month`).
    pub column: Option<&'static str>,
    /// The value of that column for this period.
    pub value: String,
}

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
}

/// A [`Job`] with its argument type erased, as the registry holds it.
pub trait AnyJob: Sync {
    /// Name, description and example.
    fn info(&self) -> &'static JobInfo;
    /// Adds the job's arguments to its subcommand.
    fn augment(&self, cmd: Command) -> Command;
    /// Reads the job's arguments back and configures it.
    fn configure_from(&self, matches: &ArgMatches) -> Result<Vec<Box<dyn Plan>>>;
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
