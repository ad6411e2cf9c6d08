//! `--metrics-file PATH`: a run's outcome as Prometheus text-format metrics, written
//! atomically after every run, failed ones included, for node_exporter's textfile
//! collector (which reads `*.prom` files of one directory; the exposition format is
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>).
//!
//! Every metric has `job` and `output` labels. The last success time survives failed
//! runs: it is carried over from the file the previous run wrote, so an alert can fire
//! on "no success for 2 hours" however the runs in between ended. The file must be a
//! regular file that mrpipe wrote, or absent: anything else (an input, a link to
//! `/dev/stdout`, a pipe) is refused before the run, never read or replaced.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::run::RunSummary;
use crate::sink::atomic::write_staged;

/// What the metrics of one run are made from.
pub struct RunMetrics<'a> {
    /// The job's name (`sales-rank`, or a SQL job's).
    pub job: &'a str,
    /// The output as shown in manifests (no password).
    pub output: &'a str,
    /// The process's exit code (0 success; see `mrpipe --help`).
    pub exit_code: u8,
    /// When the run ended.
    pub ended: SystemTime,
    /// Wall time of the whole run, periods and skipped ones included.
    pub duration: Duration,
    /// The periods published (empty when the run failed, or skipped every period).
    pub published: &'a [RunSummary],
}

const LAST_SUCCESS: &str = "mrpipe_last_success_timestamp_seconds";

/// How a file this module wrote begins.
const WRITTEN_BY_MRPIPE: &str = "# HELP mrpipe_";

/// Most bytes of a previous metrics file read back (a few hundred are written).
const MAX_PREVIOUS_BYTES: u64 = 1 << 20;

/// Checks that `path` may be written as a metrics file: absent, or a regular file
/// (not a link, device, pipe or directory) that mrpipe wrote (an empty file may be an
/// input, and is refused too).
/// Returns its text. Errors: [`Error::BadMetricsFile`], or the file cannot be read.
pub fn check(path: &Path) -> Result<String> {
    let refuse = |why: &str| Error::BadMetricsFile(format!("--metrics-file {}: {why}; not written", path.display()));
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !meta.is_file() {
        return Err(refuse("not a regular file (a link, device, pipe or directory)"));
    }
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Bounded: a file that is not ours may be anything, of any size.
    let read = file.take(MAX_PREVIOUS_BYTES).read_to_string(&mut text);
    if read.is_err() || !text.starts_with(WRITTEN_BY_MRPIPE) {
        return Err(refuse("exists and is not an mrpipe metrics file"));
    }
    Ok(text)
}

/// Writes the run's metrics to `path`, replacing the file atomically (a collector
/// never reads half a file). Errors: the file may not be written ([`check`]) or
/// cannot be.
pub fn write(path: &Path, run: &RunMetrics<'_>) -> Result<()> {
    let previous = last_success(&check(path)?, run.job, run.output);
    let text = render(run, previous);
    let write =
        |w: &mut crate::sink::atomic::StagedWriter| w.write_all(text.as_bytes()).map_err(|e| Error::io(path, e));
    write_staged(path, write)?.0.publish()
}

/// The metrics text. `previous_success` is the last success time the previous file
/// recorded, kept when this run failed.
fn render(run: &RunMetrics<'_>, previous_success: Option<f64>) -> String {
    let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let job = format!("job=\"{}\",output=\"{}\"", label_value(run.job), label_value(run.output));
    let success = match run.exit_code {
        0 => Some(seconds(run.ended)),
        _ => previous_success,
    };
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let one = |value: String| vec![(job.clone(), value)];
    metric(
        "mrpipe_run_exit_code",
        "Exit code of the job's last run: 0 success, 1 failure, 2 usage, 3 bad-line budget, 4 locked, 5 no input.",
        &one(run.exit_code.to_string()),
    );
    metric(
        "mrpipe_run_timestamp_seconds",
        "When the job's last run ended, in Unix seconds.",
        &one(format!("{:.3}", seconds(run.ended))),
    );
    metric(
        "mrpipe_run_duration_seconds",
        "Wall time of the job's last run, in seconds.",
        &one(format!("{:.3}", run.duration.as_secs_f64())),
    );
    metric(
        LAST_SUCCESS,
        "When a run of the job last succeeded, in Unix seconds (0: none recorded in this file).",
        &one(format!("{:.3}", success.unwrap_or(0.0))),
    );
    metric(
        "mrpipe_run_periods_published",
        "Periods the job's last run published (1 for a run without periods; 0 when it failed or skipped all).",
        &one(run.published.len().to_string()),
    );
    // Every period reads all the inputs, so each has the inputs' counts: take the last.
    let lines = run.published.last().map(|s| s.stats);
    let kinds = lines.map_or(Vec::new(), |lines| {
        vec![
            ("read", lines.lines),
            ("good", lines.good),
            ("bad", lines.bad),
            ("empty", lines.empty),
            ("header", lines.headers),
        ]
    });
    let samples: Vec<(String, String)> =
        kinds.iter().map(|(kind, n)| (format!("{job},kind=\"{kind}\""), n.to_string())).collect();
    metric(
        "mrpipe_run_lines",
        "Lines in the inputs of the job's last run, by kind (none when it published nothing).",
        &samples,
    );
    let mut rows: Vec<(&str, u64)> = Vec::new();
    for (table, n) in run.published.iter().flat_map(|s| &s.tables) {
        match rows.iter_mut().find(|(t, _)| t == table) {
            Some((_, total)) => *total += n,
            None => rows.push((table, *n)),
        }
    }
    let samples: Vec<(String, String)> =
        rows.iter().map(|(table, n)| (format!("{job},table=\"{}\"", label_value(table)), n.to_string())).collect();
    metric("mrpipe_run_rows", "Rows the job's last run published per table, summed over its periods.", &samples);
    out
}

