//! End-to-end tests of jobs written as one SQL file (`shared/spec/sql-jobs.md`): found
//! in a jobs directory or given by path, run without recompiling, with the reader's
//! bad-line accounting, every file sink, periods, manifests, `verify` and
//! `--skip-unchanged` noticing an edited job; bad files are usage errors naming the
//! file and line. The shipped examples (`examples/jobs/`) are the jobs under test.

mod common;

use common::*;

/// The shipped example jobs.
fn examples() -> String {
    root().join("examples/jobs").display().to_string()
}

#[test]
fn a_user_job_gives_the_rows_of_the_built_in_job_it_restates() {
    // top-pages with no limit counts what hit-counts counts, by another engine and code.
    let clf = sample("access/clf");
    let native = mrpipe(&["run", "hit-counts", &clf, "--format", "clf", "-o", "-", "--rejects", "/dev/null", "-v"]);
    let sql = mrpipe(&["run", "top-pages", &clf, "--jobs-dir", &examples(), "--top", "1000", "-o", "-", "-v"]);
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    assert_same(
        "top-pages vs hit-counts",
        &String::from_utf8_lossy(&native.stdout),
        &String::from_utf8_lossy(&sql.stdout),
    );
    // The reader's bad-line accounting applies as for a built-in job.
    assert_eq!(counts(&sql.stderr), counts(&native.stderr));
    let top1 = run_ok(&["run", "top-pages", &clf, "--jobs-dir", &examples(), "--top", "1", "--strip-query", "-o", "-"]);
    assert_same("top 1 per month", "month\turl\thits\n2026-10\t/abc1234\t1\n2026-11\t/abc1234\t2\n", &top1);
}

#[test]
fn a_job_file_runs_to_parquet_and_sqlite_and_verifies_by_month() {
    let dir = tempfile::tempdir().unwrap();
    let job = root().join("examples/jobs/seller-totals.sql").display().to_string();
    let tx = sample("spending/transactions");
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", &job, &tx, "-o", &out, "--min-users", "2"]);
    let got = run_ok(&["show", &format!("{out}/seller_totals.parquet")]);
    assert_same("sellers with 2+ users", "month\tseller\tusers\tamount\n2026-11\tAmazon\t2\t180.00\n", &got);
    let totals = run_ok(&["show", &format!("{out}/month_totals.parquet")]);
    assert_same("a statement reads an earlier output", "month\tsellers\tamount\n2026-11\t1\t180.00\n", &totals);
    let m: serde_json::Value = serde_json::from_slice(&bytes(format!("{out}/_seller-totals.manifest.json"))).unwrap();
    assert_eq!(m["job_file"], job.as_str());
    assert_eq!(m["engine"], "datafusion");
    assert_eq!(m["params"], serde_json::json!({"min-users": 2}));
    assert!(run_ok(&["verify", &format!("{out}/_seller-totals.manifest.json")]).starts_with("verified: 2 tables"));

    // Months, each published and verified on its own in one SQLite database.
    let db = dir.path().join("s.db");
    let url = format!("sqlite:{}", db.display());
    run_ok(&["run", &job, &tx, "-o", &url, "--from", "2026-10", "--to", "2026-11"]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let months: Vec<String> = conn
        .prepare("SELECT month || ' ' || sellers || ' ' || amount_cents FROM month_totals ORDER BY month")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(months, ["2026-10 1 1500", "2026-11 10 223233"]);
    for month in ["2026-10", "2026-11"] {
        let manifest = format!("{}.seller-totals-{month}.manifest.json", db.display());
        assert!(run_ok(&["verify", &manifest]).starts_with("verified: 2 tables"), "{month}");
    }
}

#[test]
fn skip_unchanged_and_verify_notice_an_edited_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    let job = jobs.join("top-pages.sql");
    std::fs::copy(root().join("examples/jobs/top-pages.sql"), &job).unwrap();
    let out = dir.path().join("out").display().to_string();
    let j = jobs.display().to_string();
    let args = ["run", "top-pages", &sample("access/clf"), "--jobs-dir", &j, "-o", &out, "--skip-unchanged", "-v"];
    run_ok(&args);
    let again = mrpipe(&args);
    assert!(String::from_utf8_lossy(&again.stderr).contains("skipped"), "{}", String::from_utf8_lossy(&again.stderr));
    let text = std::fs::read_to_string(&job).unwrap().replace("COUNT(*) AS hits", "COUNT(*) * 2 AS hits");
    std::fs::write(&job, text).unwrap();
    let verify = mrpipe(&["verify", &format!("{out}/_top-pages.manifest.json")]);
    let err = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(1), "{err}");
    assert!(err.contains("top-pages.sql' changed since the run"), "{err}");
    let edited = mrpipe(&args);
    assert!(!String::from_utf8_lossy(&edited.stderr).contains("skipped"), "an edited job runs again");
    let got = run_ok(&["show", &format!("{out}/top_pages.parquet")]);
    assert!(got.contains("2026-11\t/zzz9999\t4"), "{got}");
}

