//! End-to-end tests of `mrpipe run sales-rank`, plus the options every job shares
//! (sinks, bad-line budget, exit codes, reproducibility), on sample and generated data.

mod common;

use std::collections::BTreeMap;

use common::*;

const AS_OF: [&str; 2] = ["--as-of", "2026-11-23"];

#[test]
fn sample_data_gives_the_hand_checked_ranking() {
    let got = run_ok(&["run", "sales-rank", &sample("sales"), AS_OF[0], AS_OF[1], "-o", "-"]);
    assert_same("sales_rank", &expected("sales_rank.tsv"), &got);
    let got = run_ok(&["run", "sales-rank", &sample("sales"), AS_OF[0], AS_OF[1], "--top", "2", "-o", "-"]);
    assert_same("sales_rank --top 2", &expected("sales_rank_top2.tsv"), &got);
}

#[test]
fn bad_lines_are_counted_and_quarantined_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    let res = mrpipe(&["run", "sales-rank", &sample("sales"), AS_OF[0], AS_OF[1], "-o", &o, "-v"]);
    assert!(res.status.success());
    assert_eq!(counts(&res.stderr), Counts { lines: 24, good: 14, bad: 7, empty: 1, headers: 2 });
    let rejects = String::from_utf8(bytes(out.join("_sales-rank.rejects.tsv"))).unwrap();
    let got: Vec<String> = rejects
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            format!("{}:{}", f[0].rsplit('/').next().unwrap(), f[1])
        })
        .collect();
    let want = [
        "2026-11-week-late.tsv.gz:4",
        "2026-11-week.tsv:15",
        "2026-11-week.tsv:16",
        "2026-11-week.tsv:17",
        "2026-11-week.tsv:18",
        "2026-11-week.tsv:19",
        "2026-11-week.tsv:20",
    ];
    assert_eq!(got, want, "rejects:\n{rejects}");
    assert!(rejects.contains("invalid UTF-8 at byte 23\t2026-11-19T12:00:00Z\\tp\\xe9\\tbooks"), "{rejects}");
}

#[test]
fn exceeding_the_bad_line_budget_exits_3_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    let src = sample("sales");
    // A first good run publishes a result.
    let first = mrpipe(&["run", "sales-rank", &src, AS_OF[0], AS_OF[1], "-o", &o, "--max-bad-lines", "7"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before = bytes(out.join("sales_rank.parquet"));
    for budget in [vec!["--strict"], vec!["--max-bad-lines", "6"], vec!["--max-bad-lines", "10%"]] {
        let mut args = vec!["run", "sales-rank", &src, "--as-of", "2026-11-22", "-o", &o];
        args.extend(budget.iter().copied());
        let res = mrpipe(&args);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(3), "{budget:?}: {err}");
        if budget[0] == "--max-bad-lines" && budget[1].ends_with('%') {
            // A fraction is known once every line is read.
            assert!(
                err.contains("too many bad lines: 7 found, over the budget of 10% = 2 lines (of 24 lines read)"),
                "{err}"
            );
        } else {
            // A count stops the read at the bad line past it, the same one at any thread count.
            let allowed: u64 = budget.get(1).map_or(0, |n| n.parse().unwrap());
            let stop = format!(
                "too many bad lines: {} found, over the budget of {allowed} (reading stopped at bad line {}, ",
                allowed + 1,
                allowed + 1
            );
            assert!(err.contains(&stop), "{err}");
        }
        assert!(
            err.contains("first bad line: ")
                && err.contains("2026-11-week-late.tsv.gz:4: bad timestamp 'not a timestamp'"),
            "{err}"
        );
        assert_eq!(bytes(out.join("sales_rank.parquet")), before, "the previous result must stay");
        let names = entries(&out);
        assert_eq!(
            names,
            vec![
                ".mrpipe",
                ".sales-rank.lock",
                "_sales-rank.manifest.json",
                "_sales-rank.rejects.tsv",
                "sales_rank.parquet"
            ],
            "no temporary files may stay"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_value() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "no-such-job", "x"], "no-such-job"),
        (&["run", "sales-rank", "missing.tsv"], "input file 'missing.tsv' does not exist"),
        (&["run", "sales-rank", "x", "--as-of", "2026-13-01"], "'2026-13-01'"),
        (&["run", "sales-rank", "x", "--window", "7x"], "'7x'"),
        (&["run", "sales-rank", "x", "--max-bad-lines", "lots"], "'lots'"),
    ];
    for (args, needle) in cases {
        let res = mrpipe(args);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    }
    let res = mrpipe(&["run", "sales-rank", "/nonexistent-dir/*.tsv"]);
    assert_eq!(res.status.code(), Some(5), "{}", String::from_utf8_lossy(&res.stderr));
}

