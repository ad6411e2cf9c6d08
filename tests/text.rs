//! End-to-end tests of the delimited text outputs: TSV escaping (`-o -`, `tsv:`) and
//! RFC 4180 CSV (`csv:`), each read back by the readers users have (Python's `csv`,
//! pandas, polars) and, for TSV, by PostgreSQL's `COPY`.

mod common;

use std::path::Path;

use common::*;

/// Values holding every character a delimited format must take care of, and a NULL.
const VALUES: &str = "SELECT id, v FROM (VALUES \
    (1, 'tab' || chr(9) || 'here'), \
    (2, 'line' || chr(10) || 'feed'), \
    (3, 'carriage' || chr(13) || 'return'), \
    (4, 'back\\slash\\n'), \
    (5, '\\N'), \
    (6, CAST(NULL AS VARCHAR)), \
    (7, 'comma, \"quoted\" text'), \
    (8, 'ünï 😀'), \
    (9, ' padded ')) AS t(id, v) ORDER BY id";

/// What the readers must give back, in order (`None` for NULL).
fn expected_values() -> Vec<Option<&'static str>> {
    vec![
        Some("tab\there"),
        Some("line\nfeed"),
        Some("carriage\rreturn"),
        Some("back\\slash\\n"),
        Some("\\N"),
        None,
        Some("comma, \"quoted\" text"),
        Some("ünï 😀"),
        Some(" padded "),
    ]
}

#[test]
fn tsv_escapes_tab_newline_carriage_return_and_backslash_and_writes_null_as_backslash_n() {
    let got = run_ok(&["query", VALUES]);
    assert_eq!(
        got,
        "id\tv\n1\ttab\\there\n2\tline\\nfeed\n3\tcarriage\\rreturn\n4\tback\\\\slash\\\\n\n5\t\\\\N\n6\t\\N\n\
         7\tcomma, \"quoted\" text\n8\tünï 😀\n9\t padded \n"
    );
    // The same bytes from a file output, and a header escaped like the values.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.tsv");
    run_ok(&["query", VALUES, "-o", &format!("tsv:{}", file.display())]);
    assert_eq!(String::from_utf8(bytes(&file)).unwrap(), got);
    let header = run_ok(&["query", "SELECT 1 AS \"a\tb\""]);
    assert_eq!(header, "a\\tb\n1\n");
}

/// Runs `python3 -c script args...` and returns its stdout; panics naming stderr.
fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python_exe()).arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn python_exe() -> String {
    std::env::var("MRPIPE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The values a Python reader printed as a JSON list.
fn values_of(json: &str) -> Vec<Option<String>> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn expected_owned() -> Vec<Option<String>> {
    expected_values().into_iter().map(|v| v.map(str::to_string)).collect()
}

#[test]
fn tsv_round_trips_through_pythons_csv_module_with_the_documented_unescaping() {
    if !tool_tests_enabled("python") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.tsv");
    run_ok(&["query", VALUES, "-o", &format!("tsv:{}", file.display())]);
    // The recipe the README gives: split on TAB (no quoting), then undo the four escapes.
    let script = r#"
import csv, json, re, sys
UNESCAPE = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
def value(field):
    return None if field == r"\N" else re.sub(r"\\(.)", lambda m: UNESCAPE[m.group(1)], field)
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
print(json.dumps([value(r[1]) for r in rows[1:]], ensure_ascii=False))
"#;
    assert_eq!(values_of(&python(script, &[file.to_str().unwrap()])), expected_owned());
}

#[test]
fn csv_round_trips_through_pythons_csv_pandas_and_polars() {
    if !tool_tests_enabled("python") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.csv");
    run_ok(&["query", VALUES, "-o", &format!("csv:{}", file.display())]);
    let text = String::from_utf8(bytes(&file)).unwrap();
    assert!(text.starts_with("id,v\n1,tab\there\n2,\"line\nfeed\"\n3,\"carriage\rreturn\"\n"), "{text}");
    assert!(text.contains("\n6,\n7,\"comma, \"\"quoted\"\" text\"\n"), "{text}");
    // CSV has no NULL: an empty field is read as missing by pandas and polars, as "" by csv.
    let path = file.to_str().unwrap();
    let csv_module = r#"
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
print(json.dumps([r[1] or None for r in rows[1:]], ensure_ascii=False))
"#;
    let pandas = r#"
import json, sys, pandas
df = pandas.read_csv(sys.argv[1], dtype=str, keep_default_na=False, na_values=[""])
print(json.dumps([None if pandas.isna(v) else v for v in df["v"]], ensure_ascii=False))
"#;
    let polars = r#"
import json, sys, polars
df = polars.read_csv(sys.argv[1], infer_schema=False)
print(json.dumps(df["v"].to_list(), ensure_ascii=False))
"#;
    for (reader, script) in [("csv", csv_module), ("pandas", pandas), ("polars", polars)] {
        assert_eq!(values_of(&python(script, &[path])), expected_owned(), "{reader}");
    }
}

#[test]
fn job_outputs_as_csv_keep_exact_money_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("csv:{}/", dir.path().join("out").display());
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &out]);
    let written = String::from_utf8(bytes(dir.path().join("out/sales_rank.csv"))).unwrap();
    // The expected TSV (no value needs quoting) with commas.
    assert_eq!(written, expected("sales_rank.tsv").replace('\t', ","));
    let manifest = dir.path().join("out/_sales-rank.manifest.json");
    assert!(run_ok(&["verify", manifest.to_str().unwrap()]).contains("identical"));
    // Two tables need a directory, to stdout too.
    let res = mrpipe(&[
        "run",
        "spending",
        &sample("spending/transactions"),
        "--incomes",
        &sample("spending/incomes.tsv"),
        "-o",
        "csv:-",
    ]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("give csv:DIR/"), "{err}");
}

#[test]
fn tsv_loads_into_postgresql_with_copy_and_gives_every_value_back() {
    if !server_tests_enabled("postgres") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.tsv");
    run_ok(&["query", VALUES, "-o", &format!("tsv:{}", file.display())]);
    let mut client =
        postgres::Client::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", postgres::NoTls).unwrap();
    client.batch_execute("CREATE TEMPORARY TABLE tsv_copy (id BIGINT, v TEXT)").unwrap();
    load(&mut client, &file);
    let rows = client.query("SELECT v FROM tsv_copy ORDER BY id", &[]).unwrap();
    let got: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, expected_owned());
}

/// `COPY ... FROM STDIN (FORMAT text, HEADER true)` of a TSV file.
fn load(client: &mut postgres::Client, file: &Path) {
    use std::io::Write;
    let mut writer = client.copy_in("COPY tsv_copy FROM STDIN (FORMAT text, HEADER true)").unwrap();
    writer.write_all(&bytes(file)).unwrap();
    writer.finish().unwrap();
}
