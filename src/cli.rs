//! The command line: clap definitions, and their resolution into validated options
//! ([`RunOptions`]) that the rest of the program uses. Nothing past this module sees
//! clap types, except each job reading back its own `Args` struct.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, value_parser};
use clap_complete::Shell;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::jobs::{self, Catalog};
use crate::log::{EventLog, LogFormat};
use crate::notify::NotifyTarget;
use crate::params;
use crate::quarantine::BadLineBudget;
use crate::run::RunOptions;
use crate::sink;
use crate::verify::Request;

/// Options every job takes.
#[derive(clap::Args, Debug)]
struct CommonArgs {
    /// Input files, directories (their regular files, sorted), glob patterns, or - for
    /// stdin. Files ending in .gz or .zst are decompressed.
    #[arg(help_heading = "Input", required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Where results go: DIR (Parquet files DIR/<table>.parquet), FILE.parquet, sqlite:PATH,
    /// postgres://USER@HOST:PORT/DB[?schema=S], mysql://USER@HOST:PORT/DB (or mariadb://),
    /// tsv:FILE, tsv:DIR/, csv:FILE, csv:DIR/, csv:- (RFC 4180), or - (TSV on stdout; TAB, LF, CR
    /// and \ escaped as \t \n \r \\, NULL as \N).
    #[arg(help_heading = "Output", short, long, default_value = "out", value_name = "SINK")]
    output: String,
    /// Engine: native (map/reduce on rayon), datafusion (the job's SQL twin, jobs/<job>.sql, on
    /// the same parsed input) or ballista (the twin on Apache DataFusion Ballista, the logs read on
    /// its executors). All give the same rows.
    #[arg(help_heading = "Engine", long, value_enum, default_value = "native", value_name = "ENGINE")]
    engine: Engine,
    /// With --engine ballista: the cluster's scheduler (`mrpipe scheduler`) as df://HOST:PORT;
    /// inputs and the output must be at the same absolute paths on every node. Without it, a
    /// cluster runs in this process.
    #[arg(help_heading = "Engine", long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(help_heading = "Engine", short = 'j', long, value_name = "N", value_parser = value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Bound the memory of the engine's counting tables and sorts (e.g. 512MiB, 2GiB);
    /// beyond it they spill to a hidden directory beside the output. Results do not depend on it.
    #[arg(help_heading = "Engine", long, value_name = "SIZE", value_parser = params::parse_byte_size)]
    memory_limit: Option<u64>,
    /// A line longer than this (e.g. 1MiB) is a bad line, its first 1 KiB kept in the rejects
    /// file and the rest read past without being held in memory.
    #[arg(help_heading = "Input", long, value_name = "SIZE", default_value = "64MiB", value_parser = params::parse_byte_size)]
    max_line_bytes: u64,
    /// Rejects file for bad lines (default: DIR/_<job>.rejects.tsv, PATH.<job>.rejects.tsv beside
    /// a file or SQLite database, ./mrpipe-<job>.rejects.tsv for stdout and database servers;
    /// <job>-<period> for one period).
    #[arg(help_heading = "Input", long, value_name = "PATH")]
    rejects: Option<PathBuf>,
    /// Fail (exit 3, nothing published) when bad lines exceed N, P% or a fraction like 0.001.
    #[arg(help_heading = "Input", long, value_name = "N|P%", value_parser = BadLineBudget::parse, conflicts_with = "strict")]
    max_bad_lines: Option<BadLineBudget>,
    /// Fail on the first bad line (same as --max-bad-lines 0).
    #[arg(long, help_heading = "Input")]
    strict: bool,
    /// Print nothing on success (warnings and errors are still printed).
    #[arg(help_heading = "Cron", short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print the summary even when stderr is not a terminal (cron runs are quiet otherwise).
    #[arg(help_heading = "Cron", short, long)]
    verbose: bool,
    /// Log format on stderr: text, or json (one object per event, for log collectors).
    #[arg(help_heading = "Cron", long, value_enum, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
    /// Skip a period whose last manifest shows the same inputs (by hash), parameters and outputs.
    #[arg(long, help_heading = "Cron")]
    skip_unchanged: bool,
    /// Print the inputs that would be read and the outputs each period would write; touch nothing.
    #[arg(long, help_heading = "Cron")]
    dry_run: bool,
    /// Write each budget alert that is new in this run as a JSON line to PATH (appended)
    /// or - (stdout), before the publish commits: at least once, never lost; a repeated
    /// run notifies nothing.
    #[arg(help_heading = "Output", long, value_name = "PATH|-")]
    notify: Option<String>,
    /// Config file with per-job defaults (default: $MRPIPE_CONFIG, then ./mrpipe.toml).
    #[arg(help_heading = "Cron", long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// When another run of this job to this output holds the lock, wait up to this long (e.g. 10m, 1h30m) instead of exiting 4.
    #[arg(help_heading = "Cron", long, value_name = "LEN", value_parser = params::parse_window)]
    wait: Option<i64>,
    /// After the run, failed or not, replace PATH with Prometheus text-format metrics (exit code,
    /// duration, last success, lines, rows per table) for node_exporter's textfile collector
    /// (name it *.prom; one file per job and output).
    #[arg(help_heading = "Cron", long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 runtime failure, 2 usage error, \
3 bad-line budget exceeded (nothing published), 4 another run holds the lock, 5 no input matched.";

/// The whole command tree, with the built-in jobs and the SQL jobs in `extra`.
pub fn command(extra: &[&'static dyn Job]) -> Command {
    let sql_jobs = extra.iter().copied().filter(|j| jobs::find(j.info().name).is_none());
    let job_commands = jobs::ALL.iter().copied().chain(sql_jobs).map(|job| {
        let info = job.info();
        let help = format!(
            "Input: {}\nOutputs: {}\n\nExamples:\n{}\n\n{EXIT_CODES}",
            info.input,
            info.output_names().join(", "),
            info.example
        );
        // About and help go last: augmenting with an Args struct replaces them with its doc comment.
        let cmd = CommonArgs::augment_args(job.augment(Command::new(info.name)))
            .about(info.about)
            .long_about(None)
            .after_help(help);
        // --notify is for jobs that write alerts: hidden elsewhere (and refused there).
        let alerts = info.outputs.iter().any(|t| !t.notify_key.is_empty());
        let cmd = if alerts { cmd } else { cmd.mut_arg("notify", |a| a.hide(true)) };
        // A SQL job is its statements: its help says the engine it runs on.
        match job.source() {
            Some(_) => cmd.mut_arg("engine", |a| {
                a.default_value("datafusion")
                    .help("Engine: a SQL job runs on datafusion (Apache DataFusion) or ballista (DataFusion Ballista)")
            }),
            None => cmd,
        }
    });
    Command::new("mrpipe")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Fast, reproducible map/reduce jobs over tab-delimited logs, to Parquet, SQLite or TSV")
        .after_help(format!(
            "Run `mrpipe jobs` for the built-in jobs, `mrpipe run <JOB> --help` for a job's options.\n\n{EXIT_CODES}"
        ))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("jobs-dir")
                .long("jobs-dir")
                .value_name("DIR")
                .global(true)
                .action(clap::ArgAction::Append)
                .value_parser(value_parser!(PathBuf))
                .help("A directory of SQL jobs (NAME.sql), searched after the built-in jobs; repeatable"),
        )
        .subcommand(
            Command::new("run")
                .about("Run a job over input logs and publish its tables")
                .subcommand_required(true)
                .arg_required_else_help(true)
                .subcommands(job_commands),
        )
        .subcommand(Command::new("jobs").about("List the jobs (built in, and SQL jobs found) with their inputs and outputs"))
        .subcommand(
            Command::new("query")
                .about("Run ad-hoc SQL (DataFusion) over Parquet outputs and raw logs")
                .after_help(
                    "A table is a Parquet file or directory, or logs read with a job's input schema (--as).\n\n\
                     Examples:\n  \
                     mrpipe query \"SELECT * FROM r WHERE rank <= 3\" --table r=out/sales_rank.parquet\n  \
                     mrpipe query \"SELECT category_id, sum(quantity) FROM sales GROUP BY 1\" --table sales=logs/ --as sales\n  \
                     mrpipe query \"SELECT month, sum(hits) FROM h GROUP BY 1\" --table h=out/hit_counts/ -o tsv:monthly.tsv\n  \
                     mrpipe query \"SELECT * FROM 'out/sales_rank.parquet' WHERE rank = 1\"\n  \
                     mrpipe query -f report.sql --table r=out/sales_rank.parquet",
                )
                .arg(
                    Arg::new("sql")
                        .value_name("SQL")
                        .required_unless_present("file")
                        .conflicts_with("file")
                        .help("The query; a Parquet file can be named in FROM as a quoted path"),
                )
                .arg(
                    Arg::new("file")
                        .short('f')
                        .long("file")
                        .value_name("PATH")
                        .value_parser(value_parser!(PathBuf))
                        .help("Read the query from this file (- for stdin)"),
                )
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .value_parser(value_parser!(u64))
                        .help("Print or write at most N rows (0: all; default: 40 on a terminal, all in a pipe or to -o)"),
                )
                .arg(
                    Arg::new("table")
                        .long("table")
                        .value_name("NAME=PATH")
                        .action(clap::ArgAction::Append)
                        .value_parser(crate::query::TableArg::parse)
                        .help("A table: NAME=file.parquet, NAME=dir/ of Parquet files, or NAME=logs (with --as)"),
                )
                .arg(
                    Arg::new("as")
                        .long("as")
                        .value_name("FORMAT")
                        .action(clap::ArgAction::Append)
                        .value_parser(clap::builder::PossibleValuesParser::new(crate::query::LOG_FORMATS))
                        .help("Read log tables as this job input (one --as for all, or one per log table in order)"),
                )
                .arg(Arg::new("output").short('o').long("output").value_name("SINK").help("Write the result to a sink instead (table `query`)"))
                .arg(Arg::new("threads").short('j').long("threads").value_name("N").value_parser(value_parser!(u16).range(1..))),
        )
        .subcommand(
            Command::new("completions")
                .about("Print a shell completion script")
                .after_help("Example:\n  mrpipe completions bash > /etc/bash_completion.d/mrpipe")
                .arg(Arg::new("shell").value_name("SHELL").required(true).value_parser(value_parser!(Shell))),
        )
        .subcommand(
            Command::new("man")
                .about("Print the man page (roff), or write one page per command into a directory")
                .arg(
                    Arg::new("dir")
                        .value_name("DIR")
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Write mrpipe.1, mrpipe-run.1, mrpipe-run-<job>.1, mrpipe-query.1, ... into DIR"),
                )
                .after_help(
                    "Examples:\n  mrpipe man > /usr/local/share/man/man1/mrpipe.1\n  \
                     mrpipe man /usr/local/share/man/man1/ && man mrpipe-run-sales-rank",
                ),
        )
        .subcommand(
            Command::new("verify")
                .about("Re-run the job a manifest describes and check that its outputs are identical")
                .after_help(
                    "Give a manifest file, or an output (any --output value) and --job to verify the job's newest \
                     run recorded there (databases keep their manifests in the table mrpipe_runs).\n\n\
                     Exits 0 when every table is identical, 1 naming the first differing table and row.\n\n\
                     Examples:\n  mrpipe verify out/_sales-rank.manifest.json\n  \
                     mrpipe verify postgres://app@db/analytics --job spending",
                )
                .arg(Arg::new("manifest").value_name("MANIFEST|URL").required(true))
                .arg(
                    Arg::new("job")
                        .long("job")
                        .value_name("JOB")
                        .help("With an output instead of a manifest: the job whose newest run to verify"),
                )
                .arg(
                    Arg::new("memory-limit")
                        .long("memory-limit")
                        .value_name("SIZE")
                        .value_parser(params::parse_byte_size)
                        .help("Bound the re-run's memory as `mrpipe run --memory-limit` does (it is not recorded)"),
                ),
        )
        .subcommand(
            Command::new("scheduler")
                .about("Run a Ballista scheduler for `mrpipe run --engine ballista --cluster df://HOST:PORT`")
                .after_help(
                    "Flags are those of Ballista's ballista-scheduler. Every node of a cluster must run this same mrpipe.\n\n\
                     Example:\n  mrpipe scheduler --bind-host 127.0.0.1 --bind-port 50050",
                )
                .arg(bind_host())
                .arg(port("bind-port", "50050", "Port to listen on"))
                .arg(external_host())
                .arg(seconds("executor-timeout-seconds", "180", "An executor silent this long is lost; its tasks run again elsewhere"))
                .arg(seconds("expire-dead-executor-interval-seconds", "15", "How often lost executors are looked for")),
        )
        .subcommand(
            Command::new("executor")
                .about("Run a Ballista executor that reads mrpipe's logs and runs its plans")
                .after_help(
                    "Flags are those of Ballista's ballista-executor. Inputs and outputs must be at the same absolute \
                     paths on every node.\n\n\
                     Example:\n  mrpipe executor --bind-port 50051 --bind-grpc-port 50052 --scheduler-port 50050 \
                     --work-dir /var/tmp/mrpipe-executor --concurrent-tasks 2",
                )
                .arg(bind_host())
                .arg(port("bind-port", "50051", "Port of the Arrow Flight service other executors fetch shuffle data from"))
                .arg(port("bind-grpc-port", "50052", "Port of the gRPC service the scheduler sends tasks to"))
                .arg(external_host())
                .arg(
                    Arg::new("scheduler-host")
                        .long("scheduler-host")
                        .value_name("HOST")
                        .default_value("127.0.0.1")
                        .help("The scheduler's host"),
                )
                .arg(port("scheduler-port", "50050", "The scheduler's port"))
                .arg(
                    Arg::new("work-dir")
                        .long("work-dir")
                        .value_name("DIR")
                        .value_parser(value_parser!(PathBuf))
                        .help("Where shuffle files go (default: a directory of its own in $TMPDIR, removed on exit)"),
                )
                .arg(
                    Arg::new("concurrent-tasks")
                        .long("concurrent-tasks")
                        .alias("vcores")
                        .value_name("N")
                        .value_parser(value_parser!(u16).range(1..))
                        .help("Tasks run at once, one core each (default: one per core)"),
                )
                .arg(
                    Arg::new("job-data-ttl-seconds")
                        .long("job-data-ttl-seconds")
                        .value_name("SECONDS")
                        .default_value("3600")
                        .value_parser(value_parser!(u64))
                        .help("Shuffle files of a job older than this are removed"),
                )
                .arg(
                    Arg::new("job-data-clean-up-interval-seconds")
                        .long("job-data-clean-up-interval-seconds")
                        .value_name("SECONDS")
                        .default_value("60")
                        .value_parser(value_parser!(u64).range(1..))
                        .help("How often old shuffle files are looked for"),
                )
                .arg(seconds("executor-heartbeat-interval-seconds", "60", "How often to tell the scheduler this executor is alive"))
                .arg(
                    Arg::new("memory-pool-size")
                        .long("memory-pool-size")
                        .value_name("SIZE")
                        .value_parser(params::parse_byte_size)
                        .help(
                            "Memory for the tasks, shared by the task slots (e.g. 4GiB); beyond it they spill to \
                             --work-dir (default: 70% of the host's or cgroup's memory)",
                        ),
                ),
        )
        .subcommand(
            Command::new("show")
                .about("Print Parquet files as a table (TSV when stdout is not a terminal)")
                .after_help("Examples:\n  mrpipe show out/sales_rank.parquet --limit 20\n  mrpipe show out/urls.parquet --schema")
                .arg(
                    Arg::new("files")
                        .value_name("FILE")
                        .required(true)
                        .num_args(1..)
                        .value_parser(value_parser!(PathBuf)),
                )
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .short('n')
                        .value_name("N")
                        .value_parser(value_parser!(u64))
                        .help("Print at most N rows of each file, reading no further (0: all; default: 40 on a terminal, all in a pipe)"),
                )
                .arg(
                    Arg::new("schema")
                        .long("schema")
                        .action(clap::ArgAction::SetTrue)
                        .help("Print each file's columns (name, Arrow type, nullable) and row count instead of its rows"),
                ),
        )
}

