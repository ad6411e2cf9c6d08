//! Crash safety: a run killed between any two steps of its publication leaves either
//! the previous result or the new one, whole, for every table and the manifest (each
//! still verifies), and the next run removes what it left. The kill is a failpoint
//! (`MRPIPE_FAILPOINT` aborts the process at a named step, as `kill -9` would), so
//! every step is reached on every run of the test, with no timing involved.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Every step of a publication, in order; a kill after the switch leaves the new result.
const STEPS: [(&str, bool); 3] = [("publish-staged", false), ("publish-linked", false), ("publish-switched", true)];

/// The visible files of an output directory (not the store), with their bytes.
fn published(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in entries(dir).into_iter().filter(|n| !n.starts_with('.') && !n.ends_with(".rejects.tsv")) {
        let path = dir.join(&name);
        files.push((name, if path.is_dir() { Vec::new() } else { bytes(&path) }));
    }
    files
}

/// Runs `args` with `-o output` to completion.
fn publish(args: &[&str], output: &str) {
    let mut argv = args.to_vec();
    argv.extend(["-o", output, "--rejects", "/dev/null"]);
    run_ok(&argv);
}

/// For each step: publish `first`, then run `second` killed at that step, and compare
/// the visible files with those of `first` (or of `second` run whole, after the switch).
fn killed_at_every_step(first: &[&str], second: &[&str], output: impl Fn(&Path) -> String, manifest: &str) {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    publish(second, &output(&whole));
    let after_second = published(&whole);
    for (step, switched) in STEPS {
        let out = dir.path().join(step);
        publish(first, &output(&out));
        let before = published(&out);
        let mut argv = second.to_vec();
        let o = output(&out);
        argv.extend(["-o", &o, "--rejects", "/dev/null"]);
        let killed =
            Command::new(env!("CARGO_BIN_EXE_mrpipe")).args(&argv).env("MRPIPE_FAILPOINT", step).output().unwrap();
        assert_eq!(killed.status.code(), None, "{step}: the run must be killed there");
        let now = published(&out);
        if switched {
            // The manifest names its own output and times: the tables are compared.
            let tables = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
                files.iter().filter(|(n, _)| !n.ends_with(".manifest.json")).cloned().collect()
            };
            assert!(tables(&now) == tables(&after_second), "{step}: the new result, whole");
            assert!(now.len() == after_second.len(), "{step}: the new manifest too");
        } else {
            assert!(now == before, "{step}: the previous result, whole");
        }
        let m = out.join(manifest).display().to_string();
        let ok = mrpipe(&["verify", &m]);
        assert!(ok.status.success(), "{step}: {}", String::from_utf8_lossy(&ok.stderr));
        // The next run removes what the killed one left: one generation per unit.
        publish(first, &output(&out));
        for store in std::fs::read_dir(out.join(".mrpipe")).unwrap() {
            let store = store.unwrap().path();
            let mut names = entries(&store);
            names.retain(|n| n != "current");
            assert_eq!(names.len(), 1, "{step}: {} holds {names:?}", store.display());
        }
        assert!(entries(&out).iter().all(|n| !n.contains("mrpipe-tmp")), "{step}: {:?}", entries(&out));
    }
}

#[test]
fn two_tables_and_a_manifest_are_published_as_one_unit() {
    let tx = sample("spending/transactions");
    let october = sample("spending/transactions/2026-10-11.tsv");
    let incomes = sample("spending/incomes.tsv");
    let first = ["run", "spending", &october, "--incomes", &incomes];
    let second = ["run", "spending", &tx, "--incomes", &incomes];
    killed_at_every_step(&first, &second, |d| d.display().to_string(), "_spending.manifest.json");
    killed_at_every_step(&first, &second, |d| format!("tsv:{}/", d.display()), "_spending.manifest.json");
}

#[test]
fn one_named_file_and_its_manifest_are_published_as_one_unit() {
    let access = sample("access/tsv");
    let first = ["run", "hit-counts", &access, "--strip-query"];
    let second = ["run", "hit-counts", &access];
    killed_at_every_step(
        &first,
        &second,
        |d| d.join("hits.parquet").display().to_string(),
        "hits.parquet.manifest.json",
    );
}

#[test]
fn a_killed_runs_leftovers_go_with_the_next_run_even_one_that_skips() {
    // A run stops writing budget_alerts and is killed right after its switch: the link
    // to the table it no longer writes dangles until the next run of the job cleans it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    let (tx, incomes) = (sample("spending/transactions"), sample("spending/incomes.tsv"));
    publish(&["run", "spending", &tx, "--incomes", &incomes], &o);
    let killed = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "spending", &tx, "-o", &o, "--rejects", "/dev/null"])
        .env("MRPIPE_FAILPOINT", "publish-switched")
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None);
    assert!(std::fs::symlink_metadata(out.join("budget_alerts.parquet")).is_ok(), "the killed run left the link");
    publish(&["run", "spending", &tx, "--skip-unchanged"], &o);
    assert!(std::fs::symlink_metadata(out.join("budget_alerts.parquet")).is_err(), "{:?}", entries(&out));
    assert_eq!(entries(&out.join(".mrpipe/spending")).len(), 2, "current and one generation");
}

#[test]
fn an_output_copied_with_links_resolved_can_be_published_to_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let tx = sample("spending/transactions");
    publish(&["run", "spending", &tx], &out.display().to_string());
    let copy = dir.path().join("copy");
    assert!(Command::new("cp").arg("-rL").arg(&out).arg(&copy).status().unwrap().success());
    publish(&["run", "spending", &tx, "--incomes", &sample("spending/incomes.tsv")], &copy.display().to_string());
    let ok = mrpipe(&["verify", &copy.join("_spending.manifest.json").display().to_string()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn alerts_are_notified_at_least_once_whatever_step_a_run_is_killed_at() {
    let dir = tempfile::tempdir().unwrap();
    let tx = sample("spending/transactions");
    let (incomes, budgets) = (sample("spending/incomes.tsv"), sample("spending/budget_overrides.tsv"));
    for (step, _) in STEPS {
        let out = dir.path().join(step).display().to_string();
        let notes = dir.path().join(format!("{step}.jsonl"));
        let n = notes.display().to_string();
        let args = ["run", "spending", &tx, "--incomes", &incomes, "--budget-overrides", &budgets, "--notify", &n];
        let mut argv = args.to_vec();
        argv.extend(["-o", &out, "--rejects", "/dev/null"]);
        let killed =
            Command::new(env!("CARGO_BIN_EXE_mrpipe")).args(&argv).env("MRPIPE_FAILPOINT", step).output().unwrap();
        assert_eq!(killed.status.code(), None, "{step}");
        publish(&args, &out);
        // Every alert now published was delivered at least once.
        let sent = std::fs::read_to_string(&notes).unwrap_or_default();
        let table = run_ok(&["show", &format!("{out}/budget_alerts.parquet")]);
        for row in table.lines().skip(1) {
            let f: Vec<&str> = row.split('\t').collect();
            let needle = format!(r#""status":"{}","user_id":"{}""#, f[5], f[0]);
            assert!(
                sent.lines().any(|l| l.contains(&needle) && l.contains(&format!(r#""month":"{}""#, f[1]))),
                "{step}: {row} not notified:\n{sent}"
            );
        }
    }
}
