//! A real Ballista cluster on loopback: `mrpipe scheduler` and `mrpipe executor`
//! processes started by the test on free ports. Jobs run with `--engine ballista
//! --cluster` must publish the native engine's bytes and rejects, with the logs read
//! by the executors; a job survives an executor that dies while reading; an input the
//! executors cannot see fails the run naming it.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port` (the process bound it).
fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} does not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The processes of a cluster, killed when dropped.
struct Cluster {
    scheduler_port: u16,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// A scheduler that gives up on a silent executor after 4 s.
    fn new() -> Cluster {
        Cluster::with_scheduler_env(&[])
    }

    /// [`Cluster::new`], the scheduler's environment extended by `env`.
    fn with_scheduler_env(env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut scheduler = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
            .args(["scheduler", "--bind-host", "127.0.0.1", "--bind-port", &port.to_string()])
            .args(["--executor-timeout-seconds", "4", "--expire-dead-executor-interval-seconds", "1"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut scheduler, "the scheduler");
        Cluster { scheduler_port: port, children: vec![scheduler], dir }
    }

    /// Starts an executor with one task slot, its environment extended by `env`, run
    /// through `wrap` (a command line the executor's is appended to) when given.
    fn executor(&mut self, env: &[(&str, &str)], wrap: Option<&[&str]>) -> usize {
        self.executor_with(env, wrap, "1", Stdio::null(), &[])
    }

    /// [`Cluster::executor`] with a heartbeat every `heartbeat` seconds, its stderr going
    /// to `stderr` and `extra` flags.
    fn executor_with(
        &mut self,
        env: &[(&str, &str)],
        wrap: Option<&[&str]>,
        heartbeat: &str,
        stderr: Stdio,
        extra: &[&str],
    ) -> usize {
        let (port, grpc) = (free_port(), free_port());
        let work = self.dir.path().join(format!("executor-{port}"));
        let mut argv: Vec<String> = wrap.unwrap_or_default().iter().map(|s| s.to_string()).collect();
        argv.push(env!("CARGO_BIN_EXE_mrpipe").to_string());
        for a in ["executor", "--bind-host", "127.0.0.1", "--bind-port", &port.to_string()] {
            argv.push(a.to_string());
        }
        for a in ["--bind-grpc-port", &grpc.to_string(), "--scheduler-host", "127.0.0.1"] {
            argv.push(a.to_string());
        }
        for a in ["--scheduler-port", &self.scheduler_port.to_string(), "--concurrent-tasks", "1"] {
            argv.push(a.to_string());
        }
        for a in ["--executor-heartbeat-interval-seconds", heartbeat, "--work-dir", &work.display().to_string()] {
            argv.push(a.to_string());
        }
        argv.extend(extra.iter().map(|a| a.to_string()));
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "an executor");
        self.children.push(child);
        self.children.len() - 1
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }
}

/// Runs `job` natively and on the cluster; asserts identical published files and
/// rejects. Returns the cluster run's stderr.
fn same_on_cluster(cluster: &Cluster, job: &str, inputs: &[&str], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut stderr = String::new();
    for engine in ["native", "ballista"] {
        let out = dir.path().join(engine).display().to_string();
        let rejects = dir.path().join(format!("{engine}.rejects.tsv")).display().to_string();
        let mut argv = vec!["run", job];
        argv.extend(inputs);
        argv.extend(args);
        argv.extend(["--engine", engine, "-o", &out, "--rejects", &rejects, "-v"]);
        let url = cluster.url();
        if engine == "ballista" {
            argv.extend(["--cluster", &url, "-j", "2"]);
        }
        let res = mrpipe(&argv);
        assert!(res.status.success(), "{job} {args:?} {engine}: {}", String::from_utf8_lossy(&res.stderr));
        stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    }
    let (native, ballista) = (dir.path().join("native"), dir.path().join("ballista"));
    let files = files_under(&native);
    assert_eq!(files, files_under(&ballista), "{job} {args:?}");
    for name in &files {
        let (a, b) = (bytes(native.join(name)), bytes(ballista.join(name)));
        if name.ends_with(".manifest.json") {
            let tables = |m: &[u8]| {
                let m: serde_json::Value = serde_json::from_slice(m).unwrap();
                let tables = m["tables"].as_array().unwrap().clone();
                tables.iter().map(|t| (t["name"].clone(), t["blake3"].clone(), t["rows"].clone())).collect::<Vec<_>>()
            };
            assert_eq!(tables(&a), tables(&b), "{job} {args:?}: {name}");
            let engine = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["engine"].clone();
            assert_eq!(engine, "ballista");
        } else {
            assert!(a == b, "{job} {args:?}: {name} differs");
        }
    }
    let rejects = |e: &str| std::fs::read(dir.path().join(format!("{e}.rejects.tsv"))).unwrap_or_default();
    assert_eq!(rejects("native"), rejects("ballista"), "{job} {args:?}: rejects differ");
    stderr
}

