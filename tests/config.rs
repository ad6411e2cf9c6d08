//! End-to-end tests of `mrpipe.toml`: per-job defaults, command-line overrides, the
//! lookup order, and errors that name the bad key and the file.

mod common;

use common::*;

fn write_config(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_cron_line_is_just_the_job_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[defaults]\noutput = \"-\"\nmax-bad-lines = 7\n\n[sales-rank]\ninputs = [\"{}\"]\nas-of = \"2026-11-23\"\ntop = 2\nquiet = true\n",
        sample("sales")
    );
    write_config(dir.path(), "mrpipe.toml", &config);
    let res = mrpipe_in(dir.path(), &["run", "sales-rank"]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_same("from ./mrpipe.toml", &expected("sales_rank_top2.tsv"), &String::from_utf8(res.stdout).unwrap());

    // The command line wins over the file: here --top and the inputs.
    let res = mrpipe_in(dir.path(), &["run", "sales-rank", "--top", "10", &sample("sales/2026-11-week.tsv")]);
    let got = String::from_utf8(res.stdout).unwrap();
    assert!(got.contains("books\t4\tp2\t2\t31.00") && !got.contains("kitchen"), "{got}");
}

#[test]
fn config_from_the_environment_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = write_config(
        dir.path(),
        "urls.toml",
        &format!("[url-dedup]\ninputs = [\"{}\"]\nnormalize = true\noutput = \"-\"\n", sample("urls")),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "url-dedup"])
        .env("MRPIPE_CONFIG", &elsewhere)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_same("$MRPIPE_CONFIG", &expected("urls_distinct_normalized.tsv"), &String::from_utf8(out.stdout).unwrap());
    let got = run_ok(&["run", "url-dedup", "--config", &elsewhere, "--mode", "singletons"]);
    assert_same("--config", &expected("urls_singletons_normalized.tsv"), &got);
}

#[test]
fn unknown_keys_and_tables_are_usage_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[sales-rank]\ntopp = 3\n", "unknown key 'topp' in [sales-rank]"),
        ("[sales-rank]\nstrip-query = true\n", "unknown key 'strip-query' in [sales-rank]"),
        ("[sales-ranks]\ntop = 3\n", "unknown table [sales-ranks]"),
        ("[sales-rank\n", "not valid TOML"),
    ] {
        let path = write_config(dir.path(), "bad.toml", text);
        let res = mrpipe(&["run", "sales-rank", "--config", &path, &sample("sales")]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle) && err.contains("bad.toml"), "{text}: {err}");
    }
}

#[test]
fn the_shipped_example_names_only_real_options() {
    let example = root().join("jobs/mrpipe.example.toml").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Inputs, output and threshold from the command line; the example's other keys apply.
    let res = mrpipe_in(
        dir.path(),
        &["run", "hit-counts", "--config", &example, &sample("access/clf"), "-o", "-", "--max-bad-lines", "100%"],
    );
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_same("example config", &expected("hit_counts_clf_strip_query.tsv"), &String::from_utf8(res.stdout).unwrap());
}
