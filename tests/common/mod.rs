//! Helpers for the end-to-end tests: run the real `mrpipe` and `gen-data` binaries,
//! parse the summary line, and compare outputs printing expected vs got.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (where `sample_data/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `sample_data/`.
pub fn sample(rel: &str) -> String {
    root().join("sample_data").join(rel).display().to_string()
}

/// The expected output file `sample_data/expected/<name>`.
pub fn expected(name: &str) -> String {
    std::fs::read_to_string(root().join("sample_data/expected").join(name)).expect("expected file exists")
}

/// The rows of an expected output file, without its header line.
pub fn expected_rows(name: &str) -> Vec<String> {
    expected(name).lines().skip(1).map(str::to_string).collect()
}

/// Runs `mrpipe` with `args` in `cwd`.
pub fn mrpipe_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("mrpipe runs")
}

/// Runs `mrpipe` with `args` in a fresh temporary directory (so default rejects files stay out of the tree).
pub fn mrpipe(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    mrpipe_in(dir.path(), args)
}

/// Runs `mrpipe` and asserts it succeeded; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = mrpipe(args);
    assert!(out.status.success(), "mrpipe {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Asserts two texts are equal, printing both in full when not.
pub fn assert_same(what: &str, expected: &str, got: &str) {
    assert!(expected == got, "{what}: output differs\n--- expected ---\n{expected}--- got ---\n{got}--- end ---");
}

/// Writes generated data with `gen-data` and returns its path.
pub fn generate(dir: &Path, kind: &str, rows: u64, extra: &[&str]) -> String {
    let tag: String = extra.concat().chars().filter(char::is_ascii_alphanumeric).collect();
    let path = dir.join(format!("{kind}-{rows}-{tag}.data"));
    let status = Command::new(env!("CARGO_BIN_EXE_gen-data"))
        .args([kind, "--rows", &rows.to_string(), "--out", &path.display().to_string()])
        .args(extra)
        .status()
        .expect("gen-data runs");
    assert!(status.success(), "gen-data {kind} failed");
    path.display().to_string()
}

/// Line counts parsed from the summary line on stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Counts {
    pub lines: u64,
    pub good: u64,
    pub bad: u64,
    pub empty: u64,
    pub headers: u64,
}

/// Parses `N lines read (G good, B bad, E empty, H header)` from a run's stderr.
pub fn counts(stderr: &[u8]) -> Counts {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| l.contains(" lines read (")).unwrap_or_else(|| panic!("no summary in {text}"));
    let (before, after) = line.split_once(" lines read (").unwrap();
    let lines = before.rsplit(' ').next().unwrap().parse().unwrap();
    let inside = after.split(')').next().unwrap();
    let n: Vec<u64> = inside.split(", ").map(|part| part.split(' ').next().unwrap().parse().unwrap()).collect();
    Counts { lines, good: n[0], bad: n[1], empty: n[2], headers: n[3] }
}

/// Bytes of a file.
pub fn bytes(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// Names of the entries of a directory, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Parses a timestamp the independent way (chrono), for the oracles.
pub fn oracle_ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return chrono::DateTime::from_timestamp(s.parse().unwrap(), 0).unwrap();
    }
    if s.contains('T') {
        return chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap().and_utc()
}

/// Parses money into cents the independent way, for the oracles.
pub fn oracle_cents(s: &str) -> i128 {
    let (neg, body) = s.strip_prefix('-').map_or((false, s), |b| (true, b));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = format!("{frac:0<2}");
    let c = int.parse::<i128>().unwrap() * 100 + frac.parse::<i128>().unwrap();
    if neg { -c } else { c }
}

/// Formats cents as the TSV sink does.
pub fn oracle_money(c: i128) -> String {
    format!("{}{}.{:02}", if c < 0 { "-" } else { "" }, c.abs() / 100, c.abs() % 100)
}

/// Starts `mrpipe run hit-counts -` to `output`: it takes its run lock, then waits on
/// stdin, so it holds the lock until [`finish_stdin_run`].
pub fn start_stdin_run(output: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "hit-counts", "-", "-o", output, "--rejects", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mrpipe runs")
}

/// Feeds one access-log line to a run from [`start_stdin_run`] and waits for its success.
pub fn finish_stdin_run(mut child: std::process::Child) {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(b"2026-11-20T13:45:12Z\t1.2.3.4\tGET\t/x\t200\t1\n").expect("the run reads stdin");
    drop(stdin);
    assert!(child.wait().expect("the run ends").success());
}

