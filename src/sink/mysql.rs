//! MySQL / MariaDB sink. DDL commits implicitly in MySQL, so target tables are
//! created (if missing) before the transaction, and each table's rows go to a
//! TEMPORARY staging table with batched multi-row INSERTs. The commit then replaces,
//! inside one transaction, only the months the run holds in tables with a `month`
//! column, or the whole content of the others, and records the manifest in
//! `mrpipe_runs`, like the PostgreSQL sink.
//!
//! Types: `TEXT`, `BIGINT`, `DECIMAL(18,2)`, `utf8mb4` with binary collation (bytewise
//! order, as the spec's). The run lock is `GET_LOCK`, released when the session ends.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use arrow::array::RecordBatch;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, Value};

use super::sql::{self, Months, SqlCell, SqlColumn, SqlType, Staged, cell};
use super::sqlite::SqliteTarget;
use super::text::{self, write_rows};
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Sort, Table, TableSpec};

/// Rows per multi-row INSERT, at most.
const ROWS_PER_INSERT: usize = 1000;

/// Bytes of values per multi-row INSERT, at most (one row may exceed it): well under
/// the server's `max_allowed_packet` (16 MiB by default in MariaDB), so long values
/// never break a load.
const BYTES_PER_INSERT: usize = 4 << 20;

/// A `mysql://` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlUrl {
    /// The URL as given (passwords included), for connecting.
    pub connect: String,
    /// The URL without its password.
    pub display: String,
    /// `ssl-mode=`, as the mysql client spells it (upper case here): `DISABLED`,
    /// `PREFERRED` (the default), `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`.
    pub ssl_mode: String,
    /// `ssl-ca=`: the PEM root certificates `VERIFY_CA` and `VERIFY_IDENTITY` check against
    /// (else the Mozilla roots built into the driver).
    pub ssl_ca: Option<String>,
}

/// The `ssl-mode` values, as the mysql client takes them.
const SSL_MODES: [&str; 5] = ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"];

