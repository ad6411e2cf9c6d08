//! End-to-end tests of `--metrics-file`: Prometheus text-format metrics after every
//! run, failed ones included, with the last success carried across failures; never
//! written where it may not be.

mod common;

use common::*;

/// The value of the sample of metric `name` whose labels include `label` (`""` for
/// any) in a metrics file.
fn sample_value(text: &str, name: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{job=")) && l.contains(label))
        .unwrap_or_else(|| panic!("{name} {label}:\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn metrics_say_each_runs_outcome_and_keep_the_last_success_across_failures() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("metrics/sales-rank.prom");
    let p = prom.display().to_string();
    let out = dir.path().join("out").display().to_string();
    let run = ["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "--metrics-file", &p];
    assert!(run_ok(&run).is_empty());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample_value(&text, "mrpipe_run_exit_code", &format!(r#"job="sales-rank",output="{out}"#)), 0.0);
    let rows = expected_rows("sales_rank.tsv").len() as f64;
    assert_eq!(sample_value(&text, "mrpipe_run_rows", r#"table="sales_rank""#), rows);
    let lines = sample_value(&text, "mrpipe_run_lines", r#"kind="read""#);
    let good = sample_value(&text, "mrpipe_run_lines", r#"kind="good""#);
    assert!(lines > good && good > 0.0, "{text}");
    let success = sample_value(&text, "mrpipe_last_success_timestamp_seconds", "");
    let ended = sample_value(&text, "mrpipe_run_timestamp_seconds", "");
    assert!(success > 1.7e9 && success == ended, "{text}");
    // Every line is a comment or `name{labels} value`, as the textfile collector reads them.
    for line in text.lines().filter(|l| !l.starts_with("# HELP ") && !l.starts_with("# TYPE ")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("mrpipe_") && series.contains('{') && series.ends_with('}'), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // A failed run (the sample has bad lines; --strict allows none): its exit code,
    // nothing published, the last success kept.
    let failed = mrpipe(&[&run[..], &["--strict"]].concat());
    assert_eq!(failed.status.code(), Some(3), "{}", String::from_utf8_lossy(&failed.stderr));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample_value(&text, "mrpipe_run_exit_code", ""), 3.0);
    assert_eq!(sample_value(&text, "mrpipe_run_periods_published", ""), 0.0);
    assert_eq!(sample_value(&text, "mrpipe_last_success_timestamp_seconds", ""), success);
    assert!(sample_value(&text, "mrpipe_run_timestamp_seconds", "") > success, "{text}");
    assert!(!text.contains("mrpipe_run_rows{"), "a failed run published no rows: {text}");
    // A run refused while its options are checked says so too (exit 2).
    let backwards = ["--from", "2026-11", "--to", "2026-09"];
    let refused = mrpipe(
        &[&["run", "hit-counts", &sample("access/tsv")][..], &backwards, &["-o", &out, "--metrics-file", &p]].concat(),
    );
    assert_eq!(refused.status.code(), Some(2));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample_value(&text, "mrpipe_run_exit_code", r#"job="hit-counts""#), 2.0);
    // A dry run touches nothing, the metrics file included.
    let before = std::fs::read_to_string(&prom).unwrap();
    run_ok(&[&run[..], &["--dry-run"]].concat());
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), before);
    // No temporary file is left where the collector would read it.
    assert_eq!(entries(&dir.path().join("metrics")), ["sales-rank.prom"]);
}

#[test]
fn metrics_are_never_written_over_an_input_an_output_or_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("urls.txt");
    std::fs::copy(sample("urls/links_to_crawl.txt"), &input).unwrap();
    let i = input.display().to_string();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    let link = dir.path().join("stdout.prom");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let manifest = out.join("_url-dedup.manifest.json").display().to_string();
    for metrics in [i.clone(), manifest, link.display().to_string(), "/dev/null".to_string()] {
        let res = mrpipe(&["run", "url-dedup", &i, "-o", &o, "--metrics-file", &metrics]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{metrics}: {err}");
        assert!(err.contains("--metrics-file"), "{err}");
    }
    assert_eq!(bytes(&input), bytes(sample("urls/links_to_crawl.txt")), "the input is intact");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is intact");
    assert!(!out.exists(), "nothing was run");
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
