//! `--notify`: tell someone about rows that are new in this run, for tables that
//! declare a notify key ([`TableSpec::notify_key`], e.g. spending's budget alerts).
//!
//! Before publishing, the runner reads the keys of the rows already published at the
//! output (for the run's period); each row of this run whose key was not among them is
//! written as one JSON object per line (column name to value as text), appended and
//! fsynced before the publish commits. Delivery is at least once, never lost: a run
//! that fails or is killed after delivering has published nothing, so the next run
//! sends the same rows again. A repeated run after a commit notifies nothing, and an
//! alert that turns from `near` to `exceeded` is new (its status is part of the key).

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::sink::text::write_rows;
use crate::sink::{Slice, Target};
use crate::table::{Period, TableSpec};

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl NotifyTarget {
    /// `-` or a path.
    pub fn parse(s: &str) -> NotifyTarget {
        if s == "-" { NotifyTarget::Stdout } else { NotifyTarget::File(PathBuf::from(s)) }
    }
}

/// One row as text fields, in the table's column order.
pub type Row = Vec<String>;

/// A row's key: its notify-key fields.
type Key = Vec<String>;

fn key(spec: &TableSpec, row: &[String]) -> Key {
    spec.notify_key
        .iter()
        .map(|k| {
            let at = spec.columns.iter().position(|(c, _)| c == k);
            at.and_then(|i| row.get(i)).cloned().unwrap_or_default()
        })
        .collect()
}

fn split(lines: Vec<String>) -> Vec<Row> {
    lines.into_iter().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

/// The rows of a batch list, as text fields.
pub fn rows(batches: &[RecordBatch], table: &str) -> Result<Vec<Row>> {
    let mut text = Vec::new();
    for batch in batches {
        write_rows(&mut text, batch).map_err(|e| Error::sink(table, e))?;
    }
    Ok(split(String::from_utf8_lossy(&text).lines().map(str::to_string).collect()))
}

/// The keys of the rows of `spec` published at `output` for `period`.
pub fn published_keys(output: &dyn Target, spec: &TableSpec, period: Option<&Period>) -> Result<HashSet<Key>> {
    if !output.keeps_results() {
        return Err(Error::Usage(format!(
            "--notify needs an output that keeps the previous {}, not stdout",
            spec.name
        )));
    }
    let location = output.table_location(spec.name, period);
    let published = output.published_rows(spec, Slice { location: &location, months: None })?;
    Ok(split(published.unwrap_or_default()).iter().map(|r| key(spec, r)).collect())
}

/// Writes the rows of `current` whose key is not in `previous`; returns how many.
pub fn notify_new(target: &NotifyTarget, spec: &TableSpec, current: &[Row], previous: &HashSet<Key>) -> Result<usize> {
    let mut lines = String::new();
    let mut count = 0;
    for row in current.iter().filter(|r| !previous.contains(&key(spec, r))) {
        let object: serde_json::Map<String, serde_json::Value> =
            spec.columns.iter().zip(row).map(|((name, _), value)| (name.to_string(), value.clone().into())).collect();
        lines.push_str(&serde_json::Value::Object(object).to_string());
        lines.push('\n');
        count += 1;
    }
    match target {
        NotifyTarget::Stdout => std::io::stdout().lock().write_all(lines.as_bytes()).map_err(Error::stdout)?,
        NotifyTarget::File(path) => {
            let mut file =
                std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
            file.write_all(lines.as_bytes()).map_err(|e| Error::io(path, e))?;
            file.sync_data().map_err(|e| Error::io(path, e))?;
        }
    }
    Ok(count)
}