impl MysqlUrl {
    /// Parses `mysql://user[:password]@host[:port]/db` (`mariadb://` is the same).
    pub fn parse(url: &str) -> Result<MysqlUrl> {
        let url = &url.replacen("mariadb://", "mysql://", 1);
        let display = super::postgres::redact(url);
        // The TLS parameters are mrpipe's (the driver takes others); the rest go to the driver.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut ssl_mode, mut ssl_ca) = ("PREFERRED".to_string(), None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ssl-mode" | "ssl_mode", mode)) => {
                    ssl_mode = mode.to_ascii_uppercase().replace('-', "_");
                    if !SSL_MODES.contains(&ssl_mode.as_str()) {
                        return Err(Error::Usage(format!(
                            "output '{display}': ssl-mode '{mode}' is not one of {}",
                            SSL_MODES.join(", ")
                        )));
                    }
                }
                Some(("ssl-ca" | "ssl_ca", path)) => ssl_ca = Some(sql::percent_decoded(path)),
                _ => rest.push(pair),
            }
        }
        let url = &if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        let opts = Opts::from_url(url).map_err(|e| Error::Usage(format!("output '{display}': {e}")))?;
        if opts.get_db_name().is_none() {
            return Err(Error::Usage(format!("output '{display}' names no database")));
        }
        Ok(MysqlUrl { connect: url.to_string(), display, ssl_mode, ssl_ca })
    }

    /// The driver's TLS options for `ssl-mode` (rustls): none for `DISABLED`; the certificate
    /// unchecked for `PREFERRED` and `REQUIRED`; the chain checked for `VERIFY_CA`, and the
    /// host name too for `VERIFY_IDENTITY`, against `ssl-ca` (else the built-in roots).
    fn tls(&self) -> Result<Option<mysql::SslOpts>> {
        let verify = matches!(self.ssl_mode.as_str(), "VERIFY_CA" | "VERIFY_IDENTITY");
        let opts = match self.ssl_mode.as_str() {
            "DISABLED" => return Ok(None),
            _ => mysql::SslOpts::default()
                .with_danger_accept_invalid_certs(!verify)
                .with_danger_skip_domain_validation(self.ssl_mode != "VERIFY_IDENTITY"),
        };
        Ok(Some(match &self.ssl_ca {
            Some(path) if verify => {
                // Read here, so a missing file is named as such, not as a failed handshake.
                std::fs::metadata(path).map_err(|e| {
                    Error::Usage(format!(
                        "cannot read the root certificates '{path}' (ssl-ca) of ssl-mode={}: {e}",
                        self.ssl_mode
                    ))
                })?;
                opts.with_root_cert_path(Some(std::path::PathBuf::from(path)))
            }
            _ => opts,
        }))
    }

    /// Opens a session with the charset and mode mrpipe relies on.
    pub fn connect(&self) -> Result<Conn> {
        let mut opts = Opts::from_url(&self.connect).map_err(|e| Error::sink(&self.display, e))?;
        // `$MYSQL_PWD` for a URL without a password, as the mysql client reads it.
        if opts.get_pass().is_none()
            && let Ok(password) = std::env::var("MYSQL_PWD")
        {
            opts = mysql::OptsBuilder::from_opts(opts).pass(Some(password)).into();
        }
        // Bounded: connecting, and every read and write after it (a frozen server ends the run).
        let timeout = opts.get_tcp_connect_timeout().unwrap_or(sql::CONNECT_TIMEOUT);
        let opts: Opts = mysql::OptsBuilder::from_opts(opts)
            .tcp_connect_timeout(Some(timeout))
            .read_timeout(Some(sql::CONNECT_TIMEOUT * 20))
            .write_timeout(Some(sql::CONNECT_TIMEOUT * 20))
            .into();
        let display = self.display.clone();
        let tls = self.tls()?;
        let preferred = self.ssl_mode == "PREFERRED";
        let mut conn = sql::connect_within(&self.display, timeout, move || {
            let encrypted: Opts = mysql::OptsBuilder::from_opts(opts.clone()).ssl_opts(tls).into();
            match Conn::new(encrypted) {
                // PREFERRED: a server without TLS is spoken to in the clear, as the mysql client does.
                Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)) if preferred => Conn::new(opts),
                other => other,
            }
            .map_err(|e| Error::sink(&display, e))
        })?;
        conn.query_drop(
            "SET NAMES utf8mb4 COLLATE utf8mb4_bin, SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        )
        .map_err(|e| Error::sink(&self.display, e))?;
        Ok(conn)
    }
}