fn bind_host() -> Arg {
    Arg::new("bind-host")
        .long("bind-host")
        .value_name("IP")
        .default_value("127.0.0.1")
        .help("Address to listen on (0.0.0.0: every interface; keep it on a private network)")
}

fn seconds(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("SECONDS")
        .default_value(default)
        .value_parser(value_parser!(u64).range(1..))
        .help(help)
}

fn external_host() -> Arg {
    Arg::new("external-host").long("external-host").value_name("HOST").help("Host name other nodes reach this one by")
}

fn port(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name("PORT").default_value(default).value_parser(value_parser!(u16)).help(help)
}

/// `mrpipe show FILE... [--limit N] [--schema]`.
pub struct ShowOptions {
    /// The Parquet files, printed in the order given.
    pub files: Vec<PathBuf>,
    /// Rows printed per file at most; all when `None`.
    pub limit: Option<u64>,
    /// Print the columns and row count instead of the rows.
    pub schema: bool,
}

/// What the command line asks for.
pub enum Action {
    /// `mrpipe run <job> ...`.
    Run(Box<RunOptions>),
    /// `mrpipe jobs`.
    Jobs,
    /// `mrpipe verify MANIFEST | OUTPUT --job JOB [--memory-limit SIZE]`.
    Verify(Request, Option<u64>),
    /// `mrpipe query SQL ...`.
    Query(crate::query::QueryOptions),
    /// `mrpipe completions SHELL`.
    Completions(Shell),
    /// `mrpipe man [DIR]`: one page to stdout, or a page per command into DIR.
    Man(Option<PathBuf>),
    /// `mrpipe show FILE...`.
    Show(ShowOptions),
    /// `mrpipe scheduler ...`.
    Scheduler(crate::engine::cluster::SchedulerOptions),
    /// `mrpipe executor ...`.
    Executor(crate::engine::cluster::ExecutorOptions),
}

