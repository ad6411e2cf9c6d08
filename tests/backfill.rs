//! End-to-end tests of periods: monthly backfills (`--from/--to`), one-month runs that
//! replace only their month, sales-rank backfills (`--every`), `--skip-unchanged` and
//! `--dry-run`.

mod common;

use common::*;

fn spending_rows(db: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT user_id, month, category, amount_cents FROM monthly_spending ORDER BY user_id, month, category",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}\t{}\t{}\t{}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            oracle_money(r.get::<_, i64>(3)?.into())
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn monthly_backfill_into_sqlite_replaces_each_month_and_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mint.db");
    let url = format!("sqlite:{}", db.display());
    let tx = sample("spending/transactions");
    let want: Vec<String> = expected_rows("monthly_spending.tsv");
    for _ in 0..2 {
        run_ok(&[
            "run",
            "spending",
            &tx,
            "--overrides",
            &sample("spending/overrides.tsv"),
            "--from",
            "2026-10",
            "--to",
            "2026-11",
            "-o",
            &url,
        ]);
        assert_eq!(spending_rows(&db), want, "a backfill, repeated, holds each row once");
    }
    // One month again, from an input that only has part of it: only that month changes.
    let partial = dir.path().join("oct.tsv");
    std::fs::write(&partial, "user_id\ttimestamp\tseller\tamount\n1001\t2026-10-31T23:59:59Z\tExxon\t10.00\n").unwrap();
    run_ok(&["run", "spending", &partial.display().to_string(), "--month", "2026-10", "-o", &url]);
    let mut want_after = want.clone();
    want_after[0] = "1001\t2026-10\tgas\t10.00".to_string();
    assert_eq!(spending_rows(&db), want_after);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let runs: i64 =
        conn.query_row("SELECT count(*) FROM mrpipe_runs WHERE job = 'spending'", [], |r| r.get(0)).unwrap();
    assert_eq!(runs, 5, "one manifest row per published period");
}

#[test]
fn directory_backfill_writes_one_file_and_manifest_per_month_and_each_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--from", "2026-09", "--to", "2026-11", "-o", &o]);
    assert_eq!(
        files_under(&out.join("hit_counts")),
        ["month=2026-09/part-0.parquet", "month=2026-10/part-0.parquet", "month=2026-11/part-0.parquet"]
    );
    let october = run_ok(&["show", &format!("{o}/hit_counts/month=2026-10/part-0.parquet")]);
    let want: String =
        expected("hit_counts.tsv").lines().filter(|l| !l.starts_with("2026-11")).map(|l| format!("{l}\n")).collect();
    assert_same("October", &want, &october);
    for month in ["2026-09", "2026-10", "2026-11"] {
        let res = mrpipe(&["verify", &format!("{o}/_hit-counts-{month}.manifest.json")]);
        assert!(res.status.success(), "{month}: {}", String::from_utf8_lossy(&res.stderr));
    }
}

#[test]
fn skip_unchanged_skips_only_periods_whose_inputs_and_parameters_are_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.tsv");
    std::fs::copy(sample("access/tsv/access.tsv"), &input).unwrap();
    let i = input.display().to_string();
    let o = dir.path().join("out").display().to_string();
    let args = ["run", "hit-counts", &i, "--from", "2026-10", "--to", "2026-11", "-o", &o, "--skip-unchanged", "-v"];
    run_ok(&args);
    let manifest = format!("{o}/_hit-counts-2026-11.manifest.json");
    let before = bytes(&manifest);
    let again = mrpipe(&args);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success());
    assert_eq!(err.matches("skipped, inputs and parameters unchanged").count(), 2, "{err}");
    assert_eq!(bytes(&manifest), before, "a skipped period is not republished");
    // Another parameter, or another input, runs again.
    let res =
        mrpipe(&["run", "hit-counts", &i, "--month", "2026-11", "--strip-query", "-o", &o, "--skip-unchanged", "-v"]);
    assert!(!String::from_utf8_lossy(&res.stderr).contains("skipped"));
    std::fs::write(
        &input,
        "timestamp\tclient_ip\tmethod\turl\tstatus\tbytes\n2026-11-05T00:00:00Z\t1.1.1.1\tGET\t/new\t200\t1\n",
    )
    .unwrap();
    let res = mrpipe(&args);
    assert_eq!(String::from_utf8_lossy(&res.stderr).matches("skipped").count(), 0);
}