#[test]
fn sqlite_output_replaces_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let url = format!("sqlite:{}", db.display());
    for _ in 0..2 {
        run_ok(&["run", "sales-rank", &sample("sales"), AS_OF[0], AS_OF[1], "-o", &url]);
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT category_id, rank, product_id, total_sold, revenue_cents FROM sales_rank ORDER BY category_id, rank")
        .unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}\t{}\t{}\t{}\t{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                oracle_money(r.get::<_, i64>(4)?.into())
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want_text = expected("sales_rank.tsv");
    let want: Vec<&str> = want_text.lines().skip(1).collect();
    assert_eq!(rows, want);
}

/// The ranking computed the simple way, straight from the file's lines.
fn oracle(data: &str, skip_lines: &[u64], from: &str, to: &str) -> String {
    let (from, to) = (oracle_ts(from), oracle_ts(to));
    let mut sums: BTreeMap<(String, String), (i128, i128)> = BTreeMap::new();
    for (i, line) in data.lines().enumerate().skip(1) {
        if skip_lines.contains(&(i as u64 + 1)) || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let t = oracle_ts(f[0]);
        if t < from || t >= to {
            continue;
        }
        let e = sums.entry((f[2].to_string(), f[1].to_string())).or_default();
        e.0 += f[3].parse::<i128>().unwrap();
        e.1 += oracle_cents(f[4]);
    }
    let mut rows: Vec<(&String, &String, i128, i128)> = sums.iter().map(|((c, p), (q, r))| (c, p, *q, *r)).collect();
    rows.sort_by(|a, b| a.0.cmp(b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
    let mut out = String::from("category_id\trank\tproduct_id\ttotal_sold\trevenue\n");
    let mut rank = 0;
    for (i, r) in rows.iter().enumerate() {
        rank = if i > 0 && rows[i - 1].0 == r.0 { rank + 1 } else { 1 };
        out.push_str(&format!("{}\t{rank}\t{}\t{}\t{}\n", r.0, r.1, r.2, oracle_money(r.3)));
    }
    out
}

#[test]
fn generated_data_matches_the_oracle_and_every_good_line_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "sales", 150_000, &["--bad-rate", "0.01", "--seed", "11"]);
    let data = String::from_utf8_lossy(&bytes(&input)).into_owned();
    let rejects = dir.path().join("rejects.tsv");
    let r = rejects.display().to_string();
    let res = mrpipe(&[
        "run",
        "sales-rank",
        &input,
        "--as-of",
        "2026-11-20T06:00:00Z",
        "--window",
        "10d",
        "--rejects",
        &r,
        "-o",
        "-",
        "-v",
    ]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let c = counts(&res.stderr);
    let file_lines = bytes(&input).iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(c.lines, file_lines);
    assert_eq!(c.lines, c.good + c.bad + c.empty + c.headers);
    assert!(c.bad > 1000, "the corpus should hold bad lines: {c:?}");

    // Every rejects row names a line that is really there, with its exact bytes.
    let raw_lines: Vec<&[u8]> = bytes(&input).leak().split(|&b| b == b'\n').collect();
    let rejects = String::from_utf8(bytes(&rejects)).unwrap();
    let mut bad_numbers = Vec::new();
    for row in rejects.lines().skip(1) {
        let f: Vec<&str> = row.splitn(4, '\t').collect();
        let n: u64 = f[1].parse().unwrap();
        assert_eq!(mrpipe::read::format::escape(raw_lines[n as usize - 1]), f[3], "line {n}");
        bad_numbers.push(n);
    }
    assert_eq!(bad_numbers.len() as u64, c.bad);

    let want = oracle(&data, &bad_numbers, "2026-11-10T06:00:00Z", "2026-11-20T06:00:00Z");
    assert_same("generated sales_rank", &want, &String::from_utf8(res.stdout).unwrap());
}

#[test]
fn parquet_is_byte_identical_across_thread_counts_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "sales", 120_000, &["--seed", "5"]);
    let run = |threads: &str, out: &str| {
        let o = dir.path().join(out).display().to_string();
        run_ok(&["run", "sales-rank", &input, AS_OF[0], AS_OF[1], "-j", threads, "-o", &o]);
        bytes(dir.path().join(out).join("sales_rank.parquet"))
    };
    let one = run("1", "t1");
    assert_eq!(one, run("2", "t2"), "1 vs 2 threads");
    assert_eq!(one, run("2", "t2b"), "repeated run");
    assert_eq!(one, run("7", "t7"), "1 vs 7 threads");
}