/// Where `mrpipe run` was asked to write its metrics (`--metrics-file`), for the job
/// and output named: known from the parsed arguments alone, so that a run refused
/// while its options are validated (exit 2) still writes them. `(path, job, output)`,
/// the output as it is shown (no password; empty when it does not parse).
pub fn metrics_target(matches: &ArgMatches) -> Option<(PathBuf, String, String)> {
    let (_, run) = matches.subcommand().filter(|(name, _)| *name == "run")?;
    let (job, args) = run.subcommand()?;
    let path = args.try_get_one::<PathBuf>("metrics_file").ok()??.clone();
    let output = args.try_get_one::<String>("output").ok()?.cloned().unwrap_or_default();
    // An output that does not parse is shown empty: as typed, it could hold a password.
    let output = sink::parse(&output).map_or(String::new(), |o| o.to_string());
    Some((path, job.to_string(), output))
}

/// Resolves parsed arguments into an action with validated options; jobs are looked up in `catalog`.
pub fn resolve(matches: &ArgMatches, catalog: &Catalog) -> Result<Action> {
    match matches.subcommand() {
        Some(("run", run)) => {
            let Some((name, job_matches)) = run.subcommand() else {
                return Err(Error::Usage("no job given; see `mrpipe jobs`".into()));
            };
            let job = catalog.get(name)?;
            let common = CommonArgs::from_arg_matches(job_matches).map_err(|e| Error::Usage(e.to_string()))?;
            // A SQL job is its statements: it runs on DataFusion.
            let engine = match job.source() {
                None => common.engine,
                Some(path)
                    if common.engine == Engine::Native
                        && job_matches.value_source("engine") != Some(clap::parser::ValueSource::DefaultValue) =>
                {
                    return Err(Error::Usage(format!(
                        "{} is a SQL job: it runs on --engine datafusion",
                        path.display()
                    )));
                }
                Some(_) if common.engine == Engine::Ballista => Engine::Ballista,
                Some(_) => Engine::Datafusion,
            };
            if common.cluster.is_some() && engine != Engine::Ballista {
                return Err(Error::Usage("--cluster runs jobs on Ballista: add --engine ballista".into()));
            }
            if let Some(cluster) = &common.cluster {
                crate::engine::ballista::scheduler_url(cluster)?;
                if common.memory_limit.is_some() {
                    return Err(Error::Usage(
                        "--memory-limit (on the command line, or memory-limit in the config file) bounds this \
                         process, but with --cluster the work runs on the executors: bound each one with \
                         `mrpipe executor --memory-pool-size SIZE` instead"
                            .into(),
                    ));
                }
            }
            let plans = job.configure_from(job_matches)?;
            if common.notify.is_some() && job.info().outputs.iter().all(|t| t.notify_key.is_empty()) {
                return Err(Error::Usage(format!("--notify applies to jobs that write budget alerts, not '{name}'")));
            }
            let budget = match (common.strict, common.max_bad_lines) {
                (true, _) => BadLineBudget::Count(0),
                (false, Some(b)) => b,
                (false, None) => BadLineBudget::Unlimited,
            };
            let options = RunOptions {
                job,
                plans,
                engine,
                cluster: common.cluster,
                inputs: common.inputs.into_iter().map(PathBuf::from).collect(),
                output: sink::parse(&common.output)?,
                threads: common.threads.map(usize::from),
                memory_limit: common.memory_limit,
                max_line_bytes: usize::try_from(common.max_line_bytes).unwrap_or(usize::MAX),
                rejects: common.rejects,
                budget,
                log: EventLog::new(common.log_format, name, common.quiet, common.verbose),
                wait: common.wait.map(|micros| std::time::Duration::from_micros(micros as u64)),
                skip_unchanged: common.skip_unchanged,
                dry_run: common.dry_run,
                notify: common.notify.as_deref().map(NotifyTarget::parse),
                metrics_file: common.metrics_file,
            };
            Ok(Action::Run(Box::new(options)))
        }
        Some(("jobs", _)) => Ok(Action::Jobs),
        Some(("completions", c)) => {
            Ok(Action::Completions(c.get_one::<Shell>("shell").copied().unwrap_or(Shell::Bash)))
        }
        Some(("man", m)) => Ok(Action::Man(m.get_one::<PathBuf>("dir").cloned())),
        Some(("query", q)) => Ok(Action::Query(crate::query::QueryOptions {
            sql: match q.get_one::<PathBuf>("file") {
                Some(path) if path.as_os_str() == "-" => {
                    std::io::read_to_string(std::io::stdin()).map_err(|e| Error::io("stdin", e))?
                }
                Some(path) if path.is_dir() => {
                    return Err(Error::Usage(format!("-f {}: a directory, not a SQL file", path.display())));
                }
                Some(path) => std::fs::read_to_string(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::Usage(format!("no such file: {}", path.display())),
                    _ => Error::io(path, e),
                })?,
                None => q.get_one::<String>("sql").cloned().unwrap_or_default(),
            },
            limit: q.get_one::<u64>("limit").copied(),
            tables: q.get_many::<crate::query::TableArg>("table").into_iter().flatten().cloned().collect(),
            formats: q.get_many::<String>("as").into_iter().flatten().cloned().collect(),
            output: q.get_one::<String>("output").map(|o| sink::parse(o)).transpose()?,
            threads: q.get_one::<u16>("threads").map(|n| usize::from(*n)),
        })),
        Some(("verify", v)) => {
            let what = v.get_one::<String>("manifest").cloned().unwrap_or_default();
            let job = v.get_one::<String>("job").cloned();
            let limit = v.get_one::<u64>("memory-limit").copied();
            match job {
                // The job is found from its manifest (a SQL job's records its file).
                Some(job) => Ok(Action::Verify(Request::Output { output: sink::parse(&what)?, job }, limit)),
                // Without --job the argument is a manifest file; an output URL needs the job.
                None if what.contains("://") && !std::path::Path::new(&what).exists() => {
                    let output = sink::parse(&what)?;
                    Err(Error::Usage(format!(
                        "verifying {output} needs --job JOB (the job whose newest run to verify)"
                    )))
                }
                None => Ok(Action::Verify(Request::File(PathBuf::from(what)), limit)),
            }
        }
        Some(("scheduler", c)) => Ok(Action::Scheduler(crate::engine::cluster::SchedulerOptions {
            bind_host: text(c, "bind-host"),
            bind_port: c.get_one::<u16>("bind-port").copied().unwrap_or(50050),
            external_host: c.get_one::<String>("external-host").cloned(),
            executor_timeout_seconds: c.get_one::<u64>("executor-timeout-seconds").copied().unwrap_or(180),
            expire_dead_executor_interval_seconds: c
                .get_one::<u64>("expire-dead-executor-interval-seconds")
                .copied()
                .unwrap_or(15),
        })),
        Some(("executor", c)) => Ok(Action::Executor(crate::engine::cluster::ExecutorOptions {
            bind_host: text(c, "bind-host"),
            bind_port: c.get_one::<u16>("bind-port").copied().unwrap_or(50051),
            bind_grpc_port: c.get_one::<u16>("bind-grpc-port").copied().unwrap_or(50052),
            external_host: c.get_one::<String>("external-host").cloned(),
            scheduler_host: text(c, "scheduler-host"),
            scheduler_port: c.get_one::<u16>("scheduler-port").copied().unwrap_or(50050),
            work_dir: c.get_one::<PathBuf>("work-dir").cloned(),
            concurrent_tasks: c
                .get_one::<u16>("concurrent-tasks")
                .map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), |n| usize::from(*n)),
            job_data_ttl_seconds: c.get_one::<u64>("job-data-ttl-seconds").copied().unwrap_or(3600),
            job_data_clean_up_interval_seconds: c
                .get_one::<u64>("job-data-clean-up-interval-seconds")
                .copied()
                .unwrap_or(60),
            executor_heartbeat_interval_seconds: c
                .get_one::<u64>("executor-heartbeat-interval-seconds")
                .copied()
                .unwrap_or(60),
            memory_pool_size: c.get_one::<u64>("memory-pool-size").copied(),
        })),
        Some(("show", show)) => Ok(Action::Show(ShowOptions {
            files: show.get_many::<PathBuf>("files").into_iter().flatten().cloned().collect(),
            limit: show.get_one::<u64>("limit").copied(),
            schema: show.get_flag("schema"),
        })),
        _ => Err(Error::Usage("no command given; see `mrpipe --help`".into())),
    }
}

