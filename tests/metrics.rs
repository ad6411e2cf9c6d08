//! End-to-end tests of `--metrics-file`: Prometheus text-format metrics after every
//! run, failed ones included, with the last success carried across failures.

mod common;

use common::*;

/// The value of the sample `series` (name and labels as written) in a metrics file.
fn sample_value(text: &str, series: &str) -> f64 {
    let line =
        text.lines().find(|l| l.starts_with(&format!("{series} "))).unwrap_or_else(|| panic!("{series}:\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn metrics_say_each_runs_outcome_and_keep_the_last_success_across_failures() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("metrics/sales-rank.prom");
    let p = prom.display().to_string();
    let out = dir.path().join("out").display().to_string();
    let ok =
        run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "--metrics-file", &p]);
    assert!(ok.is_empty());
    let text = std::fs::read_to_string(&prom).unwrap();
    let job = r#"job="sales-rank""#;
    assert_eq!(sample_value(&text, &format!("mrpipe_run_exit_code{{{job}}}")), 0.0);
    let rows = expected_rows("sales_rank.tsv").len() as f64;
    assert_eq!(sample_value(&text, &format!(r#"mrpipe_run_rows{{{job},table="sales_rank"}}"#)), rows);
    let lines = sample_value(&text, &format!(r#"mrpipe_run_lines{{{job},kind="read"}}"#));
    let good = sample_value(&text, &format!(r#"mrpipe_run_lines{{{job},kind="good"}}"#));
    assert!(lines > good && good > 0.0, "{text}");
    let success = sample_value(&text, &format!("mrpipe_last_success_timestamp_seconds{{{job}}}"));
    let ended = sample_value(&text, &format!("mrpipe_run_timestamp_seconds{{{job}}}"));
    assert!(success > 1.7e9 && success == ended, "{text}");
    // Every line is a comment or `name{labels} value`, as the textfile collector reads them.
    for line in text.lines().filter(|l| !l.starts_with("# HELP ") && !l.starts_with("# TYPE ")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("mrpipe_") && series.contains('{') && series.ends_with('}'), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // A failed run (the sample has bad lines; --strict allows none): its exit code,
    // nothing published, the last success kept.
    let failed = mrpipe(&[
        "run",
        "sales-rank",
        &sample("sales"),
        "--as-of",
        "2026-11-23",
        "-o",
        &out,
        "--strict",
        "--metrics-file",
        &p,
    ]);
    assert_eq!(failed.status.code(), Some(3), "{}", String::from_utf8_lossy(&failed.stderr));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample_value(&text, &format!("mrpipe_run_exit_code{{{job}}}")), 3.0);
    assert_eq!(sample_value(&text, &format!("mrpipe_run_periods_published{{{job}}}")), 0.0);
    assert_eq!(sample_value(&text, &format!("mrpipe_last_success_timestamp_seconds{{{job}}}")), success);
    assert!(sample_value(&text, &format!("mrpipe_run_timestamp_seconds{{{job}}}")) > success, "{text}");
    assert!(!text.contains("mrpipe_run_rows{"), "a failed run published no rows: {text}");
    // No temporary file is left where the collector would read it.
    assert_eq!(entries(&dir.path().join("metrics")), ["sales-rank.prom"]);
}

#[test]
fn metrics_that_cannot_be_written_fail_the_run_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let p = blocker.join("m.prom").display().to_string();
    let out = dir.path().join("out").display().to_string();
    let res = mrpipe(&["run", "url-dedup", &sample("urls"), "-o", &out, "--metrics-file", &p, "-q"]);
    assert_eq!(res.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("metrics not written"),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}