#[test]
fn every_job_on_a_loopback_cluster_of_two_executors() {
    let mut cluster = Cluster::new();
    cluster.executor(&[], None);
    cluster.executor(&[], None);
    let dir = tempfile::tempdir().unwrap();
    let sales = generate(dir.path(), "sales", 60_000, &["--seed", "21", "--bad-rate", "0.01"]);
    let tx = generate(dir.path(), "spending", 60_000, &["--seed", "22", "--bad-rate", "0.01"]);
    let access = generate(dir.path(), "access-clf", 60_000, &["--seed", "23", "--bad-rate", "0.01"]);
    let urls = generate(dir.path(), "urls", 60_000, &["--seed", "24", "--bad-rate", "0.01"]);
    let stderr = same_on_cluster(&cluster, "sales-rank", &[&sales], &["--as-of", "2026-11-23", "--top", "5"]);
    assert!(stderr.contains("bad"), "the cluster run reports its bad lines: {stderr}");
    let incomes = dir.path().join("incomes.tsv").display().to_string();
    let sellers = dir.path().join("sellers.tsv").display().to_string();
    same_on_cluster(&cluster, "spending", &[&tx], &["--sellers", &sellers, "--incomes", &incomes]);
    same_on_cluster(&cluster, "hit-counts", &[&access], &["--format", "clf", "--strip-query"]);
    same_on_cluster(&cluster, "url-dedup", &[&urls], &["--normalize", "--mode", "singletons"]);
    same_on_cluster(
        &cluster,
        "sales-rank",
        &[&sample("sales")],
        &["--from", "2026-11-20", "--to", "2026-11-22", "--every", "1d"],
    );
}

/// The only executor aborts as it starts reading a part of the input (a failpoint:
/// the abort surely happens during the job). A second executor started after it died
/// takes the job over: Ballista runs the lost tasks again, and the run publishes the
/// native engine's bytes.
#[test]
fn a_job_survives_an_executor_that_dies_while_reading() {
    let mut cluster = Cluster::new();
    let doomed = cluster.executor(&[("MRPIPE_FAILPOINT", "scan-part")], None);
    let dir = tempfile::tempdir().unwrap();
    let sales = generate(dir.path(), "sales", 60_000, &["--seed", "25", "--bad-rate", "0.01"]);
    let (out, native) = (dir.path().join("cluster"), dir.path().join("native"));
    let rejects = dir.path().join("cluster.rejects.tsv");
    let client = Command::new(env!("CARGO_BIN_EXE_mrpipe"))
        .args(["run", "sales-rank", &sales, "--as-of", "2026-11-23", "--engine", "ballista"])
        .args(["--cluster", &cluster.url(), "-o", &out.display().to_string()])
        .args(["--rejects", &rejects.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let died = cluster.children[doomed].wait().unwrap();
    assert!(!died.success(), "the executor was to abort at its failpoint");
    cluster.executor(&[], None);
    let output = client.wait_with_output().unwrap();
    assert!(output.status.success(), "the job failed: {}", String::from_utf8_lossy(&output.stderr));
    let o = native.display().to_string();
    let r = dir.path().join("native.rejects.tsv").display().to_string();
    run_ok(&["run", "sales-rank", &sales, "--as-of", "2026-11-23", "-o", &o, "--rejects", &r]);
    assert_eq!(bytes(native.join("sales_rank.parquet")), bytes(out.join("sales_rank.parquet")));
    assert_eq!(bytes(PathBuf::from(r)), bytes(&rejects));
}

/// Executors in a mount namespace where the input's directory is an empty tmpfs: the
/// client sees the file, the executors do not. Needs `unshare` (root, as CI runs);
/// skipped with a line saying so elsewhere, unless CI=true.
#[test]
fn an_input_the_executors_cannot_see_fails_the_run_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("mount -t tmpfs none '{}'", data.path().display())])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(std::env::var("CI").is_err(), "unshare -m (root) is needed on CI");
        eprintln!("SKIPPED an_input_the_executors_cannot_see_fails_the_run_naming_it: needs `unshare -m` (root)");
        return;
    }
    let sales = generate(data.path(), "sales", 1_000, &["--seed", "26"]);
    let mut cluster = Cluster::new();
    let hide = format!("mount -t tmpfs none '{}' && exec \"$0\" \"$@\"", data.path().display());
    cluster.executor(&[], Some(&["unshare", "-m", "sh", "-c", &hide]));
    let out = data.path().join("out").display().to_string();
    let res = mrpipe(
        &["run", "sales-rank", &sales, "--as-of", "2026-11-23", "--engine", "ballista"]
            .iter()
            .copied()
            .chain(["--cluster", &cluster.url(), "-o", &out])
            .collect::<Vec<_>>(),
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&sales), "the message names the input: {stderr}");
    assert!(!Path::new(&out).join("sales_rank.parquet").exists(), "nothing is published");
}

