//! The `mrpipe` binary: parses the command line, runs the action, prints the
//! summary, and turns errors into the documented exit codes. Only this file decides
//! exit codes.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use mrpipe::cli::{self, Action};
use mrpipe::error::{Error, Result};
use mrpipe::job::Job;
use mrpipe::jobs::Catalog;
use mrpipe::log::EventLog;
use mrpipe::metrics::RunMetrics;
use mrpipe::run;

// The jobs allocate one string per distinct key; mimalloc measured faster than glibc malloc for that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stack of the thread that runs mrpipe: planning SQL recurses once per term, and a
/// job or query with a few hundred `OR`s must be an answer, not a stack overflow.
const MAIN_STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    mrpipe::sink::tls::install_provider();
    let main = std::thread::Builder::new().name("mrpipe".into()).stack_size(MAIN_STACK_BYTES).spawn(run_main);
    match main.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        _ => ExitCode::from(101),
    }
}

/// Diagnostics of the libraries (DataFusion, Ballista) on stderr, filtered by `RUST_LOG`
/// (`info`, `ballista_executor=debug`, ...). Unset, a run stays quiet for cron, and the
/// scheduler and executor daemons log at `info`, as Ballista's own binaries do.
fn init_diagnostics(command: Option<&str>) {
    let default = match command {
        Some("scheduler" | "executor") => "info",
        _ => "off",
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).try_init();
}

fn run_main() -> ExitCode {
    let mut log = EventLog::quiet("mrpipe");
    let (argv, catalog, extra) = match prepare(std::env::args_os().collect()) {
        Ok(prepared) => prepared,
        Err(e) => {
            log.error(&e.to_string(), 2);
            return ExitCode::from(2);
        }
    };
    let matches = cli::command(&extra).get_matches_from(argv);
    init_diagnostics(matches.subcommand_name());
    let started = Instant::now();
    // A run with --metrics-file: where, for which job and output, and what it published.
    // Checked first: a path that may not be written stops the run (exit 2) untouched.
    let mut metrics = cli::metrics_target(&matches).map(|(path, job, output)| (path, job, output, Vec::new()));
    let checked = match &metrics {
        Some((path, ..)) => mrpipe::metrics::check(path).map(|_| ()),
        None => Ok(()),
    };
    let result = checked.and_then(|()| cli::resolve(&matches, &catalog)).and_then(|action| match action {
        Action::Run(options) => {
            log = options.log.clone();
            if options.dry_run {
                metrics = None; // touches nothing
            }
            let mut published = Vec::new();
            let result = run::run_into(*options, &mut published);
            if let Some((.., recorded)) = metrics.as_mut() {
                *recorded = published;
            }
            result
        }
        Action::Jobs => list_jobs(&catalog),
        Action::Completions(shell) => {
            cli::completions(shell, &extra, &mut std::io::stdout().lock());
            Ok(())
        }
        Action::Query(options) => query(&options),
        Action::Man(None) => cli::man_page(&extra, &mut std::io::stdout().lock()).map_err(Error::stdout),
        Action::Man(Some(dir)) => cli::man_pages(&extra, &dir).map_err(|e| Error::io(&dir, e)).map(|written| {
            for path in written {
                println!("{}", path.display());
            }
        }),
        Action::Verify(target, memory_limit) => mrpipe::verify::verify(&target, memory_limit).map(|v| {
            println!("verified: {} tables, {} rows identical to {target}", v.tables, v.rows);
        }),
        Action::Show(options) => show(&options),
        Action::Scheduler(options) => mrpipe::engine::cluster::serve_scheduler(&options, mrpipe::jobs::sql_functions()),
        Action::Executor(options) => mrpipe::engine::cluster::serve_executor(&options, mrpipe::jobs::sql_functions()),
    });
    let code = match result {
        Ok(()) | Err(Error::BrokenPipe) => 0,
        Err(e) => {
            if matches!(e, Error::BadMetricsFile(_)) {
                metrics = None; // never written where it may not be
            }
            let code = match e {
                Error::Usage(_) | Error::BadMetricsFile(_) => 2,
                Error::BadLineBudget { .. } => 3,
                Error::Locked { .. } => 4,
                Error::NoInput(_) => 5,
                _ => 1,
            };
            log.error(&e.to_string(), code);
            code
        }
    };
    if let Some((path, job, output, published)) = metrics {
        let run = RunMetrics {
            job: &job,
            output: &output,
            exit_code: code,
            ended: SystemTime::now(),
            duration: started.elapsed(),
            published: &published,
        };
        if let Err(e) = mrpipe::metrics::write(&path, &run) {
            // Published or not, a run whose metrics are missing must not look fine to cron.
            log.error(&format!("metrics not written: {e}"), 1);
            return ExitCode::from(if code == 0 { 1 } else { code });
        }
    }
    ExitCode::from(code)
}

