//! SQLite output (`sqlite:PATH`): each table's contents replaced inside one
//! transaction that covers all of the run's tables, so readers see the old result or
//! the new one, never a mix. A whole run replaces its tables; one period replaces only
//! that period's rows. A `mrpipe_runs` table keeps every run's manifest, inserted in
//! the same transaction; a JSON copy `PATH.<unit>.manifest.json` follows the commit.
//! The run lock and the default rejects file sit beside the database, as for files.
//!
//! Types: integers `INTEGER`, floats `REAL`, text `TEXT`, booleans `INTEGER` (0, 1),
//! dates and timestamps ISO 8601 `TEXT`, bytes `BLOB`. SQLite has no exact decimal
//! type (its `NUMERIC` affinity makes a binary float, and text sorts as text), so an
//! exact decimal `x` with scale `s` is stored as the INTEGER `x × 10^s` in a column
//! `x_cents` (scale 2, money) or `x_e<s>`, where `ORDER BY`, `min`, `max` and `sum`
//! are exact, followed by a generated `REAL` column `x` (`x_cents / 100.0`) for
//! reading, which sorts right too. A decimal of scale 0 is a plain `INTEGER x`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use super::atomic::write_manifest_file;
use super::files::{self, beside};
use super::sql::{self, SqlCell, SqlColumn, SqlType, cell};
use super::text::{self, write_rows};
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Table, TableSpec};

/// A SQLite database file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteTarget {
    path: PathBuf,
}

impl SqliteTarget {
    /// `sqlite:PATH` (or `sqlite://PATH`); `spelled` is the whole value, for messages.
    pub fn parse(spelled: &str, path: &str) -> Result<SqliteTarget> {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(Error::Usage(format!("output '{spelled}' names no database file")));
        }
        Ok(SqliteTarget { path: PathBuf::from(path) })
    }

    /// A database at `path`.
    pub fn at(path: PathBuf) -> SqliteTarget {
        SqliteTarget { path }
    }

    /// Where `mrpipe verify` re-runs a server's job: a SQLite file in `dir`, never the
    /// server itself (a re-run must not publish); SQLite hashes rows as servers do.
    pub fn rerun_of_a_server(dir: &Path) -> Box<dyn Target> {
        Box::new(SqliteTarget::at(dir.join("rerun.db")))
    }

    fn fail(&self, e: impl fmt::Display) -> Error {
        Error::sink(self.to_string(), e)
    }

    /// Opens the database if it exists.
    fn read_only(&self) -> Result<Option<Connection>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags(&self.path, flags).map(Some).map_err(|e| self.fail(e))
    }
}

impl fmt::Display for SqliteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sqlite:{}", self.path.display())
    }
}

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

