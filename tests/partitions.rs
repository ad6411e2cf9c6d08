//! End-to-end tests of period outputs in the Hive layout (`DIR/<table>/month=2026-11/part-0.parquet`):
//! read as one table, with pruning, by DuckDB, pyarrow, polars, pandas and `mrpipe query`;
//! a table never both a file and a directory; links of the earlier layout retired.

mod common;

use std::path::Path;

use common::*;

fn backfill(out: &Path) {
    let o = out.display().to_string();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--from", "2026-09", "--to", "2026-11", "-o", &o]);
}

#[test]
fn monthly_partitions_read_as_one_table_by_duckdb_pyarrow_polars_and_pandas() {
    if !tool_tests_enabled("python") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    backfill(&out);
    // The rows of the whole table, as the spec orders them (month, then hits down, then url).
    let want = expected("hit_counts.tsv");
    let script = r#"
import sys, duckdb, pandas, polars, pyarrow.dataset as ds
table = sys.argv[1]
def tsv(rows):
    return "".join(f"{m}\t{u}\t{h}\n" for m, u, h in sorted(rows, key=lambda r: (r[0], -r[2], r[1])))
con = duckdb.connect()
rows = con.execute(f"SELECT month, url, hits FROM read_parquet('{table}/**/*.parquet', hive_partitioning = true)").fetchall()
plan = con.execute(f"EXPLAIN ANALYZE SELECT count(*) FROM read_parquet('{table}/**/*.parquet', hive_partitioning = true) WHERE month = '2026-10'").fetchall()
dataset = ds.dataset(table, partitioning="hive")
october = dataset.to_table(filter=ds.field("month") == "2026-10")
pruned = len(list(dataset.get_fragments(filter=ds.field("month") == "2026-10")))
pl_rows = polars.scan_parquet(f"{table}/**/*.parquet", hive_partitioning=True).select("month", "url", "hits").collect().rows()
pd_frame = pandas.read_parquet(table, partitioning=None, dtype_backend="pyarrow")
pd_rows = list(pd_frame[["month", "url", "hits"]].itertuples(index=False, name=None))
print(tsv(rows), end="")
print("---")
print(tsv(pl_rows), end="")
print("---")
print(tsv(pd_rows), end="")
print("---")
print("duckdb scanned", "Scanning Files: 1/3" in plan[0][1] or "1/3" in plan[0][1])
print("pyarrow october", october.num_rows, "fragments", pruned)
"#;
    let got = std::process::Command::new(std::env::var("MRPIPE_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(script)
        .arg(out.join("hit_counts"))
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let text = String::from_utf8(got.stdout).unwrap();
    let parts: Vec<&str> = text.split("---\n").collect();
    let rows: String = want.lines().skip(1).map(|l| format!("{l}\n")).collect();
    for (reader, part) in ["duckdb", "polars", "pandas"].iter().zip(&parts) {
        assert_eq!(*part, rows, "{reader}");
    }
    let october = rows.lines().filter(|l| l.starts_with("2026-10")).count();
    assert_eq!(parts[3], format!("duckdb scanned True\npyarrow october {october} fragments 1\n"));

    // mrpipe query reads the directory the same way, month from the files.
    let sums = run_ok(&[
        "query",
        "SELECT month, sum(hits) AS hits FROM h GROUP BY month ORDER BY month",
        "--table",
        &format!("h={}/hit_counts/", out.display()),
    ]);
    assert_eq!(sums.lines().next(), Some("month\thits"));
    assert_eq!(
        sums.lines().count(),
        1 + rows.lines().map(|l| &l[..7]).collect::<std::collections::BTreeSet<_>>().len()
    );
}

#[test]
fn rankings_partitioned_by_instant_give_their_as_of_column_to_mrpipe_query() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-22", "--as-of", "2026-11-23", "-o", &out]);
    let got = run_ok(&[
        "query",
        "SELECT as_of, count(*) AS n FROM r GROUP BY as_of ORDER BY as_of",
        "--table",
        &format!("r={out}/sales_rank"),
    ]);
    let single = run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", "-"]);
    let last = got.lines().last().unwrap().to_string();
    assert_eq!(got.lines().count(), 3, "{got}");
    assert_eq!(last, format!("20261123T000000Z\t{}", single.lines().count() - 1));
}

#[test]
fn a_table_is_never_both_a_file_and_a_directory_of_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display().to_string();
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "-o", &o]);
    let res = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "--month", "2026-11", "-o", &o]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("a table is never both a file and a directory"), "{err}");
    assert!(!out.join("hit_counts").exists(), "nothing written");

    let other = dir.path().join("other");
    backfill(&other);
    let res = mrpipe(&["run", "hit-counts", &sample("access/tsv"), "-o", &other.display().to_string()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("holds hit_counts as partitions"), "{err}");
    assert!(!other.join("hit_counts.parquet").exists());
}

#[test]
fn a_link_of_the_earlier_period_layout_is_retired_when_its_period_is_republished() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    backfill(&out);
    // What an earlier mrpipe published for November: a link beside the partitions, through
    // the same store, to a file of the current generation.
    let current = out.join(".mrpipe/hit-counts/2026-11/current");
    std::fs::copy(out.join("hit_counts/month=2026-11/part-0.parquet"), current.join("hit_counts-2026-11.parquet"))
        .unwrap();
    let old = out.join("hit_counts/hit_counts-2026-11.parquet");
    std::os::unix::fs::symlink("../.mrpipe/hit-counts/2026-11/current/hit_counts-2026-11.parquet", &old).unwrap();
    assert!(old.exists());
    run_ok(&["run", "hit-counts", &sample("access/tsv"), "--month", "2026-11", "-o", &out.display().to_string()]);
    assert!(std::fs::symlink_metadata(&old).is_err(), "{:?}", files_under(&out.join("hit_counts")));
    assert_eq!(files_under(&out.join("hit_counts")).len(), 3);
}
