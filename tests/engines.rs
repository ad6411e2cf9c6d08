//! The differential test of the engines: every job and every option of the spec, run
//! natively and as its SQL twin (`--engine datafusion`, and `--engine ballista` on an
//! in-process Ballista cluster whose executor reads the logs), on the sample data and
//! on generated data with faults, must publish byte-identical Parquet files (so the
//! same rows, in the same order, with the same types) and the same rejects.

mod common;

use std::path::Path;

use common::*;

/// The engines compared with the native one.
const SQL_ENGINES: [&str; 2] = ["datafusion", "ballista"];

/// Runs `job` with every engine to Parquet directories and asserts that every file
/// they publish is byte-identical to the native engine's; returns the rows published
/// per table.
fn same_on_every_engine(job: &str, inputs: &[&str], args: &[&str]) -> Vec<(String, u64)> {
    let dir = tempfile::tempdir().unwrap();
    for engine in ["native", "datafusion", "ballista"] {
        let out = dir.path().join(engine).display().to_string();
        let rejects = dir.path().join(format!("{engine}.rejects.tsv")).display().to_string();
        let mut argv = vec!["run", job];
        argv.extend(inputs);
        argv.extend(args);
        argv.extend(["--engine", engine, "-o", &out, "--rejects", &rejects]);
        run_ok(&argv);
    }
    let native = dir.path().join("native");
    let files = files_under(&native);
    let mut published = Vec::new();
    for engine in SQL_ENGINES {
        let other = dir.path().join(engine);
        assert_eq!(files, files_under(&other), "{job} {args:?}: {engine} published other files than native");
        for name in &files {
            if name.ends_with(".manifest.json") {
                let tables = manifest_tables(&native.join(name), "native");
                assert_eq!(tables, manifest_tables(&other.join(name), engine), "{job} {args:?}: {engine}: {name}");
                if engine == SQL_ENGINES[0] {
                    published.extend(tables);
                }
            } else {
                assert!(
                    bytes(native.join(name)) == bytes(other.join(name)),
                    "{job} {args:?}: {name} differs:\n--- native ---\n{}--- {engine} ---\n{}",
                    tsv_of(&native.join(name)),
                    tsv_of(&other.join(name))
                );
            }
        }
        let rejects = |e: &str| std::fs::read(dir.path().join(format!("{e}.rejects.tsv"))).unwrap_or_default();
        assert_eq!(rejects("native"), rejects(engine), "{job} {args:?}: {engine}'s rejects differ");
    }
    assert!(!published.is_empty(), "{job} {args:?}: nothing published");
    published
}

#[test]
fn every_job_with_a_sql_twin_gives_the_same_bytes_on_its_sample() {
    // Goes over the registry: a job added to it is covered without editing this test.
    for job in mrpipe::jobs::ALL {
        let info = job.info();
        // Paths of the sample run are relative to the repository.
        let args: Vec<String> = info
            .sample
            .iter()
            .map(|a| if a.starts_with("sample_data/") { root().join(a).display().to_string() } else { a.to_string() })
            .collect();
        let (input, options) = args.split_first().expect("a sample names its input");
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let published = same_on_every_engine(info.name, &[input.as_str()], &options);
        assert!(published.iter().any(|(_, rows)| *rows > 0), "{}: no rows on its sample", info.name);
    }
}

/// ("table blake3", rows) of each table in a manifest, after checking which engine wrote it.
fn manifest_tables(path: &Path, engine: &str) -> Vec<(String, u64)> {
    let m: serde_json::Value = serde_json::from_slice(&bytes(path)).unwrap();
    assert_eq!(m["engine"], engine, "{}", path.display());
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let hash = t["blake3"].as_str().unwrap();
            (format!("{} {hash}", t["name"].as_str().unwrap()), t["rows"].as_u64().unwrap())
        })
        .collect()
}

