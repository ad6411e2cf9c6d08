//! End-to-end tests of the MySQL/MariaDB sink against the real server the development
//! and CI machines run (127.0.0.1:3306, root without password). Each test works in a
//! database of its own, dropped at the end.

mod common;

use common::*;
use mysql::prelude::Queryable;

struct Database {
    name: String,
    conn: mysql::Conn,
}

impl Database {
    /// `None` when scripts/test found no server and this is not CI (it said so, loudly).
    fn new(test: &str) -> Option<Database> {
        if !server_tests_enabled("mysql") {
            return None;
        }
        let name = format!("mrpipe_test_{test}_{}", std::process::id());
        let mut conn = mysql::Conn::new(mysql::Opts::from_url("mysql://root@127.0.0.1:3306/test").unwrap())
            .expect("MariaDB answers on 127.0.0.1:3306 (see scripts/test)");
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        conn.query_drop(format!("CREATE DATABASE {name}")).unwrap();
        conn.query_drop(format!("USE {name}")).unwrap();
        Some(Database { name, conn })
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }

    fn rows(&mut self, sql: &str) -> Vec<String> {
        let rows: Vec<mysql::Row> = self.conn.query(sql).unwrap();
        rows.into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| match r.as_ref(i).unwrap() {
                        mysql::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                        mysql::Value::Int(v) => v.to_string(),
                        mysql::Value::UInt(v) => v.to_string(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

const SALES: &str =
    "SELECT category_id, `rank`, product_id, total_sold, revenue FROM sales_rank ORDER BY category_id, `rank`";
const SPENDING: &str =
    "SELECT user_id, month, category, amount FROM monthly_spending ORDER BY user_id, month, category";

#[test]
fn published_once_replaced_by_month_and_rolled_back_on_failure() {
    let Some(mut db) = Database::new("sink") else { return };
    let url = db.url();
    for _ in 0..2 {
        run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &url, "--rejects", "/dev/null"]);
    }
    let want: Vec<String> = expected_rows("sales_rank.tsv");
    assert_eq!(db.rows(SALES), want);

    let tx = sample("spending/transactions");
    run_ok(&[
        "run",
        "spending",
        &tx,
        "--overrides",
        &sample("spending/overrides.tsv"),
        "-o",
        &url,
        "--rejects",
        "/dev/null",
    ]);
    let spending: Vec<String> = expected_rows("monthly_spending.tsv");
    assert_eq!(db.rows(SPENDING), spending);
    let dir = tempfile::tempdir().unwrap();
    let oct = dir.path().join("oct.tsv");
    std::fs::write(&oct, "user_id\ttimestamp\tseller\tamount\n1001\t2026-10-31T23:59:59Z\tExxon\t10.00\n").unwrap();
    run_ok(&["run", "spending", &oct.display().to_string(), "--month", "2026-10", "-o", &url]);
    let mut after = spending.clone();
    after[0] = "1001\t2026-10\tgas\t10.00".into();
    assert_eq!(db.rows(SPENDING), after, "only October is replaced");

    // A load that fails half-way leaves the previous rows.
    db.conn
        .query_drop("CREATE TRIGGER refuse BEFORE INSERT ON sales_rank FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'")
        .unwrap();
    let res =
        mrpipe(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-22", "-o", &url, "--rejects", "/dev/null"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(db.rows(SALES), want);
    assert_eq!(db.rows("SELECT count(*) FROM mrpipe_runs"), ["4"]);
}

#[test]
fn a_second_run_is_refused_by_the_named_lock() {
    let Some(mut db) = Database::new("lock") else { return };
    let url = db.url();
    let holder = start_stdin_run(&url);
    let held = format!("SELECT IS_USED_LOCK('mrpipe/hit-counts/{}') IS NOT NULL", db.name);
    wait_until("the holder's named lock", || db.rows(&held) == ["1"]);
    let refused = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &url]);
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));
    finish_stdin_run(holder);
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--rejects", "/dev/null"]);
    assert_eq!(db.rows("SELECT count(*) FROM hit_counts"), ["6"]);
}

