//! A test helper for job authors, in the manner of mrjob's `run_job` and DataFusion's
//! in-memory tables: run a job in-process on a few inline lines and get its tables as
//! TSV, checked to be the same on one thread as on several (so one partition and many,
//! one chunk and many), which is what a job's combiner and final step must guarantee.
//!
//! ```no_run
//! let job = mrpipe::jobs::find("hit-counts").unwrap();
//! let tables = mrpipe::testing::run_job(job, &["--strip-query"], "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x?a=1\t200\t5\n").unwrap();
//! assert_eq!(tables[0].1, "month\turl\thits\n2026-11\t/x\t1\n");
//! ```

use std::io::Write as _;

use crate::error::{Error, Result};
use crate::job::{Job, RunContext};
use crate::progress::Progress;
use crate::read::input::resolve_inputs;
use crate::sink::text::write_tsv;

/// A published table: its name (with `@<period>` for one period of a split run) and
/// its rows as TSV with a header line.
pub type TableText = (String, String);

/// Thread counts and memory limits (bytes) every run is repeated with; the results
/// must agree. The last one is so small that every group and every sorted row spills.
const RUNS: [(usize, Option<u64>); 3] = [(1, None), (4, None), (2, Some(1))];

/// Runs `job` with its own options `args` (e.g. `["--top", "3"]`) over `input`, the
/// text of one input file, once per configuration in `RUNS`; returns the tables of
/// every period in order. Bad lines are counted and quarantined as in a run, not
/// fatal. An error when the runs disagree, naming the table.
pub fn run_job(job: &dyn Job, args: &[&str], input: &str) -> Result<Vec<TableText>> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("input");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(input.as_bytes())).map_err(|e| Error::io(&path, e))?;
    let inputs = resolve_inputs(std::slice::from_ref(&path))?;
    let matches = job
        .augment(clap::Command::new(job.info().name).no_binary_name(true))
        .try_get_matches_from(args)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let mut results: Vec<Vec<TableText>> = Vec::new();
    for (threads, memory_limit) in RUNS {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .stack_size(crate::engine::WORKER_STACK_BYTES)
            .build()
            .map_err(|e| Error::sink("thread pool", e))?;
        // DataFusion needs a few MiB of working memory: a SQL job spills under a tiny
        // limit only by failing, so it runs unbounded there.
        let memory_limit = memory_limit.filter(|_| job.source().is_none());
        let mut tables = Vec::new();
        for plan in job.configure_from(&matches)? {
            let ctx = RunContext {
                inputs: inputs.clone(),
                progress: Progress::hidden(),
                temp_dir: dir.path().into(),
                memory_limit,
                read: crate::read::ReadLimits::default(),
                cluster: None,
            };
            let output = pool.install(|| plan.run(&ctx))?;
            let period = plan.period().map(|p| format!("@{}", p.label)).unwrap_or_default();
            for table in output.tables {
                let name = format!("{}{period}", table.name);
                let mut text = Vec::new();
                write_tsv(&mut text, table, &|e| Error::sink(&name, e))?;
                tables.push((name, String::from_utf8_lossy(&text).into_owned()));
            }
        }
        results.push(tables);
    }
    let first = results.swap_remove(0);
    for (other, (threads, limit)) in results.iter().zip(&RUNS[1..]) {
        let how = match limit {
            Some(bytes) => format!("{threads} threads spilling at {bytes} bytes"),
            None => format!("{threads} threads"),
        };
        if let Some(((name, one), (_, many))) = first.iter().zip(other).find(|(a, b)| a != b) {
            return Err(Error::Verify(format!(
                "{name}: 1 thread and {how} disagree\n--- 1 thread ---\n{one}--- {how} ---\n{many}"
            )));
        }
        if other.len() != first.len() {
            return Err(Error::Verify(format!("1 thread and {how} published different tables")));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str = "timestamp\tclient_ip\tmethod\turl\tstatus\tbytes\n\
                          2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x?a=1\t200\t5\n\
                          2026-11-21T00:00:00Z\t1.2.3.5\tGET\t/x\t200\t5\n\
                          2026-10-31T23:59:59Z\t1.2.3.5\tGET\t/y\t404\t0\n\
                          not a line\n";

    #[test]
    fn a_built_in_job_on_inline_lines() {
        let job = crate::jobs::find("hit-counts").unwrap();
        let tables = run_job(job, &["--strip-query"], ACCESS).unwrap();
        assert_eq!(tables, vec![("hit_counts".into(), "month\turl\thits\n2026-10\t/y\t1\n2026-11\t/x\t2\n".into())]);
        let months = run_job(job, &["--from", "2026-10", "--to", "2026-11"], ACCESS).unwrap();
        let names: Vec<&str> = months.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["hit_counts@2026-10", "hit_counts@2026-11"]);
    }

    #[test]
    fn a_sql_job_on_inline_lines() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs/top-pages.sql");
        let job = crate::jobs::load_sql(&path).unwrap();
        let clf = "1.2.3.4 - - [20/Nov/2026:13:45:12 +0000] \"GET /a HTTP/1.1\" 200 5\n\
                   1.2.3.4 - - [20/Nov/2026:13:45:13 +0000] \"GET /b HTTP/1.1\" 200 5\n\
                   1.2.3.4 - - [20/Nov/2026:13:45:14 +0000] \"GET /b HTTP/1.1\" 200 5\n";
        let tables = run_job(job, &["--top", "1"], clf).unwrap();
        assert_eq!(tables, vec![("top_pages".into(), "month\turl\thits\n2026-11\t/b\t2\n".into())]);
    }
}