#[test]
fn a_cluster_that_cannot_be_reached_fails_the_run_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let url = format!("df://127.0.0.1:{}", free_port());
    let args = ["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "--engine", "ballista"];
    let res = mrpipe(&[&args[..], &["--cluster", &url, "-o", &out.display().to_string()]].concat());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the scheduler") && stderr.contains(&url), "{stderr}");
    assert!(!out.join("sales_rank.parquet").exists());
}

/// A relative input path names the file in the client's directory, also for the
/// executors, which run elsewhere: the client sends absolute paths.
#[test]
fn a_relative_input_is_the_clients_file_on_the_executors_too() {
    let mut cluster = Cluster::new();
    cluster.executor(&[], None);
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "sales", 2_000, &["--seed", "27"]);
    let name = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().file_name();
    let name = name.to_string_lossy().into_owned();
    let url = cluster.url();
    for (engine, out) in [("native", "native"), ("ballista", "ballista")] {
        let mut args = vec!["run", "sales-rank", &name, "--as-of", "2026-11-23", "--engine", engine, "-o", out];
        if engine == "ballista" {
            args.extend(["--cluster", &url]);
        }
        let res = mrpipe_in(dir.path(), &args);
        assert!(res.status.success(), "{engine}: {}", String::from_utf8_lossy(&res.stderr));
    }
    let file = |d: &str| bytes(dir.path().join(d).join("sales_rank.parquet"));
    assert_eq!(file("native"), file("ballista"));
}

/// An executor whose Flight port is taken exits at once with an error naming the
/// port and flag (Ballista's own stops with success, saying nothing, so a supervisor's
/// restart-on-failure never saw it).
#[test]
fn an_executor_whose_port_is_taken_fails_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let grpc = free_port().to_string();
    let scheduler = free_port().to_string();
    let res = mrpipe(&["executor", "--bind-port", &port, "--bind-grpc-port", &grpc, "--scheduler-port", &scheduler]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port} (--bind-port)")), "{stderr}");
}

/// An executor the scheduler drops (its heartbeats, every 30 s, are later than the
/// scheduler's 4 s timeout) is stopped by the scheduler: it exits non-zero saying so,
/// so that systemd's `Restart=on-failure` starts it again.
#[test]
fn an_executor_the_scheduler_drops_exits_with_an_error() {
    let mut cluster = Cluster::new();
    let dropped = cluster.executor_with(&[], None, "30", Stdio::piped(), &[]);
    let child = &mut cluster.children[dropped];
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the scheduler never dropped the executor");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the executor stopped unasked"), "{stderr}");
}

/// The scheduler freezes (SIGSTOP, as a hung host; a failpoint as it sends the first
/// scan task, so surely mid-job): the client gives up within its keep-alive bound
/// instead of holding the run and its lock for ever, says it lost the scheduler, and
/// publishes nothing.
#[test]
fn a_scheduler_that_freezes_mid_job_fails_the_run_in_bounded_time() {
    let mut cluster = Cluster::with_scheduler_env(&[("MRPIPE_FAILPOINT", "encode-scan-task:stop")]);
    cluster.executor(&[], None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = ["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "--engine", "ballista"];
    let started = Instant::now();
    let res = mrpipe(&[&args[..], &["--cluster", &cluster.url(), "-o", &out.display().to_string()]].concat());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the scheduler at df://127.0.0.1:") && stderr.contains("stopped answering"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(90), "gave up after {:?}", started.elapsed());
    assert!(!out.join("sales_rank.parquet").exists(), "nothing is published");
}

/// Executors whose memory pool is too small for the job: the run fails (exit 1,
/// nothing published) saying so, and naming the executors' option to raise.
#[test]
fn an_executor_pool_too_small_names_the_option_to_raise() {
    let mut cluster = Cluster::new();
    cluster.executor_with(&[], None, "1", Stdio::null(), &["--memory-pool-size", "1MiB"]);
    let dir = tempfile::tempdir().unwrap();
    let urls = generate(dir.path(), "urls", 200_000, &["--seed", "28"]);
    let out = dir.path().join("out");
    let res = mrpipe(&[
        "run",
        "url-dedup",
        &urls,
        "--engine",
        "ballista",
        "--cluster",
        &cluster.url(),
        "-o",
        &out.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--memory-pool-size"), "{stderr}");
    assert!(!out.join("urls.parquet").exists(), "nothing is published");
}
