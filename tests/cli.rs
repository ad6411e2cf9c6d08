//! End-to-end tests of what every job shares on the command line: run locks (exit 4,
//! `--wait`), quiet cron runs and JSON logs, completions, man page and help.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn overlapping_runs_are_refused_or_wait() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let holder = start_stdin_run(&out);
    let lock = dir.path().join("out/.hit-counts.lock");
    wait_until("the holder's lock file", || std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")));

    let refused = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &out]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("pid {}", holder.id())), "{err}");

    // The same files spelled otherwise are locked too: the lock is what is written.
    let same_file = format!("{}/./out/../out/hit_counts.parquet", dir.path().display());
    let refused = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &same_file]);
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));

    // Another job, or another output, is not blocked.
    run_ok(&["run", "url-dedup", &sample("urls"), "-o", &out]);
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &dir.path().join("other").display().to_string()]);

    // A waiting run says so, then proceeds once the holder finishes: the holder is let
    // go only after the waiter reported that it waits.
    let mut waiter = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "hit-counts", &sample("access/tsv"), "-o", &out, "--wait", "60s", "-v"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting up to 60s for the lock held by pid") {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "the waiter never said it waits: {said}"
        );
        said.push_str(&line);
    }
    finish_stdin_run(holder);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let waited = waiter.wait().unwrap();
    assert!(waited.success(), "{said}{rest}");
    assert_same("after waiting", &expected("hit_counts.tsv"), &run_ok(&["show", &format!("{out}/hit_counts.parquet")]));
}

#[test]
fn cron_runs_are_quiet_and_json_logs_have_one_object_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    // stderr is a pipe here, as under cron: a clean run prints nothing at all.
    let clean = mrpipe(&["run", "url-dedup", &sample("urls/links_to_crawl.txt"), "--rejects", "/dev/null", "-o", &out]);
    assert!(clean.status.success());
    let err = String::from_utf8_lossy(&clean.stderr);
    assert_eq!(err.lines().filter(|l| !l.contains("warning")).count(), 0, "{err}");
    // A device as rejects file is written to, never replaced or removed.
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file(), "/dev/null was replaced by a file");
    let json =
        mrpipe(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "--log-format", "json"]);
    assert!(json.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["start", "input", "input", "bad_lines", "published", "warning", "summary"]);
    assert_eq!(events[6]["good"], 14);
    assert!(events.iter().all(|e| e["job"] == "sales-rank" && e["time"].is_string()));
    let failed = mrpipe(&["run", "sales-rank", &sample("sales"), "-o", &out, "--strict", "--log-format", "json"]);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&failed.stderr).lines().last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["exit_code"].as_u64()), (Some("error"), Some(3)));
}

#[test]
fn completions_man_page_and_help_document_every_option() {
    let bash = run_ok(&["completions", "bash"]);
    assert!(bash.contains("--max-bad-lines") && bash.contains("sales-rank"), "bash completion lacks options");
    let man = run_ok(&["man"]);
    for option in ["as\\-of", "strip\\-query", "memory\\-limit", "budget\\-overrides", "log\\-format", "wait"] {
        assert!(man.contains(&format!("\\-\\-{option}")), "man page lacks --{option}");
    }
    // One page per command, each a whole page naming itself.
    let dir = tempfile::tempdir().unwrap();
    let listed = run_ok(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(listed.lines().count(), entries(dir.path()).len());
    for page in [
        "mrpipe.1",
        "mrpipe-run.1",
        "mrpipe-run-sales-rank.1",
        "mrpipe-run-spending.1",
        "mrpipe-query.1",
        "mrpipe-verify.1",
    ] {
        assert!(entries(dir.path()).contains(&page.to_string()), "{page} missing: {listed}");
    }
    let spending = String::from_utf8(bytes(dir.path().join("mrpipe-run-spending.1"))).unwrap();
    assert!(spending.starts_with(".ie") || spending.contains(".TH"), "{spending}");
    assert!(spending.contains("mrpipe run spending") && spending.contains("budget\\-overrides"), "{spending}");
    let help = run_ok(&["run", "url-dedup", "--help"]);
    assert!(help.starts_with("Distinct or exactly-once URLs"), "{help}");
    assert!(help.contains("Exit codes: 0 success") && help.contains("4 another run holds the lock"), "{help}");
}

#[test]
fn the_json_log_says_null_for_no_bad_line_budget() {
    let bad_lines_event = |budget: &[&str]| {
        let mut args = vec!["run", "hit-counts", "-o", "-", "--rejects", "/dev/null", "--log-format", "json"];
        let input = sample("access/tsv");
        args.push(&input);
        args.extend(budget);
        let err = String::from_utf8_lossy(&mrpipe(&args).stderr).into_owned();
        err.lines().find(|l| l.contains(r#""event":"bad_lines""#)).unwrap_or_else(|| panic!("{err}")).to_string()
    };
    let event = bad_lines_event(&[]);
    assert!(event.contains(r#""allowed":null"#), "{event}");
    let event = bad_lines_event(&["--max-bad-lines", "5"]);
    assert!(event.contains(r#""allowed":5"#), "{event}");
}

#[test]
fn show_limits_rows_prints_the_schema_and_calls_a_missing_file_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "-q"]);
    let file = format!("{out}/sales_rank.parquet");
    let all = run_ok(&["show", &file]);
    let two = run_ok(&["show", &file, "--limit", "2"]);
    assert_eq!(all.lines().count(), 9, "a header and 8 rows: {all}");
    assert_eq!(two, all.lines().take(3).map(|l| format!("{l}\n")).collect::<String>(), "the header and 2 rows");
    let schema = run_ok(&["show", &file, "--schema"]);
    assert!(schema.starts_with("category_id\tUtf8\tNOT NULL\n"), "{schema}");
    assert!(schema.contains("revenue\tDecimal128(18, 2)\tNOT NULL\n"), "{schema}");
    assert!(schema.ends_with("# 8 rows\n"), "{schema}");
    let missing = mrpipe(&["show", &format!("{out}/nope.parquet")]);
    assert_eq!(missing.status.code(), Some(2), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
}

#[test]
fn lengths_and_sizes_take_the_usual_notations() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let args = ["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "-q"];
    // 1h30m and 1.5GiB are taken; the manifest records the window in its largest exact unit.
    run_ok(&[&args[..], &["--window", "1w", "--wait", "1h30m", "--memory-limit", "1.5GiB"]].concat());
    let manifest = std::fs::read_to_string(dir.path().join("_sales-rank.manifest.json")).unwrap();
    assert!(manifest.contains("\"window\": \"7d\""), "{manifest}");
    for (flag, bad) in [("--window", "0.5s"), ("--wait", "10"), ("--memory-limit", "12XB"), ("--memory-limit", "20EiB")]
    {
        let res = mrpipe(&[&args[..], &[flag, bad]].concat());
        assert_eq!(res.status.code(), Some(2), "{flag} {bad}: {}", String::from_utf8_lossy(&res.stderr));
    }
}