/// A Parquet file as TSV, for failure messages.
fn tsv_of(path: &Path) -> String {
    let out = mrpipe(&["show", &path.display().to_string()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts every table published rows, so no comparison passes on empty outputs.
fn assert_rows(what: &str, published: &[(String, u64)], tables: usize) {
    assert_eq!(published.len(), tables, "{what}: {published:?}");
    assert!(published.iter().all(|(_, rows)| *rows > 0), "{what}: an empty table: {published:?}");
}

#[test]
fn sales_rank_on_every_engine() {
    let sales = sample("sales");
    for args in [
        &["--as-of", "2026-11-23"][..],
        &["--as-of", "2026-11-23", "--top", "2"],
        &["--as-of", "2026-11-21T06:30:00+02:00", "--window", "36h"],
        &["--as-of", "2026-11-23", "--window", "1d", "--top", "1"],
        &["--from", "2026-11-20", "--to", "2026-11-23", "--every", "1d", "--top", "3"],
    ] {
        let published = same_on_every_engine("sales-rank", &[&sales], args);
        assert!(published.iter().all(|(_, rows)| *rows > 0), "{args:?}: {published:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), "sales", 40_000, &["--seed", "5", "--bad-rate", "0.01"]);
    for args in [
        &["--as-of", "2026-11-23"][..],
        &["--as-of", "2026-11-20T12:00:00Z", "--window", "3d", "--top", "5"],
        &["--from", "2026-11-10", "--to", "2026-11-22", "--every", "4d"],
    ] {
        let published = same_on_every_engine("sales-rank", &[&generated], args);
        assert!(published.iter().all(|(_, rows)| *rows > 0), "{args:?}: {published:?}");
    }
}

#[test]
fn spending_on_every_engine() {
    let tx = sample("spending/transactions");
    let side = |f: &str| sample(&format!("spending/{f}"));
    let (sellers, overrides, incomes, budgets) =
        (side("sellers.tsv"), side("overrides.tsv"), side("incomes.tsv"), side("budget_overrides.tsv"));
    let all = ["--sellers", &sellers, "--overrides", &overrides, "--incomes", &incomes, "--budget-overrides", &budgets];
    assert_rows("sample, all side files", &same_on_every_engine("spending", &[&tx], &all), 2);
    let mut october = all.to_vec();
    october.extend(["--month", "2026-10"]);
    let published = same_on_every_engine("spending", &[&tx], &october);
    assert!(published.len() == 2 && published[0].1 > 0, "--month: {published:?}");
    let current = ["--overrides", &overrides, "--incomes", &incomes, "--month", "current", "--as-of", "2026-11-15"];
    assert_rows("--month current", &same_on_every_engine("spending", &[&tx], &current), 2);
    assert_rows("no side files", &same_on_every_engine("spending", &[&tx], &[]), 1);
    let mut backfill = all.to_vec();
    backfill.extend(["--from", "2026-09", "--to", "2026-11"]);
    let published = same_on_every_engine("spending", &[&tx], &backfill);
    assert!(published.len() >= 4, "{published:?}");

    // Generated transactions with faults, the generated seller map, crowd votes and
    // incomes, plus side files written to hit every rule: sellers listed twice,
    // padded names, tied and repeated votes, a repeated income, budgets that round
    // half away from zero (also negative ones), overrides with padded categories, a
    // negative override, and rows that are skipped with a warning.
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), "spending", 40_000, &["--seed", "6", "--bad-rate", "0.01"]);
    let d = dir.path();
    let extra = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let mut sellers = std::fs::read_to_string(d.join("sellers.tsv")).unwrap();
    sellers.push_str("Exxon\tauto\n  Shell  \t fuel \nbroken line\nStarbucks\tcoffee\n");
    let sellers = extra("sellers-extra.tsv", &sellers);
    let mut crowd = std::fs::read_to_string(d.join("overrides.tsv")).unwrap();
    crowd.push_str("u1\tNew Cafe\tfood\nu1\tNew Cafe\tfood\nu2\tNew Cafe\tshopping\nu3\t New Cafe \tshopping\n");
    let crowd = extra("overrides-extra.tsv", &crowd);
    let mut incomes = std::fs::read_to_string(d.join("incomes.tsv")).unwrap();
    let users: Vec<String> = String::from_utf8_lossy(&bytes(&generated))
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .filter(|u| !u.is_empty() && u != "user_id")
        .take(200)
        .collect();
    for (i, user) in users.iter().enumerate().step_by(7) {
        incomes.push_str(&format!("{user}\t{}.{:02}\n", 1000 + i * 37, (i * 13) % 100));
    }
    incomes.push_str(&format!("{}\t-1234.05\n{}\tnot money\n", users[1], users[2]));
    let incomes = extra("incomes-extra.tsv", &incomes);
    let mut budget_overrides = String::from("user_id\tcategory\tamount\n");
    for (i, user) in users.iter().enumerate().step_by(5) {
        let category = ["food", " gas ", "shopping", "housing", "coffee", "uncategorized"][i % 6];
        budget_overrides.push_str(&format!("{user}\t{category}\t{}.5\n", 20 + i * 3));
    }
    budget_overrides.push_str(&format!("{}\tfood\t12.345\n", users[4]));
    // A refund against a negative budget: -9.00 reaches -10.00, yet is not 80% of it.
    budget_overrides.push_str("refunded\tauto\t-10\n");
    let budget_overrides = extra("budget-overrides.tsv", &budget_overrides);
    let refunds = extra("refunds.tsv", "refunded\t2026-11-05T10:00:00Z\tExxon\t-9.00\n");
    let all =
        ["--sellers", &sellers, "--overrides", &crowd, "--incomes", &incomes, "--budget-overrides", &budget_overrides];
    assert_rows("generated, all side files", &same_on_every_engine("spending", &[&generated, &refunds], &all), 2);
    let mut month = all.to_vec();
    month.extend(["--month", "2026-11"]);
    assert_rows("generated, --month", &same_on_every_engine("spending", &[&generated, &refunds], &month), 2);
    let incomes_only = ["--incomes", &incomes];
    assert_rows("generated, incomes only", &same_on_every_engine("spending", &[&generated], &incomes_only), 2);
}

#[test]
fn hit_counts_on_every_engine() {
    let (tsv, clf) = (sample("access/tsv"), sample("access/clf"));
    for (input, args) in [
        (&tsv, &[][..]),
        (&tsv, &["--strip-query"]),
        (&tsv, &["--month", "2026-10"]),
        (&tsv, &["--from", "2026-09", "--to", "2026-11", "--strip-query"]),
        (&clf, &["--format", "clf"]),
        (&clf, &["--format", "clf", "--strip-query"]),
    ] {
        let published = same_on_every_engine("hit-counts", &[input], args);
        assert!(published.iter().any(|(_, rows)| *rows > 0), "{args:?}: {published:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let generated_tsv = generate(dir.path(), "access-tsv", 40_000, &["--seed", "7", "--bad-rate", "0.01"]);
    let generated_clf = generate(dir.path(), "access-clf", 40_000, &["--seed", "8", "--bad-rate", "0.01"]);
    assert_rows("generated tsv", &same_on_every_engine("hit-counts", &[&generated_tsv], &[]), 1);
    let strip = ["--strip-query", "--month", "2026-11"];
    assert_rows("generated tsv, --strip-query", &same_on_every_engine("hit-counts", &[&generated_tsv], &strip), 1);
    let clf_args = ["--format", "clf", "--strip-query"];
    assert_rows("generated clf", &same_on_every_engine("hit-counts", &[&generated_clf], &clf_args), 1);
}

#[test]
fn url_dedup_on_every_engine() {
    let urls = sample("urls");
    for args in [
        &["--mode", "distinct"][..],
        &["--mode", "singletons"],
        &["--normalize"],
        &["--mode", "singletons", "--normalize"],
    ] {
        assert_rows(&format!("{args:?}"), &same_on_every_engine("url-dedup", &[&urls], args), 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), "urls", 60_000, &["--seed", "9", "--bad-rate", "0.01"]);
    assert_rows("generated", &same_on_every_engine("url-dedup", &[&generated], &["--normalize"]), 1);
    // A memory limit far below the data: the native engine spills its partitions,
    // DataFusion its aggregation.
    let limited = ["--mode", "singletons", "--memory-limit", "8MiB"];
    assert_rows("generated, --memory-limit", &same_on_every_engine("url-dedup", &[&generated], &limited), 1);
}

#[test]
fn a_sum_too_large_for_the_table_fails_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.tsv");
    let line = "2026-11-20T00:00:00Z\tp1\tc1\t1\t9999999999999999.99\ts\tb\n";
    std::fs::write(&input, line.repeat(2)).unwrap();
    for engine in ["native", "datafusion", "ballista"] {
        let out = dir.path().join(engine);
        let o = out.display().to_string();
        let res = mrpipe(&[
            "run",
            "sales-rank",
            &input.display().to_string(),
            "--as-of",
            "2026-11-21",
            "--engine",
            engine,
            "-o",
            &o,
        ]);
        assert_eq!(res.status.code(), Some(1), "{engine}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(!out.join("sales_rank.parquet").exists(), "{engine} published a result");
    }
}

#[test]
fn verify_replays_the_engine_of_the_manifest() {
    for engine in SQL_ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let o = dir.path().join("out").display().to_string();
        run_ok(&["run", "url-dedup", &sample("urls"), "--normalize", "--engine", engine, "-o", &o]);
        let manifest = dir.path().join("out/_url-dedup.manifest.json");
        let recorded: serde_json::Value = serde_json::from_slice(&bytes(&manifest)).unwrap();
        assert_eq!(recorded["engine"], engine);
        let out = run_ok(&["verify", &manifest.display().to_string()]);
        assert!(out.starts_with("verified: 1 tables"), "{engine}: {out}");
    }
}

/// Over the bad-line budget, every engine fails the same way (exit 3, nothing
/// published) with the same rejects file: the first N+1 bad lines in file order, also
/// when Ballista's executor read the parts of the input.
#[test]
fn the_bad_line_budget_is_the_same_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), "sales", 40_000, &["--seed", "11", "--bad-rate", "0.01"]);
    for budget in ["0", "5", "0.5%"] {
        let mut rejects = Vec::new();
        for engine in ["native", "datafusion", "ballista"] {
            let out = dir.path().join(format!("{engine}-{budget}"));
            let r = dir.path().join(format!("{engine}-{budget}.rejects.tsv"));
            let (o, rj) = (out.display().to_string(), r.display().to_string());
            let args = ["run", "sales-rank", &generated, "--as-of", "2026-11-23", "-j", "3", "--engine", engine];
            let res = mrpipe(&[&args[..], &["--max-bad-lines", budget, "-o", &o, "--rejects", &rj]].concat());
            assert_eq!(res.status.code(), Some(3), "{engine} {budget}: {}", String::from_utf8_lossy(&res.stderr));
            assert!(!out.join("sales_rank.parquet").exists(), "{engine} {budget} published a result");
            rejects.push(bytes(&r));
        }
        assert!(rejects[0].len() > 100, "{budget}: no rejects");
        assert!(rejects.iter().all(|r| *r == rejects[0]), "{budget}: the engines' rejects differ");
    }
}

#[test]
fn ballista_refuses_stdin_and_cluster_needs_its_engine() {
    let sales = sample("sales");
    let res = mrpipe(&["run", "sales-rank", "-", "--as-of", "2026-11-23", "--engine", "ballista"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("executors"), "{}", String::from_utf8_lossy(&res.stderr));
    let res = mrpipe(&["run", "sales-rank", &sales, "--as-of", "2026-11-23", "--cluster", "df://127.0.0.1:1"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("--engine ballista"));
    let res = mrpipe(&["run", "sales-rank", &sales, "--engine", "ballista", "--cluster", "http://x:1"]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("df://HOST:PORT"));
}

#[test]
fn months_at_the_edges_of_time_on_every_engine() {
    // Instants before 1970 (also by a fraction of a second), outside the years a
    // nanosecond timestamp reaches (1677-2262), at both ends of 0000-9999, and
    // offsets that move a request into the previous or next month; plus offsets that
    // would leave 0000-9999, which are bad lines.
    let stamps = [
        "0000-01-01T00:00:00Z",
        "0000-01-01T01:00:00+01:00",
        "0000-01-01T00:00:00+01:00",
        "1500-03-01 12:00:00",
        "1969-12-31T23:59:59.5Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "0",
        "2026-11-01T00:30:00+01:00",
        "2026-10-31T23:30:00-01:00",
        "2300-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
    ];
    let dir = tempfile::tempdir().unwrap();
    let access: String = stamps.iter().map(|t| format!("{t}\t10.0.0.1\tGET\t/p?q=1\t200\t5\n")).collect();
    let tx: String = stamps.iter().map(|t| format!("u1\t{t}\tExxon\t1.25\n")).collect();
    let (a, t) = (dir.path().join("access.tsv"), dir.path().join("tx.tsv"));
    std::fs::write(&a, access).unwrap();
    std::fs::write(&t, tx).unwrap();
    let published = same_on_every_engine("hit-counts", &[&a.display().to_string()], &["--strip-query"]);
    assert_eq!(published[0].1, 8, "{published:?}");
    let published = same_on_every_engine("spending", &[&t.display().to_string()], &[]);
    assert_eq!(published[0].1, 8, "{published:?}");
}

#[test]
fn empty_inputs_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for (job, header, args) in [
        (
            "sales-rank",
            "timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\n",
            &["--as-of", "2026-11-23"][..],
        ),
        ("spending", "user_id\ttimestamp\tseller\tamount\n", &["--incomes", &sample("spending/incomes.tsv")]),
        ("hit-counts", "", &[]),
        ("url-dedup", "\n  \n", &["--normalize"]),
    ] {
        let input = dir.path().join(format!("{job}.tsv"));
        std::fs::write(&input, header).unwrap();
        let published = same_on_every_engine(job, &[&input.display().to_string()], args);
        assert!(published.iter().all(|(_, rows)| *rows == 0), "{job}: {published:?}");
    }
}
