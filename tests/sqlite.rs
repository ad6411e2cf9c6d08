//! End-to-end tests of the SQLite output's money: exact integers (`revenue_cents`) with a
//! generated `REAL` beside them, so `ORDER BY`, `min`, `max` and `sum` are right.

mod common;

use common::*;

/// Revenues whose text order differs from their numeric order ('50.05' > '4999.95' as text).
const SALES: &str = "timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\n\
                     2026-11-20T10:00:00Z\tcheap\tbooks\t1\t50.05\ts\tb\n\
                     2026-11-20T10:00:00Z\tdear\tbooks\t1\t4999.95\ts\tb\n\
                     2026-11-20T10:00:00Z\ttiny\ttoys\t1\t0.10\ts\tb\n\
                     2026-11-20T10:00:00Z\ttiny2\ttoys\t1\t0.20\ts\tb\n\
                     2026-11-20T10:00:00Z\tmid\ttoys\t3\t900.00\ts\tb\n";

#[test]
fn money_in_sqlite_sorts_and_sums_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.tsv");
    std::fs::write(&input, SALES).unwrap();
    let db = dir.path().join("shop.db");
    run_ok(&[
        "run",
        "sales-rank",
        input.to_str().unwrap(),
        "--as-of",
        "2026-11-23",
        "-o",
        &format!("sqlite:{}", db.display()),
    ]);
    let conn = rusqlite::Connection::open(&db).unwrap();

    let order: Vec<String> = conn
        .prepare("SELECT product_id FROM sales_rank ORDER BY revenue DESC")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(order, ["dear", "mid", "cheap", "tiny2", "tiny"]);
    let (max, min, max_cents): (f64, f64, i64) = conn
        .query_row("SELECT max(revenue), min(revenue), max(revenue_cents) FROM sales_rank", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((max, min, max_cents), (4999.95, 0.1, 499_995));
    // Exact: 0.10 + 0.20 is 30 cents, where binary floats make 0.30000000000000004.
    let toys: i64 = conn
        .query_row("SELECT sum(revenue_cents) FROM sales_rank WHERE category_id = 'toys'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(toys, 90_030);
    let all: i64 = conn.query_row("SELECT sum(revenue_cents) FROM sales_rank", [], |r| r.get(0)).unwrap();
    assert_eq!(all, 5_005 + 499_995 + 10 + 20 + 90_000);
    let types: String = conn
        .query_row("SELECT typeof(revenue) || ' ' || typeof(revenue_cents) FROM sales_rank LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(types, "real integer");
    // The manifest's rows hash is that of the decimal text, read back from the integers.
    let manifest = format!("{}.sales-rank.manifest.json", db.display());
    assert!(run_ok(&["verify", &manifest]).contains("identical"));
}

#[test]
fn an_older_database_with_text_money_is_upgraded_by_a_month_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mint.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE monthly_spending (user_id TEXT NOT NULL, month TEXT NOT NULL, category TEXT NOT NULL, \
             amount TEXT NOT NULL); \
             CREATE INDEX monthly_spending_user_id_month_idx ON monthly_spending (user_id, month); \
             INSERT INTO monthly_spending VALUES ('9', '2026-09', 'gas', '12.50'), ('9', '2026-09', 'food', '-3.05'), \
             ('1001', '2026-10', 'gas', '99.99');",
        )
        .unwrap();
    }
    let url = format!("sqlite:{}", db.display());
    run_ok(&["run", "spending", &sample("spending/transactions"), "--month", "2026-10", "-o", &url]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT user_id, month, category, amount_cents, amount FROM monthly_spending ORDER BY rowid")
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{} {} {} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, f64>(4)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // September kept (now exact integers), October replaced by the run.
    assert_eq!(rows, ["9 2026-09 gas 1250 12.5", "9 2026-09 food -305 -3.05", "1001 2026-10 gas 1500 15"]);
    let manifest = format!("{}.spending-2026-10.manifest.json", db.display());
    assert!(run_ok(&["verify", &manifest]).contains("identical"));
}

#[test]
fn decimals_sqlite_cannot_keep_exactly_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("q.db").display());
    let big = mrpipe(&["query", "SELECT CAST('123456789012345678.25' AS DECIMAL(38, 2)) AS total", "-o", &db]);
    let err = String::from_utf8_lossy(&big.stderr);
    assert_eq!(big.status.code(), Some(2), "{err}");
    assert!(err.contains("column 'total' holds 123456789012345678.25"), "{err}");
    let clash = mrpipe(&["query", "SELECT CAST('1.50' AS DECIMAL(10, 2)) AS x, 1 AS x_cents", "-o", &db]);
    let err = String::from_utf8_lossy(&clash.stderr);
    assert_eq!(clash.status.code(), Some(2), "{err}");
    assert!(err.contains("columns 'x' and 'x_cents'"), "{err}");
    // Scale 0 is a plain integer; scale 2 sums exactly in x_cents.
    run_ok(&["query", "SELECT CAST(7 AS DECIMAL(5, 0)) AS n, CAST('0.10' AS DECIMAL(20, 2)) AS x", "-o", &db]);
    let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
    let got: (i64, i64, f64) =
        conn.query_row("SELECT n, x_cents, x FROM query", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    assert_eq!(got, (7, 10, 0.1));
}
