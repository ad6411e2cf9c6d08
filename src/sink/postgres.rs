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
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::RecordBatch;
use bytes::BufMut;
use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rust_decimal::Decimal;

use super::sql::{self, Months, SqlCell, SqlColumn, SqlType, Staged, cell};
use super::sqlite::SqliteTarget;
use super::text::{self, write_rows};
use super::tls::{self, PostgresTls, Roots, Verify};
use super::{Publication, Recorded, RunLock, Slice, Target, Unit, Written};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::table::{Period, Sort, Table, TableSpec};

/// A `postgres://` output: connection string, optional schema, and a printable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresUrl {
    /// What the driver connects with (the URL without `schema=`).
    pub connect: String,
    /// `?schema=` if given.
    pub schema: Option<String>,
    /// The URL without its password, for messages and manifests.
    pub display: String,
    /// `sslmode=` if given (libpq's values; `verify-ca` and `verify-full` are checked here).
    pub sslmode: Option<String>,
    /// `sslrootcert=` if given.
    pub sslrootcert: Option<String>,
}

impl PostgresUrl {
    /// Parses `postgres://user[:password]@host[:port]/db[?schema=s&other=...]`.
    pub fn parse(url: &str) -> Result<PostgresUrl> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let (mut sslmode, mut sslrootcert) = (None, None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", s)) if !s.is_empty() => schema = Some(s.to_string()),
                // The driver knows disable, prefer and require; the verifying modes are ours.
                Some(("sslmode", mode @ ("verify-ca" | "verify-full"))) => {
                    sslmode = Some(mode.to_string());
                    rest.push("sslmode=require");
                }
                Some(("sslmode", mode)) => {
                    sslmode = Some(mode.to_string());
                    rest.push(pair);
                }
                Some(("sslrootcert", path)) => sslrootcert = Some(sql::percent_decoded(path)),
                _ => rest.push(pair),
            }
        }
        let connect = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        connect.parse::<postgres::Config>().map_err(|e| Error::Usage(format!("output '{}': {e}", redact(url))))?;
        Ok(PostgresUrl { display: redact(url), connect, schema, sslmode, sslrootcert })
    }

    /// Connects, naming the connection after this process so a lock holder can be told.
    pub fn session(&self) -> Result<Client> {
        let mut config: postgres::Config = self.connect.parse().map_err(|e| Error::sink(&self.display, e))?;
        config.application_name(&format!("mrpipe pid {}", std::process::id()));
        if config.get_password().is_none()
            && let Some(password) = password_from_environment(&config)
        {
            config.password(password);
        }
        let timeout = config.get_connect_timeout().copied().unwrap_or(sql::CONNECT_TIMEOUT);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        let tls = self.tls(&mut config)?;
        let display = self.display.clone();
        sql::connect_within(&self.display, timeout, move || {
            config.connect(tls).map_err(|e| Error::sink(&display, describe(&e)))
        })
    }

    /// The TLS connector `sslmode` asks for (`PGSSLMODE` and `PGSSLROOTCERT` when the URL
    /// says nothing, as libpq reads them); sets the driver's mode for the verifying ones.
    fn tls(&self, config: &mut postgres::Config) -> Result<PostgresTls> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mode = self.sslmode.clone().or_else(|| from_env("PGSSLMODE"));
        let verify = match mode.as_deref() {
            Some("verify-ca") => Verify::Chain,
            Some("verify-full") => Verify::Full,
            _ => Verify::Nothing,
        };
        match mode.as_deref() {
            Some("verify-ca" | "verify-full" | "require") => config.ssl_mode(SslMode::Require),
            Some("disable") => config.ssl_mode(SslMode::Disable),
            Some("prefer") | None => config.ssl_mode(SslMode::Prefer),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "output '{}': sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full",
                    self.display
                )));
            }
        };
        let roots = Roots::of(self.sslrootcert.clone().or_else(|| from_env("PGSSLROOTCERT")).as_deref());
        Ok(PostgresTls::new(tls::client_config(verify, &roots)?))
    }

    /// A session working in the URL's schema (which it does not create: reading a
    /// schema that is not there finds no table).
    pub fn connect(&self) -> Result<Client> {
        let mut client = self.session()?;
        if let Some(schema) = &self.schema {
            let sql = format!("SET search_path TO {}", ident(schema));
            client.batch_execute(&sql).map_err(|e| Error::sink(&self.display, describe(&e)))?;
        }
        Ok(client)
    }
}

