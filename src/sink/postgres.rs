//! PostgreSQL sink: each table is loaded with binary `COPY` into a temporary staging
//! table, then published inside the run's one transaction. Tables with a `month`
//! column replace only the months this run holds (every month in any of its tables,
//! plus the run's period), so hourly `--month current` runs leave history alone;
//! other tables (`sales_rank`, `urls`) replace their contents. Readers see the old
//! result or the new one, never a mix; the manifest is inserted into `mrpipe_runs`
//! in the same transaction.
//!
//! Types: `TEXT`, `BIGINT`, `NUMERIC(18,2)`; `month` is `TEXT` (`YYYY-MM`).

use std::error::Error as StdError;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};
use rust_decimal::Decimal;

use super::sql::{SqlCell, Staged, cell, months_to_replace};
use super::tsv::write_rows;
use super::{Sink, Written};
use crate::error::{Error, Result};
use crate::job::Period;
use crate::manifest::Manifest;
use crate::table::{Sort, Table, TableSpec};

/// A `postgres://` output: connection string, optional schema, and a printable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresUrl {
    /// What the driver connects with (the URL without `schema=`).
    pub connect: String,
    /// `?schema=` if given.
    pub schema: Option<String>,
    /// The URL without its password, for messages and manifests.
    pub display: String,
}

impl PostgresUrl {
    /// Parses `postgres://user[:password]@host[:port]/db[?schema=s&other=...]`.
    pub fn parse(url: &str) -> Result<PostgresUrl> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", s)) if !s.is_empty() => schema = Some(s.to_string()),
                _ => rest.push(pair),
            }
        }
        let connect = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        connect.parse::<postgres::Config>().map_err(|e| Error::Usage(format!("output '{}': {e}", redact(url))))?;
        Ok(PostgresUrl { display: redact(url), connect, schema })
    }

    /// Connects, naming the connection after this process so a lock holder can be told.
    pub fn connect(&self) -> Result<Client> {
        let mut config: postgres::Config = self.connect.parse().map_err(|e| Error::sink(&self.display, e))?;
        config.application_name(&format!("mrpipe pid {}", std::process::id()));
        let mut client = config.connect(NoTls).map_err(|e| Error::sink(&self.display, describe(&e)))?;
        if let Some(schema) = &self.schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {0}; SET search_path TO {0}", ident(schema));
            client.batch_execute(&sql).map_err(|e| Error::sink(&self.display, describe(&e)))?;
        }
        Ok(client)
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A driver error with its server-side cause, which `Display` alone leaves out.
pub fn describe(e: &postgres::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Quotes an identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The rows of a published table as TSV lines in the table's order, the form whose
/// BLAKE3 a manifest records; only those of `months` when given. `None` when the
/// table does not exist.
pub fn published_rows(url: &PostgresUrl, spec: &TableSpec, months: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let mut client = url.connect()?;
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    let exists: Option<String> = client.query_one("SELECT to_regclass($1)::text", &[&spec.name]).map_err(fail)?.get(0);
    if exists.is_none() {
        return Ok(None);
    }
    let columns: Vec<String> = spec.columns.iter().map(|(c, _)| format!("{}::text", ident(c))).collect();
    let order: Vec<String> = spec
        .order
        .iter()
        .map(|key| {
            let (column, direction) = match key {
                Sort::Asc(c) => (c, ""),
                Sort::Desc(c) => (c, " DESC"),
            };
            // Text sorts bytewise, as in the spec, whatever the database's collation.
            let text = spec.columns.iter().any(|(c, t)| c == column && *t == DataType::Utf8);
            format!("{}{}{direction}", ident(column), if text { " COLLATE \"C\"" } else { "" })
        })
        .collect();
    let filter = if months.is_some() { " WHERE month = ANY($1)" } else { "" };
    let sql = format!("SELECT {} FROM {}{filter} ORDER BY {}", columns.join(", "), ident(spec.name), order.join(", "));
    let rows = match months {
        Some(months) => client.query(&sql, &[&months]),
        None => client.query(&sql, &[]),
    }
    .map_err(fail)?;
    let line = |r: &postgres::Row| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect::<Vec<_>>().join("\t");
    Ok(Some(rows.iter().map(line).collect()))
}

/// The manifest of the newest run of `job` recorded in `mrpipe_runs`, if any.
pub fn latest_manifest(url: &PostgresUrl, job: &str) -> Result<Option<String>> {
    let mut client = url.connect()?;
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    let exists: Option<String> = client.query_one("SELECT to_regclass('mrpipe_runs')::text", &[]).map_err(fail)?.get(0);
    if exists.is_none() {
        return Ok(None);
    }
    let sql = "SELECT manifest::text FROM mrpipe_runs WHERE job = $1 ORDER BY finished DESC LIMIT 1";
    Ok(client.query_opt(sql, &[&job]).map_err(fail)?.map(|r| r.get(0)))
}

/// Publishes a run's tables into PostgreSQL in one transaction.
pub struct PostgresSink {
    url: PostgresUrl,
    client: Client,
    period: Option<Period>,
    staged: Vec<Staged>,
    committed: bool,
}

impl PostgresSink {
    /// Connects and begins the publishing transaction.
    pub fn open(url: PostgresUrl, period: Option<Period>) -> Result<Self> {
        super::check_sql_period(period.as_ref())?;
        let mut client = url.connect()?;
        client.batch_execute("BEGIN").map_err(|e| Error::sink(&url.display, describe(&e)))?;
        Ok(PostgresSink { url, client, period, staged: Vec::new(), committed: false })
    }

    fn fail(&self, e: &postgres::Error) -> Error {
        Error::sink(&self.url.display, describe(e))
    }
}

/// One cell of a row being copied, in the form the binary COPY protocol takes.
#[derive(Debug)]
struct Cell<'a>(SqlCell<'a>);

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            SqlCell::Text(s) => s.to_sql(ty, out),
            SqlCell::Int(i) => i.to_sql(ty, out),
            SqlCell::Cents(c) => Decimal::from_i128_with_scale(c, 2).to_sql(ty, out),
            SqlCell::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TEXT | Type::INT8 | Type::NUMERIC)
    }

    to_sql_checked!();
}

