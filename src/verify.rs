//! `mrpipe verify MANIFEST`: proves a published result reproducible. Checks that the
//! inputs and side files still have the manifest's hashes, re-runs the job with the
//! manifest's arguments into a temporary output of the same kind, and compares each
//! table's hash; on a difference it names the first differing table and row.

use std::path::Path;

use crate::cli::{self, Action};
use crate::error::{Error, Result};
use crate::log::EventLog;
use crate::manifest::{FileDigest, Manifest, TableDigest, digest_file, published_hash};
use crate::run;
use crate::sink::SinkUrl;
use crate::sink::tsv::write_rows;

/// What verification found when the outputs match.
#[derive(Debug)]
pub struct Verified {
    /// Tables compared.
    pub tables: usize,
    /// Rows compared.
    pub rows: u64,
}

/// Re-runs the manifest's job and compares; a difference is `Error::Verify`.
pub fn verify(manifest_path: &Path) -> Result<Verified> {
    let recorded = Manifest::load(manifest_path)?;
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
        let now = published_hash(published)?;
        if now != published.blake3 {
            let diff = describe_difference(published, again)?;
            return Err(Error::Verify(format!("the published table was changed after the run; {diff}")));
        }
        if published.rows != again.rows || published.blake3 != again.blake3 {
            return Err(Error::Verify(describe_difference(published, again)?));
        }
    }
    Ok(Verified { tables: recorded.tables.len(), rows: recorded.tables.iter().map(|t| t.rows).sum() })
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

/// Names the first row where a published table and its re-run differ.
fn describe_difference(published: &TableDigest, again: &TableDigest) -> Result<String> {
    let old = table_rows(&published.location, &published.name)?;
    let new = table_rows(&again.location, &again.name)?;
    let name = &published.name;
    if let Some(i) = old.iter().zip(&new).position(|(a, b)| a != b) {
        return Ok(format!(
            "table {name} differs at row {}: published '{}', re-run '{}'",
            i + 1,
            old[i].trim_end(),
            new[i].trim_end()
        ));
    }
    if old.len() != new.len() {
        return Ok(format!("table {name}: published {} rows, re-run {} rows", old.len(), new.len()));
    }
    Ok(format!(
        "table {name}: the same rows, but different bytes (blake3 {} published, {} re-run)",
        published.blake3, again.blake3
    ))
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
