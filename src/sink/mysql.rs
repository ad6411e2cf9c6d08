//! MySQL / MariaDB sink. DDL commits implicitly in MySQL, so target tables are
//! created (if missing) before the transaction, and each table's rows go to a
//! TEMPORARY staging table with batched multi-row INSERTs. The commit then replaces,
//! inside one transaction, only the months the run holds in tables with a `month`
//! column, or the whole content of the others, and records the manifest in
//! `mrpipe_runs`, like the PostgreSQL sink.
//!
//! Types: `TEXT`, `BIGINT`, `DECIMAL(18,2)`, `utf8mb4` with binary collation (bytewise
//! order, as the spec's). The run lock is `GET_LOCK`, released when the session ends.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, Value};

use super::sql::{SqlCell, Staged, cell, months_to_replace};
use super::tsv::write_rows;
use super::{Sink, Written};
use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::read::fields::format_cents;
use crate::table::{Sort, Table, TableSpec};

/// Rows per multi-row INSERT.
const ROWS_PER_INSERT: usize = 1000;

/// A `mysql://` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlUrl {
    /// The URL as given (passwords included), for connecting.
    pub connect: String,
    /// The URL without its password.
    pub display: String,
}

impl MysqlUrl {
    /// Parses `mysql://user[:password]@host[:port]/db`.
    pub fn parse(url: &str) -> Result<MysqlUrl> {
        let display = super::postgres::redact(url);
        let opts = Opts::from_url(url).map_err(|e| Error::Usage(format!("output '{display}': {e}")))?;
        if opts.get_db_name().is_none() {
            return Err(Error::Usage(format!("output '{display}' names no database")));
        }
        Ok(MysqlUrl { connect: url.to_string(), display })
    }

