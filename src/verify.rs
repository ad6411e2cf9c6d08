//! `mrpipe verify`: proves a published result reproducible. Takes a manifest file, or
//! for PostgreSQL and MySQL outputs the newest run of a job recorded in the server's
//! `mrpipe_runs`. Checks that the inputs and side files still have the manifest's
//! hashes, re-runs the job with the manifest's arguments and engine into a temporary
//! output of the same kind (SQLite for a server), checks that the published tables
//! still hold what the run wrote, and compares each table's hash; on a difference it
//! names the first differing table and row.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cli::{self, Action};
use crate::error::{Error, Result};
use crate::log::EventLog;
use crate::manifest::{FileDigest, Manifest, TableDigest, digest_file, hash_lines, published_hash};
use crate::run;
use crate::sink::tsv::write_rows;
use crate::sink::{SinkUrl, mysql, postgres};
use crate::table::TableSpec;

/// What to verify.
#[derive(Clone, Debug)]
pub enum Target {
    /// A manifest file.
    File(PathBuf),
    /// The newest run of `job` recorded at a PostgreSQL or MySQL output.
    Server {
        /// The output, with credentials.
        output: SinkUrl,
        /// The job's name.
        job: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(path) => write!(f, "{}", path.display()),
            Target::Server { output, job } => write!(f, "the last {job} run at {output}"),
        }
    }
}

/// What verification found when the outputs match.
#[derive(Debug)]
pub struct Verified {
    /// Tables compared.
    pub tables: usize,
    /// Rows compared.
    pub rows: u64,
}

/// Re-runs the manifest's job and compares; a difference is `Error::Verify`.
pub fn verify(target: &Target) -> Result<Verified> {
    let (recorded, server) = match target {
        Target::File(path) => {
            let recorded = Manifest::load(path)?;
            let server = SinkUrl::parse(&recorded.output)?;
            (recorded, matches!(server, SinkUrl::Postgres(_) | SinkUrl::Mysql(_)).then_some(server))
        }
        Target::Server { output, job } => (latest_manifest(output, job)?, Some(output.clone())),
    };
    for file in recorded.inputs.iter().chain(&recorded.side_files) {
        check_unchanged(file)?;
    }
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let output = SinkUrl::parse(&recorded.output)?.relocated(dir.path());
    let mut argv: Vec<String> = vec!["mrpipe".into(), "run".into(), recorded.job.clone()];
    argv.extend(recorded.inputs.iter().map(|f| f.path.clone()));
    argv.extend(recorded.args.iter().cloned());
    argv.extend(["--engine".into(), recorded.engine.clone()]);
    argv.extend([
        "-o".into(),
        output.to_string(),
        "--rejects".into(),
        dir.path().join("rejects.tsv").display().to_string(),
    ]);
    let matches = cli::command()
        .try_get_matches_from(&argv)
        .map_err(|e| Error::Usage(format!("the manifest's arguments no longer parse: {e}")))?;
    let Action::Run(mut options) = cli::resolve(&matches)? else {
        return Err(Error::Usage("the manifest does not describe a run".into()));
    };
    options.log = EventLog::silent(&recorded.job);
    let rerun = run::run(*options)?.pop().ok_or_else(|| Error::Usage("the re-run published nothing".into()))?.manifest;

    let names = |m: &Manifest| m.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(&recorded) != names(&rerun) {
        return Err(Error::Verify(format!(
            "tables differ: published {:?}, re-run {:?}",
            names(&recorded),
            names(&rerun)
        )));
    }
    for (published, again) in recorded.tables.iter().zip(&rerun.tables) {
        let rerun_rows = || table_rows(&again.location, &again.name);
        // A server's table holds other runs' months too: this run's rows are its months'.
        let (now, rows) = match &server {
            Some(url) => {
                let rows = server_rows(url, published, &rerun_rows()?)?;
                (hash_lines(&rows), Some(rows))
            }
            None => (published_hash(published)?, None),
        };
        let published_rows = || rows.clone().map_or_else(|| table_rows(&published.location, &published.name), Ok);
        let differs = |context: &str| -> Result<Error> {
            let diff = describe_difference(&published.name, &published_rows()?, &rerun_rows()?).unwrap_or_else(|| {
                format!(
                    "table {}: the same rows, but different bytes (blake3 {} published, {} re-run)",
                    published.name, published.blake3, again.blake3
                )
            });
            Ok(Error::Verify(format!("{context}{diff}")))
        };
        if now != published.blake3 {
            return Err(differs("the published table was changed after the run; ")?);
        }
        if published.rows != again.rows || published.blake3 != again.blake3 {
            return Err(differs("")?);
        }
    }
    Ok(Verified { tables: recorded.tables.len(), rows: recorded.tables.iter().map(|t| t.rows).sum() })
}

