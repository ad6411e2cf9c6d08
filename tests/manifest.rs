//! End-to-end tests of run manifests and `mrpipe verify`, and of byte reproducibility:
//! every job, 1 vs 2 threads, inputs listed in two orders.

mod common;

use common::*;
use serde_json::Value;

/// A manifest without the fields that may differ between two runs.
fn stable(manifest: &std::path::Path) -> Value {
    let mut v: Value = serde_json::from_slice(&bytes(manifest)).unwrap();
    for key in ["started", "finished", "duration_secs"] {
        v.as_object_mut().unwrap().remove(key);
    }
    v
}

/// Parquet files under `dir`, as sorted relative paths.
fn parquet_files(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            // The published files, not the generation store behind them.
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_job_is_byte_identical_across_threads_and_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sales_a = generate(d, "sales", 40_000, &["--seed", "1", "--bad-rate", "0.001"]);
    let sales_b = generate(d, "sales", 20_000, &["--seed", "2"]);
    let spend = sample("spending/transactions");
    let access_a = sample("access/tsv/access.tsv");
    let access_b = generate(d, "access-tsv", 30_000, &["--seed", "3"]);
    let urls_a = sample("urls/links_to_crawl.txt");
    let urls_b = generate(d, "urls", 30_000, &["--seed", "4"]);
    let jobs: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        ("sales-rank", vec![sales_a.clone(), sales_b.clone()], vec!["--as-of", "2026-11-23", "--top", "5"]),
        ("spending", vec![spend.clone(), sample("spending/transactions/2026-10-11.tsv")], vec!["--month", "2026-11"]),
        ("hit-counts", vec![access_a.clone(), access_b.clone()], vec!["--strip-query"]),
        ("url-dedup", vec![urls_a.clone(), urls_b.clone()], vec!["--normalize", "--memory-limit", "64KiB"]),
    ];
    for (job, inputs, args) in &jobs {
        let run = |name: &str, threads: &str, reversed: bool| {
            let out = d.join(format!("{job}-{name}"));
            let mut argv = vec!["run".to_string(), job.to_string()];
            let mut ins = inputs.clone();
            if reversed {
                ins.reverse();
            }
            argv.extend(ins);
            argv.extend(args.iter().map(|a| a.to_string()));
            argv.extend(["-j".into(), threads.into(), "-o".into(), out.display().to_string()]);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            run_ok(&argv);
            out
        };
        let a = run("a", "1", false);
        let b = run("b", "2", true);
        let files = parquet_files(&a);
        assert!(!files.is_empty(), "{job}: no Parquet output");
        assert_eq!(files, parquet_files(&b), "{job}: different files");
        for name in &files {
            assert_eq!(bytes(a.join(name)), bytes(b.join(name)), "{job}: {name} differs");
        }
        let manifest = match *job {
            "spending" => "_spending-2026-11.manifest.json".to_string(),
            _ => format!("_{job}.manifest.json"),
        };
        let (ma, mb) = (stable(&a.join(&manifest)), stable(&b.join(&manifest)));
        let strip_locations = |mut v: Value| {
            v["output"] = Value::Null;
            for t in v["tables"].as_array_mut().unwrap() {
                t["location"] = Value::Null;
            }
            v
        };
        assert_eq!(strip_locations(ma), strip_locations(mb), "{job}: manifests differ beyond times and paths");
    }
}

#[test]
fn manifest_records_inputs_parameters_counts_and_output_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_ok(&[
        "run",
        "spending",
        &sample("spending/transactions"),
        "--incomes",
        &sample("spending/incomes.tsv"),
        "--month",
        "current",
        "--as-of",
        "2026-11-15",
        "-o",
        &out.display().to_string(),
    ]);
    // A one-month run is published as that month's period.
    let m: Value = serde_json::from_slice(&bytes(out.join("_spending-2026-11.manifest.json"))).unwrap();
    assert_eq!(m["job"], "spending");
    // Typed effective values: `current` resolved to a month (with --as-of).
    assert_eq!(m["params"], serde_json::json!({"month": "2026-11", "incomes": sample("spending/incomes.tsv")}));
    let input = sample("spending/transactions/2026-10-11.tsv");
    assert_eq!(m["inputs"][0]["path"], input);
    assert_eq!(m["inputs"][0]["blake3"], blake3::hash(&bytes(&input)).to_hex().as_str());
    assert_eq!(m["side_files"][0]["blake3"], blake3::hash(&bytes(sample("spending/incomes.tsv"))).to_hex().as_str());
    assert_eq!(m["lines"], serde_json::json!({ "read": 20, "good": 15, "bad": 3, "empty": 1, "header": 1 }));
    let table = &m["tables"][0];
    assert_eq!((table["name"].as_str(), table["rows"].as_u64()), (Some("monthly_spending"), Some(9)));
    let file = out.join("monthly_spending/month=2026-11/part-0.parquet");
    assert_eq!(table["location"], file.display().to_string());
    assert_eq!(table["blake3"], blake3::hash(&bytes(&file)).to_hex().as_str());
}