fn text(matches: &ArgMatches, name: &str) -> String {
    matches.get_one::<String>(name).cloned().unwrap_or_default()
}

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, extra: &[&'static dyn Job], out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut command(extra), "mrpipe", out);
}

/// Writes one man page per command into `dir` (created if missing), each a whole page
/// named as git's are: `mrpipe.1`, `mrpipe-run.1`, `mrpipe-run-sales-rank.1`,
/// `mrpipe-query.1`, ...; returns the files written.
pub fn man_pages(extra: &[&'static dyn Job], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut write = |name: &str, page: Command| -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text)?;
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    let cmd = command(extra);
    write("mrpipe", cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("mrpipe-{}", sub.get_name());
        write(&name, sub.clone().name(format!("mrpipe {}", sub.get_name())))?;
        for job in sub.get_subcommands() {
            let name = format!("{name}-{}", job.get_name());
            write(&name, job.clone().name(format!("mrpipe {} {}", sub.get_name(), job.get_name())))?;
        }
    }
    Ok(written)
}

/// Writes the man page: the top-level page, then one section per command and job, so
/// every option is documented in one place.
pub fn man_page(extra: &[&'static dyn Job], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = command(extra);
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands() {
        let pages: Vec<Command> = if sub.get_name() == "run" {
            sub.get_subcommands().map(|job| job.clone().name(format!("mrpipe run {}", job.get_name()))).collect()
        } else {
            vec![sub.clone().name(format!("mrpipe {}", sub.get_name()))]
        };
        for page in pages {
            let man = clap_mangen::Man::new(page);
            man.render_name_section(out)?;
            man.render_synopsis_section(out)?;
            man.render_description_section(out)?;
            man.render_options_section(out)?;
            man.render_extra_section(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_tree_is_consistent() {
        super::command(&[]).debug_assert();
    }

    #[test]
    fn every_common_option_is_reserved_for_sql_job_parameters() {
        let cmd = super::command(&[]);
        let run = cmd.find_subcommand("run").unwrap().find_subcommand("sales-rank").unwrap();
        let own = ["as-of", "from", "to", "every", "window", "top"];
        for arg in run.get_arguments() {
            let name = arg.get_long().unwrap_or(arg.get_id().as_str());
            assert!(
                own.contains(&name) || crate::job::COMMON_OPTIONS.contains(&name),
                "--{name} is missing from job::COMMON_OPTIONS"
            );
        }
    }
}
