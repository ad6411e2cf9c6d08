//! End-to-end tests of the reader's memory bounds: bad lines stream to disk past a
//! small in-memory bound, a count budget stops the read at the bad line past it, and a
//! line longer than `--max-line-bytes` is a bad line read past in constant memory,
//! from plain files and from compressed streams alike. Peak memory is the child's own
//! (`wait4`), so other tests running beside do not count.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Runs mrpipe with `args` in `cwd`; its exit code, stderr, and peak RSS in MiB.
fn run_measured(cwd: &Path, args: &[&str]) -> (Option<i32>, String, u64) {
    // Reaped by `wait4` below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it and the status for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, text, usage.ru_maxrss as u64 / 1024)
}

fn zstd_file(path: &Path, write: impl FnOnce(&mut dyn Write)) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = zstd::stream::write::Encoder::new(file, 3).unwrap();
    write(&mut encoder);
    encoder.finish().unwrap();
}

#[test]
fn four_million_bad_lines_from_a_small_zst_stay_in_bounded_memory_and_all_reach_the_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt.zst");
    zstd_file(&input, |w| {
        let chunk = "x\n".repeat(1 << 20);
        for _ in 0..4 {
            w.write_all(chunk.as_bytes()).unwrap();
        }
    });
    assert!(std::fs::metadata(&input).unwrap().len() < 100_000);
    let rejects = dir.path().join("rejects.tsv");
    let (code, err, rss) = run_measured(
        dir.path(),
        &["run", "hit-counts", input.to_str().unwrap(), "-o", "out", "--rejects", rejects.to_str().unwrap(), "-v"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("4194304 bad"), "{err}");
    // 4M bad lines held in memory took over 400 MiB; the spool holds 16 MiB of them.
    assert!(rss < 200, "peak RSS {rss} MiB");
    let text = std::fs::read_to_string(&rejects).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("file\tline\treason\traw"));
    // Every bad line, in line order: the spooled ones came back in place.
    let mut count = 0u64;
    for (i, line) in lines.enumerate() {
        let number: u64 = line.split('\t').nth(1).unwrap().parse().unwrap();
        assert_eq!(number, i as u64 + 1, "{line}");
        count += 1;
    }
    assert_eq!(count, 4 << 20);
    assert!(entries(&dir.path().join("out")).iter().all(|n| !n.contains("spill")), "the spool is removed");
}

#[test]
fn a_count_budget_stops_the_read_at_the_bad_line_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = "not a url line\tbut\ttabs\n".repeat(2_000_000);
    for (name, compressed) in [("bad.txt", false), ("bad.txt.zst", true)] {
        let input = dir.path().join(name);
        if compressed {
            // 480 MB of text whose compressed stream is cut short: reading it to the end
            // would fail (exit 1), so exit 3 proves the read stopped early.
            zstd_file(&input, |w| (0..10).for_each(|_| w.write_all(text.as_bytes()).unwrap()));
            let len = std::fs::metadata(&input).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&input).unwrap().set_len(len - 8).unwrap();
        } else {
            std::fs::write(&input, &text).unwrap();
        }
        let (code, err, _) = run_measured(
            dir.path(),
            &["run", "hit-counts", input.to_str().unwrap(), "-o", "out", "--max-bad-lines", "10", "-j", "4"],
        );
        assert_eq!(code, Some(3), "{err}");
        // The 11th bad line in file order is line 11: every line is bad.
        assert!(err.contains("11 found, over the budget of 10 (reading stopped at bad line 11, "), "{err}");
        assert!(err.contains(&format!("{name}:11)")), "{err}");
        // The rejects file holds exactly the first 11, at any thread count.
        let rejects = std::fs::read_to_string(dir.path().join("out/_hit-counts.rejects.tsv")).unwrap();
        let numbers: Vec<u64> =
            rejects.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap().parse().unwrap()).collect();
        assert_eq!(numbers, (1..=11).collect::<Vec<u64>>(), "{name}");
    }
}

