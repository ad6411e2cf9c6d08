//! End-to-end tests of inputs in object storage: an S3 API server (moto, from the
//! Python package index) started on loopback for each test, objects put there with
//! boto3, and mrpipe reading them by `s3://` and `http://` URLs: the same bytes as
//! from local files, manifests with BLAKE3 and ETag, `verify` re-reading the objects.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// A moto server on a free loopback port, stopped when dropped.
struct S3 {
    _process: Running,
    port: u16,
}

fn python() -> String {
    std::env::var("MRPIPE_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl S3 {
    fn start() -> S3 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts");
        let s3 = S3 { _process: Running(child), port };
        wait_until("the S3 server to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        s3
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a user of an S3-compatible store sets.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Puts local files as `s3://bucket/key` (the bucket created if missing), with boto3.
    fn put(&self, bucket: &str, objects: &[(&str, &Path)]) {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
bucket = sys.argv[2]
if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=bucket)
for key, path in zip(sys.argv[3::2], sys.argv[4::2]):
    # Readable without credentials too, as a file on a web server is.
    s3.upload_file(path, bucket, key, ExtraArgs={"ACL": "public-read"})
"#;
        let mut args = vec![self.endpoint(), bucket.to_string()];
        for (key, path) in objects {
            args.push(key.to_string());
            args.push(path.display().to_string());
        }
        let out = Command::new(python()).arg("-c").arg(script).args(&args).output().unwrap();
        assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn run(&self, cwd: &Path, args: &[&str]) -> std::process::Output {
        let env = self.env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        mrpipe_env(cwd, args, &pairs)
    }

    fn run_ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

fn sales_files() -> Vec<(String, std::path::PathBuf)> {
    let dir = root().join("sample_data/sales");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (format!("sales/{}", p.file_name().unwrap().to_string_lossy()), p))
        .collect();
    files.sort();
    files
}

#[test]
fn a_prefix_in_s3_gives_the_bytes_of_the_same_files_read_locally_and_its_manifest_verifies() {
    if !tool_tests_enabled("python") {
        return;
    }
    let s3 = S3::start();
    let files = sales_files();
    let objects: Vec<(&str, &Path)> = files.iter().map(|(k, p)| (k.as_str(), p.as_path())).collect();
    s3.put("logs", &objects);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local").display().to_string();
    let remote = dir.path().join("remote").display().to_string();
    run_ok(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &local]);
    s3.run_ok(dir.path(), &["run", "sales-rank", "s3://logs/sales/", "--as-of", "2026-11-23", "-o", &remote]);
    assert_eq!(bytes(format!("{remote}/sales_rank.parquet")), bytes(format!("{local}/sales_rank.parquet")));
    // The rejects name the objects.
    let rejects = String::from_utf8(bytes(format!("{remote}/_sales-rank.rejects.tsv"))).unwrap();
    assert!(rejects.contains("s3://logs/sales/2026-11-week.tsv\t"), "{rejects}");

    let manifest_path = format!("{remote}/_sales-rank.manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&bytes(&manifest_path)).unwrap();
    for (input, (key, path)) in manifest["inputs"].as_array().unwrap().iter().zip(&files) {
        assert_eq!(input["path"], format!("s3://logs/{key}"));
        assert_eq!(input["blake3"], blake3::hash(&bytes(path)).to_hex().as_str());
        assert_eq!(input["size"], bytes(path).len() as u64);
        assert!(input["etag"].as_str().is_some_and(|e| !e.is_empty()), "{input}");
    }
    assert!(s3.run_ok(dir.path(), &["verify", &manifest_path]).contains("identical"));

    // Unchanged objects are skipped by their ETag; a replaced one is read again.
    let again = s3.run(
        dir.path(),
        &["run", "sales-rank", "s3://logs/sales/", "--as-of", "2026-11-23", "-o", &remote, "--skip-unchanged", "-v"],
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("skipped"), "{}", String::from_utf8_lossy(&again.stderr));

    // verify re-reads the objects: one replaced since the run is found.
    let changed = dir.path().join("changed.tsv");
    std::fs::write(&changed, "timestamp\tproduct_id\tcategory_id\tquantity\ttotal_price\tseller_id\tbuyer_id\n")
        .unwrap();
    s3.put("logs", &[("sales/2026-11-week.tsv", &changed)]);
    let res = s3.run(dir.path(), &["verify", &manifest_path]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("input 's3://logs/sales/2026-11-week.tsv' changed since the run"), "{err}");
}

#[test]
fn a_large_object_is_read_in_ranged_chunks_by_every_thread_to_the_same_result() {
    if !tool_tests_enabled("python") {
        return;
    }
    let s3 = S3::start();
    let dir = tempfile::tempdir().unwrap();
    // About 7.8 MB: several 1 MiB chunks, each fetched with its own ranged GET.
    let data = generate(dir.path(), "urls", 200_000, &["--seed", "7"]);
    s3.put("crawl", &[("day/urls-1.txt", Path::new(&data))]);
    let local = run_ok(&["run", "url-dedup", &data, "-o", "-", "-j", "1"]);
    for threads in ["1", "4"] {
        let got = s3.run_ok(dir.path(), &["run", "url-dedup", "s3://crawl/day/*.txt", "-o", "-", "-j", threads]);
        assert!(got == local, "-j {threads}: {} lines against {}", got.lines().count(), local.lines().count());
    }
    // The same object over plain HTTP (the S3 server answers path-style GETs and ranges).
    let url = format!("{}/crawl/day/urls-1.txt", s3.endpoint());
    assert!(s3.run_ok(dir.path(), &["run", "url-dedup", &url, "-o", "-", "-j", "4"]) == local);
}

#[test]
fn missing_objects_buckets_and_patterns_are_named() {
    if !tool_tests_enabled("python") {
        return;
    }
    let s3 = S3::start();
    let dir = tempfile::tempdir().unwrap();
    let files = sales_files();
    s3.put("logs", &[(files[0].0.as_str(), files[0].1.as_path())]);
    for (input, code, says) in [
        ("s3://logs/sales/missing.tsv", 2, "input 's3://logs/sales/missing.tsv' does not exist"),
        ("s3://logs/nothing/", 5, "holds no object"),
        ("s3://logs/sales/*.csv", 5, "pattern 's3://logs/sales/*.csv'"),
        ("http://127.0.0.1:1/x/", 2, "names one file"),
    ] {
        let res = s3.run(dir.path(), &["run", "sales-rank", input, "--as-of", "2026-11-23", "-o", "-"]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains(says), "{input}: {err}");
        assert_eq!(res.status.code(), Some(code), "{input}: {err}");
    }
}