#[test]
fn verify_reads_the_newest_run_from_mrpipe_runs_and_finds_a_changed_row() {
    let Some(mut db) = Database::new("verify") else { return };
    let url = db.url();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--strip-query", "-o", &url, "--rejects", "/dev/null"]);
    let ok = run_ok(&["verify", &url, "--job", "hit-counts"]);
    assert!(ok.starts_with("verified: 1 tables"), "{ok}");
    assert_eq!(db.rows("SELECT count(*) FROM mrpipe_runs"), ["1"], "verify published nothing");
    db.conn.query_drop("UPDATE hit_counts SET hits = hits + 1 ORDER BY month, hits DESC, url LIMIT 1").unwrap();
    let changed = mrpipe(&["verify", &url, "--job", "hit-counts"]);
    assert_eq!(changed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(err.contains("changed after the run; table hit_counts differs at row 1"), "{err}");
}

#[test]
fn alerts_are_notified_exactly_once_against_the_rows_in_mysql() {
    let Some(db) = Database::new("notify") else { return };
    notify_exactly_once(&db.url());
}

#[test]
fn skip_unchanged_reads_the_last_manifest_of_each_month_from_mrpipe_runs() {
    let Some(db) = Database::new("skip") else { return };
    skip_unchanged_skips_each_month_of_a_shared_output(&db.url());
}

#[test]
fn a_mariadb_url_is_verified_like_a_mysql_one() {
    let Some(db) = Database::new("mariadb") else { return };
    let url = db.url().replacen("mysql://", "mariadb://", 1);
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--rejects", "/dev/null"]);
    let ok = run_ok(&["verify", &url, "--job", "hit-counts"]);
    assert!(ok.starts_with("verified: 1 tables"), "{ok}");
}

#[test]
fn every_type_a_query_makes_is_stored_in_mysql() {
    let Some(mut db) = Database::new("types") else { return };
    query_of_every_type_to(&db.url());
    let got = db.rows(
        "SELECT CAST(f AS CHAR), CAST(d AS CHAR), CAST(day AS CHAR), s, CAST(b AS CHAR), CAST(t AS CHAR), \
         coalesce(CAST(n AS CHAR), 'null') FROM query",
    );
    assert_eq!(got, ["1.5\t1.500000\t2026-11-30\tv\t1\t2026-11-30 12:00:00.000000\tnull"]);
    query_into_a_table_of_another_layout_is_refused(&db.url());
}

#[test]
fn a_sql_job_publishes_to_mysql_and_verifies() {
    let Some(mut db) = Database::new("sqljob") else { return };
    a_sql_job_publishes_to_and_verifies_at(&db.url());
    assert_eq!(db.rows("SELECT count(*) FROM top_pages"), ["5"]);
}

#[test]
fn verify_reads_rows_back_in_byte_order_not_the_padding_collations() {
    // utf8mb4_bin compares 'a' as 'a ' (PAD SPACE), so it sorts after "a\x01": bytes do not.
    let Some(db) = Database::new("padspace") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.tsv");
    std::fs::write(
        &input,
        "2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/a\t200\t1\n2026-11-20T13:45:13Z\t1.2.3.4\tGET\t/a\x01\t200\t1\n",
    )
    .unwrap();
    let url = db.url();
    run_ok(&["run", "hit-counts", &input.display().to_string(), "-o", &url]);
    let ok = run_ok(&["verify", &url, "--job", "hit-counts"]);
    assert!(ok.starts_with("verified: 1 tables, 2 rows"), "{ok}");
}

#[test]
fn values_longer_than_text_and_many_long_rows_are_loaded() {
    // 70,000 bytes overflow MySQL TEXT (65,535); 400 such rows overflow one 16 MiB packet.
    let Some(db) = Database::new("long") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("links.txt");
    let lines: String = (0..400).map(|i| format!("https://example.com/{i}/{}\n", "x".repeat(70_000))).collect();
    std::fs::write(&input, lines).unwrap();
    let url = db.url();
    run_ok(&["run", "url-dedup", &input.display().to_string(), "-o", &url, "--rejects", "/dev/null"]);
    let ok = run_ok(&["verify", &url, "--job", "url-dedup"]);
    assert!(ok.starts_with("verified: 1 tables, 400 rows"), "{ok}");
}
