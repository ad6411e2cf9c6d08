//! The runner: one `mrpipe run` from validated options to published output.
//!
//! resolve inputs -> take the (job, output) lock and clear stale temporaries -> build
//! the rayon pool -> then, for each period (one, unless the run is a backfill): skip it
//! if `--skip-unchanged` finds its manifest current -> run the plan (read, map,
//! shuffle, reduce) -> write the rejects file -> check the bad-line budget -> write
//! every table to the sink -> commit with the manifest. Nothing of a period is
//! published when any of its steps fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::{self, Engine, ReadSummary};
use crate::error::{Error, Result};
use crate::job::{AnyJob, Period, Plan, RunContext};
use crate::lock;
use crate::log::EventLog;
use crate::manifest::{self, FileDigest, Manifest, TableDigest};
use crate::notify::{self, NotifyTarget};
use crate::progress::Progress;
use crate::quarantine::{self, BadLineBudget};
use crate::read::input::{self, InputFile};
use crate::read::{self, ReadStats};
use crate::sink::Written;
use crate::sink::{self, SinkUrl};
use arrow::array::RecordBatch;
use serde_json::json;

/// Everything a run needs, validated.
pub struct RunOptions {
    /// The job.
    pub job: &'static dyn AnyJob,
    /// The job, configured: one plan per period.
    pub plans: Vec<Box<dyn Plan>>,
    /// What runs the plans.
    pub engine: Engine,
    /// Input arguments as given (files, directories, globs, `-`).
    pub inputs: Vec<String>,
    /// Where results go.
    pub output: SinkUrl,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// Rejects file (`None`: next to the output, see [`default_rejects_path`]).
    pub rejects: Option<PathBuf>,
    /// Bad-line threshold.
    pub budget: BadLineBudget,
    /// Where events and warnings go (also decides the progress bar).
    pub log: EventLog,
    /// How long to wait for another run's lock (`None`: fail at once).
    pub wait: Option<Duration>,
    /// Skip periods whose manifest shows the same inputs, parameters and outputs.
    pub skip_unchanged: bool,
    /// Print what would be read and written, and touch nothing.
    pub dry_run: bool,
    /// Where new budget alerts are written after the publish, if anywhere.
    pub notify: Option<NotifyTarget>,
}

/// What a successful run did.
#[derive(Debug)]
pub struct RunSummary {
    /// Line counts.
    pub stats: ReadStats,
    /// Rows written per table.
    pub tables: Vec<(&'static str, u64)>,
    /// Published paths or URLs.
    pub published: Vec<String>,
    /// The rejects file, when there were bad lines.
    pub rejects: Option<PathBuf>,
    /// Wall time.
    pub elapsed: Duration,
    /// The manifest published with the output.
    pub manifest: Manifest,
}

impl RunSummary {
    /// The one-line summary printed at the end of a run.
    pub fn line(&self, job: &str) -> String {
        let st = &self.stats;
        let tables: Vec<String> = self.tables.iter().map(|(name, rows)| format!("{name} {rows} rows")).collect();
        let mut targets = self.published.clone();
        targets.dedup();
        let target = if targets.is_empty() { "stdout".to_string() } else { targets.join(", ") };
        format!(
            "mrpipe {job}: {} lines read ({} good, {} bad, {} empty, {} header) -> {} -> {target} in {:.2}s",
            st.lines,
            st.good,
            st.bad,
            st.empty,
            st.headers,
            tables.join(", "),
            self.elapsed.as_secs_f64()
        )
    }

