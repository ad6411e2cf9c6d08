//! End-to-end tests of the PostgreSQL sink against the real server the development
//! and CI machines run (127.0.0.1:5432, trust auth, database `test`). Each test works
//! in its own schema, dropped at the end, so tests can run in parallel.

mod common;

use common::*;

/// A schema of its own for one test; dropped when the test ends.
struct Schema {
    name: String,
    client: postgres::Client,
}

impl Schema {
    /// `None` when scripts/test found no server and this is not CI (it said so, loudly).
    fn new(test: &str) -> Option<Schema> {
        if !server_tests_enabled("postgres") {
            return None;
        }
        let name = format!("mrpipe_test_{test}_{}", std::process::id());
        let mut client = postgres::Client::connect("postgres://postgres@127.0.0.1:5432/test", postgres::NoTls)
            .expect("PostgreSQL answers on 127.0.0.1:5432 (see .ci/run)");
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).unwrap();
        Some(Schema { name, client })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/test?schema={}", self.name)
    }

    /// Rows of a query as TSV lines (every column cast to text).
    fn rows(&mut self, sql: &str) -> Vec<String> {
        let sql = sql.replace("$schema", &self.name);
        self.client
            .query(&sql, &[])
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect::<Vec<_>>().join("\t"))
            .collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = self.client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

const SALES: &str = "SELECT category_id, rank::text, product_id, total_sold::text, revenue::text FROM $schema.sales_rank ORDER BY category_id, rank";
const SPENDING: &str = "SELECT user_id, month, category, amount::text FROM $schema.monthly_spending ORDER BY 1, 2, 3";

#[test]
fn sales_rank_is_published_once_with_numeric_money_and_a_manifest_row() {
    let Some(mut db) = Schema::new("sales") else { return };
    let url = db.url();
    for _ in 0..2 {
        run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &url, "--rejects", "/dev/null"]);
    }
    let want: Vec<String> = expected_rows("sales_rank.tsv");
    assert_eq!(db.rows(SALES), want);
    let types = db.rows("SELECT column_name, data_type || coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '') FROM information_schema.columns WHERE table_schema = '$schema' AND table_name = 'sales_rank' ORDER BY ordinal_position");
    assert_eq!(
        types,
        [
            "category_id\ttext",
            "rank\tbigint(64,0)",
            "product_id\ttext",
            "total_sold\tbigint(64,0)",
            "revenue\tnumeric(18,2)"
        ]
    );
    let runs = db.rows(
        "SELECT count(*)::text, min(manifest->'lines'->>'good') FROM $schema.mrpipe_runs WHERE job = 'sales-rank'",
    );
    assert_eq!(runs, ["2\t14"]);
}

#[test]
fn month_scoped_tables_replace_only_the_months_of_the_run() {
    let Some(mut db) = Schema::new("months") else { return };
    let url = db.url();
    let tx = sample("spending/transactions");
    let overrides = sample("spending/overrides.tsv");
    let incomes = sample("spending/incomes.tsv");
    run_ok(&[
        "run",
        "spending",
        &tx,
        "--overrides",
        &overrides,
        "--incomes",
        &incomes,
        "-o",
        &url,
        "--rejects",
        "/dev/null",
    ]);
    let want: Vec<String> = expected_rows("monthly_spending.tsv");
    assert_eq!(db.rows(SPENDING), want);
    // October again from a smaller input: October changes, November stays as it was.
    let dir = tempfile::tempdir().unwrap();
    let oct = dir.path().join("oct.tsv");
    std::fs::write(&oct, "user_id\ttimestamp\tseller\tamount\n1001\t2026-10-31T23:59:59Z\tExxon\t10.00\n").unwrap();
    run_ok(&["run", "spending", &oct.display().to_string(), "--month", "2026-10", "-o", &url]);
    let mut after = want.clone();
    after[0] = "1001\t2026-10\tgas\t10.00".into();
    assert_eq!(db.rows(SPENDING), after);
    // Without budget overrides: 1001 food exceeded, 1002 housing near (both November).
    let alerts = db.rows("SELECT user_id || ' ' || category || ' ' || status FROM $schema.budget_alerts ORDER BY 1");
    assert_eq!(
        alerts,
        ["1001 food exceeded", "1002 housing near"],
        "November's alerts are untouched by an October run"
    );
}