impl Target for SqliteTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        let path = files::lock_beside(&self.path, job)?;
        files::lock_and_clean(&path, &files::parent_dir(&self.path), wait).map(Some)
    }

    fn open(&self, unit: Unit<'_>, _tables: usize) -> Result<Box<dyn Publication>> {
        sql::check_period(unit.period)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(&self.path).map_err(|e| self.fail(e))?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(|e| self.fail(e))?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| self.fail(e))?;
        Ok(Box::new(SqlitePublication {
            target: self.clone(),
            conn,
            period: unit.period.cloned(),
            manifest: self.manifest_path(unit),
            committed: false,
        }))
    }

    fn table_location(&self, _table: &str, _period: Option<&Period>) -> String {
        self.to_string()
    }

    fn manifest_location(&self, unit: Unit<'_>) -> Option<String> {
        Some(self.manifest_path(unit).display().to_string())
    }

    fn default_rejects(&self, unit: Unit<'_>) -> PathBuf {
        beside(&self.path, &format!("{}.rejects.tsv", unit.name()))
    }

    fn scratch_dir(&self) -> PathBuf {
        files::parent_dir(&self.path)
    }

    fn last_manifest(&self, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
        let Some(conn) = self.read_only()? else { return Ok(None) };
        if !table_exists(&conn, "mrpipe_runs").map_err(|e| self.fail(e))? {
            return Ok(None);
        }
        let mut stmt = conn
            .prepare("SELECT manifest FROM mrpipe_runs WHERE job = ?1 ORDER BY finished DESC, rowid DESC")
            .map_err(|e| self.fail(e))?;
        let texts = stmt.query_map([job], |r| r.get::<_, String>(0)).map_err(|e| self.fail(e))?;
        for text in texts {
            let text = text.map_err(|e| self.fail(e))?;
            if let Some(m) = sql::pick_manifest(&self.to_string(), &text, which)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    fn published_rows(&self, spec: &TableSpec, slice: Slice<'_>) -> Result<Option<Vec<String>>> {
        let Some(conn) = self.read_only()? else { return Ok(None) };
        if !table_exists(&conn, spec.name).map_err(|e| self.fail(e))? {
            return Ok(None);
        }
        let filter = match slice.months {
            Some(months) if spec.has_month() => {
                let list: Vec<String> = months.iter().map(|m| format!("'{}'", m.replace('\'', "''"))).collect();
                format!(" WHERE month IN ({})", list.join(", "))
            }
            _ => String::new(),
        };
        let stored: Vec<SqlColumn> = SqlColumn::all(&spec.schema())?;
        let columns: Vec<String> = stored.iter().map(|c| ident(&stored_name(c))).collect();
        let scales: Vec<Option<i8>> = stored.iter().map(scaled).collect();
        // A run inserts its rows in the table's order, and the rows a manifest describes
        // are one run's (the whole table, or the months it replaced): insertion order is
        // their order.
        let query = format!("SELECT {} FROM {}{filter} ORDER BY rowid", columns.join(", "), ident(spec.name));
        let mut stmt = conn.prepare(&query).map_err(|e| self.fail(e))?;
        let width = columns.len();
        let rows = stmt
            .query_map([], |row| {
                let cells: Vec<Option<String>> = (0..width)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Integer(v) => Some(match scales[i] {
                                Some(scale) => sql::decimal_text(i128::from(v), scale),
                                None => v.to_string(),
                            }),
                            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Real(v) => Some(v.to_string()),
                            ValueRef::Null | ValueRef::Blob(_) => None,
                        })
                    })
                    .collect::<rusqlite::Result<_>>()?;
                Ok(text::line(cells))
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map(Some).map_err(|e| self.fail(e))
    }

    fn relocated(&self, dir: &Path) -> Box<dyn Target> {
        Box::new(SqliteTarget::at(dir.join(self.path.file_name().unwrap_or(std::ffi::OsStr::new("output.db")))))
    }
}

impl SqliteTarget {
    fn manifest_path(&self, unit: Unit<'_>) -> PathBuf {
        beside(&self.path, &format!("{}.manifest.json", unit.name()))
    }
}

/// A run's tables being written inside one open transaction.
struct SqlitePublication {
    target: SqliteTarget,
    conn: Connection,
    period: Option<Period>,
    manifest: PathBuf,
    committed: bool,
}