/// A label value escaped as the text format requires: `\`, `"` and line feeds.
fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The last success time of `job` to `output` in a metrics file this module wrote.
fn last_success(text: &str, job: &str, output: &str) -> Option<f64> {
    let prefix = format!("{LAST_SUCCESS}{{job=\"{}\",output=\"{}\"}} ", label_value(job), label_value(output));
    let value: f64 = text.lines().find_map(|line| line.strip_prefix(&prefix))?.trim().parse().ok()?;
    (value.is_finite() && value > 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed<'a>(job: &'a str, code: u8) -> RunMetrics<'a> {
        RunMetrics {
            job,
            output: "out/",
            exit_code: code,
            ended: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            duration: Duration::from_millis(1500),
            published: &[],
        }
    }

    #[test]
    fn a_failed_run_keeps_the_last_success_and_says_its_code() {
        let text = render(&failed("sales-rank", 3), Some(1_900_000_000.5));
        let labels = r#"{job="sales-rank",output="out/"}"#;
        assert!(text.contains(&format!("mrpipe_run_exit_code{labels} 3\n")), "{text}");
        assert!(text.contains(&format!("mrpipe_last_success_timestamp_seconds{labels} 1900000000.500\n")));
        assert!(text.contains(&format!("mrpipe_run_duration_seconds{labels} 1.500\n")));
        assert!(!text.contains("mrpipe_run_lines{"), "no lines without a published period: {text}");
        assert_eq!(last_success(&text, "sales-rank", "out/"), Some(1_900_000_000.5));
        assert_eq!(last_success(&text, "spending", "out/"), None, "another job's success is not this one's");
        assert_eq!(last_success(&text, "sales-rank", "other/"), None, "nor another output's");
        let succeeded = render(&failed("sales-rank", 0), Some(1.0));
        assert_eq!(last_success(&succeeded, "sales-rank", "out/"), Some(2_000_000_000.0));
    }

    #[test]
    fn every_sample_line_is_in_the_text_format() {
        let text = render(&failed("we\"ird\\job\nname", 1), None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("mrpipe_") && series.ends_with('}'), "{line}");
            assert!(!series.contains('\n'));
        }
        assert!(text.contains(r#"job="we\"ird\\job\nname""#), "{text}");
        assert!(text.starts_with(WRITTEN_BY_MRPIPE));
        assert_eq!(last_success(&text, "we\"ird\\job\nname", "out/"), None, "0 is no success");
    }

    #[test]
    fn only_an_absent_or_mrpipe_written_regular_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        assert_eq!(check(&path).unwrap(), "", "absent");
        write(&path, &failed("hit-counts", 0)).unwrap();
        assert!(check(&path).unwrap().starts_with(WRITTEN_BY_MRPIPE));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(check(&path), Err(Error::BadMetricsFile(_))), "an empty file may be an input");
        write(&path, &failed("hit-counts", 0)).unwrap_err();
        let input = dir.path().join("access.tsv");
        std::fs::write(&input, "timestamp\tclient_ip\n").unwrap();
        let link = dir.path().join("out.prom");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        for refused in [input.as_path(), link.as_path(), dir.path(), Path::new("/dev/null")] {
            let err = write(refused, &failed("hit-counts", 0)).unwrap_err();
            assert!(matches!(err, Error::BadMetricsFile(_)), "{}: {err}", refused.display());
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "timestamp\tclient_ip\n", "an input is never replaced");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "nor a link");
    }
}