/// The jobs catalog (built-in jobs and the jobs directories), the SQL jobs the
/// command tree needs (the one `mrpipe run` names, or every one found), and the
/// command line with a job file named by its job and the config file's defaults added.
fn prepare(mut argv: Vec<OsString>) -> Result<(Vec<OsString>, Catalog, Vec<&'static dyn Job>)> {
    let mut catalog = Catalog::new(mrpipe::config::jobs_dirs(&argv)?);
    let job_word = argv
        .iter()
        .position(|a| a == "run")
        .map(|i| i + 1)
        .filter(|&i| argv.get(i).is_some_and(|w| !w.to_string_lossy().starts_with('-')));
    let extra = match job_word {
        Some(i) => {
            let job = catalog.load(&argv[i].to_string_lossy())?;
            argv[i] = OsString::from(job.info().name);
            vec![job]
        }
        // `mrpipe jobs`, help, completions: every job that loads; `mrpipe jobs` names the others.
        None => catalog.all().into_iter().filter_map(Result::ok).collect(),
    };
    let argv = mrpipe::config::apply(argv, &catalog)?;
    Ok((argv, catalog, extra))
}

fn list_jobs(catalog: &Catalog) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for job in catalog.all() {
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                let _ = writeln!(std::io::stderr().lock(), "mrpipe: warning: {e}");
                continue;
            }
        };
        let info = job.info();
        let source = job.source().map(|p| format!("{:<12} from:   {}\n", "", p.display())).unwrap_or_default();
        writeln!(
            out,
            "{:<12} {}\n{:<12} input:  {}\n{:<12} output: {}\n{source}",
            info.name,
            info.about,
            "",
            info.input,
            "",
            info.output_names().join(", ")
        )
        .map_err(Error::stdout)?;
    }
    Ok(())
}

fn query(options: &mrpipe::query::QueryOptions) -> Result<()> {
    let result = mrpipe::query::run_query(options)?;
    for (table, bad) in &result.skipped {
        let _ = writeln!(
            std::io::stderr().lock(),
            "mrpipe: warning: {bad} bad lines skipped in table {table} (a job run quarantines them with line numbers)"
        );
    }
    let table = mrpipe::table::Table {
        name: "query",
        schema: result.schema.clone(),
        indexes: &[],
        batches: Box::new(result.batches.clone().into_iter().map(Ok)),
    };
    match &options.output {
        Some(output) => {
            // An explicit --limit cuts what is written too; by default everything is.
            let table = match options.limit {
                Some(n) if n > 0 => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    mrpipe::table::Table {
                        batches: Box::new(first_rows(&result.batches, n).into_iter().map(Ok)),
                        ..table
                    }
                }
                _ => table,
            };
            let mut publication = output.open(mrpipe::sink::Unit { job: "query", period: None }, 1)?;
            let written = publication.write_table(table)?;
            publication.commit(&mrpipe::manifest::Manifest::for_query(
                &options.sql,
                output.to_string(),
                written.digest("query"),
            ))
        }
        None => {
            let terminal = std::io::stdout().is_terminal();
            let limit = rows_shown(options.limit, terminal);
            let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
            let shown = limit.map_or(rows, |n| rows.min(usize::try_from(n).unwrap_or(usize::MAX)));
            let batches = first_rows(&result.batches, shown);
            let mut out = std::io::stdout().lock();
            if terminal {
                let text = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| Error::sink("query", e))?;
                writeln!(out, "{text}").map_err(Error::stdout)?;
            } else {
                let table = mrpipe::table::Table { batches: Box::new(batches.into_iter().map(Ok)), ..table };
                mrpipe::sink::text::write_tsv(&mut out, table, &Error::stdout)?;
            }
            if shown < rows {
                // On stderr, so a pipe's TSV stays data only.
                let _ = writeln!(std::io::stderr().lock(), "mrpipe: {shown} of {rows} rows shown (--limit 0 for all)");
            }
            Ok(())
        }
    }
}