/// The URL with every password it carries replaced by `***`: in the user info
/// (`user:secret@`) and in the query (`?password=secret`, as libpq and the MySQL
/// driver accept). Parsed with a URL parser; text that is not a URL is hidden whole
/// past its scheme, since it cannot be told where a password would be.
pub fn redact(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return match text.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => text.to_string(),
        };
    };
    let hidden_user_password = url.password().is_some();
    if hidden_user_password {
        let _ = url.set_password(Some("***"));
    }
    let secret = |k: &str| matches!(k.to_ascii_lowercase().as_str(), "password" | "pass" | "pwd" | "sslpassword");
    let hidden_query_password = url.query_pairs().any(|(k, _)| secret(&k));
    if !hidden_user_password && !hidden_query_password {
        return text.to_string();
    }
    if hidden_query_password {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), if secret(&k) { "***".to_string() } else { v.into_owned() }))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The password for a URL that carries none: `$PGPASSWORD`, else the first matching
/// line of `$PGPASSFILE` or `~/.pgpass` (`host:port:database:user:password`, `*`
/// matching anything; libpq's rules), so a crontab need hold no secret.
fn password_from_environment(config: &postgres::Config) -> Option<Vec<u8>> {
    if let Some(p) = std::env::var_os("PGPASSWORD") {
        return Some(p.into_encoded_bytes());
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = config.get_dbname().unwrap_or_default().to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    pgpass_lookup(&text, [&host, &port, &db, &user])
}

/// The password of the first `.pgpass` line whose four fields match (`*` matches all).
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<Vec<u8>> {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.splitn(5, ':').collect();
        if fields.len() == 5 && fields[..4].iter().zip(want).all(|(f, w)| *f == "*" || *f == w) {
            return Some(fields[4].as_bytes().to_vec());
        }
    }
    None
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
fn published_rows(url: &PostgresUrl, spec: &TableSpec, months: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let mut client = url.connect()?;
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    let exists: Option<String> =
        client.query_one("SELECT to_regclass(quote_ident($1))::text", &[&spec.name]).map_err(fail)?.get(0);
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
            // Text sorts bytewise, as in the spec, whatever the database's collation. The
            // column is qualified: its bare name would be the `::text` output column.
            let text = spec.columns.iter().any(|(c, t)| c == column && *t == arrow::datatypes::DataType::Utf8);
            format!("{}.{}{}{direction}", ident(spec.name), ident(column), if text { " COLLATE \"C\"" } else { "" })
        })
        .collect();
    let filter = if months.is_some() { " WHERE month = ANY($1)" } else { "" };
    let sql = format!("SELECT {} FROM {}{filter} ORDER BY {}", columns.join(", "), ident(spec.name), order.join(", "));
    let rows = match months {
        Some(months) => client.query(&sql, &[&months]),
        None => client.query(&sql, &[]),
    }
    .map_err(fail)?;
    let line = |r: &postgres::Row| text::line((0..columns.len()).map(|i| r.get::<_, Option<String>>(i)));
    Ok(Some(rows.iter().map(line).collect()))
}

/// The newest manifest of `job` in `mrpipe_runs` that `which` asks for, if any.
fn last_manifest(url: &PostgresUrl, job: &str, which: Recorded<'_>) -> Result<Option<Manifest>> {
    let mut client = url.connect()?;
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    let exists: Option<String> = client.query_one("SELECT to_regclass('mrpipe_runs')::text", &[]).map_err(fail)?.get(0);
    if exists.is_none() {
        return Ok(None);
    }
    let sql = "SELECT manifest::text FROM mrpipe_runs WHERE job = $1 ORDER BY finished DESC";
    for row in client.query(sql, &[&job]).map_err(fail)? {
        if let Some(m) = sql::pick_manifest(&url.display, row.get(0), which)? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// Takes a session advisory lock for `job` writing to `url`'s database and schema,
/// waiting up to `wait`; released by the server when the session ends, also on a
/// crash. The holder is named by its connection's `application_name` (`mrpipe pid N`)
/// and start time.
fn acquire_lock(url: &PostgresUrl, job: &str, wait: Option<Duration>) -> Result<RunLock> {
    // Nothing is created before the lock is held (concurrent first runs would race in the catalog).
    let mut client = url.session()?;
    let key = crate::map::fixed_hash(&format!("mrpipe/{job}/{}", url.schema.as_deref().unwrap_or("public"))) as i64;
    let fail = |e: postgres::Error| Error::sink(&url.display, describe(&e));
    let got: bool = match wait {
        None => client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).map_err(fail)?.get(0),
        // The server queues the wait for the holder, bounded by lock_timeout (which
        // applies to advisory locks): no polling.
        Some(w) => {
            client.batch_execute(&format!("SET lock_timeout = {}", w.as_millis().max(1))).map_err(fail)?;
            let waited = client.execute("SELECT pg_advisory_lock($1)", &[&key]);
            client.batch_execute("RESET lock_timeout").map_err(fail)?;
            match waited {
                Ok(_) => true,
                Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => false,
                Err(e) => return Err(fail(e)),
            }
        }
    };
    if got {
        return Ok(RunLock::held(Box::new(client), format!("{} advisory lock {key}", url.display)));
    }
    let holder = client
        .query_opt(
            "SELECT a.application_name || ', started ' || to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
            &[&key],
        )
        .map_err(fail)?
        .map(|row| row.get::<_, String>(0))
        .unwrap_or_else(|| "unknown".into());
    Err(Error::Locked { path: PathBuf::from(format!("{} advisory lock", url.display)), holder })
}

/// A PostgreSQL database (and schema).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresTarget(PostgresUrl);

impl PostgresTarget {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<PostgresTarget> {
        PostgresUrl::parse(url).map(PostgresTarget)
    }
}

impl fmt::Display for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display)
    }
}