    /// Opens a session with the charset and mode mrpipe relies on.
    pub fn connect(&self) -> Result<Conn> {
        let opts = Opts::from_url(&self.connect).map_err(|e| Error::sink(&self.display, e))?;
        let mut conn = Conn::new(opts).map_err(|e| Error::sink(&self.display, e))?;
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
pub fn published_rows(url: &MysqlUrl, spec: &TableSpec, months: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let mut conn = url.connect()?;
    let fail = |e: mysql::Error| Error::sink(&url.display, e);
    if !table_exists(&mut conn, spec.name).map_err(fail)? {
        return Ok(None);
    }
    let columns: Vec<String> = spec.columns.iter().map(|(c, _)| format!("CAST({} AS CHAR)", ident(c))).collect();
    let order: Vec<String> = spec
        .order
        .iter()
        .map(|key| match key {
            Sort::Asc(c) => ident(c),
            Sort::Desc(c) => format!("{} DESC", ident(c)),
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
    let line = |r: &mysql::Row| {
        (0..columns.len()).map(|i| r.get::<Option<String>, _>(i).flatten().unwrap_or_default()).collect::<Vec<_>>()
    };
    Ok(Some(rows.iter().map(|r| line(r).join("\t")).collect()))
}

/// The manifest of the newest run of `job` recorded in `mrpipe_runs`, if any.
pub fn latest_manifest(url: &MysqlUrl, job: &str) -> Result<Option<String>> {
    let mut conn = url.connect()?;
    let fail = |e: mysql::Error| Error::sink(&url.display, e);
    if !table_exists(&mut conn, "mrpipe_runs").map_err(fail)? {
        return Ok(None);
    }
    let sql = "SELECT manifest FROM mrpipe_runs WHERE job = ? ORDER BY finished DESC LIMIT 1";
    conn.exec_first(sql, (job,)).map_err(fail)
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
pub struct MysqlSink {
    url: MysqlUrl,
    conn: Conn,
    period: Option<Period>,
    staged: Vec<Staged>,
}

impl MysqlSink {
    /// Connects; nothing is visible to readers until `commit`.
    pub fn open(url: MysqlUrl, period: Option<Period>) -> Result<Self> {
        super::check_sql_period(period.as_ref())?;
        let conn = url.connect()?;
        Ok(MysqlSink { url, conn, period, staged: Vec::new() })
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::sink(&self.url.display, e)
    }
}

fn value(column: &dyn Array, row: usize) -> Value {
    match cell(column, row) {
        SqlCell::Null => Value::NULL,
        SqlCell::Int(i) => Value::Int(i),
        // MySQL converts a decimal string to DECIMAL exactly.
        SqlCell::Cents(c) => Value::Bytes(format_cents(c).into_bytes()),
        SqlCell::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
    }
}

impl Sink for MysqlSink {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let mut columns = Vec::new();
        for f in table.schema.fields() {
            let ty = match f.data_type() {
                DataType::Int64 => "BIGINT",
                DataType::Decimal128(18, 2) => "DECIMAL(18,2)",
                DataType::Decimal128(..) => "DECIMAL(38,2)",
                _ => "TEXT",
            };
            columns.push(format!("{} {ty} NOT NULL", ident(f.name())));
        }
        let mut defs = columns.clone();
        for cols in table.indexes {
            // TEXT keys need a prefix length; 191 characters fit any utf8mb4 index.
            let list: Vec<String> = cols
                .iter()
                .map(|c| match table.schema.field_with_name(c).map(|f| f.data_type().clone()) {
                    Ok(DataType::Utf8) => format!("{}(191)", ident(c)),
                    _ => ident(c),
                })
                .collect();
            defs.push(format!(
                "INDEX {} ({})",
                ident(&format!("{}_{}_idx", table.name, cols.join("_"))),
                list.join(", ")
            ));
        }
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
        let mut rows = 0u64;
        let mut pending: Vec<Value> = Vec::with_capacity(ROWS_PER_INSERT * width);
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
            for row in 0..batch.num_rows() {
                pending.extend(batch.columns().iter().map(|c| value(c.as_ref(), row)));
                if pending.len() == ROWS_PER_INSERT * width {
                    flush(&mut self.conn, &mut pending).map_err(|e| Error::sink(&self.url.display, e))?;
                }
            }
            rows += batch.num_rows() as u64;
        }
        flush(&mut self.conn, &mut pending).map_err(|e| Error::sink(&self.url.display, e))?;
        let has_month = table.schema.fields().iter().any(|f| f.name() == "month");
        self.staged.push(Staged { name: table.name, has_month });
        Ok(Written { rows, location: self.url.display.clone(), blake3: Some(hasher.finalize().to_hex().to_string()) })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest, _manifest_file: Option<&Path>) -> Result<()> {
        let runs = "CREATE TABLE IF NOT EXISTS mrpipe_runs (job VARCHAR(64) NOT NULL, finished VARCHAR(32) NOT NULL, \
                    manifest LONGTEXT NOT NULL, INDEX mrpipe_runs_job_idx (job, finished)) DEFAULT CHARSET = utf8mb4";
        self.conn.query_drop(runs).map_err(|e| self.fail(e))?;
        let mut found = Vec::new();
        for t in self.staged.iter().filter(|t| t.has_month) {
            let sql = format!("SELECT DISTINCT month FROM {}", ident(&t.stage()));
            let months: Vec<String> = self.conn.query(sql).map_err(|e| self.fail(e))?;
            found.extend(months);
        }
        let months = months_to_replace(self.period.as_ref(), found);
        let mut tx =
            self.conn.start_transaction(mysql::TxOpts::default()).map_err(|e| Error::sink(&self.url.display, e))?;
        let fail = |e: mysql::Error| Error::sink(&self.url.display, e);
        for t in &self.staged {
            let (target, stage) = (ident(t.name), ident(&t.stage()));
            if t.has_month {
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

/// Takes the MySQL named lock of `job` on `url`'s database, waiting up to `wait`;
/// the returned session holds it until it is dropped or the process dies.
pub fn acquire_lock(url: &MysqlUrl, job: &str, wait: Option<std::time::Duration>) -> Result<Conn> {
    let mut conn = url.connect()?;
    let db: Option<String> = conn.query_first("SELECT DATABASE()").map_err(|e| Error::sink(&url.display, e))?;
    let name = format!("mrpipe/{job}/{}", db.unwrap_or_default());
    let seconds = wait.map_or(0, |w| w.as_secs().max(1));
    let got: Option<i64> =
        conn.exec_first("SELECT GET_LOCK(?, ?)", (&name, seconds)).map_err(|e| Error::sink(&url.display, e))?;
    if got == Some(1) {
        return Ok(conn);
    }
    let holder: Option<Option<i64>> =
        conn.exec_first("SELECT IS_USED_LOCK(?)", (&name,)).map_err(|e| Error::sink(&url.display, e))?;
    let holder = holder.flatten().map_or_else(|| "unknown".to_string(), |id| format!("connection {id}"));
    Err(Error::Locked { path: std::path::PathBuf::from(format!("{} lock {name}", url.display)), holder })
}