#[test]
fn sales_rank_backfill_writes_one_ranking_per_instant() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("hourly").display().to_string();
    let sales = sample("sales");
    run_ok(&[
        "run",
        "sales-rank",
        &sales,
        "--from",
        "2026-11-22T22:00:00Z",
        "--to",
        "2026-11-23T00:00:00Z",
        "--every",
        "1h",
        "-o",
        &o,
    ]);
    let files = files_under(&dir.path().join("hourly/sales_rank"));
    assert_eq!(
        files,
        [
            "as_of=20261122T220000Z/part-0.parquet",
            "as_of=20261122T230000Z/part-0.parquet",
            "as_of=20261123T000000Z/part-0.parquet"
        ]
    );
    // Each ranking is the one a single --as-of run gives, to the byte.
    let single = dir.path().join("single").display().to_string();
    run_ok(&["run", "sales-rank", &sales, "--as-of", "2026-11-23", "-o", &single]);
    assert_eq!(
        bytes(format!("{o}/sales_rank/as_of=20261123T000000Z/part-0.parquet")),
        bytes(format!("{single}/sales_rank.parquet"))
    );
    // Repeated --as-of works too; several rankings cannot share one SQL table.
    let res =
        mrpipe(&["run", "sales-rank", &sales, "--as-of", "2026-11-22", "--as-of", "2026-11-23", "-o", "sqlite:x.db"]);
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
}

#[test]
fn dry_run_lists_inputs_and_outputs_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    let got = run_ok(&[
        "run",
        "spending",
        &sample("spending/transactions"),
        "--from",
        "2026-10",
        "--to",
        "2026-11",
        "-o",
        &o,
        "--dry-run",
    ]);
    assert!(got.contains("2026-10-11.tsv (756 bytes)"), "{got}");
    assert!(
        got.contains(&format!(
            "period 2026-11:\n  monthly_spending -> {o}/monthly_spending/month=2026-11/part-0.parquet"
        )),
        "{got}"
    );
    assert!(got.contains(&format!("manifest -> {o}/_spending-2026-10.manifest.json")), "{got}");
    assert!(!out.exists(), "a dry run must not create the output");
}

#[test]
fn a_sqlite_database_holding_several_months_verifies_and_skips_each_month() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hits.db");
    let output = format!("sqlite:{}", db.display());
    skip_unchanged_skips_each_month_of_a_shared_output(&output);
    for month in ["2026-09", "2026-10", "2026-11"] {
        let manifest = format!("{}.hit-counts-{month}.manifest.json", db.display());
        let res = mrpipe(&["verify", &manifest]);
        assert!(res.status.success(), "{month}: {}", String::from_utf8_lossy(&res.stderr));
    }
    // A row of one month changed: that month's manifest no longer verifies, the others do.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE hit_counts SET hits = hits + 1 WHERE month = '2026-10'", []).unwrap();
    let res = mrpipe(&["verify", &format!("{}.hit-counts-2026-10.manifest.json", db.display())]);
    assert_eq!(res.status.code(), Some(1), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(mrpipe(&["verify", &format!("{}.hit-counts-2026-11.manifest.json", db.display())]).status.success());
    let newest = mrpipe(&["verify", &output, "--job", "hit-counts"]);
    assert!(newest.status.success(), "{}", String::from_utf8_lossy(&newest.stderr));
}