#[test]
fn jobs_are_found_in_every_jobs_directory_source_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let listed = mrpipe_env(dir.path(), &["jobs"], &[("MRPIPE_JOBS", &examples())]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("top-pages ") && text.contains("seller-totals ") && text.contains("sales-rank "), "{text}");
    assert!(text.contains(&format!("from:   {}/top-pages.sql", examples())), "{text}");
    // From the config file: the jobs directory, and defaults for the SQL job.
    std::fs::write(
        dir.path().join("mrpipe.toml"),
        format!("jobs-dir = \"{}\"\n\n[seller-totals]\nmin-users = 2\noutput = \"-\"\n", examples()),
    )
    .unwrap();
    let res = mrpipe_in(dir.path(), &["run", "seller-totals", &sample("spending/transactions")]);
    let out = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(out.contains("2026-11\tAmazon\t2\t180.00") && !out.contains("Exxon"), "{out}");
    let help = mrpipe_in(dir.path(), &["run", "seller-totals", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--min-users <BIGINT>"), "{help}");
    assert!(help.contains("a SQL job runs on datafusion") && help.contains("[default: datafusion]"), "{help}");
    let dir_shown = mrpipe(&["show", &sample("sales")]);
    assert_eq!(dir_shown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dir_shown.stderr).contains("is a directory"));
}

#[test]
fn a_bad_job_file_is_a_usage_error_naming_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "typo",
            "-- job: typo\n-- input: access clf\n-- outptu: t ORDER BY url\nSELECT url FROM access;\n",
            ":3: unknown header key 'outptu'",
        ),
        (
            "column",
            "-- job: column\n-- input: access clf\n-- output: t ORDER BY url\n\nSELECT url, referrer FROM access;\n",
            ":5: Schema error: No field named referrer",
        ),
        (
            "order",
            "-- job: order\n-- input: access clf\n-- output: t ORDER BY hits\nSELECT url FROM access;\n",
            ":3: output t is ordered by hits",
        ),
        (
            "other-name",
            "-- job: wrong\n-- input: access clf\n-- output: t ORDER BY url\nSELECT url FROM access;\n",
            ":1: job 'wrong' must be named wrong.sql",
        ),
        (
            "hit-counts",
            "-- job: hit-counts\n-- input: access clf\n-- output: t ORDER BY url\nSELECT url FROM access;\n",
            "'hit-counts' is a built-in job",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(format!("{name}.sql"));
        std::fs::write(&path, text).unwrap();
        let res = mrpipe(&["run", &path.display().to_string(), &sample("access/clf"), "-o", "-"]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!(
                "{}{want}",
                if want.starts_with(':') { path.display().to_string() } else { String::new() }
            )),
            "{name}: {err}"
        );
    }
    let res = mrpipe(&["run", "no-such-job", &sample("access/clf"), "--jobs-dir", &examples()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown job 'no-such-job'") && err.contains(&examples()), "{err}");
}

/// Writes `name.sql` with `text` under `dir`; returns its path.
fn job_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.sql"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn what_sql_jobs_refuse_at_load_and_what_they_survive() {
    let dir = tempfile::tempdir().unwrap();
    let urls = sample("urls");
    let refused = [
        ("float", "SELECT url, CAST(1.5 AS DOUBLE) AS v FROM u", "floats are not exact"),
        ("flag", "SELECT url, url = 'x' AS v FROM u", "CAST it to BIGINT"),
        ("copy", "COPY (SELECT url FROM u) TO 'pwned.csv'", "must be a query"),
        ("explain", "EXPLAIN SELECT url FROM u", "must be a query"),
    ];
    for (name, sql, want) in refused {
        let text = format!("-- job: {name}\n-- input: u urls\n-- output: t ORDER BY url\n{sql};\n");
        let res = mrpipe_in(dir.path(), &["run", &job_file(dir.path(), name, &text), &urls, "-o", "-"]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(&format!("{name}.sql:4: ")) && err.contains(want), "{name}: {err}");
    }
    assert!(!dir.path().join("pwned.csv").exists());

    // Hundreds of terms plan without overflowing the stack.
    let ors: Vec<String> = (0..400).map(|i| format!("url = 'u{i}'")).collect();
    let text = format!(
        "-- job: ors\n-- input: u urls\n-- output: t ORDER BY url\nSELECT url FROM u WHERE {};\n",
        ors.join(" OR ")
    );
    let res = mrpipe(&["run", &job_file(dir.path(), "ors", &text), &urls, "-o", "-", "--rejects", "/dev/null"]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));

    // A FIFO named like a job is refused, not read forever.
    let fifo = dir.path().join("fifo.sql");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let res = mrpipe(&["run", &fifo.display().to_string(), &urls, "-o", "-"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("not a regular file"));
}