#[test]
fn gzip_input_hash_is_the_hash_of_the_stored_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out.display().to_string()]);
    let m: Value = serde_json::from_slice(&bytes(out.join("_sales-rank.manifest.json"))).unwrap();
    for input in m["inputs"].as_array().unwrap() {
        let path = input["path"].as_str().unwrap();
        assert_eq!(input["blake3"], blake3::hash(&bytes(path)).to_hex().as_str(), "{path}");
        assert_eq!(input["size"], std::fs::metadata(path).unwrap().len());
    }
}

#[test]
fn large_plain_input_hash_matches_across_block_sizes() {
    // 3 MB of input: several blocks at 2 threads, so the tree merge is exercised.
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "sales", 45_000, &["--seed", "12"]);
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("o{threads}"));
        run_ok(&["run", "sales-rank", &input, "-j", threads, "-o", &out.display().to_string()]);
        let m: Value = serde_json::from_slice(&bytes(out.join("_sales-rank.manifest.json"))).unwrap();
        assert_eq!(m["inputs"][0]["blake3"], blake3::hash(&bytes(&input)).to_hex().as_str());
    }
}

#[test]
fn verify_passes_on_the_published_result_and_fails_on_a_changed_row_or_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.tsv");
    std::fs::copy(sample("sales/2026-11-week.tsv"), &input).unwrap();
    let i = input.display().to_string();
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", "sales-rank", &i, "--as-of", "2026-11-23", "-o", &out]);
    let manifest = format!("{out}/_sales-rank.manifest.json");
    let ok = mrpipe(&["verify", &manifest]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("verified: 1 tables, 7 rows identical"));

    // A changed row in the published output.
    let db = dir.path().join("r.db");
    let url = format!("sqlite:{}", db.display());
    run_ok(&["run", "sales-rank", &i, "--as-of", "2026-11-23", "-o", &url]);
    let db_manifest = format!("{}.sales-rank.manifest.json", db.display());
    assert!(mrpipe(&["verify", &db_manifest]).status.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE sales_rank SET revenue_cents = 3001 WHERE product_id = 'p3'", []).unwrap();
    let changed = mrpipe(&["verify", &db_manifest]);
    let err = String::from_utf8_lossy(&changed.stderr);
    assert_eq!(changed.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "table sales_rank differs at row 1: published 'books\t1\tp3\t3\t30.01', re-run 'books\t1\tp3\t3\t30.00'"
        ),
        "{err}"
    );
    // A dropped table.
    conn.execute("DROP TABLE sales_rank", []).unwrap();
    let gone = mrpipe(&["verify", &db_manifest]);
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("table sales_rank is missing at {url}")), "{err}");

    // A changed input.
    std::fs::write(&input, "2026-11-20T00:00:00Z\tp1\tbooks\t1\t1.00\ts\tb\n").unwrap();
    let res = mrpipe(&["verify", &manifest]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1));
    assert!(err.contains(&format!("input '{i}' changed since the run")), "{err}");
}

#[test]
fn file_names_that_are_not_utf8_are_recorded_losslessly_and_verified() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Two names that the lossy form would both record as "caf\u{fffd}.tsv".
    let line = "2026-11-20T13:45:12Z\tp1\tbooks\t1\t1.00\ts\tb\n";
    for name in [&b"caf\xe9.tsv"[..], &b"caf\xff.tsv"[..]] {
        std::fs::write(logs.join(std::ffi::OsStr::from_bytes(name)), line).unwrap();
    }
    // And one whose name is that escape, literally, with other content.
    std::fs::write(logs.join("caf\\xe9.tsv"), "2026-11-20T13:45:12Z\tp2\tbooks\t3\t3.00\ts\tb\n").unwrap();
    let out = dir.path().join("out").display().to_string();
    run_ok(&["run", "sales-rank", &logs.display().to_string(), "--as-of", "2026-11-23", "-o", &out]);
    let m: Value = serde_json::from_slice(&bytes(format!("{out}/_sales-rank.manifest.json"))).unwrap();
    let paths: Vec<&str> = m["inputs"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths.iter().any(|p| p.ends_with("/caf\\xe9.tsv")) && paths.iter().any(|p| p.ends_with("/caf\\\\xe9.tsv")),
        "{paths:?}"
    );
    let ok = mrpipe(&["verify", &format!("{out}/_sales-rank.manifest.json")]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
