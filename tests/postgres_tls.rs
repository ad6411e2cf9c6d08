//! End-to-end tests of TLS to PostgreSQL: each test starts its own PostgreSQL server on
//! loopback (initdb from the installed PostgreSQL) with a certificate authority and a
//! server certificate the test makes with openssl, accepting only TLS connections, and
//! publishes to it with every `sslmode`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A private PostgreSQL server that refuses connections without TLS; stopped when dropped.
struct TlsServer {
    _process: Running,
    port: u16,
    dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`).
fn server_bin() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    if dir.join("initdb").exists() {
        return Some(dir);
    }
    let mut found: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path().join("bin")).collect();
    found.sort();
    found.into_iter().rev().find(|d| d.join("initdb").exists())
}

/// Runs a server program as the `postgres` user when this is root (PostgreSQL refuses root).
fn as_server_user(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl TlsServer {
    /// `None` where the tests against PostgreSQL are skipped (said by scripts/test).
    fn start() -> Option<TlsServer> {
        if !server_tests_enabled("postgres") {
            return None;
        }
        let bin = server_bin().expect("PostgreSQL's initdb (the postgresql package) for the TLS tests");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The server's files belong to the user it runs as.
        let owner = |path: &Path| {
            if unsafe { libc::geteuid() } == 0 {
                let status = Command::new("chown").args(["-R", "postgres:"]).arg(path).status().unwrap();
                assert!(status.success());
            }
        };
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        make_certificates(root);
        let data = root.join("data");
        std::fs::create_dir(&data).unwrap();
        owner(root);
        let out = as_server_user(&bin.join("initdb"))
            .args(["-D", &data.display().to_string(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\nssl = on\n\
             ssl_cert_file = '{r}/server.pem'\nssl_key_file = '{r}/server.key'\nfsync = off\n",
            d = data.display(),
            r = root.display()
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).unwrap();
        owner(root);
        let child = as_server_user(&bin.join("postgres"))
            .args(["-D", &data.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = TlsServer { _process: Running(child), port, dir };
        wait_until("the TLS PostgreSQL server to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Some(server)
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn publish(output: &str) -> std::process::Output {
    mrpipe(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", output])
}

#[test]
fn every_sslmode_connects_or_refuses_as_libpq_would() {
    let Some(server) = TlsServer::start() else { return };
    let ca = server.file("ca.pem");
    let other = server.file("other-ca.pem");
    // The server refuses a connection without TLS; every mode that encrypts gets in.
    for (host, query, ok, says) in [
        ("127.0.0.1", "sslmode=disable".to_string(), false, "no encryption"),
        ("127.0.0.1", String::new(), true, ""),
        ("127.0.0.1", "sslmode=require".to_string(), true, ""),
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}"), true, ""),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}"), true, ""),
        // Another authority's roots: the chain does not verify.
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={other}"), false, "certificate"),
        // The certificate names 127.0.0.1, not localhost: verify-full refuses, verify-ca does not check names.
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}"), false, "certificate"),
        ("localhost", format!("sslmode=verify-ca&sslrootcert={ca}"), true, ""),
        ("127.0.0.1", "sslmode=verify-full&sslrootcert=/nonexistent/root.crt".to_string(), false, "sslrootcert"),
    ] {
        let url = server.url(host, &query);
        let res = publish(&url);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.success(), ok, "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        if !ok {
            let code = if says == "sslrootcert" { 2 } else { 1 };
            assert_eq!(res.status.code(), Some(code), "{url}: {err}");
        }
    }
    // Published over TLS, verified over TLS.
    let url = server.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let verified = run_ok(&["verify", &url, "--job", "sales-rank"]);
    assert!(verified.contains("identical"), "{verified}");
    // PGSSLMODE and PGSSLROOTCERT apply when the URL says nothing.
    let bare = server.url("localhost", "");
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    let cwd = tempfile::tempdir().unwrap();
    let res =
        mrpipe_env(cwd.path(), &["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &bare], &env);
    assert_eq!(res.status.code(), Some(1), "{}", String::from_utf8_lossy(&res.stderr));
}
