//! The runner: one `mrpipe run` from validated options to published output.
//!
//! resolve inputs -> take the (job, output) lock (the target clears stale
//! temporaries) -> build the rayon pool -> drop the periods (one, unless the run is a
//! backfill) that `--skip-unchanged` finds current -> run the plans (read, map,
//! shuffle, reduce; a backfill's periods share one read where they can) -> for each
//! period in order: write the rejects file -> check the bad-line budget -> write every
//! table to the sink -> commit with the manifest. Nothing of a period is published
//! when any of its steps fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use serde_json::json;

use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::job::{Job, Plan, RunContext};
use crate::log::EventLog;
use crate::manifest::{self, FileDigest, Manifest};
use crate::notify::{self, NotifyTarget};
use crate::progress::Progress;
use crate::quarantine::{self, BadLineBudget};
use crate::read::input::{self, Encoding, InputFile};
use crate::read::{self, ReadStats};
use crate::read::{ReadLimits, ReadSummary};
use crate::sink::{Recorded, Slice, Target, Unit, Written};
use crate::table::{Period, TableSpec};

/// Everything a run needs, validated.
pub struct RunOptions {
    /// The job.
    pub job: &'static dyn Job,
    /// The job, configured: one plan per period.
    pub plans: Vec<Box<dyn Plan>>,
    /// What runs the plans.
    pub engine: Engine,
    /// With [`Engine::Ballista`]: the cluster's scheduler (`df://HOST:PORT`); `None` runs one in-process.
    pub cluster: Option<String>,
    /// Input arguments as given (files, directories, globs, `-`).
    pub inputs: Vec<PathBuf>,
    /// Where results go.
    pub output: Box<dyn Target>,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// `--memory-limit` in bytes: the engine spills beyond it.
    pub memory_limit: Option<u64>,
    /// `--max-line-bytes`: a longer line is a bad line.
    pub max_line_bytes: usize,
    /// Rejects file (`None`: the output's default, [`Target::default_rejects`]).
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
    /// Where the caller writes the run's metrics afterwards, failed runs included
    /// (`--metrics-file`, [`crate::metrics`]); the run itself does not.
    pub metrics_file: Option<PathBuf>,
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

/// Runs a job end to end: every period in order, under one lock. Returns the summary
/// of each period that ran (skipped ones are logged, not returned).
pub fn run(opts: RunOptions) -> Result<Vec<RunSummary>> {
    let mut published = Vec::new();
    run_into(opts, &mut published).map(|()| published)
}

/// [`run`], each period's summary pushed to `published` as it is published, so that a
/// run failing in a later period still tells which periods it published.
pub fn run_into(opts: RunOptions, published: &mut Vec<RunSummary>) -> Result<()> {
    let inputs = input::resolve_inputs(&opts.inputs)?;
    let job = opts.job.info().name;
    refuse_writing_inputs(&opts, &inputs)?;
    if is_stream(&inputs) && opts.plans.len() > periods_per_read(&opts) {
        return Err(stream_backfill_error(&opts));
    }
    if opts.dry_run {
        return print_dry_run(&opts, &inputs).map_err(Error::stdout);
    }
    // Tried once first, so that a run that has to wait says so (and whom it waits for).
    let _lock = match (opts.wait, opts.output.lock(job, None)) {
        (Some(wait), Err(Error::Locked { holder, .. })) => {
            let secs = wait.as_secs();
            opts.log.info("waiting", json!({ "holder": holder, "wait_secs": secs }), || {
                format!("mrpipe {job}: waiting up to {secs}s for the lock held by {holder}")
            });
            opts.output.lock(job, Some(wait))?
        }
        (_, taken) => taken?,
    };
    let mut builder = rayon::ThreadPoolBuilder::new().stack_size(engine::WORKER_STACK_BYTES);
    if let Some(n) = opts.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build().map_err(|e| Error::sink("thread pool", e))?;
    for plan in &opts.plans {
        for table in opts.job.info().outputs {
            opts.output.check_shape(table.name, plan.period().as_ref())?;
        }
    }
    let log = &opts.log;
    log.info("start", json!({ "version": env!("CARGO_PKG_VERSION"), "output": opts.output.to_string() }), String::new);
    for input in &inputs {
        log.info("input", json!({ "path": input.display_name() }), String::new);
    }
    // Skipped periods are decided first, each input hashed once for all of them.
    let mut digests = HashMap::new();
    let mut todo = Vec::with_capacity(opts.plans.len());
    for plan in &opts.plans {
        let period = plan.period();
        if opts.skip_unchanged
            && let Some(finished) = unchanged_since(&opts, plan.as_ref(), &inputs, period.as_ref(), &mut digests)?
        {
            let unit = Unit { job, period: period.as_ref() }.name();
            log.info(
                "skipped",
                json!({ "period": period.as_ref().map(|p| &p.label), "unchanged_since": finished }),
                || format!("mrpipe {unit}: skipped, inputs and parameters unchanged since {finished}"),
            );
            continue;
        }
        todo.push(plan.as_ref());
    }
    for group in todo.chunks(periods_per_read(&opts)) {
        pool.install(|| run_periods(&opts, group, &inputs, published))?;
    }
    Ok(())
}

/// Most periods of a backfill computed over one read of the inputs ([`Plan::run_with`]):
/// their groups and tables are in memory at once, so there is a bound.
pub const PERIODS_PER_READ: usize = 32;

/// How many periods may share one read: with the native engine and no
/// `--memory-limit`, [`PERIODS_PER_READ`]; otherwise each period reads on its own.
fn periods_per_read(opts: &RunOptions) -> usize {
    match (opts.engine, opts.memory_limit) {
        (Engine::Native, None) => PERIODS_PER_READ,
        _ => 1,
    }
}

/// Whether an input can be read only once (stdin, a pipe).
fn is_stream(inputs: &[InputFile]) -> bool {
    inputs.iter().any(|f| matches!(f.encoding, Encoding::Stdin | Encoding::Stream))
}

/// A backfill from a stream must compute every period from its one read.
fn stream_backfill_error(opts: &RunOptions) -> Error {
    Error::Usage(format!(
        "a backfill of {} periods from stdin or a pipe needs the native engine, a built-in job, no --memory-limit \
         and at most {PERIODS_PER_READ} periods (a stream can be read only once); give the input as files",
        opts.plans.len()
    ))
}

/// Runs a group of periods and publishes each in order, pushing its summary to
/// `published`: over one read when the plans share it ([`Plan::run_with`]), else one
/// read per period. A period of a shared read that fails to compute (an overflow, say)
/// fails the whole group before any of it is published.
fn run_periods(
    opts: &RunOptions,
    plans: &[&dyn Plan],
    inputs: &[InputFile],
    published: &mut Vec<RunSummary>,
) -> Result<()> {
    if let [first, rest @ ..] = plans
        && !rest.is_empty()
    {
        let started = Instant::now();
        let ctx = context(opts, inputs);
        if let Some(outputs) = first.run_with(rest, &ctx) {
            ctx.progress.finish();
            let outputs = outputs?;
            if outputs.len() != plans.len() {
                let message = format!("{} outputs for {} periods", outputs.len(), plans.len());
                return Err(Error::Job { job: "run", message });
            }
            for (plan, output) in plans.iter().zip(outputs) {
                published.push(publish(opts, *plan, &ctx, output, started)?);
            }
            return Ok(());
        }
        if is_stream(inputs) {
            return Err(stream_backfill_error(opts));
        }
    }
    for plan in plans {
        published.push(run_period(opts, *plan, inputs)?);
    }
    Ok(())
}

/// The context of one read of the inputs.
fn context(opts: &RunOptions, inputs: &[InputFile]) -> RunContext {
    RunContext {
        progress: Progress::new(read::plain_size(inputs), opts.log.shows_info()),
        temp_dir: opts.output.scratch_dir(),
        memory_limit: opts.memory_limit,
        read: ReadLimits { max_line_bytes: opts.max_line_bytes, stop_after_bad: opts.budget.stop_after() },
        inputs: inputs.to_vec(),
        cluster: opts.cluster.clone(),
    }
}

/// Runs one period on its own read and publishes it.
fn run_period(opts: &RunOptions, plan: &dyn Plan, inputs: &[InputFile]) -> Result<RunSummary> {
    let started = Instant::now();
    let ctx = context(opts, inputs);
    let output = match opts.engine {
        Engine::Native => plan.run(&ctx),
        Engine::Datafusion => plan.twin().and_then(|twin| engine::datafusion::run_twin(twin, &ctx)),
        Engine::Ballista => plan.twin().and_then(|twin| engine::ballista::run_twin(twin, &ctx, ctx.cluster.as_deref())),
    };
    ctx.progress.finish();
    publish(opts, plan, &ctx, output?, started)
}

/// Publishes one period's output: rejects file, bad-line budget, tables, notification,
/// then the commit with its manifest.
fn publish(
    opts: &RunOptions,
    plan: &dyn Plan,
    ctx: &RunContext,
    output: crate::engine::JobOutput,
    started: Instant,
) -> Result<RunSummary> {
    let period = plan.period();
    let period = period.as_ref();
    let unit = Unit { job: opts.job.info().name, period };
    let log = &opts.log;
    for warning in &output.warnings {
        log.warning(warning);
    }
    let stats = output.read.stats;
    let rejects = opts.rejects.clone().unwrap_or_else(|| opts.output.default_rejects(unit));
    quarantine::write_rejects(&rejects, &output.read, &ctx.inputs)?;
    if stats.bad > 0 {
        let allowed = opts.budget.allowed(stats.lines);
        // No budget is `null`, not the largest integer.
        let allowed = (allowed != u64::MAX).then_some(allowed);
        log.info("bad_lines", json!({ "bad": stats.bad, "allowed": allowed, "rejects": rejects }), String::new);
    }
    opts.budget.check(&output.read, &ctx.inputs)?;

    // The notified table's rows published before this run, to tell the new ones.
    let notified = match &opts.notify {
        Some(_) => opts.job.info().outputs.iter().copied().find(|t| !t.notify_key.is_empty()),
        None => None,
    };
    let previous = notified.map(|spec| notify::published_keys(opts.output.as_ref(), spec, period)).transpose()?;
    let mut current = Vec::new();
    let mut publication = opts.output.open(unit, output.tables.len())?;
    let mut written = Vec::with_capacity(output.tables.len());
    for mut table in output.tables {
        let name = table.name;
        if notified.is_some_and(|spec| spec.name == name) {
            // Notified rows are few: keep them to compare with what was published before.
            let batches: Vec<RecordBatch> = table.batches.collect::<Result<_>>()?;
            current = notify::rows(&batches, name)?;
            table.batches = Box::new(batches.into_iter().map(Ok));
        }
        written.push((name, publication.write_table(table)?));
    }
    let manifest = build_manifest(opts, plan, ctx, &output.read, &written, started)?;
    // Delivered before the commit: a run that fails or is killed after delivering has
    // published nothing, so the next run delivers the same rows again (at least once);
    // delivering after the commit could lose them for good.
    if let (Some(target), Some(spec), Some(previous)) = (&opts.notify, notified, &previous) {
        let sent = notify::notify_new(target, spec, &current, previous)?;
        log.info("notified", json!({ "alerts": sent }), String::new);
    }
    publication.commit(&manifest)?;
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
    log.info("summary", summary.to_json(), || summary.line(&unit.name()));
    Ok(summary)
}

/// Refuses a run whose table, manifest or rejects file would replace one of its inputs,
/// and a metrics file that is an input or one of those (compared by canonical path, so
/// any spelling of the same file is caught).
fn refuse_writing_inputs(opts: &RunOptions, inputs: &[InputFile]) -> Result<()> {
    // A directory not made yet (the first run's output) is compared by absolute path.
    let canonical = |p: &std::path::Path| -> Option<PathBuf> {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let dir = std::fs::canonicalize(dir).or_else(|_| std::path::absolute(dir)).ok()?;
        Some(dir.join(p.file_name()?))
    };
    let read: Vec<PathBuf> = inputs.iter().filter_map(|f| std::fs::canonicalize(&f.path).ok()).collect();
    let job = opts.job.info();
    let metrics = opts.metrics_file.as_deref().map(|m| (m, canonical(m)));
    if let Some((path, Some(c))) = &metrics
        && read.contains(c)
    {
        return Err(Error::BadMetricsFile(format!("--metrics-file '{}' is an input of this run", path.display())));
    }
    for plan in &opts.plans {
        let period = plan.period();
        let unit = Unit { job: job.name, period: period.as_ref() };
        let mut written: Vec<String> =
            job.outputs.iter().map(|t| opts.output.table_location(t.name, period.as_ref())).collect();
        written.extend(opts.output.manifest_location(unit));
        written.push(opts.rejects.clone().unwrap_or_else(|| opts.output.default_rejects(unit)).display().to_string());
        for path in written {
            let written = canonical(std::path::Path::new(&path));
            if written.as_ref().is_some_and(|c| read.contains(c)) {
                return Err(Error::Usage(format!("'{path}' is an input of this run; it would be overwritten")));
            }
            if let Some((_, Some(m))) = &metrics
                && written.as_ref() == Some(m)
            {
                return Err(Error::BadMetricsFile(format!(
                    "--metrics-file '{path}' is also written by the run itself"
                )));
            }
        }
    }
    Ok(())
}

/// When `--skip-unchanged` may skip a period: its last manifest names the same mrpipe
/// version, arguments, output, inputs and side files (by hash), and its published
/// tables are still as written. Returns when that run finished.
fn unchanged_since(
    opts: &RunOptions,
    plan: &dyn Plan,
    inputs: &[InputFile],
    period: Option<&Period>,
    digests: &mut HashMap<PathBuf, String>,
) -> Result<Option<String>> {
    let job = opts.job.info();
    // A manifest that cannot be read is no proof of anything: run.
    let Ok(Some(previous)) = opts.output.last_manifest(job.name, Recorded::Unit(period)) else { return Ok(None) };
    let same_setup = previous.mrpipe_version == env!("CARGO_PKG_VERSION")
        && previous.params == plan.values().to_json(job.params)
        && previous.output == opts.output.to_string()
        && previous.max_line_bytes == opts.max_line_bytes as u64
        // Its bad lines must pass this run's budget, or skipping would hide a failure.
        && previous.lines.bad <= opts.budget.allowed(previous.lines.read)
        && previous.inputs.len() == inputs.len()
        && previous.side_files.len() == plan.side_files().len();
    if !same_setup || inputs.iter().any(|f| matches!(f.encoding, Encoding::Stdin | Encoding::Stream)) {
        return Ok(None);
    }
    let files = inputs.iter().map(|f| f.path.clone()).chain(plan.side_files());
    for (recorded, path) in previous.inputs.iter().chain(&previous.side_files).zip(files) {
        if recorded.path != input::path_text(&path) {
            return Ok(None);
        }
        let blake3 = match digests.get(&path) {
            Some(blake3) => blake3,
            // An object whose ETag and size are those recorded is not downloaded again.
            None if recorded.etag.is_some() && same_object(&path, recorded) => {
                digests.entry(path.clone()).or_insert(recorded.blake3.clone())
            }
            None => digests.entry(path.clone()).or_insert(manifest::digest_file(&path)?.blake3),
        };
        if *blake3 != recorded.blake3 {
            return Ok(None);
        }
    }
    for table in &previous.tables {
        let Some(spec) = output_spec(job.outputs, &table.name) else { return Ok(None) };
        if opts.output.published_hash(spec, Slice::of(table))?.as_ref() != Some(&table.blake3) {
            return Ok(None);
        }
    }
    Ok(Some(previous.finished))
}

/// Whether the object at `path` still has the ETag and size `recorded` lists.
fn same_object(path: &Path, recorded: &FileDigest) -> bool {
    let meta = path.to_str().filter(|_| read::object::is_object(path)).map(read::object::meta);
    meta.is_some_and(|m| m.is_ok_and(|m| m.e_tag == recorded.etag && m.size == recorded.size))
}

/// The layout of the output table `name` among a job's `outputs`.
pub fn output_spec(outputs: &[&'static TableSpec], name: &str) -> Option<&'static TableSpec> {
    outputs.iter().copied().find(|t| t.name == name)
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
        let size = match (f.encoding, f.size()) {
            (Encoding::Plain | Encoding::Gzip | Encoding::Zstd, Ok(n)) => format!("{n} bytes"),
            _ => "stream".to_string(),
        };
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
        if let Some(path) = opts.output.manifest_location(Unit { job, period: period.as_ref() }) {
            writeln!(out, "  manifest -> {path}")?;
        }
        let params = serde_json::Value::Object(plan.values().to_json(opts.job.info().params));
        writeln!(out, "  parameters: {params}")?;
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
        job_file: opts.job.source().map(input::path_text),
        period: plan.period().map(|p| p.label),
        engine: opts.engine.name().to_string(),
        params: plan.values().to_json(opts.job.info().params),
        args: None,
        output: opts.output.to_string(),
        bad_line_budget: opts.budget.spelling(),
        max_line_bytes: opts.max_line_bytes as u64,
        inputs: ctx
            .inputs
            .iter()
            .zip(&read.digests)
            .map(|(f, d)| FileDigest { path: f.display_name(), size: d.size, blake3: d.blake3.clone(), etag: f.etag() })
            .collect(),
        side_files,
        lines: read.stats.into(),
        tables: written.iter().map(|(name, w)| w.digest(name)).collect(),
        started: stamp(began),
        finished: stamp(now),
        duration_secs: elapsed.as_secs_f64(),
    })
}