#[test]
fn a_failed_load_leaves_the_previous_rows() {
    let Some(mut db) = Schema::new("atomic") else { return };
    let url = db.url();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &url, "--rejects", "/dev/null"]);
    let before = db.rows(SALES);
    // A constraint that the next load violates (old rows are not checked: NOT VALID).
    let name = db.name.clone();
    db.client
        .batch_execute(&format!("ALTER TABLE {name}.sales_rank ADD CONSTRAINT small CHECK (total_sold < 3) NOT VALID"))
        .unwrap();
    let res =
        mrpipe(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-22", "-o", &url, "--rejects", "/dev/null"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("violates check constraint"), "{err}");
    assert_eq!(db.rows(SALES), before);
}

#[test]
fn a_second_run_is_refused_by_the_advisory_lock() {
    let Some(mut db) = Schema::new("lock") else { return };
    let url = db.url();
    let holder = start_stdin_run(&url);
    let who = format!("mrpipe pid {}", holder.id());
    let held = format!(
        "SELECT count(*)::text FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND a.application_name = '{who}'"
    );
    wait_until("the holder's advisory lock", || db.rows(&held) == ["1"]);
    let refused = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &url]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(err.contains(&who), "{err}");
    // Nothing is created before the lock is held: concurrent first runs cannot race in the catalog.
    let schemas = "SELECT count(*)::text FROM information_schema.schemata WHERE schema_name = '$schema'";
    assert_eq!(db.rows(schemas), ["0"]);
    // --wait: a short one ends with exit 4; a long one is queued by the server and
    // proceeds once the holder is done (seen waiting in pg_locks before it is released).
    let short = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--wait", "1s"]);
    assert_eq!(short.status.code(), Some(4), "{}", String::from_utf8_lossy(&short.stderr));
    let waiter = std::process::Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--wait", "60s", "--rejects", "/dev/null"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    wait_until("the waiter queued on the advisory lock", || db.rows(waiting) == ["1"]);
    finish_stdin_run(holder);
    let waited = waiter.wait_with_output().unwrap();
    assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--rejects", "/dev/null"]);
}

#[test]
fn alerts_are_notified_exactly_once_against_the_rows_in_postgres() {
    let Some(db) = Schema::new("notify") else { return };
    notify_exactly_once(&db.url());
}