impl Target for PostgresTarget {
    fn lock(&self, job: &str, wait: Option<Duration>) -> Result<Option<RunLock>> {
        acquire_lock(&self.0, job, wait).map(Some)
    }

    fn open(&self, unit: Unit<'_>, _tables: usize) -> Result<Box<dyn Publication>> {
        Ok(Box::new(PostgresPublication::open(self.0.clone(), unit.period.cloned())?))
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

/// Publishes a run's tables into PostgreSQL in one transaction.
struct PostgresPublication {
    url: PostgresUrl,
    client: Client,
    period: Option<Period>,
    staged: Vec<Staged>,
    committed: bool,
}

impl PostgresPublication {
    /// Connects and begins the publishing transaction.
    fn open(url: PostgresUrl, period: Option<Period>) -> Result<Self> {
        sql::check_period(period.as_ref())?;
        let mut client = url.connect()?;
        // Under the run lock: the schema is created by the first publication.
        let create =
            url.schema.as_ref().map(|s| format!("CREATE SCHEMA IF NOT EXISTS {};", ident(s))).unwrap_or_default();
        client.batch_execute(&format!("{create} BEGIN")).map_err(|e| Error::sink(&url.display, describe(&e)))?;
        Ok(PostgresPublication { url, client, period, staged: Vec::new(), committed: false })
    }

    fn fail(&self, e: &postgres::Error) -> Error {
        Error::sink(&self.url.display, describe(e))
    }
}

/// Days and microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

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
            SqlCell::Float(f) => f.to_sql(ty, out),
            SqlCell::Bool(b) => b.to_sql(ty, out),
            SqlCell::Binary(b) => b.to_sql(ty, out),
            SqlCell::Decimal(v, scale) => {
                let scale = u32::try_from(scale).map_err(|_| "negative decimal scale")?;
                Decimal::try_from_i128_with_scale(v, scale)?.to_sql(ty, out)
            }
            SqlCell::Date(days) => {
                out.put_i32(days.checked_sub(PG_EPOCH_DAYS).ok_or("date out of range")?);
                Ok(IsNull::No)
            }
            SqlCell::Timestamp(micros) => {
                out.put_i64(micros.checked_sub(PG_EPOCH_MICROS).ok_or("timestamp out of range")?);
                Ok(IsNull::No)
            }
            SqlCell::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::TEXT
                | Type::INT8
                | Type::NUMERIC
                | Type::FLOAT8
                | Type::BOOL
                | Type::BYTEA
                | Type::DATE
                | Type::TIMESTAMP
                | Type::TIMESTAMPTZ
        )
    }

    to_sql_checked!();
}

/// The column's type as `information_schema.columns.data_type` spells it.
fn catalog_type(column: &SqlColumn) -> &'static str {
    match column.ty {
        SqlType::Int => "bigint",
        SqlType::Float => "double precision",
        SqlType::Decimal { .. } => "numeric",
        SqlType::Text => "text",
        SqlType::Bool => "boolean",
        SqlType::Date => "date",
        SqlType::Timestamp { utc: true } => "timestamp with time zone",
        SqlType::Timestamp { utc: false } => "timestamp without time zone",
        SqlType::Binary => "bytea",
    }
}