#[test]
fn a_month_of_a_job_is_the_full_runs_rows_of_that_month() {
    // The second statement reads every month of the first, also when one month is published.
    let dir = tempfile::tempdir().unwrap();
    let text = "-- job: xmonth\n-- input: tx transactions\n-- output: per_month ORDER BY month\n\
                -- output: seen ORDER BY month\n\
                SELECT to_char(CAST(timestamp AS DATE), '%Y-%m') AS month, SUM(amount) AS amount FROM tx GROUP BY 1;\n\
                SELECT month, (SELECT COUNT(*) FROM per_month) AS months FROM per_month;\n";
    let job = job_file(dir.path(), "xmonth", text);
    let tx = sample("spending/transactions");
    let all = run_ok(&["run", &job, &tx, "-o", "-", "--rejects", "/dev/null"]);
    let one = run_ok(&["run", &job, &tx, "--month", "2026-11", "-o", "-", "--rejects", "/dev/null"]);
    assert!(all.contains("2026-11\t2\n"), "{all}");
    assert!(one.contains("# seen\nmonth\tmonths\n2026-11\t2\n"), "{one}");

    // verify finds the job from its manifest, from any directory, without --jobs-dir.
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", &job, &tx, "-o", &out, "--rejects", "/dev/null"]);
    let ok = mrpipe_in(std::path::Path::new("/"), &["verify", &out, "--job", "xmonth"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn a_closed_stdout_and_stderr_end_a_run_quietly() {
    let cmd = format!(
        "{} run hit-counts {} -o - 2>&1 | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_mrpipe"),
        sample("access/tsv")
    );
    let status = std::process::Command::new("bash").args(["-c", &cmd]).status().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_input_streams_into_the_query_and_is_read_whole_whatever_the_query_scans() {
    // 200k lines: many more batches than the channel into the query holds.
    let dir = tempfile::tempdir().unwrap();
    let urls = generate(dir.path(), "urls", 200_000, &["--seed", "5", "--bad-rate", "0.001"]);
    let run = |name: &str, text: &str| {
        let res = mrpipe(&["run", &job_file(dir.path(), name, text), &urls, "-o", "-", "--rejects", "/dev/null", "-v"]);
        assert!(res.status.success(), "{name}: {}", String::from_utf8_lossy(&res.stderr));
        (String::from_utf8_lossy(&res.stdout).into_owned(), counts(&res.stderr))
    };
    // Streamed into the only statement that reads it.
    let (all, streamed) =
        run("count", "-- job: count\n-- input: u urls\n-- output: t ORDER BY n\nSELECT COUNT(*) AS n FROM u;\n");
    // A plan that never scans its input (planned away) must not leave the reader waiting,
    // and the read still counts every line.
    let (none, unscanned) =
        run("none", "-- job: none\n-- input: u urls\n-- output: t ORDER BY url\nSELECT url FROM u WHERE false;\n");
    // Two statements scan the input: it is read into memory once and scanned by both.
    let (both, twice) = run(
        "both",
        "-- job: both\n-- input: u urls\n-- output: a ORDER BY n\n-- output: b ORDER BY n\n\
         SELECT COUNT(*) AS n FROM u;\nSELECT COUNT(DISTINCT url) + (SELECT COUNT(*) FROM a) - (SELECT COUNT(*) FROM a) AS n FROM u;\n",
    );
    // One statement scanning it twice (found by planning it): read into memory too.
    let (union, twice_in_one) = run(
        "union",
        "-- job: union\n-- input: u urls\n-- output: t ORDER BY n\n\
         SELECT COUNT(*) AS n FROM (SELECT url FROM u UNION ALL SELECT url FROM u);\n",
    );
    assert_eq!(streamed.lines, 200_001, "every line and the header");
    assert_eq!(twice_in_one, streamed);
    assert_eq!(union.lines().nth(1).unwrap().parse::<u64>().unwrap(), 2 * streamed.good, "{union}");
    assert!(streamed.bad > 0);
    assert_eq!(unscanned, streamed);
    assert_eq!(twice, streamed);
    let n = all.lines().nth(1).unwrap();
    assert_eq!(n.parse::<u64>().unwrap(), streamed.good);
    assert_eq!(none, "url\n");
    let mut both = both.lines().filter(|l| l.parse::<u64>().is_ok());
    assert_eq!(both.next(), Some(n), "{all}");
    assert!(both.next().unwrap().parse::<u64>().unwrap() < streamed.good, "distinct urls are fewer");
}
