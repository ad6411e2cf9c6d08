//! `mrpipe verify`: proves a published result reproducible. Takes a manifest file, or
//! an output and a job, whose newest recorded run the output's [`Target`] finds (in
//! `mrpipe_runs` for a database, among the manifest files for a directory). Checks
//! that the inputs and side files still have the manifest's hashes, re-runs the job
//! with the manifest's arguments and engine into a temporary output of the same kind
//! (SQLite for a server), checks that the published tables still hold what the run
//! wrote, and compares each table's hash; on a difference it names the first
//! differing table and row.

use std::path::PathBuf;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::jobs;
use crate::log::EventLog;
use crate::manifest::{FileDigest, Manifest, digest_file};
use crate::quarantine::BadLineBudget;
use crate::read::input::text_path;
use crate::run::{self, RunOptions, output_spec};
use crate::sink::{self, Recorded, Slice, Target};

/// What to verify.
pub enum Request {
    /// A manifest file.
    File(PathBuf),
    /// The newest run of `job` recorded at an output.
    Output {
        /// The output.
        output: Box<dyn Target>,
        /// The job's name.
        job: String,
    },
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::File(path) => write!(f, "{}", path.display()),
            Request::Output { output, job } => write!(f, "the last {job} run at {output}"),
        }
    }
}

/// What verification found when the outputs match.
#[derive(Debug)]
pub struct Verified {
    /// Tables compared.
    pub tables: usize,
    /// Rows compared.
    pub rows: u64,
}

/// Re-runs the manifest's job and compares; a difference is `Error::Verify`.
/// `memory_limit` (bytes) bounds the re-run as `--memory-limit` bounds a run.
pub fn verify(request: &Request, memory_limit: Option<u64>) -> Result<Verified> {
    let parsed;
    let (recorded, output): (Manifest, &dyn Target) = match request {
        Request::File(path) => {
            let recorded = Manifest::load(path)?;
            parsed = sink::parse(&recorded.output)?;
            (recorded, parsed.as_ref())
        }
        // The given output, not the recorded one: that has its password hidden.
        Request::Output { output, job } => {
            let recorded = output
                .last_manifest(job, Recorded::Newest)?
                .ok_or_else(|| Error::Usage(format!("{output} has no recorded run of {job}")))?;
            (recorded, output.as_ref())
        }
    };
    if recorded.args.is_some() {
        return Err(Error::Usage(
            "this manifest records its arguments as words (mrpipe 0.1 before typed parameters); run the job again to verify it"
                .into(),
        ));
    }
    for file in recorded.inputs.iter().chain(&recorded.side_files) {
        check_unchanged(file)?;
    }
    // A SQL job is loaded from the file the run used (its hash was checked above).
    let job = match &recorded.job_file {
        Some(file) => jobs::load_sql(&text_path(file))?,
        None => jobs::find(&recorded.job).ok_or_else(|| {
            Error::Usage(format!("the manifest names job '{}', which this mrpipe lacks", recorded.job))
        })?,
    };
    let engine = match recorded.engine.as_str() {
        "native" => Engine::Native,
        "datafusion" => Engine::Datafusion,
        "ballista" => Engine::Ballista,
        other => return Err(Error::Usage(format!("the manifest names engine '{other}', which this mrpipe lacks"))),
    };
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let options = RunOptions {
        job,
        plans: job.configure_from_json(&recorded.params)?,
        engine,
        cluster: None,
        inputs: recorded.inputs.iter().map(|f| text_path(&f.path)).collect(),
        output: output.relocated(dir.path()),
        threads: None,
        memory_limit,
        max_line_bytes: usize::try_from(recorded.max_line_bytes).unwrap_or(usize::MAX),
        rejects: Some(dir.path().join("rejects.tsv")),
        budget: BadLineBudget::Unlimited,
        log: EventLog::silent(&recorded.job),
        wait: None,
        skip_unchanged: false,
        dry_run: false,
        notify: None,
        metrics_file: None,
    };
    // Where the re-run published, to read its rows back.
    let rerun_output = output.relocated(dir.path());
    let rerun = run::run(options)?.pop().ok_or_else(|| Error::Usage("the re-run published nothing".into()))?.manifest;

    let names = |m: &Manifest| m.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(&recorded) != names(&rerun) {
        return Err(Error::Verify(format!(
            "tables differ: published {:?}, re-run {:?}",
            names(&recorded),
            names(&rerun)
        )));
    }
    for (published, again) in recorded.tables.iter().zip(&rerun.tables) {
        let spec = output_spec(job.info().outputs, &published.name)
            .ok_or_else(|| Error::Verify(format!("unknown table {}", published.name)))?;
        let rows = |target: &dyn Target, table| -> Result<Vec<String>> {
            Ok(target.published_rows(spec, Slice::of(table))?.unwrap_or_default())
        };
        let differs = |context: &str| -> Result<Error> {
            let (old, new) = (rows(output, published)?, rows(rerun_output.as_ref(), again)?);
            let diff = describe_difference(&published.name, &old, &new).unwrap_or_else(|| {
                format!(
                    "table {}: the same rows, but different bytes (blake3 {} published, {} re-run)",
                    published.name, published.blake3, again.blake3
                )
            });
            Ok(Error::Verify(format!("{context}{diff}")))
        };
        match output.published_hash(spec, Slice::of(published))? {
            None => {
                return Err(Error::Verify(format!("table {} is missing at {output}", published.name)));
            }
            Some(now) if now != published.blake3 => {
                return Err(differs("the published table was changed after the run; ")?);
            }
            Some(_) => {}
        }
        if published.rows != again.rows || published.blake3 != again.blake3 {
            return Err(differs("")?);
        }
    }
    Ok(Verified { tables: recorded.tables.len(), rows: recorded.tables.iter().map(|t| t.rows).sum() })
}

fn check_unchanged(file: &FileDigest) -> Result<()> {
    if file.path == "-" {
        return Err(Error::Usage("the run read standard input, which cannot be read again".into()));
    }
    if std::fs::metadata(text_path(&file.path)).is_ok_and(|m| !m.is_file()) {
        return Err(Error::Usage(format!("input '{}' is a stream (a pipe), which cannot be read again", file.path)));
    }
    let now = digest_file(&text_path(&file.path))?;
    if now.blake3 != file.blake3 {
        return Err(Error::Verify(format!(
            "input '{}' changed since the run (blake3 {} then, {} now)",
            file.path, file.blake3, now.blake3
        )));
    }
    Ok(())
}

/// Names the first row where a published table and its re-run differ; `None` when
/// their rows are the same.
fn describe_difference(name: &str, old: &[String], new: &[String]) -> Option<String> {
    if let Some(i) = old.iter().zip(new).position(|(a, b)| a != b) {
        return Some(format!(
            "table {name} differs at row {}: published '{}', re-run '{}'",
            i + 1,
            old[i].trim_end(),
            new[i].trim_end()
        ));
    }
    (old.len() != new.len()).then(|| format!("table {name}: published {} rows, re-run {} rows", old.len(), new.len()))
}