/// The newest manifest of `job` in a server's `mrpipe_runs`.
fn latest_manifest(output: &SinkUrl, job: &str) -> Result<Manifest> {
    let json = match output {
        SinkUrl::Postgres(url) => postgres::latest_manifest(url, job)?,
        SinkUrl::Mysql(url) => mysql::latest_manifest(url, job)?,
        other => return Err(Error::Usage(format!("{other} keeps manifests in files: give the manifest's path"))),
    };
    let json = json.ok_or_else(|| Error::Usage(format!("{output} has no recorded run of {job}")))?;
    serde_json::from_str(&json)
        .map_err(|e| Error::Usage(format!("the manifest recorded at {output} is unreadable: {e}")))
}

/// The rows a run published to a server: the whole table, or for a table with a
/// `month` column the rows of the months the re-run produced.
fn server_rows(url: &SinkUrl, table: &TableDigest, rerun: &[String]) -> Result<Vec<String>> {
    let spec: &TableSpec = crate::jobs::ALL
        .iter()
        .flat_map(|j| j.info().outputs.iter().copied())
        .find(|t| t.name == table.name)
        .ok_or_else(|| Error::Verify(format!("unknown table {}", table.name)))?;
    let months: Option<Vec<String>> = spec.columns.iter().position(|(c, _)| *c == "month").map(|i| {
        let set: BTreeSet<&str> = rerun.iter().filter_map(|row| row.split('\t').nth(i)).collect();
        set.into_iter().map(str::to_string).collect()
    });
    let rows = match url {
        SinkUrl::Postgres(u) => postgres::published_rows(u, spec, months.as_deref())?,
        SinkUrl::Mysql(u) => mysql::published_rows(u, spec, months.as_deref())?,
        _ => None,
    };
    Ok(rows.unwrap_or_default())
}

fn check_unchanged(file: &FileDigest) -> Result<()> {
    if file.path == "-" {
        return Err(Error::Usage("the run read standard input, which cannot be read again".into()));
    }
    let now = digest_file(Path::new(&file.path))?;
    if now.blake3 != file.blake3 {
        return Err(Error::Verify(format!(
            "input '{}' changed since the run (blake3 {} then, {} now)",
            file.path, file.blake3, now.blake3
        )));
    }
    Ok(())
}

/// Names the first row where a published table and its re-run differ; `None` when
/// their rows are the same.
fn describe_difference(name: &str, old: &[String], new: &[String]) -> Option<String> {
    if let Some(i) = old.iter().zip(new).position(|(a, b)| a != b) {
        return Some(format!(
            "table {name} differs at row {}: published '{}', re-run '{}'",
            i + 1,
            old[i].trim_end(),
            new[i].trim_end()
        ));
    }
    (old.len() != new.len()).then(|| format!("table {name}: published {} rows, re-run {} rows", old.len(), new.len()))
}

/// The rows of a written table as TSV lines, from a Parquet file, a TSV file or SQLite.
pub fn table_rows(location: &str, table: &str) -> Result<Vec<String>> {
    if let Some(db) = location.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open(db).map_err(|e| Error::sink(location, e))?;
        let sql = format!("SELECT * FROM {} ORDER BY rowid", crate::sink::sqlite::ident(table));
        let mut stmt = conn.prepare(&sql).map_err(|e| Error::sink(location, e))?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Integer(v) => Ok(v.to_string()),
                        rusqlite::types::ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
                        rusqlite::types::ValueRef::Real(v) => Ok(v.to_string()),
                        _ => Ok(String::new()),
                    })
                    .collect::<rusqlite::Result<_>>()?;
                Ok(cells.join("\t"))
            })
            .map_err(|e| Error::sink(location, e))?;
        return rows.collect::<rusqlite::Result<_>>().map_err(|e| Error::sink(location, e));
    }
    let path = Path::new(location);
    if location.ends_with(".parquet") {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| Error::sink(location, e))?;
        let mut text = Vec::new();
        for batch in reader {
            write_rows(&mut text, &batch.map_err(|e| Error::sink(location, e))?).map_err(|e| Error::io(path, e))?;
        }
        return Ok(String::from_utf8_lossy(&text).lines().map(str::to_string).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().skip(1).map(str::to_string).collect())
}
