//! End-to-end tests of `mrpipe run hit-counts`: TSV and CLF logs, --strip-query,
//! stdin and compressed input.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn sample_tsv_and_clf_logs() {
    let got = run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", "-"]);
    assert_same("hit_counts", &expected("hit_counts.tsv"), &got);
    let got = run_ok(&["run", "hit-counts", &sample("access/tsv"), "--strip-query", "-o", "-"]);
    assert_same("hit_counts --strip-query", &expected("hit_counts_strip_query.tsv"), &got);
    let res = mrpipe(&["run", "hit-counts", &sample("access/clf"), "--format", "clf", "-o", "-", "-v"]);
    assert_same("hit_counts clf", &expected("hit_counts_clf.tsv"), &String::from_utf8(res.stdout).unwrap());
    assert_eq!(counts(&res.stderr), Counts { lines: 9, good: 6, bad: 3, empty: 0, headers: 0 });
}

#[test]
fn stdin_gzip_and_zstd_inputs_give_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(sample("access/tsv/access.tsv")).unwrap();
    let gz = dir.path().join("access.tsv.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    enc.finish().unwrap();
    let zst = dir.path().join("access.tsv.zst");
    std::fs::write(&zst, zstd::encode_all(&plain[..], 3).unwrap()).unwrap();
    for input in [gz.display().to_string(), zst.display().to_string()] {
        assert_same(&input, &expected("hit_counts.tsv"), &run_ok(&["run", "hit-counts", &input, "-o", "-"]));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "hit-counts", "-", "-o", "-", "--rejects", &dir.path().join("r.tsv").display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_same("stdin", &expected("hit_counts.tsv"), &String::from_utf8(out.stdout).unwrap());
    assert!(String::from_utf8(bytes(dir.path().join("r.tsv"))).unwrap().contains("\n-\t10\tbad bytes 'many'"));
}

#[test]
fn a_closed_stdout_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "access-tsv", 200_000, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "hit-counts", &input, "-q", "-o", "-"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn generated_tsv_matches_the_oracle_and_clf_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "access-tsv", 150_000, &["--seed", "21"]);
    let mut hits: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&input).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let url = f[3].split('?').next().unwrap();
        *hits.entry((oracle_ts(f[0]).format("%Y-%m").to_string(), url.to_string())).or_default() += 1;
    }
    let mut rows: Vec<_> = hits.into_iter().collect();
    rows.sort_by(|a, b| a.0.0.cmp(&b.0.0).then(b.1.cmp(&a.1)).then(a.0.1.cmp(&b.0.1)));
    let mut want = String::from("month\turl\thits\n");
    for ((m, u), h) in rows {
        want.push_str(&format!("{m}\t{u}\t{h}\n"));
    }
    assert_same("generated hit_counts", &want, &run_ok(&["run", "hit-counts", &input, "--strip-query", "-o", "-"]));

    let clf = generate(dir.path(), "access-clf", 100_000, &["--seed", "4", "--bad-rate", "0.01"]);
    let run = |threads: &str| {
        let o = dir.path().join(format!("clf{threads}")).display().to_string();
        run_ok(&["run", "hit-counts", &clf, "--format", "clf", "-j", threads, "-o", &o]);
        bytes(format!("{o}/hit_counts.parquet"))
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn a_named_pipe_is_read_as_a_stream_not_as_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = std::fs::read(sample("access/tsv/access.tsv")).unwrap();
    // The writer blocks until mrpipe opens the pipe, then closes it: no timing involved.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, data).unwrap())
    };
    let res = mrpipe(&["run", "hit-counts", &fifo.display().to_string(), "-o", "-", "--rejects", "/dev/null", "-v"]);
    writer.join().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_same("rows from a pipe", &expected("hit_counts.tsv"), &String::from_utf8_lossy(&res.stdout));
}

#[test]
fn an_output_never_replaces_nor_rereads_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let input = logs.join("access.tsv");
    std::fs::copy(sample("access/tsv/access.tsv"), &input).unwrap();
    let before = bytes(&input);
    let l = logs.display().to_string();
    for (output, rejects) in
        [(format!("tsv:{}/./access.tsv", l), None), (format!("{l}/out"), Some(format!("{}/../logs/access.tsv", l)))]
    {
        let mut args = vec!["run", "hit-counts", &l, "-o", &output];
        if let Some(r) = &rejects {
            args.extend(["--rejects", r]);
        }
        let res = mrpipe(&args);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{output}: {err}");
        assert!(err.contains("is an input of this run"), "{err}");
    }
    // A directory output spelled as an existing file.
    let res = mrpipe(&["run", "hit-counts", &l, "-o", &input.display().to_string()]);
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(String::from_utf8_lossy(&res.stderr).contains("is a file, not a directory"));
    assert_eq!(bytes(&input), before, "the input is untouched");
    // A directory that is both input and output: its outputs are not read back as logs.
    for _ in 0..2 {
        let res = mrpipe(&["run", "hit-counts", &l, "-o", &l, "-v"]);
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        let c = counts(&res.stderr);
        assert_eq!((c.lines, c.good), (11, 8), "only access.tsv is read");
    }
}

#[test]
fn terminal_escapes_in_a_log_reach_neither_the_terminal_nor_the_rejects_file_raw() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.tsv");
    std::fs::write(
        &input,
        "\x1b]0;pwned\x07\t1.2.3.4\tGET\t/x\t200\t1\n2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\x00y\t2xx\t1\n",
    )
    .unwrap();
    let rejects = dir.path().join("r.tsv");
    let res = mrpipe(&[
        "run",
        "hit-counts",
        &input.display().to_string(),
        // Stops at the second bad line, so both are in the rejects file.
        "--max-bad-lines",
        "1",
        "-o",
        "-",
        "--rejects",
        &rejects.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(3), "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("'\\x1b]0;pwned\\x07'"), "{err}");
    let text = std::fs::read(&rejects).unwrap();
    assert!(
        !text.iter().any(|&b| b < 0x20 && b != b'\t' && b != b'\n'),
        "control bytes in {:?}",
        String::from_utf8_lossy(&text)
    );
    assert!(String::from_utf8_lossy(&text).contains("/x\\x00y"), "{}", String::from_utf8_lossy(&text));
}

#[test]
fn a_file_reached_through_links_and_loops_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("2026-11")).unwrap();
    std::fs::copy(sample("access/tsv/access.tsv"), logs.join("2026-11/access.tsv")).unwrap();
    std::os::unix::fs::symlink("2026-11", logs.join("current")).unwrap();
    std::os::unix::fs::symlink(".", logs.join("2026-11/loop")).unwrap();
    let pattern = format!("{}/**/*.tsv", logs.display());
    let res = mrpipe(&["run", "hit-counts", &pattern, "-o", "-", "--rejects", "/dev/null", "-v"]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(counts(&res.stderr).lines, 11, "read once");
    assert_same("rows", &expected("hit_counts.tsv"), &String::from_utf8_lossy(&res.stdout));
}