/// Runs mrpipe with `input` on stdin.
fn mrpipe_stdin(cwd: &std::path::Path, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn a_backfill_from_stdin_reads_it_once_for_every_period() {
    // stdin can be read only once: each month published from it must hold the rows a
    // backfill from the file gives, to the byte.
    let dir = tempfile::tempdir().unwrap();
    let access = std::fs::read(sample("access/tsv/access.tsv")).unwrap();
    let months = ["--from", "2026-09", "--to", "2026-11"];
    let from_file = dir.path().join("file").display().to_string();
    let from_stdin = dir.path().join("stdin").display().to_string();
    let mut args = vec!["run", "hit-counts", &*sample("access/tsv")].into_iter().map(String::from).collect::<Vec<_>>();
    args.extend(months.iter().map(|s| s.to_string()));
    args.extend(["-o".to_string(), from_file.clone()]);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdin_args = [&["run", "hit-counts", "-"][..], &months, &["-o", &from_stdin]].concat();
    let res = mrpipe_stdin(dir.path(), &stdin_args, &access);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    for month in ["2026-09", "2026-10", "2026-11"] {
        let file = format!("hit_counts/month={month}/part-0.parquet");
        assert_eq!(bytes(format!("{from_stdin}/{file}")), bytes(format!("{from_file}/{file}")), "{month}");
    }
    assert!(!bytes(format!("{from_stdin}/hit_counts/month=2026-11/part-0.parquet")).is_empty());
    // Where the periods cannot share the one read, the run is refused before reading.
    for extra in [&["--engine", "datafusion"][..], &["--memory-limit", "64MiB"]] {
        let out = dir.path().join("refused").display().to_string();
        let res = mrpipe_stdin(dir.path(), &[&stdin_args[..3], &months, &["-o", &out], extra].concat(), &access);
        assert_eq!(res.status.code(), Some(2), "{extra:?}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(String::from_utf8_lossy(&res.stderr).contains("stream can be read only once"));
        assert!(!std::path::Path::new(&out).exists(), "{extra:?}: nothing published");
    }
}

#[test]
fn every_ranking_of_a_backfill_read_once_matches_its_single_run() {
    // The rankings of a backfill share one read, summed by panes; each must still be
    // the ranking its own --as-of run gives: windows that overlap, windows with gaps
    // between them (panes no ranking covers), and --top.
    let dir = tempfile::tempdir().unwrap();
    let sales = sample("sales");
    // (the backfill, options of every ranking, rankings compared: file label and --as-of)
    type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 2] = [
        (
            &["--from", "2026-11-16T00:00:00Z", "--to", "2026-11-24T00:00:00Z", "--every", "2d"],
            &["--window", "3d"],
            &[
                ("20261116T000000Z", "2026-11-16"),
                ("20261120T000000Z", "2026-11-20"),
                ("20261124T000000Z", "2026-11-24"),
            ],
        ),
        (
            &["--from", "2026-11-17T12:00:00Z", "--to", "2026-11-23T12:00:00Z", "--every", "3d"],
            &["--window", "1d", "--top", "2"],
            &[
                ("20261117T120000Z", "2026-11-17T12:00:00Z"),
                ("20261120T120000Z", "2026-11-20T12:00:00Z"),
                ("20261123T120000Z", "2026-11-23T12:00:00Z"),
            ],
        ),
    ];
    for (n, (every, options, rankings)) in cases.iter().enumerate() {
        let o = dir.path().join(format!("fill{n}")).display().to_string();
        run_ok(&[&["run", "sales-rank", &sales][..], every, options, &["-o", &o]].concat());
        let published = files_under(&dir.path().join(format!("fill{n}/sales_rank")));
        assert_eq!(published.len(), [5, 3][n], "{published:?}");
        for (label, at) in rankings.iter() {
            let single = dir.path().join(format!("{n}-{label}")).display().to_string();
            run_ok(&[&["run", "sales-rank", &sales, "--as-of", at][..], options, &["-o", &single]].concat());
            let got = bytes(format!("{o}/sales_rank/as_of={label}/part-0.parquet"));
            assert_eq!(got, bytes(format!("{single}/sales_rank.parquet")), "case {n}, {label}");
        }
    }
}