#[test]
fn verify_reads_the_newest_run_from_mrpipe_runs_and_finds_a_changed_row() {
    let Some(mut db) = Schema::new("verify") else { return };
    let url = db.url();
    let tx = sample("spending/transactions");
    let incomes = sample("spending/incomes.tsv");
    run_ok(&["run", "spending", &tx, "--incomes", &incomes, "-o", &url, "--rejects", "/dev/null"]);
    let ok = run_ok(&["verify", &url, "--job", "spending"]);
    assert!(ok.starts_with("verified: 2 tables"), "{ok}");
    // The newest run is October's alone; November's rows, from the first run, are
    // not its rows and are not compared.
    run_ok(&[
        "run",
        "spending",
        &tx,
        "--incomes",
        &incomes,
        "--month",
        "2026-10",
        "-o",
        &url,
        "--engine",
        "datafusion",
    ]);
    let ok = run_ok(&["verify", &url, "--job", "spending"]);
    assert!(ok.starts_with("verified: 2 tables"), "{ok}");
    let runs = db.rows("SELECT count(*)::text FROM $schema.mrpipe_runs");
    assert_eq!(runs, ["2"], "verify published nothing");

    // The same check from a manifest file: the one recorded in mrpipe_runs.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.json");
    let recorded = db.rows("SELECT manifest::text FROM $schema.mrpipe_runs ORDER BY finished DESC LIMIT 1");
    std::fs::write(&manifest, &recorded[0]).unwrap();
    assert!(run_ok(&["verify", &manifest.display().to_string()]).starts_with("verified: 2 tables"));

    db.rows("UPDATE $schema.monthly_spending SET amount = amount + 0.01 WHERE month = '2026-10' RETURNING ''");
    let changed = mrpipe(&["verify", &url, "--job", "spending"]);
    assert_eq!(changed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(err.contains("changed after the run; table monthly_spending differs at row 1"), "{err}");

    let no_job = mrpipe(&["verify", &url]);
    assert_eq!(no_job.status.code(), Some(2));
    let never = mrpipe(&["verify", &url, "--job", "url-dedup"]);
    assert_eq!(never.status.code(), Some(2), "{}", String::from_utf8_lossy(&never.stderr));
}

#[test]
fn skip_unchanged_reads_the_last_manifest_of_each_month_from_mrpipe_runs() {
    let Some(db) = Schema::new("skip") else { return };
    skip_unchanged_skips_each_month_of_a_shared_output(&db.url());
}

#[test]
fn every_type_a_query_makes_is_stored_in_postgres() {
    let Some(mut db) = Schema::new("types") else { return };
    query_of_every_type_to(&db.url());
    let got = db
        .rows("SELECT f::text, d::text, day::text, s, b::text, t::text, coalesce(n::text, 'null') FROM $schema.query");
    assert_eq!(got, ["1.5\t1.500000\t2026-11-30\tv\ttrue\t2026-11-30 12:00:00\tnull"]);
    query_into_a_table_of_another_layout_is_refused(&db.url());
}

#[test]
fn a_sql_job_publishes_to_postgres_and_verifies() {
    let Some(mut db) = Schema::new("sqljob") else { return };
    a_sql_job_publishes_to_and_verifies_at(&db.url());
    assert_eq!(db.rows("SELECT count(*)::text FROM $schema.top_pages"), ["5"]);
}

#[test]
fn a_table_named_with_capitals_is_verified() {
    let Some(db) = Schema::new("caps") else { return };
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("caps.sql");
    std::fs::write(&job, "-- job: caps\n-- input: u urls\n-- output: Top ORDER BY url\nSELECT url FROM u;\n").unwrap();
    let url = db.url();
    run_ok(&["run", &job.display().to_string(), &sample("urls"), "-o", &url, "--rejects", "/dev/null"]);
    let ok = run_ok(&["verify", &url, "--job", "caps"]);
    assert!(ok.starts_with("verified: 1 tables"), "{ok}");
}

#[test]
fn a_password_in_the_url_is_printed_and_stored_nowhere() {
    let Some(mut db) = Schema::new("secret") else { return };
    // Trust authentication ignores the password; it only has to be hidden.
    let url = format!("{}&password=hunter2", db.url());
    let res = mrpipe(&[
        "run",
        "hit-counts",
        &sample("access/tsv"),
        "-o",
        &url,
        "--rejects",
        "/dev/null",
        "--log-format",
        "json",
    ]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let dry = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--dry-run"]);
    let bad = mrpipe(&[
        "run",
        "hit-counts",
        &sample("access/tsv"),
        "-o",
        &url.replace("5432", "1"),
        "--rejects",
        "/dev/null",
    ]);
    for out in [&res, &dry, &bad] {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("hunter2") && !text.is_empty(), "{text}");
    }
    let recorded = db.rows("SELECT manifest::text FROM $schema.mrpipe_runs");
    assert!(!recorded[0].contains("hunter2") && recorded[0].contains("password=***"), "{}", recorded[0]);
}

#[test]
fn a_server_that_accepts_but_never_answers_ends_the_run_with_an_error() {
    // A listener on loopback that takes connections and says nothing, as a frozen server does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // It keeps every connection open until the test ends (the process exits): no timing.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2).flatten() {
            held.push(stream);
        }
        let _ = finished.recv();
    });
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=2"),
        format!("mysql://root@127.0.0.1:{port}/test?tcp_connect_timeout_ms=2000"),
    ] {
        let started = std::time::Instant::now();
        let res = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &url, "--rejects", "/dev/null"]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{url}: {err}");
        assert!(err.contains("timed out"), "{url}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{url}: took {:?}", started.elapsed());
    }
    drop(done);
}

#[test]
fn a_nul_byte_is_a_counted_bad_line_for_every_output_not_a_failed_load() {
    let Some(db) = Schema::new("nul") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("links.txt");
    std::fs::write(&input, "https://a.example/\nhttps://b.example/\x00x\n").unwrap();
    let rejects = dir.path().join("r.tsv");
    let res = mrpipe(&[
        "run",
        "url-dedup",
        &input.display().to_string(),
        "-o",
        &db.url(),
        "--rejects",
        &rejects.display().to_string(),
        "-v",
    ]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!((counts(&res.stderr).good, counts(&res.stderr).bad), (1, 1));
    assert!(std::fs::read_to_string(&rejects).unwrap().contains("NUL byte at byte 19"));
}
