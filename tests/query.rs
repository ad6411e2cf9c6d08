//! End-to-end tests of `mrpipe query`: SQL over Parquet outputs, period directories
//! and raw logs read with a job's schema; results to a pipe or a sink; errors with a caret.

mod common;

use common::*;

#[test]
fn sql_over_parquet_outputs_and_period_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out]);
    let got = run_ok(&[
        "query",
        "SELECT category_id, count(*) AS products, sum(revenue) AS revenue FROM r GROUP BY category_id ORDER BY category_id",
        "--table",
        &format!("r={out}/sales_rank.parquet"),
    ]);
    assert_same(
        "query over sales_rank",
        "category_id\tproducts\trevenue\nbooks\t4\t110.97\nelectronics\t2\t5050.00\ngifts\t1\t-5.00\nkitchen\t1\t25.00\n",
        &got,
    );
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--from", "2026-10", "--to", "2026-11", "-o", &out]);
    let got = run_ok(&[
        "query",
        "SELECT month, sum(hits) AS hits FROM h GROUP BY month ORDER BY month",
        "--table",
        &format!("h={out}/hit_counts/"),
    ]);
    assert_same("query over a period directory", "month\thits\n2026-10\t2\n2026-11\t6\n", &got);
}

#[test]
fn sql_over_raw_logs_read_with_a_job_schema() {
    let res = mrpipe(&[
        "query",
        "SELECT category_id, sum(quantity) AS units FROM sales GROUP BY category_id ORDER BY category_id",
        "--table",
        &format!("sales={}", sample("sales")),
        "--as",
        "sales",
    ]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_same(
        "logs",
        "category_id\tunits\nbooks\t160\nelectronics\t17\ngifts\t1\nkitchen\t2\n",
        &String::from_utf8(res.stdout).unwrap(),
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("7 bad lines skipped in table sales"));
    // Typed columns: timestamps compare as instants, money sums exactly.
    let got = run_ok(&[
        "query",
        "SELECT count(*) AS n, sum(total_price) AS revenue FROM s WHERE timestamp >= '2026-11-16T00:00:00Z' AND timestamp < '2026-11-23T00:00:00Z'",
        "--table",
        &format!("s={}", sample("sales")),
        "--as",
        "sales",
    ]);
    assert_same("typed", "n\trevenue\n11\t5180.97\n", &got);
}

#[test]
fn results_go_to_a_sink_and_errors_show_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.tsv");
    run_ok(&[
        "query",
        "SELECT url FROM u ORDER BY url LIMIT 2",
        "--table",
        &format!("u={}", sample("urls")),
        "--as",
        "urls",
        "-o",
        &format!("tsv:{}", file.display()),
    ]);
    assert_same(
        "sink",
        "url\nHTTP://Example.com:80/a#top\nhttp://example.com/a\n",
        &std::fs::read_to_string(&file).unwrap(),
    );

    let res = mrpipe(&["query", "SELEC url FROM u", "--table", &format!("u={}", sample("urls")), "--as", "urls"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("found: SELEC at Line: 1, Column: 1\n  SELEC url FROM u\n  ^"), "{err}");
    assert!(err.trim_end().ends_with('^'), "{err}");
    let res = mrpipe(&["query", "SELECT * FROM nowhere"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("nowhere"));
}

#[test]
fn every_type_a_query_makes_is_stored_in_sqlite_or_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    query_of_every_type_to(&format!("sqlite:{}", db.display()));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let row: (f64, i64, f64, String, String, i64, String, Option<i64>) = conn
        .query_row("SELECT f, d_e6, d, day, s, b, t, n FROM query", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .unwrap();
    assert_eq!(
        row,
        (1.5, 1_500_000, 1.5, "2026-11-30".into(), "v".into(), 1, "2026-11-30T12:00:00.000000".into(), None)
    );

    // Strings read from Parquet come as Utf8View.
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &out]);
    let copy = dir.path().join("copy.db");
    run_ok(&[
        "query",
        "SELECT * FROM h",
        "--table",
        &format!("h={out}/hit_counts.parquet"),
        "-o",
        &format!("sqlite:{}", copy.display()),
    ]);
    let n: i64 =
        rusqlite::Connection::open(&copy).unwrap().query_row("SELECT count(*) FROM query", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 6);

    for (sql, column) in [("SELECT CAST('NaN' AS DOUBLE) AS nan", "'nan'"), ("SELECT INTERVAL '1 day' AS xs", "'xs'")] {
        let res = mrpipe(&["query", sql, "-o", &format!("sqlite:{}", copy.display())]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("column {column}")), "{err}");
    }
    let res = mrpipe(&["query", "SELECT INTERVAL '1 day' AS xs", "-o", &format!("sqlite:{}", copy.display())]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("column 'xs'") && err.contains("cannot store"), "{err}");
}

/// A Parquet file named in FROM, SQL from a file, and --limit: the ways DuckDB users
/// expect to query a file.
#[test]
fn a_file_in_from_sql_from_a_file_and_a_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out, "-q"]);
    let file = format!("{out}/sales_rank.parquet");
    let direct = run_ok(&["query", &format!("SELECT product_id FROM '{file}' WHERE rank = 1 ORDER BY 1")]);
    let named =
        run_ok(&["query", "SELECT product_id FROM r WHERE rank = 1 ORDER BY 1", "--table", &format!("r={file}")]);
    assert_eq!(direct, named);
    assert!(direct.lines().count() > 1, "{direct}");
    let sql = dir.path().join("q.sql");
    std::fs::write(&sql, "SELECT count(*) AS n\nFROM r").unwrap();
    let from_file = run_ok(&["query", "-f", &sql.display().to_string(), "--table", &format!("r={file}")]);
    assert_eq!(from_file, "n\n8\n");
    let limited = mrpipe(&[
        "query",
        "SELECT rank FROM r ORDER BY rank, product_id",
        "--table",
        &format!("r={file}"),
        "--limit",
        "2",
    ]);
    assert_eq!(String::from_utf8_lossy(&limited.stdout), "rank\n1\n1\n");
    assert!(String::from_utf8_lossy(&limited.stderr).contains("2 of 8 rows shown"));
    let missing = mrpipe(&["query", "-f", &dir.path().join("nope.sql").display().to_string()]);
    assert_eq!(missing.status.code(), Some(2));
    let both = mrpipe(&["query", "SELECT 1", "-f", &sql.display().to_string()]);
    assert_eq!(both.status.code(), Some(2), "SQL and -f together are refused");
}

/// A query reads: it cannot write files (COPY ... TO), define tables over arbitrary
/// files (CREATE EXTERNAL TABLE) or change settings; each is a usage error.
#[test]
fn a_query_cannot_write_or_define_tables() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.csv");
    for sql in [
        format!("COPY (SELECT 1) TO '{}'", target.display()),
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/hostname'".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ] {
        let res = mrpipe(&["query", &sql]);
        assert_eq!(res.status.code(), Some(2), "{sql}: {}", String::from_utf8_lossy(&res.stderr));
    }
    assert!(!target.exists(), "COPY wrote a file");
}