/// The rows of a published table as TSV lines in the table's order, the form whose
/// BLAKE3 a manifest records; only those of `months` when given. `None` when the
/// table does not exist. Text columns are `utf8mb4_bin`, so they sort bytewise.
fn published_rows(url: &MysqlUrl, spec: &TableSpec, months: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let mut conn = url.connect()?;
    let fail = |e: mysql::Error| Error::sink(&url.display, e);
    if !table_exists(&mut conn, spec.name).map_err(fail)? {
        return Ok(None);
    }
    let columns: Vec<String> = spec.columns.iter().map(|(c, _)| format!("CAST({} AS CHAR)", ident(c))).collect();
    // utf8mb4_bin pads with spaces when it compares ('a' sorts after 'a\x01'): text keys
    // are ordered as bytes, as the spec orders them. Columns are qualified: their bare
    // names are the CAST output columns.
    let key = |c: &str| {
        let column = format!("{}.{}", ident(spec.name), ident(c));
        let text = spec.columns.iter().any(|(name, t)| *name == c && *t == arrow::datatypes::DataType::Utf8);
        if text { format!("CAST({column} AS BINARY)") } else { column }
    };
    let order: Vec<String> = spec
        .order
        .iter()
        .map(|k| match k {
            Sort::Asc(c) => key(c),
            Sort::Desc(c) => format!("{} DESC", key(c)),
        })
        .collect();
    let (filter, params): (String, Vec<Value>) = match months {
        Some([]) => return Ok(Some(Vec::new())),
        Some(months) => (
            format!(" WHERE month IN ({})", vec!["?"; months.len()].join(", ")),
            months.iter().map(|m| Value::from(m.as_str())).collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    let sql = format!("SELECT {} FROM {}{filter} ORDER BY {}", columns.join(", "), ident(spec.name), order.join(", "));
    let rows: Vec<mysql::Row> = conn.exec(sql, params).map_err(fail)?;
    let line = |r: &mysql::Row| text::line((0..columns.len()).map(|i| r.get::<Option<String>, _>(i).flatten()));
    Ok(Some(rows.iter().map(line).collect()))
}

/// The newest manifest of `job` in `mrpipe_runs` that `which` asks for, if any.
fn last_manifest(url: &MysqlUrl, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
    let mut conn = url.connect()?;
    let fail = |e: mysql::Error| Error::sink(&url.display, e);
    if !table_exists(&mut conn, "mrpipe_runs").map_err(fail)? {
        return Ok(None);
    }
    let sql = "SELECT manifest FROM mrpipe_runs WHERE job = ? ORDER BY finished DESC";
    let texts: Vec<String> = conn.exec(sql, (job,)).map_err(fail)?;
    for text in texts {
        if let Some(m) = sql::pick_manifest(&url.display, &text, which)? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// A MySQL or MariaDB database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlTarget(MysqlUrl);

impl MysqlTarget {
    /// Parses a `mysql://` or `mariadb://` URL.
    pub fn parse(url: &str) -> Result<MysqlTarget> {
        MysqlUrl::parse(url).map(MysqlTarget)
    }
}

impl fmt::Display for MysqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display)
    }
}

impl Target for MysqlTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        acquire_lock(&self.0, job, wait).map(Some)
    }

    fn open(&self, unit: Unit<'_>, _tables: usize) -> Result<Box<dyn Publication>> {
        sql::check_period(unit.period)?;
        let conn = self.0.connect()?;
        Ok(Box::new(MysqlPublication { url: self.0.clone(), conn, period: unit.period.cloned(), staged: Vec::new() }))
    }

    fn table_location(&self, _table: &str, _period: Option<&Period>) -> String {
        self.0.display.clone()
    }

    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        last_manifest(&self.0, job, which)
    }

    fn published_rows(&self, spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>> {
        published_rows(&self.0, spec, slice.months.filter(|_| spec.has_month()))
    }

    fn relocated(&self, dir: &Path) -> Box<dyn Target> {
        SqliteTarget::rerun_of_a_server(dir)
    }
}