/// Polls `held` until it is true (20 s at most).
pub fn wait_until(what: &str, mut held: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !held() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs spending with `--notify` to `output` three times: every alert is new on the
/// first run, a repeated run notifies nothing, and after a transaction that pushes a
/// user over budget exactly that alert is notified.
pub fn notify_exactly_once(output: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tx = dir.path().join("tx");
    std::fs::create_dir(&tx).unwrap();
    std::fs::copy(sample("spending/transactions/2026-10-11.tsv"), tx.join("a.tsv")).unwrap();
    let notes = dir.path().join("alerts.jsonl");
    let run = || {
        run_ok(&[
            "run",
            "spending",
            &tx.display().to_string(),
            "--overrides",
            &sample("spending/overrides.tsv"),
            "--incomes",
            &sample("spending/incomes.tsv"),
            "--budget-overrides",
            &sample("spending/budget_overrides.tsv"),
            "--notify",
            &notes.display().to_string(),
            "-o",
            output,
            "--rejects",
            &dir.path().join("rejects.tsv").display().to_string(),
        ]);
        std::fs::read_to_string(&notes).unwrap_or_default()
    };
    let first = run();
    assert_eq!(first.lines().count(), 4, "{output}: every alert is new on the first run:\n{first}");
    assert!(first.contains(r#"{"amount":"264.49","budget":"200.00","category":"food","month":"2026-11","status":"exceeded","user_id":"1001"}"#));
    assert_eq!(run(), first, "{output}: a repeated run notifies nothing");
    // 1002 spends 380.00 more on gas: 420.00 of a 400.01 budget.
    std::fs::write(tx.join("b.tsv"), "user_id\ttimestamp\tseller\tamount\n1002\t2026-11-25T10:00:00Z\tShell\t380.00\n")
        .unwrap();
    let third = run();
    let new: Vec<&str> = third.lines().skip(4).collect();
    assert_eq!(
        new,
        [
            r#"{"amount":"420.00","budget":"400.01","category":"gas","month":"2026-11","status":"exceeded","user_id":"1002"}"#
        ],
        "{output}"
    );
}

/// Backfills hit-counts for September to November into `output` with
/// `--skip-unchanged`, twice: the second run skips every month, each month's last
/// manifest still matching its own rows though the output holds the other months too.
/// Returns the second run's stderr.
pub fn skip_unchanged_skips_each_month_of_a_shared_output(output: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.tsv").display().to_string();
    let args = [
        "run",
        "hit-counts",
        &sample("access/tsv"),
        "--from",
        "2026-09",
        "--to",
        "2026-11",
        "-o",
        output,
        "--skip-unchanged",
        "-v",
        "--rejects",
        &rejects,
    ];
    let first = mrpipe(&args);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(!String::from_utf8_lossy(&first.stderr).contains("skipped"));
    let again = mrpipe(&args);
    let err = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{err}");
    assert_eq!(err.matches("skipped, inputs and parameters unchanged").count(), 3, "{output}: {err}");
    err
}

/// A query whose columns have types the job tables never use (a float, a decimal of
/// scale 6, a date, a `Utf8View` string, a boolean, a timestamp, a NULL), written to
/// `output`; asserts the run succeeds.
pub fn query_of_every_type_to(output: &str) {
    let res = mrpipe(&[
        "query",
        "SELECT CAST(1.5 AS DOUBLE) AS f, CAST(1.5 AS DECIMAL(10,6)) AS d, CAST('2026-11-30' AS DATE) AS day, \
         arrow_cast('v', 'Utf8View') AS s, TRUE AS b, CAST('2026-11-30T12:00:00' AS TIMESTAMP) AS t, \
         CAST(NULL AS BIGINT) AS n",
        "-o",
        output,
    ]);
    assert!(res.status.success(), "{output}: {}", String::from_utf8_lossy(&res.stderr));
}

/// A second query to the `query` table of `output` with other columns is refused
/// (exit 1, naming both layouts) instead of loading its values into the old columns.
pub fn query_into_a_table_of_another_layout_is_refused(output: &str) {
    let res = mrpipe(&["query", "SELECT 42 AS other_name", "-o", output]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{output}: {err}");
    assert!(err.contains("table query has columns (f ") && err.contains("the result has (other_name "), "{err}");
}

/// Runs `mrpipe` with `args` in `cwd` with extra environment variables.
pub fn mrpipe_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("mrpipe runs")
}

/// Runs the example SQL job `top-pages` to `output` (a database) and verifies it there.
pub fn a_sql_job_publishes_to_and_verifies_at(output: &str) {
    let jobs = root().join("examples/jobs").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("r.tsv").display().to_string();
    run_ok(&["run", "top-pages", &sample("access/clf"), "--jobs-dir", &jobs, "-o", output, "--rejects", &rejects]);
    let ok = run_ok(&["verify", output, "--job", "top-pages", "--jobs-dir", &jobs]);
    assert!(ok.starts_with("verified: 1 tables, 5 rows"), "{output}: {ok}");
}

/// Whether the tests against a real `kind` server (`postgres`, `mysql`) run: always,
/// unless scripts/test found no such server outside CI and listed it in
/// `MRPIPE_SKIP_SERVERS` (after saying so on one loud line).
pub fn server_tests_enabled(kind: &str) -> bool {
    std::env::var("MRPIPE_SKIP_SERVERS").map_or(true, |skip| !skip.split(',').any(|k| k == kind))
}

/// A server process the test started, killed when the test ends however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes, in `dir`, two certificate authorities (`ca.pem`, `other-ca.pem`) and a server
/// certificate `server.pem` (key `server.key`, mode 0600) that `ca` signed, naming the
/// address 127.0.0.1 only (so `localhost` is not its name), for the TLS tests.
pub fn make_certificates(dir: &Path) {
    for name in ["ca", "other-ca"] {
        let subject = format!("/CN=mrpipe test {name}");
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &key,
                "-out", &pem,
            ],
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=db", "-keyout", "server.key", "-out", "server.csr"],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// Whether the tests that need an outside tool (`python`: python3 with pandas, polars and
/// pyarrow) run: always, unless scripts/test found it missing outside CI and listed it in
/// `MRPIPE_SKIP_TOOLS` (after saying so on one loud line).
pub fn tool_tests_enabled(kind: &str) -> bool {
    std::env::var("MRPIPE_SKIP_TOOLS").map_or(true, |skip| !skip.split(',').any(|k| k == kind))
}

/// The files under `dir`, as relative paths, sorted; hidden ones (the run lock, which
/// holds the pid) left out.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for name in entries(dir).into_iter().filter(|n| !n.starts_with('.')) {
        let path = dir.join(&name);
        if path.is_dir() {
            files.extend(files_under(&path).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            files.push(name);
        }
    }
    files
}