impl Sink for PostgresSink {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let mut types = Vec::new();
        let mut columns = Vec::new();
        for f in table.schema.fields() {
            let (sql, ty) = match f.data_type() {
                DataType::Int64 => ("BIGINT", Type::INT8),
                DataType::Decimal128(p, s) => {
                    (if (*p, *s) == (18, 2) { "NUMERIC(18,2)" } else { "NUMERIC" }, Type::NUMERIC)
                }
                _ => ("TEXT", Type::TEXT),
            };
            columns.push(format!("{} {sql} NOT NULL", ident(f.name())));
            types.push(ty);
        }
        let stage = ident(&format!("mrpipe_stage_{}", table.name));
        let mut ddl = format!(
            "CREATE TABLE IF NOT EXISTS {name} ({cols}); CREATE TEMP TABLE {stage} ({cols}) ON COMMIT DROP;",
            cols = columns.join(", ")
        );
        for cols in table.indexes {
            let index = ident(&format!("{}_{}_idx", table.name, cols.join("_")));
            let list: Vec<String> = cols.iter().map(|c| ident(c)).collect();
            ddl.push_str(&format!(" CREATE INDEX IF NOT EXISTS {index} ON {name} ({});", list.join(", ")));
        }
        self.client.batch_execute(&ddl).map_err(|e| self.fail(&e))?;

        let copy = format!("COPY {stage} FROM STDIN (FORMAT binary)");
        let sink = self.client.copy_in(&copy).map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        let mut hasher = blake3::Hasher::new();
        let mut rows = 0u64;
        for batch in table.batches {
            let batch: RecordBatch = batch?;
            let mut cells: Vec<Cell> = Vec::with_capacity(types.len());
            write_rows(&mut hasher, &batch).map_err(|e| Error::sink(table.name, e))?;
            for row in 0..batch.num_rows() {
                cells.clear();
                cells.extend(batch.columns().iter().map(|c| Cell(cell(c.as_ref(), row))));
                let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                writer.write(&refs).map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
            }
            rows += batch.num_rows() as u64;
        }
        writer.finish().map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
        let has_month = table.schema.fields().iter().any(|f| f.name() == "month");
        self.staged.push(Staged { name: table.name, has_month });
        Ok(Written { rows, location: self.url.display.clone(), blake3: Some(hasher.finalize().to_hex().to_string()) })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest, _manifest_file: Option<&Path>) -> Result<()> {
        let mut found = Vec::new();
        for t in self.staged.iter().filter(|t| t.has_month) {
            let sql = format!("SELECT DISTINCT month FROM {}", ident(&t.stage()));
            for row in self.client.query(&sql, &[]).map_err(|e| self.fail(&e))? {
                found.push(row.get(0));
            }
        }
        let months = months_to_replace(self.period.as_ref(), found);
        for t in &self.staged {
            let (target, stage) = (ident(t.name), ident(&t.stage()));
            let replaced = if t.has_month {
                self.client.execute(&format!("DELETE FROM {target} WHERE month = ANY($1)"), &[&months])
            } else {
                self.client.execute(&format!("DELETE FROM {target}"), &[])
            };
            replaced.map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
            let insert = format!("INSERT INTO {target} SELECT * FROM {stage}");
            self.client.execute(&insert, &[]).map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
        }
        {
            let m = manifest;
            let sql = "CREATE TABLE IF NOT EXISTS mrpipe_runs (job TEXT NOT NULL, finished TEXT NOT NULL, manifest JSONB NOT NULL); \
                       CREATE INDEX IF NOT EXISTS mrpipe_runs_job_idx ON mrpipe_runs (job, finished);";
            self.client.batch_execute(sql).map_err(|e| self.fail(&e))?;
            let json = m.to_json()?;
            let insert = "INSERT INTO mrpipe_runs VALUES ($1, $2, $3::text::jsonb)";
            self.client.execute(insert, &[&m.job, &m.finished, &json]).map_err(|e| self.fail(&e))?;
        }
        self.client.batch_execute("COMMIT").map_err(|e| self.fail(&e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_taken_out_of_the_url_and_passwords_are_hidden() {
        let u = PostgresUrl::parse("postgres://me:secret@127.0.0.1:5432/test?schema=shop&connect_timeout=5").unwrap();
        assert_eq!(u.schema.as_deref(), Some("shop"));
        assert_eq!(u.connect, "postgres://me:secret@127.0.0.1:5432/test?connect_timeout=5");
        assert_eq!(u.display, "postgres://me:***@127.0.0.1:5432/test?schema=shop&connect_timeout=5");
        assert!(PostgresUrl::parse("postgres://x/test?bogus=1").is_err());
    }
}
