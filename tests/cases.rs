//! The input cases built from public bug reports against other log tools
//! (`../shared/cases/`, beside the repository): each case's command runs with the
//! real binary in a copy of its folder, and its rows, exit code and line counts must
//! be those its `expected.*` files give. Without that folder the cases are skipped
//! with one loud line, except on CI (`CI=true`), where they are required.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn cases_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/cases");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs with ../shared/cases beside the repository");
    eprintln!("SKIPPED: {} is missing; the public-report cases did not run", dir.display());
    None
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `key: value` lines of a case's `expected.txt` (the first of each key).
fn expected_facts(text: &str) -> Vec<(String, String)> {
    let mut facts: Vec<(String, String)> = Vec::new();
    for (key, value) in text.lines().filter_map(|l| l.split_once(':')) {
        if !facts.iter().any(|(k, _)| k == key.trim()) {
            facts.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    facts
}

fn run_case(name: &str) {
    let Some(cases) = cases_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join(name);
    copy_dir(&cases.join(name), &case);
    std::fs::create_dir_all(case.join("out")).unwrap();
    let cmd = std::fs::read_to_string(case.join("cmd")).unwrap();
    let res = Command::new("bash")
        .args(["-c", cmd.trim()])
        .current_dir(&case)
        .env("MRPIPE", env!("CARGO_BIN_EXE_mrpipe"))
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&res.stderr);
    let facts = expected_facts(&std::fs::read_to_string(case.join("expected.txt")).unwrap());
    let fact = |k: &str| facts.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());

    match fact("exit").unwrap_or("0") {
        want if want.starts_with("non-zero") => assert!(!res.status.success(), "{name}: exit 0, want non-zero"),
        want => assert_eq!(res.status.code().map(|c| c.to_string()).as_deref(), Some(want), "{name}: {stderr}"),
    }
    let want_rows = if case.join("expected.tsv").exists() {
        Some(std::fs::read(case.join("expected.tsv")).unwrap())
    } else if case.join("expected.tsv.gz").exists() {
        let mut rows = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(case.join("expected.tsv.gz")).unwrap())
            .read_to_end(&mut rows)
            .unwrap();
        Some(rows)
    } else {
        None
    };
    if let Some(want) = want_rows.filter(|want| *want != res.stdout) {
        let (w, g) = (String::from_utf8_lossy(&want), String::from_utf8_lossy(&res.stdout));
        let line = w.lines().zip(g.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!("{name}: rows differ (first at line {line}; {} bytes wanted, {} got)", want.len(), res.stdout.len());
    }
    if let Some(lines) = fact("lines") {
        let got = counts(&res.stderr);
        let want: Vec<u64> =
            ["good", "bad", "empty", "header"].iter().map(|k| fact(k).unwrap_or("0").parse().unwrap()).collect();
        assert_eq!(
            (got.lines, got.good, got.bad, got.empty, got.headers),
            (lines.parse().unwrap(), want[0], want[1], want[2], want[3]),
            "{name}: line counts"
        );
    }
}

#[test]
fn gz_multimember_logrotate() {
    run_case("01-gz-multimember-logrotate");
}

#[test]
fn gz_truncated() {
    run_case("03-gz-truncated");
}

#[test]
fn bom_header_crlf() {
    run_case("04-bom-header-crlf");
}

#[test]
fn crlf_blank_no_final_newline() {
    run_case("06-crlf-blank-no-final-newline");
}

#[test]
fn clf_escaped_quotes_ipv6() {
    run_case("07-clf-escaped-quotes-ipv6");
}

#[test]
fn offsets_cross_month_and_year() {
    run_case("10-offsets-cross-month-and-year");
}

#[test]
fn clf_odd_offsets_glob() {
    run_case("11-clf-odd-offsets-glob");
}

#[test]
fn epoch_edges() {
    run_case("12-epoch-edges");
}

#[test]
fn line_longer_than_32mib() {
    run_case("15-line-longer-than-32MiB");
}

#[test]
fn tsv_literal_quotes() {
    run_case("18-tsv-literal-quotes");
}