impl Publication for SqlitePublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let columns = SqlColumn::all(&table.schema)?;
        let mut defs = Vec::with_capacity(columns.len() + 2);
        for c in &columns {
            let ty = match c.ty {
                SqlType::Int | SqlType::Bool | SqlType::Decimal { .. } => "INTEGER",
                SqlType::Float => "REAL",
                SqlType::Binary => "BLOB",
                SqlType::Text | SqlType::Date | SqlType::Timestamp { .. } => "TEXT",
            };
            let stored = stored_name(c);
            if let Some(scale) = scaled(c) {
                // The readable value, in the spec's place, then the exact one it is made from.
                defs.push(format!(
                    "{} REAL GENERATED ALWAYS AS ({} / 1e{scale}) VIRTUAL",
                    ident(&c.name),
                    ident(&stored)
                ));
                if columns.iter().any(|other| other.name == stored) {
                    return Err(Error::Usage(format!(
                        "columns '{}' and '{stored}' would share the name '{stored}' in SQLite, which keeps the \
                         exact decimal '{}' there; rename one",
                        c.name, c.name
                    )));
                }
            }
            defs.push(format!("{} {ty}{}", ident(&stored), c.not_null()));
        }
        // A whole run replaces the table; one period replaces only its own rows.
        let create = format!("CREATE TABLE {name} ({})", defs.join(", "));
        let mut ddl = match self.period {
            None => format!("DROP TABLE IF EXISTS {name}; {create};"),
            Some(_) => {
                upgrade_text_decimals(&self.conn, table.name, &columns, &create).map_err(|e| self.target.fail(e))?;
                format!("CREATE TABLE IF NOT EXISTS {name} ({});", defs.join(", "))
            }
        };
        for cols in table.indexes {
            let index = ident(&format!("{}_{}_idx", table.name, cols.join("_")));
            let list: Vec<String> = cols
                .iter()
                .map(|c| ident(&columns.iter().find(|k| k.name == *c).map_or_else(|| c.to_string(), stored_name)))
                .collect();
            ddl.push_str(&format!(" CREATE INDEX IF NOT EXISTS {index} ON {name} ({});", list.join(", ")));
        }
        self.conn.execute_batch(&ddl).map_err(|e| self.target.fail(e))?;
        let mut months = None;
        if let Some(Period { column: Some(column), value, .. }) = &self.period {
            let delete = format!("DELETE FROM {name} WHERE {} = ?1", ident(column));
            self.conn.execute(&delete, [value]).map_err(|e| self.target.fail(e))?;
            months = Some(vec![value.clone()]);
        }

        let placeholders = vec!["?"; columns.len()].join(", ");
        let names: Vec<String> = columns.iter().map(|c| ident(&stored_name(c))).collect();
        let mut insert = self
            .conn
            .prepare(&format!("INSERT INTO {name} ({}) VALUES ({placeholders})", names.join(", ")))
            .map_err(|e| Error::sink(table.name, e))?;
        let mut rows = 0u64;
        let mut values: Vec<SqlValue> = Vec::with_capacity(columns.len());
        // The rows' hash is that of their TSV form, so it can be recomputed from any copy.
        let mut hasher = blake3::Hasher::new();
        for batch in table.batches {
            let batch = batch?;
            write_rows(&mut hasher, &batch).map_err(|e| Error::sink(table.name, e))?;
            let arrays = sql::canonical(&batch, &columns)?;
            for row in 0..batch.num_rows() {
                values.clear();
                for (a, c) in arrays.iter().zip(&columns) {
                    values.push(sql_value(cell(a.as_ref(), c.ty, row), c)?);
                }
                insert.execute(rusqlite::params_from_iter(values.iter())).map_err(|e| Error::sink(table.name, e))?;
            }
            rows += batch.num_rows() as u64;
        }
        Ok(Written {
            rows,
            location: self.target.to_string(),
            blake3: Some(hasher.finalize().to_hex().to_string()),
            months,
        })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest) -> Result<()> {
        let record = "CREATE TABLE IF NOT EXISTS mrpipe_runs (job TEXT NOT NULL, finished TEXT NOT NULL, manifest TEXT NOT NULL); \
                      CREATE INDEX IF NOT EXISTS mrpipe_runs_job_idx ON mrpipe_runs (job, finished);";
        self.conn.execute_batch(record).map_err(|e| self.target.fail(e))?;
        self.conn
            .execute(
                "INSERT INTO mrpipe_runs VALUES (?1, ?2, ?3)",
                (&manifest.job, &manifest.finished, manifest.to_json()?),
            )
            .map_err(|e| self.target.fail(e))?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.target.fail(e))?;
        self.committed = true;
        // The JSON copy (what `mrpipe verify` reads) follows the commit.
        write_manifest_file(&self.manifest, manifest)
    }
}

