//! End-to-end tests of TLS to MariaDB/MySQL: each test starts its own MariaDB server on
//! loopback (mariadb-install-db and mariadbd from the installed MariaDB) with a server
//! certificate the test makes with openssl and `require_secure_transport`, and publishes
//! to it with every `ssl-mode`.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// A private MariaDB server that refuses connections without TLS; stopped when dropped.
struct TlsServer {
    _process: Running,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsServer {
    /// `None` where the tests against MariaDB are skipped (said by scripts/test).
    fn start() -> Option<TlsServer> {
        if !server_tests_enabled("mysql") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        make_certificates(root);
        let data = root.join("data");
        let root_user = unsafe { libc::geteuid() } == 0;
        if root_user {
            // mariadbd drops to the mysql user, who must read the key and own the data.
            assert!(Command::new("chown").args(["-R", "mysql:"]).arg(root).status().unwrap().success());
        }
        let mut install = Command::new("mariadb-install-db");
        install.args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"]);
        install.arg(format!("--datadir={}", data.display()));
        if root_user {
            install.arg("--user=mysql");
        }
        let out = install.output().expect("mariadb-install-db (the mariadb-server package) for the TLS tests");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = root.display().to_string();
        let mut server = Command::new("mariadbd");
        server.args([
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_string(),
            format!("--socket={r}/mysqld.sock"),
            format!("--ssl-cert={r}/server.pem"),
            format!("--ssl-key={r}/server.key"),
            format!("--ssl-ca={r}/ca.pem"),
            "--require-secure-transport=ON".to_string(),
            "--skip-log-bin".to_string(),
            "--innodb-buffer-pool-size=16M".to_string(),
        ]);
        if root_user {
            server.arg("--user=mysql");
        }
        let socket = format!("{r}/mysqld.sock");
        let child = server.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("mariadbd starts");
        let server = TlsServer { _process: Running(child), port, dir };
        wait_until("the TLS MariaDB server to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        // The database to publish into and its user, made over the socket (a secure transport).
        wait_until("the TLS MariaDB server to take a database", || {
            Command::new("mariadb")
                .args(["--no-defaults", "-u", "root", "-S", &socket, "-e", "CREATE DATABASE IF NOT EXISTS shop; \
                     DROP USER IF EXISTS ''@'localhost'; CREATE USER IF NOT EXISTS 'mrpipe'@'%'; GRANT ALL ON *.* TO 'mrpipe'@'%'"])
                .status()
                .is_ok_and(|s| s.success())
        });
        Some(server)
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("mysql://mrpipe@{host}:{}/shop?{query}", self.port)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn every_ssl_mode_connects_or_refuses_as_the_mysql_client_would() {
    let Some(server) = TlsServer::start() else { return };
    let ca = server.file("ca.pem");
    let other = server.file("other-ca.pem");
    for (host, query, code, says) in [
        // The server takes no connection in the clear (MariaDB 10.11 says "Access denied").
        ("127.0.0.1", "ssl-mode=DISABLED".to_string(), 1, "denied"),
        ("127.0.0.1", String::new(), 0, ""),
        ("127.0.0.1", "ssl-mode=REQUIRED".to_string(), 0, ""),
        ("127.0.0.1", format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"), 0, ""),
        ("127.0.0.1", format!("ssl-mode=VERIFY_CA&ssl-ca={other}"), 1, ""),
        // The certificate names 127.0.0.1, not localhost.
        ("localhost", format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"), 1, ""),
        ("localhost", format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"), 0, ""),
        ("127.0.0.1", "ssl-mode=VERIFY_CA&ssl-ca=/nonexistent/ca.pem".to_string(), 2, "ssl-ca"),
        ("127.0.0.1", "ssl-mode=SOMETIMES".to_string(), 2, "ssl-mode 'SOMETIMES'"),
    ] {
        let url = server.url(host, &query);
        let res = mrpipe(&["run", "sales-rank", &sample("sales"), "--as-of", "2026-11-23", "-o", &url]);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(code), "{url}: {err}");
        assert!(err.to_lowercase().contains(&says.to_lowercase()), "{url}: {err}");
    }
    let url = server.url("127.0.0.1", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
    assert!(run_ok(&["verify", &url, "--job", "sales-rank"]).contains("identical"));
}