/// Whether the session's database has a table named `name`.
pub fn table_exists(conn: &mut Conn, name: &str) -> mysql::Result<bool> {
    let sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?";
    Ok(conn.exec_first::<i64, _, _>(sql, (name,))?.unwrap_or(0) > 0)
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Publishes a run's tables into MySQL or MariaDB.
struct MysqlPublication {
    url: MysqlUrl,
    conn: Conn,
    period: Option<Period>,
    staged: Vec<Staged>,
}

impl MysqlPublication {
    fn fail(&self, e: impl fmt::Display) -> Error {
        Error::sink(&self.url.display, e)
    }
}

/// One cell as a MySQL value.
fn value(cell: SqlCell<'_>) -> Value {
    let date_time = |micros: i64| {
        let (days, rest) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
        let (y, m, d) = crate::read::fields::civil_from_days(days);
        let secs = rest / 1_000_000;
        let micro = (rest % 1_000_000) as u32;
        Value::Date(y as u16, m as u8, d as u8, (secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8, micro)
    };
    match cell {
        SqlCell::Null => Value::NULL,
        SqlCell::Int(i) => Value::Int(i),
        SqlCell::Float(f) => Value::Double(f),
        // MySQL converts a decimal string to DECIMAL exactly.
        SqlCell::Decimal(v, scale) => Value::Bytes(sql::decimal_text(v, scale).into_bytes()),
        SqlCell::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        SqlCell::Bool(b) => Value::Int(i64::from(b)),
        SqlCell::Date(days) => date_time(i64::from(days) * 86_400_000_000),
        SqlCell::Timestamp(micros) => date_time(micros),
        SqlCell::Binary(b) => Value::Bytes(b.to_vec()),
    }
}

/// The column's type as `information_schema.columns.DATA_TYPE` spells it.
fn catalog_type(column: &SqlColumn) -> &'static str {
    match column.ty {
        SqlType::Int => "bigint",
        SqlType::Float => "double",
        SqlType::Decimal { .. } => "decimal",
        SqlType::Text => "longtext",
        SqlType::Bool => "tinyint",
        SqlType::Date => "date",
        SqlType::Timestamp { .. } => "datetime",
        SqlType::Binary => "longblob",
    }
}

/// The column's MySQL type.
fn mysql_type(column: &SqlColumn) -> String {
    match column.ty {
        SqlType::Int => "BIGINT".into(),
        SqlType::Float => "DOUBLE".into(),
        SqlType::Decimal { precision, scale } => format!("DECIMAL({},{})", precision.min(65), scale.clamp(0, 30)),
        // LONGTEXT: TEXT stops at 65,535 bytes, and a value may be as long as a line.
        SqlType::Text => "LONGTEXT".into(),
        SqlType::Bool => "BOOLEAN".into(),
        SqlType::Date => "DATE".into(),
        SqlType::Timestamp { .. } => "DATETIME(6)".into(),
        SqlType::Binary => "LONGBLOB".into(),
    }
}

impl Publication for MysqlPublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let sql_columns = SqlColumn::all(&table.schema)?;
        let columns: Vec<String> =
            sql_columns.iter().map(|c| format!("{} {}{}", ident(&c.name), mysql_type(c), c.not_null())).collect();
        let mut defs = columns.clone();
        for cols in table.indexes {
            // TEXT keys need a prefix length; 191 characters fit any utf8mb4 index.
            let list: Vec<String> = cols
                .iter()
                .map(|c| match sql_columns.iter().find(|s| s.name == *c).map(|s| s.ty) {
                    Some(SqlType::Text | SqlType::Binary) => format!("{}(191)", ident(c)),
                    _ => ident(c),
                })
                .collect();
            defs.push(format!(
                "INDEX {} ({})",
                ident(&format!("{}_{}_idx", table.name, cols.join("_"))),
                list.join(", ")
            ));
        }
        let found: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ORDINAL_POSITION",
                (table.name,),
            )
            .map_err(|e| self.fail(e))?;
        let want: Vec<(String, String)> =
            sql_columns.iter().map(|c| (c.name.clone(), catalog_type(c).to_string())).collect();
        // Tables made by earlier versions have TEXT columns: the same kind of value.
        let found: Vec<(String, String)> = found
            .into_iter()
            .map(|(n, t)| if matches!(t.as_str(), "text" | "mediumtext") { (n, "longtext".into()) } else { (n, t) })
            .collect();
        sql::check_layout(&self.url.display, table.name, &found, &want)?;
        let stage = ident(&format!("mrpipe_stage_{}", table.name));
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {name} ({}) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
            defs.join(", ")
        );
        self.conn.query_drop(&ddl).map_err(|e| self.fail(e))?;
        self.conn.query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {stage}")).map_err(|e| self.fail(e))?;
        self.conn.query_drop(format!("CREATE TEMPORARY TABLE {stage} LIKE {name}")).map_err(|e| self.fail(e))?;

        let width = columns.len();
        let row_marks = format!("({})", vec!["?"; width].join(", "));
        let mut hasher = blake3::Hasher::new();
        let mut months = Months::of(&table.schema);
        let mut rows = 0u64;
        let mut pending: Vec<Value> = Vec::with_capacity(ROWS_PER_INSERT * width);
        let mut pending_bytes = 0usize;
        let flush = |conn: &mut Conn, pending: &mut Vec<Value>| -> std::result::Result<(), mysql::Error> {
            if pending.is_empty() {
                return Ok(());
            }
            let n = pending.len() / width;
            let sql = format!("INSERT INTO {stage} VALUES {}", vec![row_marks.as_str(); n].join(", "));
            conn.exec_drop(sql, std::mem::take(pending))
        };
        for batch in table.batches {
            let batch: RecordBatch = batch?;
            write_rows(&mut hasher, &batch).map_err(|e| Error::sink(table.name, e))?;
            months.see(&batch);
            let arrays = sql::canonical(&batch, &sql_columns)?;
            for row in 0..batch.num_rows() {
                for (a, c) in arrays.iter().zip(&sql_columns) {
                    let v = value(cell(a.as_ref(), c.ty, row));
                    pending_bytes += if let Value::Bytes(b) = &v { b.len() } else { 8 };
                    pending.push(v);
                }
                if pending.len() == ROWS_PER_INSERT * width || pending_bytes >= BYTES_PER_INSERT {
                    flush(&mut self.conn, &mut pending).map_err(|e| Error::sink(&self.url.display, e))?;
                    pending_bytes = 0;
                }
            }
            rows += batch.num_rows() as u64;
        }
        flush(&mut self.conn, &mut pending).map_err(|e| Error::sink(&self.url.display, e))?;
        let months = months.replaced(self.period.as_ref());
        self.staged.push(Staged { name: table.name, months: months.clone() });
        let blake3 = Some(hasher.finalize().to_hex().to_string());
        Ok(Written { rows, location: self.url.display.clone(), blake3, months })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest) -> Result<()> {
        let runs = "CREATE TABLE IF NOT EXISTS mrpipe_runs (job VARCHAR(64) NOT NULL, finished VARCHAR(32) NOT NULL, \
                    manifest LONGTEXT NOT NULL, INDEX mrpipe_runs_job_idx (job, finished)) DEFAULT CHARSET = utf8mb4";
        self.conn.query_drop(runs).map_err(|e| self.fail(e))?;
        // Every table of the run loses the months any of them holds.
        let months = sql::months_to_replace(None, self.staged.iter().flat_map(|t| t.months.iter().flatten().cloned()));
        let mut tx =
            self.conn.start_transaction(mysql::TxOpts::default()).map_err(|e| Error::sink(&self.url.display, e))?;
        let fail = |e: mysql::Error| Error::sink(&self.url.display, e);
        for t in &self.staged {
            let (target, stage) = (ident(t.name), ident(&t.stage()));
            if t.months.is_some() {
                for month in &months {
                    tx.exec_drop(format!("DELETE FROM {target} WHERE month = ?"), (month,)).map_err(fail)?;
                }
            } else {
                tx.query_drop(format!("DELETE FROM {target}")).map_err(fail)?;
            }
            tx.query_drop(format!("INSERT INTO {target} SELECT * FROM {stage}")).map_err(fail)?;
        }
        let json = manifest.to_json()?;
        tx.exec_drop("INSERT INTO mrpipe_runs VALUES (?, ?, ?)", (&manifest.job, &manifest.finished, json))
            .map_err(fail)?;
        tx.commit().map_err(fail)
    }
}

