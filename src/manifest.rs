//! Run manifests: what a published run read (each input's path, size and BLAKE3),
//! with which effective parameters, and what it wrote (each table's rows and BLAKE3),
//! published with the outputs. Two runs on the same inputs and parameters give
//! manifests that differ only in `started`, `finished` and `duration_secs`.
//!
//! Where a manifest is kept is its output's business: see [`crate::sink::Target`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::read::ReadStats;
use crate::read::object;

/// A run manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of mrpipe that wrote it.
    pub mrpipe_version: String,
    /// The job's name.
    pub job: String,
    /// The SQL file of a job written as SQL (it is among the side files, hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_file: Option<String>,
    /// The period this manifest's run published (`2026-11`), when the run was split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The engine that ran it (`native`, `datafusion`); both give the same tables.
    #[serde(default = "native")]
    pub engine: String,
    /// The job's effective option values, typed (`{"top": 3, "as-of": ["2026-11-23T00:00:00Z"]}`):
    /// what `mrpipe verify` configures the job from.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Arguments as command-line words, as mrpipe 0.1 manifests recorded them (read only
    /// to refuse them plainly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// The `--output` the run published to.
    pub output: String,
    /// The bad-line threshold in force.
    pub bad_line_budget: String,
    /// `--max-line-bytes` in force: a longer line was a bad line, so it shapes the
    /// tables and `verify` re-runs with it (64 MiB in manifests that predate it).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// Inputs, in the order they were processed.
    pub inputs: Vec<FileDigest>,
    /// Side files (seller maps, incomes, ...).
    pub side_files: Vec<FileDigest>,
    /// Line counts.
    pub lines: Lines,
    /// Output tables.
    pub tables: Vec<TableDigest>,
    /// Start of the run, RFC 3339 UTC.
    pub started: String,
    /// End of the run, RFC 3339 UTC.
    pub finished: String,
    /// Wall time in seconds.
    pub duration_secs: f64,
}

fn default_max_line_bytes() -> u64 {
    crate::read::decode::MAX_LINE_BYTES as u64
}

fn native() -> String {
    "native".into()
}

/// A file and its content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path as given (`-` for stdin).
    pub path: String,
    /// Bytes as stored.
    pub size: u64,
    /// BLAKE3, lower-case hex (what `b3sum` prints).
    pub blake3: String,
    /// An object's ETag as the store gave it when the run listed it; none for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Line counts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    /// Every line read.
    pub read: u64,
    /// Lines that became rows.
    pub good: u64,
    /// Quarantined lines.
    pub bad: u64,
    /// Empty lines.
    pub empty: u64,
    /// Header lines.
    pub header: u64,
}

impl From<ReadStats> for Lines {
    fn from(s: ReadStats) -> Lines {
        Lines { read: s.lines, good: s.good, bad: s.bad, empty: s.empty, header: s.headers }
    }
}

/// An output table and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// Table name.
    pub name: String,
    /// Rows written.
    pub rows: u64,
    /// Where it was written (a file path or `sqlite:PATH`).
    pub location: String,
    /// BLAKE3 of the file's bytes, or of the rows as TSV for SQL sinks.
    pub blake3: String,
    /// For a SQL table with a `month` column: the months whose rows this run replaced,
    /// so its rows can be told from other runs' months in the same table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<Vec<String>>,
}

impl Manifest {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Result<String> {
        let mut json = serde_json::to_string_pretty(self).map_err(|e| Error::sink("manifest", e))?;
        json.push('\n');
        Ok(json)
    }

    /// The manifest of a `mrpipe query` published to `output`: the SQL is its argument.
    pub fn for_query(sql: &str, output: String, table: TableDigest) -> Manifest {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Manifest {
            mrpipe_version: env!("CARGO_PKG_VERSION").to_string(),
            job: "query".into(),
            job_file: None,
            period: None,
            engine: "datafusion".into(),
            params: [("sql".to_string(), serde_json::Value::from(sql))].into_iter().collect(),
            args: None,
            output,
            bad_line_budget: "unlimited".into(),
            max_line_bytes: default_max_line_bytes(),
            inputs: Vec::new(),
            side_files: Vec::new(),
            lines: Lines { read: 0, good: 0, bad: 0, empty: 0, header: 0 },
            tables: vec![table],
            started: now.clone(),
            finished: now,
            duration_secs: 0.0,
        }
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("'{}' is not a mrpipe manifest: {e}", path.display())))
    }
}

/// BLAKE3 of rows as TSV lines, as the SQL sinks hash the rows they write.
pub fn hash_lines(lines: &[String]) -> String {
    let mut hasher = blake3::Hasher::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// Hashes a whole file or object, read again (for side files, `--skip-unchanged` and
/// `verify`'s input check).
pub fn digest_file(path: &Path) -> Result<FileDigest> {
    let mut hasher = blake3::Hasher::new();
    let io = |e| Error::io(path, e);
    let (size, etag) = match path.to_str().filter(|_| object::is_object(path)) {
        Some(url) => {
            let meta = object::meta(url).map_err(io)?;
            hasher.update_reader(object::open(url).map_err(io)?).map_err(io)?;
            (meta.size, meta.e_tag)
        }
        None => {
            hasher.update_reader(std::fs::File::open(path).map_err(io)?).map_err(io)?;
            (std::fs::metadata(path).map_err(io)?.len(), None)
        }
    };
    let blake3 = hasher.finalize().to_hex().to_string();
    Ok(FileDigest { path: crate::read::input::path_text(path), size, blake3, etag })
}
