//! End-to-end tests of `mrpipe run spending`: categorizer, months, budget alerts.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;

fn side(name: &str) -> String {
    sample(&format!("spending/{name}"))
}

#[test]
fn sample_data_gives_spending_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("tsv:{}/", dir.path().display());
    let res = mrpipe(&[
        "run",
        "spending",
        &side("transactions"),
        "--overrides",
        &side("overrides.tsv"),
        "--incomes",
        &side("incomes.tsv"),
        "--budget-overrides",
        &side("budget_overrides.tsv"),
        "-o",
        &out,
        "-v",
    ]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{err}");
    assert_same(
        "monthly_spending",
        &expected("monthly_spending.tsv"),
        &String::from_utf8(bytes(dir.path().join("monthly_spending.tsv"))).unwrap(),
    );
    assert_same(
        "budget_alerts",
        &expected("budget_alerts.tsv"),
        &String::from_utf8(bytes(dir.path().join("budget_alerts.tsv"))).unwrap(),
    );
    assert!(err.contains("overrides.tsv:8: expected 3 fields, found 1; row skipped"), "{err}");
    assert!(err.contains("incomes.tsv:4: bad amount 'lots'; row skipped"), "{err}");
    assert_eq!(counts(&res.stderr), Counts { lines: 20, good: 15, bad: 3, empty: 1, headers: 1 });
}

#[test]
fn month_filter_and_current_month() {
    let got = run_ok(&["run", "spending", &side("transactions"), "--month", "2026-10", "-o", "-"]);
    assert_same("--month 2026-10", &expected("monthly_spending_2026-10.tsv"), &got);
    let got =
        run_ok(&["run", "spending", &side("transactions"), "--month", "current", "--as-of", "2026-10-15", "-o", "-"]);
    assert_same("--month current", &expected("monthly_spending_2026-10.tsv"), &got);
}

#[test]
fn without_budgets_only_monthly_spending_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_ok(&["run", "spending", &side("transactions"), "-o", &out.display().to_string()]);
    assert_eq!(
        entries(&out),
        vec![
            ".mrpipe",
            ".spending.lock",
            "_spending.manifest.json",
            "_spending.rejects.tsv",
            "monthly_spending.parquet"
        ]
    );
}

#[test]
fn a_missing_side_file_is_a_usage_error() {
    let res = mrpipe(&["run", "spending", &side("transactions"), "--incomes", "nope.tsv"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("'nope.tsv'"));
}

#[test]
fn generated_data_matches_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "spending", 100_000, &["--seed", "3"]);
    let sellers: HashMap<String, String> = std::fs::read_to_string(side("sellers.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (s, c) = l.split_once('\t').unwrap();
            (s.to_string(), c.to_string())
        })
        .collect();
    let mut sums: BTreeMap<(String, String, String), i128> = BTreeMap::new();
    for line in std::fs::read_to_string(&input).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let month = oracle_ts(f[1]).format("%Y-%m").to_string();
        let category = sellers.get(f[2]).cloned().unwrap_or_else(|| "uncategorized".into());
        *sums.entry((f[0].to_string(), month, category)).or_default() += oracle_cents(f[3]);
    }
    let mut want = String::from("user_id\tmonth\tcategory\tamount\n");
    for ((u, m, c), cents) in &sums {
        want.push_str(&format!("{u}\t{m}\t{c}\t{}\n", oracle_money(*cents)));
    }
    let got = run_ok(&["run", "spending", &input, "-o", "-"]);
    assert_same("generated monthly_spending", &want, &got);
}

#[test]
fn parquet_is_byte_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "spending", 80_000, &["--seed", "9", "--bad-rate", "0.002"]);
    let base = dir.path().display().to_string();
    let run = |threads: &str| {
        let o = format!("{base}/t{threads}");
        run_ok(&[
            "run",
            "spending",
            &input,
            "--overrides",
            &format!("{base}/overrides.tsv"),
            "--incomes",
            &format!("{base}/incomes.tsv"),
            "-j",
            threads,
            "-o",
            &o,
        ]);
        (bytes(format!("{o}/monthly_spending.parquet")), bytes(format!("{o}/budget_alerts.parquet")))
    };
    let one = run("1");
    assert!(one.1.len() > 1000, "alerts should not be empty");
    assert_eq!(one, run("2"));
}

#[test]
fn budget_alerts_are_notified_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    notify_exactly_once(&format!("sqlite:{}/mint.db", dir.path().display()));
    notify_exactly_once(&dir.path().join("out").display().to_string());
}