/// Takes the MySQL named lock (`GET_LOCK`) of `job` on `url`'s database, waiting up to
/// `wait`; the lock's session holds it until it is dropped or the process dies.
fn acquire_lock(url: &MysqlUrl, job: &str, wait: Option<Duration>) -> Result<RunLock> {
    let mut conn = url.connect()?;
    let db: Option<String> = conn.query_first("SELECT DATABASE()").map_err(|e| Error::sink(&url.display, e))?;
    let name = format!("mrpipe/{job}/{}", db.unwrap_or_default());
    let seconds = wait.map_or(0, |w| w.as_secs().max(1));
    let got: Option<i64> =
        conn.exec_first("SELECT GET_LOCK(?, ?)", (&name, seconds)).map_err(|e| Error::sink(&url.display, e))?;
    if got == Some(1) {
        return Ok(RunLock::held(Box::new(conn), format!("{} lock {name}", url.display)));
    }
    let holder: Option<Option<i64>> =
        conn.exec_first("SELECT IS_USED_LOCK(?)", (&name,)).map_err(|e| Error::sink(&url.display, e))?;
    let holder = holder.flatten().map_or_else(|| "unknown".to_string(), |id| format!("connection {id}"));
    Err(Error::Locked { path: std::path::PathBuf::from(format!("{} lock {name}", url.display)), holder })
}
