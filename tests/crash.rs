//! Crash safety: a run killed with SIGKILL at any moment leaves the previous output
//! and manifest intact (they still verify), and its leftovers are hidden temporaries
//! that the next run removes.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn a_killed_run_leaves_the_previous_result_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "urls", 1_200_000, &["--seed", "6"]);
    let out = dir.path().join("out");
    let o = out.display().to_string();
    run_ok(&["run", "url-dedup", &input, "--memory-limit", "2MiB", "-o", &o]);
    let manifest = out.join("_url-dedup.manifest.json");
    let published = bytes(out.join("urls.parquet"));

    for delay_ms in [50, 250, 500, 800, 1100, 1400, 2500] {
        // A different mode, so a torn publication could not pass for the old result.
        let mut child = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
            .args(["run", "url-dedup", &input, "--mode", "singletons", "--memory-limit", "2MiB", "-o", &o])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            // The run finished before the kill: it published a new, consistent result.
            let ok = mrpipe(&["verify", &manifest.display().to_string()]);
            assert!(ok.status.success(), "after a finished run: {}", String::from_utf8_lossy(&ok.stderr));
            run_ok(&["run", "url-dedup", &input, "--memory-limit", "2MiB", "-o", &o]);
            continue;
        }
        assert_eq!(bytes(out.join("urls.parquet")), published, "killed after {delay_ms} ms: output changed");
        let ok = mrpipe(&["verify", &manifest.display().to_string()]);
        assert!(ok.status.success(), "killed after {delay_ms} ms: {}", String::from_utf8_lossy(&ok.stderr));
        for name in entries(&out) {
            let visible_output = !name.starts_with('.') && name.ends_with(".parquet");
            assert!(!visible_output || name == "urls.parquet", "killed after {delay_ms} ms: stray output {name}");
        }
    }
    // The next run removes whatever the killed runs left behind.
    run_ok(&["run", "url-dedup", &input, "--memory-limit", "2MiB", "-o", &o]);
    assert_eq!(entries(&out), vec![".url-dedup.lock", "_url-dedup.manifest.json", "urls.parquet"]);
    assert!(mrpipe(&["verify", &manifest.display().to_string()]).status.success());
}