/// The column's PostgreSQL type, as DDL and as the COPY protocol's type.
fn pg_type(column: &SqlColumn) -> (String, Type) {
    match column.ty {
        SqlType::Int => ("BIGINT".into(), Type::INT8),
        SqlType::Float => ("DOUBLE PRECISION".into(), Type::FLOAT8),
        SqlType::Decimal { precision, scale } if scale >= 0 => (format!("NUMERIC({precision},{scale})"), Type::NUMERIC),
        SqlType::Decimal { .. } => ("NUMERIC".into(), Type::NUMERIC),
        SqlType::Text => ("TEXT".into(), Type::TEXT),
        SqlType::Bool => ("BOOLEAN".into(), Type::BOOL),
        SqlType::Date => ("DATE".into(), Type::DATE),
        SqlType::Timestamp { utc: true } => ("TIMESTAMPTZ".into(), Type::TIMESTAMPTZ),
        SqlType::Timestamp { utc: false } => ("TIMESTAMP".into(), Type::TIMESTAMP),
        SqlType::Binary => ("BYTEA".into(), Type::BYTEA),
    }
}

impl Publication for PostgresPublication {
    fn write_table(&mut self, table: Table) -> Result<Written> {
        let name = ident(table.name);
        let sql_columns = SqlColumn::all(&table.schema)?;
        let mut types = Vec::new();
        let mut columns = Vec::new();
        for c in &sql_columns {
            let (sql, ty) = pg_type(c);
            columns.push(format!("{} {sql}{}", ident(&c.name), c.not_null()));
            types.push(ty);
        }
        let found: Vec<(String, String)> = self
            .client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&table.name],
            )
            .map_err(|e| self.fail(&e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let want: Vec<(String, String)> =
            sql_columns.iter().map(|c| (c.name.clone(), catalog_type(c).to_string())).collect();
        sql::check_layout(&self.url.display, table.name, &found, &want)?;
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
        let mut months = Months::of(&table.schema);
        let mut rows = 0u64;
        for batch in table.batches {
            let batch: RecordBatch = batch?;
            let mut cells: Vec<Cell> = Vec::with_capacity(types.len());
            write_rows(&mut hasher, &batch).map_err(|e| Error::sink(table.name, e))?;
            months.see(&batch);
            let arrays = sql::canonical(&batch, &sql_columns)?;
            for row in 0..batch.num_rows() {
                cells.clear();
                cells.extend(arrays.iter().zip(&sql_columns).map(|(a, c)| Cell(cell(a.as_ref(), c.ty, row))));
                let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                writer.write(&refs).map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
            }
            rows += batch.num_rows() as u64;
        }
        writer.finish().map_err(|e| Error::sink(&self.url.display, describe(&e)))?;
        let months = months.replaced(self.period.as_ref());
        self.staged.push(Staged { name: table.name, months: months.clone() });
        let blake3 = Some(hasher.finalize().to_hex().to_string());
        Ok(Written { rows, location: self.url.display.clone(), blake3, months })
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest) -> Result<()> {
        // Every table of the run loses the months any of them holds.
        let months = sql::months_to_replace(None, self.staged.iter().flat_map(|t| t.months.iter().flatten().cloned()));
        for t in &self.staged {
            let (target, stage) = (ident(t.name), ident(&t.stage()));
            let replaced = if t.months.is_some() {
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

impl Drop for PostgresPublication {
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
        let u = PostgresUrl::parse("postgres://me@127.0.0.1/test?password=hunter2&sslmode=disable").unwrap();
        assert_eq!(u.display, "postgres://me@127.0.0.1/test?password=***&sslmode=disable");
        assert_eq!(redact("mysql://me:hunter2@db/x?pwd=hunter2"), "mysql://me:***@db/x?pwd=***");
    }

    #[test]
    fn pgpass_lines_match_field_by_field_with_wildcards() {
        let text = "# comment\ndb.example:5432:shop:me:first\n*:*:*:me:any:colon\n";
        assert_eq!(pgpass_lookup(text, ["db.example", "5432", "shop", "me"]), Some(b"first".to_vec()));
        assert_eq!(pgpass_lookup(text, ["127.0.0.1", "5433", "x", "me"]), Some(b"any:colon".to_vec()));
        assert_eq!(pgpass_lookup(text, ["127.0.0.1", "5433", "x", "you"]), None);
    }
}