/// Rows printed at most for `--limit` (0: all; unset: 40 on a terminal, all elsewhere).
fn rows_shown(limit: Option<u64>, terminal: bool) -> Option<u64> {
    match limit {
        Some(0) => None,
        Some(n) => Some(n),
        None => terminal.then_some(mrpipe::query::TERMINAL_ROWS),
    }
}

/// The first `n` rows of `batches`.
fn first_rows(batches: &[arrow::array::RecordBatch], mut n: usize) -> Vec<arrow::array::RecordBatch> {
    let mut out = Vec::new();
    for batch in batches {
        if n == 0 {
            break;
        }
        let take = batch.num_rows().min(n);
        out.push(batch.slice(0, take));
        n -= take;
    }
    out
}

fn show(options: &cli::ShowOptions) -> Result<()> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let files = &options.files;
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    for path in files {
        if path.is_dir() {
            return Err(Error::Usage(format!(
                "'{}' is a directory: give its Parquet files (e.g. {}/*.parquet), or query it with mrpipe query",
                path.display(),
                path.display()
            )));
        }
        // A file that is not there is a bad argument (exit 2), as for `mrpipe run`.
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Usage(format!("no such file: {}", path.display())),
            _ => Error::io(path, e),
        })?;
        let fail = |e: &dyn std::fmt::Display| Error::Usage(format!("reading {}: {e}", path.display()));
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&e))?;
        if files.len() > 1 {
            writeln!(out, "# {}", path.display()).map_err(Error::stdout)?;
        }
        if options.schema {
            for field in builder.schema().fields() {
                let null = if field.is_nullable() { "NULL" } else { "NOT NULL" };
                writeln!(out, "{}\t{}\t{null}", field.name(), field.data_type()).map_err(Error::stdout)?;
            }
            writeln!(out, "# {} rows", builder.metadata().file_metadata().num_rows()).map_err(Error::stdout)?;
            continue;
        }
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let limit = rows_shown(options.limit, terminal).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let builder = match limit {
            Some(n) => builder.with_limit(n),
            None => builder,
        };
        let reader = builder.build().map_err(|e| fail(&e))?;
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let batches: Vec<_> = reader.collect::<std::result::Result<_, _>>().map_err(|e| fail(&e))?;
        if terminal {
            let table = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| fail(&e))?;
            writeln!(out, "{table}").map_err(Error::stdout)?;
        } else {
            let table =
                mrpipe::table::Table { name: "", schema, indexes: &[], batches: Box::new(batches.into_iter().map(Ok)) };
            mrpipe::sink::text::write_tsv(&mut out, table, &Error::stdout)?;
        }
        if let Some(shown) = limit.filter(|&n| n < rows) {
            // On stderr, so a pipe's TSV stays data only.
            let _ = writeln!(std::io::stderr().lock(), "mrpipe: {shown} of {rows} rows shown (--limit 0 for all)");
        }
    }
    Ok(())
}