    /// The summary as a JSON event body.
    pub fn to_json(&self) -> serde_json::Value {
        let st = &self.stats;
        json!({
            "lines": st.lines, "good": st.good, "bad": st.bad, "empty": st.empty, "header": st.headers,
            "tables": self.tables.iter().map(|(t, r)| json!({ "table": t, "rows": r })).collect::<Vec<_>>(),
            "published": self.published,
            "elapsed_secs": self.elapsed.as_secs_f64(),
        })
    }
}

/// Where the rejects file goes when `--rejects` is not given: `DIR/_<job>.rejects.tsv`
/// for a directory output (several jobs may share one), `PATH.rejects.tsv` beside a
/// file or database, and `mrpipe-<job>.rejects.tsv` in the current directory for stdout.
/// A period's files carry `<job>-<period>` where a whole run's carry `<job>`.
pub fn default_rejects_path(output: &SinkUrl, job: &str, period: Option<&Period>) -> PathBuf {
    let unit = unit_name(job, period);
    match output {
        SinkUrl::ParquetDir(d) | SinkUrl::TsvDir(d) => d.join(format!("_{unit}.rejects.tsv")),
        SinkUrl::ParquetFile(p) | SinkUrl::Sqlite(p) | SinkUrl::TsvFile(p) => match period {
            None => PathBuf::from(format!("{}.rejects.tsv", p.display())),
            Some(period) => PathBuf::from(format!("{}.{}.rejects.tsv", p.display(), period.label)),
        },
        SinkUrl::TsvStdout | SinkUrl::Postgres(_) | SinkUrl::Mysql(_) => {
            PathBuf::from(format!("mrpipe-{unit}.rejects.tsv"))
        }
    }
}

/// `<job>` for a whole run, `<job>-<period>` for one period of it.
pub fn unit_name(job: &str, period: Option<&Period>) -> String {
    match period {
        None => job.to_string(),
        Some(p) => format!("{job}-{}", p.label),
    }
}

/// Runs a job end to end: every period in order, under one lock. Returns the summary
/// of each period that ran (skipped ones are logged, not returned).
pub fn run(opts: RunOptions) -> Result<Vec<RunSummary>> {
    let inputs = input::resolve_inputs(&opts.inputs)?;
    let job = opts.job.info().name;
    if opts.dry_run {
        print_dry_run(&opts, &inputs).map_err(Error::stdout)?;
        return Ok(Vec::new());
    }
    let _lock = match (&opts.output, lock::lock_path(&opts.output, job)) {
        (SinkUrl::Postgres(url), _) => Some(lock::acquire_postgres(url, job, opts.wait)?),
        (SinkUrl::Mysql(url), _) => Some(lock::acquire_mysql(url, job, opts.wait)?),
        (_, Some(path)) => {
            let held = lock::acquire(&path, opts.wait)?;
            if let Some(dir) = held.path().parent() {
                lock::remove_stale_temporaries(dir)?;
            }
            Some(held)
        }
        (_, None) => None,
    };
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = opts.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build().map_err(|e| Error::sink("thread pool", e))?;
    let log = &opts.log;
    log.info("start", json!({ "version": env!("CARGO_PKG_VERSION"), "output": opts.output.to_string() }), String::new);
    for input in &inputs {
        log.info("input", json!({ "path": input.display_name() }), String::new);
    }
    let mut summaries = Vec::with_capacity(opts.plans.len());
    for plan in &opts.plans {
        let period = plan.period();
        if opts.skip_unchanged
            && let Some(finished) = unchanged_since(&opts, plan.as_ref(), &inputs, period.as_ref())?
        {
            let unit = unit_name(job, period.as_ref());
            log.info(
                "skipped",
                json!({ "period": period.as_ref().map(|p| &p.label), "unchanged_since": finished }),
                || format!("mrpipe {unit}: skipped, inputs and parameters unchanged since {finished}"),
            );
            continue;
        }
        summaries.push(pool.install(|| run_period(&opts, plan.as_ref(), &inputs, period.as_ref()))?);
    }
    Ok(summaries)
}

/// Runs one period and publishes it.
fn run_period(opts: &RunOptions, plan: &dyn Plan, inputs: &[InputFile], period: Option<&Period>) -> Result<RunSummary> {
    let started = Instant::now();
    let job = opts.job.info().name;
    let unit = unit_name(job, period);
    let log = &opts.log;
    let ctx = RunContext {
        progress: Progress::new(read::plain_size(inputs), log.shows_info()),
        temp_dir: opts.output.local_dir().unwrap_or_else(std::env::temp_dir),
        inputs: inputs.to_vec(),
    };
    let output = match opts.engine {
        Engine::Native => plan.run(&ctx),
        Engine::Datafusion => plan.twin().and_then(|twin| engine::datafusion::run_twin(twin, &ctx)),
    };
    ctx.progress.finish();
    let output = output?;
    for warning in &output.warnings {
        log.warning(warning);
    }
    let stats = output.read.stats;
    let rejects = opts.rejects.clone().unwrap_or_else(|| default_rejects_path(&opts.output, job, period));
    quarantine::write_rejects(&rejects, &output.read, &ctx.inputs)?;
    if stats.bad > 0 {
        let allowed = opts.budget.allowed(stats.lines);
        log.info("bad_lines", json!({ "bad": stats.bad, "allowed": allowed, "rejects": rejects }), String::new);
    }
    opts.budget.check(&output.read, &ctx.inputs)?;

    let previous_alerts = match &opts.notify {
        Some(_) => Some(notify::published_keys(&opts.output, period)?),
        None => None,
    };
    let mut alerts = Vec::new();
    let mut sink = sink::open(&opts.output, output.tables.len(), period)?;
    let mut written = Vec::with_capacity(output.tables.len());
    for mut table in output.tables {
        let name = table.name;
        if previous_alerts.is_some() && name == notify::ALERTS {
            // Alerts are few: keep them to compare with what was published before.
            let batches: Vec<RecordBatch> = table.batches.collect::<Result<_>>()?;
            alerts = notify::alert_rows(&batches)?;
            table.batches = Box::new(batches.into_iter().map(Ok));
        }
        written.push((name, sink.write_table(table)?));
    }
    let manifest = build_manifest(opts, plan, &ctx, &output.read, &written, started)?;
    let manifest_path = manifest::manifest_path(&opts.output, job, period);
    sink.commit(&manifest, manifest_path.as_deref())?;
    if let (Some(target), Some(previous)) = (&opts.notify, &previous_alerts) {
        let sent = notify::notify_new(target, &alerts, previous)?;
        log.info("notified", json!({ "alerts": sent }), String::new);
    }
    for (table, w) in &written {
        log.info("published", json!({ "table": table, "rows": w.rows, "target": w.location }), String::new);
    }
    if stats.bad > 0 {
        let plural = if stats.bad == 1 { "" } else { "s" };
        log.warning(&format!("{} bad line{plural} quarantined in {}", stats.bad, rejects.display()));
    }
    let summary = RunSummary {
        stats,
        tables: written.iter().map(|(name, w)| (*name, w.rows)).collect(),
        published: written.iter().filter(|(_, w)| w.blake3.is_some()).map(|(_, w)| w.location.clone()).collect(),
        rejects: (stats.bad > 0).then_some(rejects),
        elapsed: started.elapsed(),
        manifest,
    };
    log.info("summary", summary.to_json(), || summary.line(&unit));
    Ok(summary)
}

/// When `--skip-unchanged` may skip a period: its manifest names the same mrpipe
/// version, arguments, output, inputs and side files (by hash), and its published
/// tables are still as written. Returns when that run finished.
fn unchanged_since(
    opts: &RunOptions,
    plan: &dyn Plan,
    inputs: &[InputFile],
    period: Option<&Period>,
) -> Result<Option<String>> {
    let Some(path) = manifest::manifest_path(&opts.output, opts.job.info().name, period) else { return Ok(None) };
    let Ok(previous) = Manifest::load(&path) else { return Ok(None) };
    let same_setup = previous.mrpipe_version == env!("CARGO_PKG_VERSION")
        && previous.args == plan.args()
        && previous.output == opts.output.to_string()
        && previous.inputs.len() == inputs.len()
        && previous.side_files.len() == plan.side_files().len();
    if !same_setup || inputs.iter().any(|f| f.path.as_os_str() == "-") {
        return Ok(None);
    }
    let files = inputs.iter().map(|f| f.path.clone()).chain(plan.side_files());
    for (recorded, path) in previous.inputs.iter().chain(&previous.side_files).zip(files) {
        if recorded.path != path.display().to_string() || manifest::digest_file(&path)?.blake3 != recorded.blake3 {
            return Ok(None);
        }
    }
    for table in &previous.tables {
        if manifest::published_hash(table)? != table.blake3 {
            return Ok(None);
        }
    }
    Ok(Some(previous.finished))
}

/// `--dry-run`: what would be read, and which files each period would write.
fn print_dry_run(opts: &RunOptions, inputs: &[InputFile]) -> std::io::Result<()> {
    use std::io::Write;
    let job = opts.job.info().name;
    let mut out = std::io::stdout().lock();
    writeln!(out, "mrpipe {job} (dry run: nothing is read or written)")?;
    writeln!(out, "engine: {}", opts.engine.name())?;
    writeln!(out, "inputs:")?;
    for f in inputs {
        let size = std::fs::metadata(&f.path).map_or_else(|_| "stream".to_string(), |m| format!("{} bytes", m.len()));
        writeln!(out, "  {} ({size})", f.display_name())?;
    }
    for plan in &opts.plans {
        let period = plan.period();
        match &period {
            Some(p) => writeln!(out, "period {}:", p.label)?,
            None => writeln!(out, "outputs:")?,
        }
        for table in opts.job.info().outputs {
            writeln!(out, "  {} -> {}", table.name, opts.output.table_location(table.name, period.as_ref()))?;
        }
        if let Some(path) = manifest::manifest_path(&opts.output, job, period.as_ref()) {
            writeln!(out, "  manifest -> {}", path.display())?;
        }
        writeln!(out, "  arguments: {}", plan.args().join(" "))?;
    }
    Ok(())
}

/// The manifest of a run that is about to publish.
fn build_manifest(
    opts: &RunOptions,
    plan: &dyn Plan,
    ctx: &RunContext,
    read: &ReadSummary,
    written: &[(&'static str, Written)],
    started: Instant,
) -> Result<Manifest> {
    let side_files = plan.side_files().iter().map(|p| manifest::digest_file(p)).collect::<Result<_>>()?;
    let now = chrono::Utc::now();
    let elapsed = started.elapsed();
    let began = now - chrono::Duration::from_std(elapsed).unwrap_or_default();
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(Manifest {
        mrpipe_version: env!("CARGO_PKG_VERSION").to_string(),
        job: opts.job.info().name.to_string(),
        engine: opts.engine.name().to_string(),
        args: plan.args(),
        output: opts.output.to_string(),
        bad_line_budget: opts.budget.spelling(),
        inputs: ctx
            .inputs
            .iter()
            .zip(&read.digests)
            .map(|(f, d)| FileDigest { path: f.display_name(), size: d.size, blake3: d.blake3.clone() })
            .collect(),
        side_files,
        lines: read.stats.into(),
        tables: written
            .iter()
            .map(|(name, w)| TableDigest {
                name: name.to_string(),
                rows: w.rows,
                location: w.location.clone(),
                blake3: w.blake3.clone().unwrap_or_default(),
            })
            .collect(),
        started: stamp(began),
        finished: stamp(now),
        duration_secs: elapsed.as_secs_f64(),
    })
}
