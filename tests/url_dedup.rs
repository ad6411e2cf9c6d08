//! End-to-end tests of `mrpipe run url-dedup`: modes, normalization, and spilling
//! to disk under a memory limit smaller than the input.

mod common;

use std::collections::BTreeMap;

use common::*;

#[test]
fn sample_modes_and_normalization() {
    for mode in ["distinct", "singletons"] {
        let got = run_ok(&["run", "url-dedup", &sample("urls"), "--mode", mode, "-o", "-"]);
        assert_same(mode, &expected(&format!("urls_{mode}.tsv")), &got);
        let got = run_ok(&["run", "url-dedup", &sample("urls"), "--mode", mode, "--normalize", "-o", "-"]);
        assert_same(mode, &expected(&format!("urls_{mode}_normalized.tsv")), &got);
        let got = run_ok(&[
            "run",
            "url-dedup",
            &sample("urls"),
            "--mode",
            mode,
            "--normalize",
            "--memory-limit",
            "1KiB",
            "-o",
            "-",
        ]);
        assert_same(mode, &expected(&format!("urls_{mode}_normalized.tsv")), &got);
    }
}

#[test]
fn memory_limit_four_times_smaller_than_input_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "urls", 300_000, &["--seed", "8"]);
    let size = std::fs::metadata(&input).unwrap().len();
    let limit = (size / 4).to_string();
    for mode in ["distinct", "singletons"] {
        let run = |extra: &[&str], name: &str| {
            let out = dir.path().join(format!("{mode}-{name}"));
            let o = out.display().to_string();
            let mut args = vec!["run", "url-dedup", &input, "--mode", mode, "--normalize", "-o", &o];
            args.extend_from_slice(extra);
            run_ok(&args);
            assert_eq!(
                entries(&out),
                vec![".mrpipe", ".url-dedup.lock", "_url-dedup.manifest.json", "urls.parquet"],
                "spill files must be removed"
            );
            bytes(out.join("urls.parquet"))
        };
        let in_memory = run(&[], "mem");
        assert_eq!(in_memory, run(&["--memory-limit", &limit, "-j", "2"], "spill2"), "{mode}: spill vs memory");
        assert_eq!(in_memory, run(&["--memory-limit", &limit, "-j", "1"], "spill1"), "{mode}: spill 1 thread");
    }
    // And the rows are right: the oracle counts trimmed lines.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&input).unwrap().lines().skip(1) {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    let mut want = String::from("url\toccurrences\n");
    for (u, c) in &counts {
        want.push_str(&format!("{u}\t{c}\n"));
    }
    let got = run_ok(&["run", "url-dedup", &input, "--memory-limit", &limit, "-o", "-"]);
    assert_same("generated distinct urls", &want, &got);
}

#[test]
fn spilling_stays_within_a_low_open_file_limit() {
    // 4.7 MB at a 64 KiB budget wants ~300 partitions; `ulimit -n 200` allows fewer.
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "urls", 120_000, &["--seed", "3"]);
    let free = dir.path().join("free").display().to_string();
    run_ok(&["run", "url-dedup", &input, "-o", &free]);
    let low = dir.path().join("low").display().to_string();
    let cmd =
        format!("ulimit -n 200; {} run url-dedup {input} --memory-limit 64KiB -o {low}", env!("CARGO_BIN_EXE_mrpipe"));
    let res = std::process::Command::new("bash").args(["-c", &cmd]).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(bytes(format!("{low}/urls.parquet")), bytes(format!("{free}/urls.parquet")));
}