impl Drop for SqlitePublication {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// One cell as a SQLite value; a decimal whose scaled integer passes `i64` is an error
/// naming the column.
fn sql_value(cell: SqlCell<'_>, column: &SqlColumn) -> Result<SqlValue> {
    Ok(match cell {
        SqlCell::Null => SqlValue::Null,
        SqlCell::Int(i) => SqlValue::Integer(i),
        SqlCell::Float(f) => SqlValue::Real(f),
        SqlCell::Decimal(v, scale) => SqlValue::Integer(i64::try_from(v).map_err(|_| {
            Error::Usage(format!(
                "column '{}' holds {}, which SQLite cannot keep exactly (as {} it passes 64 bits); cast it to \
                 fewer digits after the point or to DOUBLE in the query, or write Parquet",
                column.name,
                sql::decimal_text(v, scale),
                stored_name(column)
            ))
        })?),
        SqlCell::Text(s) => SqlValue::Text(s.to_string()),
        SqlCell::Bool(b) => SqlValue::Integer(i64::from(b)),
        SqlCell::Date(d) => SqlValue::Text(sql::date_text(d)),
        SqlCell::Timestamp(t) => {
            SqlValue::Text(sql::timestamp_text(t, matches!(column.ty, SqlType::Timestamp { utc: true })))
        }
        SqlCell::Binary(b) => SqlValue::Blob(b.to_vec()),
    })
}

/// The scale of a column kept as a scaled integer beside a generated `REAL` (decimals with digits
/// after the point).
fn scaled(column: &SqlColumn) -> Option<i8> {
    match column.ty {
        SqlType::Decimal { scale, .. } if scale > 0 => Some(scale),
        _ => None,
    }
}

/// The name of the column that stores `column`'s values: `x_cents` for money, `x_e<s>` for
/// another decimal scale, else `x`.
fn stored_name(column: &SqlColumn) -> String {
    match scaled(column) {
        Some(2) => format!("{}_cents", column.name),
        Some(scale) => format!("{}_e{scale}", column.name),
        None => column.name.clone(),
    }
}

/// Rewrites a table written by an earlier mrpipe, which kept decimals as `TEXT` (`'1234.50'`,
/// always with every digit of the scale), into today's layout, so one-period runs into an older
/// database go on replacing their rows. Runs inside the publication's transaction.
fn upgrade_text_decimals(conn: &Connection, table: &str, columns: &[SqlColumn], create: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_xinfo(?1)")?;
    let existing: Vec<String> = stmt.query_map([table], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let old = |c: &&SqlColumn| scaled(c).is_some() && existing.contains(&c.name) && !existing.contains(&stored_name(c));
    if !columns.iter().any(|c| old(&c)) {
        return Ok(());
    }
    let backup = format!("{table}__before_upgrade");
    let mut moved = Vec::with_capacity(columns.len());
    let mut from = Vec::with_capacity(columns.len());
    for c in columns {
        moved.push(ident(&stored_name(c)));
        from.push(match scaled(c) {
            // Exactly `scale` digits after the point: dropping the point gives the scaled integer.
            Some(_) if old(&c) => format!("CAST(replace({}, '.', '') AS INTEGER)", ident(&c.name)),
            _ => ident(&stored_name(c)),
        });
    }
    // Copied in rowid order: a run's rows are read back in the order they were inserted.
    conn.execute_batch(&format!(
        "ALTER TABLE {name} RENAME TO {backup}; {create}; INSERT INTO {name} ({}) SELECT {} FROM {backup} ORDER BY rowid; \
         DROP TABLE {backup};",
        moved.join(", "),
        from.join(", "),
        name = ident(table),
        backup = ident(&backup),
    ))
}
