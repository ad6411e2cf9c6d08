//! End-to-end tests of `--memory-limit` on the native engine: every job spills its
//! groups and its sorted output to disk alike, publishes the same bytes as without a
//! limit at any thread count, and leaves no spill file behind, even when killed while
//! spilling (the failpoints prove that the spill happened).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Every job on generated data of its input format, with the options that make it publish rows.
fn jobs(dir: &Path) -> Vec<(&'static str, String, Vec<String>)> {
    let d = |name: &str| dir.join(name).display().to_string();
    let spending = generate(dir, "spending", 60_000, &["--seed", "31", "--bad-rate", "0.01"]);
    vec![
        (
            "sales-rank",
            generate(dir, "sales", 60_000, &["--seed", "32", "--bad-rate", "0.01"]),
            vec!["--as-of".into(), "2026-11-23".into()],
        ),
        ("spending", spending, vec!["--sellers".into(), d("sellers.tsv"), "--incomes".into(), d("incomes.tsv")]),
        ("hit-counts", generate(dir, "access-tsv", 60_000, &["--seed", "33", "--bad-rate", "0.01"]), vec![]),
        ("url-dedup", generate(dir, "urls", 60_000, &["--seed", "34", "--bad-rate", "0.01"]), vec![]),
    ]
}

/// Runs `job` into a fresh Parquet directory `out`; returns its published tables' bytes.
fn publish(job: &str, input: &str, args: &[String], extra: &[&str], out: &Path) -> Vec<(String, Vec<u8>)> {
    let o = out.display().to_string();
    let mut argv = vec!["run", job, input, "-o", &o, "--rejects", "/dev/null"];
    argv.extend(args.iter().map(String::as_str));
    argv.extend(extra);
    run_ok(&argv);
    let names = entries(out);
    assert!(names.iter().all(|n| !n.contains("spill")), "{job} {extra:?}: spill files left: {names:?}");
    let mut tables: Vec<(String, Vec<u8>)> =
        names.iter().filter(|n| n.ends_with(".parquet")).map(|n| (n.clone(), bytes(out.join(n)))).collect();
    tables.sort();
    assert!(!tables.is_empty(), "{job}: nothing published");
    tables
}

#[test]
fn every_job_under_a_memory_limit_smaller_than_its_input_publishes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (job, input, args) in jobs(dir.path()) {
        let unlimited = publish(job, &input, &args, &[], &dir.path().join(format!("{job}-unlimited")));
        let quarter = (std::fs::metadata(&input).unwrap().len() / 4).to_string();
        // A quarter of the input, then so little that every group and every row spills.
        for (limit, threads) in [(quarter.as_str(), "2"), ("16KiB", "1"), ("16KiB", "2")] {
            let out = dir.path().join(format!("{job}-{limit}-{threads}"));
            let limited = publish(job, &input, &args, &["--memory-limit", limit, "-j", threads], &out);
            assert!(limited == unlimited, "{job}: --memory-limit {limit} -j {threads} published other bytes");
        }
    }
}

#[test]
fn every_job_spills_groups_and_sorted_runs_and_a_run_killed_there_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (job, input, args) in jobs(dir.path()) {
        let out = dir.path().join(job);
        let previous = publish(job, &input, &args, &[], &out);
        for step in ["spill-partitions", "spill-sorted-run"] {
            let o = out.display().to_string();
            let mut argv = vec!["run", job, &input, "-o", &o, "--memory-limit", "16KiB", "--rejects", "/dev/null"];
            argv.extend(args.iter().map(String::as_str));
            let killed =
                Command::new(env!("CARGO_BIN_EXE_mrpipe")).args(&argv).env("MRPIPE_FAILPOINT", step).output().unwrap();
            assert_eq!(killed.status.code(), None, "{job}: the run must reach {step} and be killed there");
            assert!(entries(&out).iter().any(|n| n.starts_with(".mrpipe-spill-")), "{job} {step}: nothing spilled");
            // The next run removes the killed run's spill directory and publishes as before.
            let again = publish(job, &input, &args, &["--memory-limit", "16KiB"], &out);
            assert!(again == previous, "{job} {step}: other bytes after the kill");
        }
    }
}

#[test]
fn a_memory_limit_is_not_a_job_parameter_so_a_manifest_verifies_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--memory-limit", "16KiB", "-o", &o]);
    let manifest = std::fs::read_to_string(out.join("_hit-counts.manifest.json")).unwrap();
    assert!(!manifest.contains("memory"), "{manifest}");
    let verified = mrpipe(&["verify", &out.join("_hit-counts.manifest.json").display().to_string()]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    // A manifest written when url-dedup had its own --memory-limit still verifies.
    run_ok(&["run", "url-dedup", &sample("urls"), "-o", &o]);
    let path = out.join("_url-dedup.manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = text.replacen("\"params\": {", "\"params\": {\n    \"memory-limit\": 1024,", 1);
    assert_ne!(old, text, "the manifest has a params map");
    std::fs::write(&path, old).unwrap();
    let verified = mrpipe(&["verify", &path.display().to_string()]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
}

#[test]
fn a_killed_stdout_runs_scratch_in_the_temp_directory_goes_with_the_next_stdout_run() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let t = tmp.display().to_string();
    let urls = sample("urls");
    let args = ["run", "url-dedup", &urls, "-o", "-", "--memory-limit", "1KiB"];
    let killed = mrpipe_env(dir.path(), &args, &[("TMPDIR", &t), ("MRPIPE_FAILPOINT", "spill-partitions")]);
    assert_eq!(killed.status.code(), None, "the run must be killed while spilling");
    assert!(entries(&tmp).iter().any(|n| n.starts_with(".mrpipe-spill-")), "{:?}", entries(&tmp));
    let again = mrpipe_env(dir.path(), &args, &[("TMPDIR", &t)]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(entries(&tmp), Vec::<String>::new(), "the dead run's scratch must be removed");
}

#[test]
fn verify_takes_a_memory_limit_for_its_re_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    run_ok(&["run", "url-dedup", &sample("urls"), "--memory-limit", "1KiB", "-o", &o]);
    let m = out.join("_url-dedup.manifest.json").display().to_string();
    // The failpoint proves the re-run spills: it is killed there.
    let killed =
        mrpipe_env(dir.path(), &["verify", &m, "--memory-limit", "1KiB"], &[("MRPIPE_FAILPOINT", "spill-partitions")]);
    assert_eq!(killed.status.code(), None, "{}", String::from_utf8_lossy(&killed.stderr));
    let verified = mrpipe(&["verify", &m, "--memory-limit", "1KiB"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
}

#[test]
fn a_memory_limit_too_small_for_datafusion_says_so_in_our_terms() {
    // Ballista's executors hand the error back as text: it is recognised all the same.
    for engine in ["datafusion", "ballista"] {
        let res = mrpipe(&["run", "url-dedup", &sample("urls"), "--engine", engine, "--memory-limit", "1", "-o", "-"]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{engine}: {err}");
        assert!(err.contains("--memory-limit 1 bytes is too small for DataFusion"), "{engine}: {err}");
    }
}

/// On a cluster the work runs on the executors, which have memory pools of their own:
/// a client's --memory-limit would bound nothing, so it is refused, naming the option
/// that does bound them.
#[test]
fn a_memory_limit_with_a_cluster_is_refused_naming_the_executors_option() {
    let res = mrpipe(&[
        "run",
        "url-dedup",
        &sample("urls"),
        "--engine",
        "ballista",
        "--cluster",
        "df://127.0.0.1:1",
        "--memory-limit",
        "1GiB",
    ]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("mrpipe executor --memory-pool-size"), "{err}");
}