#[test]
fn damage_past_the_budget_in_a_compressed_input_stops_on_the_budget_at_any_thread_count() {
    // A zstd stream cut short, whose first 8 MiB block ends with 20 bad lines: the
    // blocks before the damage exceed a budget of 10, so the verdict is the budget
    // (exit 3) at every thread count, though the decompressing thread reaches the damage
    // long before the reading threads have counted the first block's lines (it used to
    // be exit 1 then). Within the budget, the damage is the error (exit 1).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cut.tsv.zst");
    let good = "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\t200\t1\n";
    let n = (8 << 20) / good.len() - 100;
    zstd_file(&input, |w| {
        w.write_all(good.repeat(n).as_bytes()).unwrap();
        w.write_all("bad line\n".repeat(20).as_bytes()).unwrap();
        w.write_all(good.repeat(n / 2).as_bytes()).unwrap();
    });
    let len = std::fs::metadata(&input).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&input).unwrap().set_len(len - 8).unwrap();
    let i = input.to_str().unwrap();
    for round in 0..2 {
        for threads in ["1", "2"] {
            let run = ["run", "hit-counts", i, "-o", "out", "--max-bad-lines", "10", "-j", threads];
            let (code, err, _) = run_measured(dir.path(), &run);
            assert_eq!(code, Some(3), "round {round}, -j {threads}: {err}");
        }
    }
    let (code, err, _) = run_measured(dir.path(), &["run", "hit-counts", i, "-o", "out", "--max-bad-lines", "100"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cut.tsv.zst"), "{err}");
}

#[test]
fn a_line_longer_than_max_line_bytes_is_a_bad_line_read_past_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let good = "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\t200\t5\n";
    let write = |w: &mut dyn Write| {
        w.write_all(good.as_bytes()).unwrap();
        // 300 MiB without a line end, then two good lines.
        let block = vec![b'a'; 1 << 20];
        for _ in 0..300 {
            w.write_all(&block).unwrap();
        }
        w.write_all(b"\n").unwrap();
        w.write_all(good.as_bytes()).unwrap();
        w.write_all(good.as_bytes()).unwrap();
    };
    let plain = dir.path().join("long.tsv");
    write(&mut std::fs::File::create(&plain).unwrap());
    let compressed = dir.path().join("long.tsv.zst");
    zstd_file(&compressed, write);
    for input in [&plain, &compressed] {
        let rejects = dir.path().join("rejects.tsv");
        let (code, err, rss) = run_measured(
            dir.path(),
            &[
                "run",
                "hit-counts",
                input.to_str().unwrap(),
                "-o",
                "-",
                "--max-line-bytes",
                "1MiB",
                "--rejects",
                rejects.to_str().unwrap(),
                "-v",
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("4 lines read (3 good, 1 bad"), "{err}");
        // A whole 300 MiB line in memory would take more than 300 MiB.
        assert!(rss < 200, "{}: peak RSS {rss} MiB", input.display());
        let text = std::fs::read_to_string(&rejects).unwrap();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split('\t').collect();
        assert_eq!(row[1], "2", "{text}");
        assert!(row[2].starts_with("line of 314572800 bytes is longer than --max-line-bytes (1048576)"), "{text}");
        assert_eq!(row[3].len(), 1024);
    }
}

#[test]
fn a_run_skipped_as_unchanged_still_answers_to_a_stricter_budget() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("out").display().to_string();
    let input = sample("sales");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "sales-rank", &input, "--as-of", "2026-11-22", "-o", &o, "--skip-unchanged", "-v"];
        args.extend(extra);
        mrpipe(&args)
    };
    assert!(run(&[]).status.success());
    let same = run(&["--max-bad-lines", "10"]);
    assert!(String::from_utf8_lossy(&same.stderr).contains("skipped"), "7 bad lines pass a budget of 10");
    let strict = run(&["--strict"]);
    assert_eq!(strict.status.code(), Some(3), "{}", String::from_utf8_lossy(&strict.stderr));
}

#[test]
fn a_rejects_path_that_is_a_link_to_stdout_is_never_replaced_nor_truncated() {
    // `/dev/stdout` is a link to /proc/self/fd/1: renaming a file over it (as root)
    // would break standard output for every program. A link of the same kind here:
    // to a pipe it is written in place; to a file (a log appended to) it is refused,
    // the log untouched.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("stdout-link");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let run = ["run", "hit-counts", &sample("access/tsv"), "-o", "out", "-q", "--rejects", link.to_str().unwrap()];
    let piped =
        std::process::Command::new(env!("CARGO_BIN_EXE_mrpipe")).args(run).current_dir(dir.path()).output().unwrap();
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    let written = String::from_utf8(piped.stdout).unwrap();
    assert!(written.starts_with("file\tline\treason\traw\n") && written.lines().count() > 1, "{written}");
    let log = dir.path().join("cron.log");
    std::fs::write(&log, "an earlier run's line\n").unwrap();
    let appended = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let to_file = std::process::Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(run)
        .current_dir(dir.path())
        .stdout(appended)
        .output()
        .unwrap();
    assert_eq!(to_file.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&to_file.stderr).contains("symbolic link to a regular file"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "an earlier run's line\n", "the log is untouched");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
}
