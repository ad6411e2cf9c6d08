//! SQLite sink: each table's contents replaced inside one transaction that covers all
//! of the job's tables, so readers see the old result or the new one, never a mix.
//!
//! A `mrpipe_runs` table keeps every run's manifest, inserted in the same transaction.
//!
//! Types: text `TEXT`, integers `INTEGER`, money `TEXT` holding the exact decimal
//! (`'1234.50'`): SQLite has no exact decimal type, and its `NUMERIC` affinity would
//! turn the value into a binary float.

use std::path::{Path, PathBuf};

use arrow::array::Array;
use arrow::datatypes::DataType;
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::sql::{SqlCell, cell};
use super::tsv::write_rows;
use super::{Sink, Written, publish_with_manifest};
use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::read::fields::format_cents;
use crate::table::Table;

/// Replaces tables in a SQLite database file.
pub struct SqliteSink {
    path: PathBuf,
    conn: Connection,
    period: Option<Period>,
    committed: bool,
}

impl SqliteSink {
    /// Opens (creating if needed) the database and begins the publishing transaction.
    /// With a `period` that has a column, only that period's rows are replaced.
    pub fn open(path: PathBuf, period: Option<Period>) -> Result<Self> {
        super::check_sql_period(period.as_ref())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let fail = |e: rusqlite::Error| Error::sink(format!("sqlite:{}", path.display()), e);
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(fail)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
        Ok(SqliteSink { path, conn, period, committed: false })
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::sink(format!("sqlite:{}", self.path.display()), e)
    }
}

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Sink for SqliteSink {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let columns: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Int64 => "INTEGER",
                    _ => "TEXT",
                };
                format!("{} {ty} NOT NULL", ident(f.name()))
            })
            .collect();
        // A whole run replaces the table; one period replaces only its own rows.
        let mut ddl = match self.period {
            None => format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({});", columns.join(", ")),
            Some(_) => format!("CREATE TABLE IF NOT EXISTS {name} ({});", columns.join(", ")),
        };
        for cols in table.indexes {
            let index = ident(&format!("{}_{}_idx", table.name, cols.join("_")));
            let list: Vec<String> = cols.iter().map(|c| ident(c)).collect();
            ddl.push_str(&format!(" CREATE INDEX IF NOT EXISTS {index} ON {name} ({});", list.join(", ")));
        }
        self.conn.execute_batch(&ddl).map_err(|e| self.fail(e))?;
        if let Some(Period { column: Some(column), value, .. }) = &self.period {
            let delete = format!("DELETE FROM {name} WHERE {} = ?1", ident(column));
            self.conn.execute(&delete, [value]).map_err(|e| self.fail(e))?;
        }

        let placeholders = vec!["?"; columns.len()].join(", ");
        let mut insert = self
            .conn
            .prepare(&format!("INSERT INTO {name} VALUES ({placeholders})"))
            .map_err(|e| Error::sink(table.name, e))?;
        let mut rows = 0u64;
        let mut values: Vec<SqlValue> = Vec::with_capacity(columns.len());
        // The rows' hash is that of their TSV form, so it can be recomputed from any copy.
        let mut hasher = blake3::Hasher::new();
        for batch in table.batches {
            let batch = batch?;
            write_rows(&mut hasher, &batch).map_err(|e| Error::sink(table.name, e))?;
            for row in 0..batch.num_rows() {
                values.clear();
                for column in batch.columns() {
                    values.push(sql_value(column.as_ref(), row));
                }
                insert.execute(rusqlite::params_from_iter(values.iter())).map_err(|e| Error::sink(table.name, e))?;
            }
            rows += batch.num_rows() as u64;
        }
        let location = format!("sqlite:{}", self.path.display());
        Ok(Written { rows, location, blake3: Some(hasher.finalize().to_hex().to_string()) })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest, manifest_file: Option<&Path>) -> Result<()> {
        {
            let m = manifest;
            let record = "CREATE TABLE IF NOT EXISTS mrpipe_runs (job TEXT NOT NULL, finished TEXT NOT NULL, manifest TEXT NOT NULL); \
                          CREATE INDEX IF NOT EXISTS mrpipe_runs_job_idx ON mrpipe_runs (job, finished);";
            self.conn.execute_batch(record).map_err(|e| self.fail(e))?;
            self.conn
                .execute("INSERT INTO mrpipe_runs VALUES (?1, ?2, ?3)", (&m.job, &m.finished, m.to_json()?))
                .map_err(|e| self.fail(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.fail(e))?;
        self.committed = true;
        // The JSON copy (what `mrpipe verify` reads) follows the commit.
        publish_with_manifest(Vec::new(), manifest, manifest_file)
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// One cell as a SQLite value; money is the exact decimal as text.
fn sql_value(column: &dyn Array, row: usize) -> SqlValue {
    match cell(column, row) {
        SqlCell::Null => SqlValue::Null,
        SqlCell::Int(i) => SqlValue::Integer(i),
        SqlCell::Cents(c) => SqlValue::Text(format_cents(c)),
        SqlCell::Text(s) => SqlValue::Text(s.to_string()),
    }
}
