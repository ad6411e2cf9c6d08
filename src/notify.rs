//! Alerts exactly once (`--notify PATH|-`): before a run publishes `budget_alerts`,
//! the alerts already published there are read back; after the publish commits, each
//! alert of this run that was not among them is written as one JSON line. Alerts are
//! keyed by (user_id, month, category, status), so a repeated or retried run notifies
//! nothing, and an alert that turns from `near` to `exceeded` is new. A run that fails
//! before its commit notifies nothing and leaves the alerts to the next run.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::job::Period;
use crate::jobs::spending::BUDGET_ALERTS;
use crate::sink::SinkUrl;
use crate::sink::tsv::write_rows;

/// The table whose new rows are notified.
pub const ALERTS: &str = BUDGET_ALERTS.name;

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

/// An alert's key: user_id, month, category, status.
type Key = (String, String, String, String);

/// One alert row: user_id, month, category, amount, budget, status.
pub type Alert = Vec<String>;

fn key(alert: &[String]) -> Key {
    let field = |i: usize| alert.get(i).cloned().unwrap_or_default();
    (field(0), field(1), field(2), field(5))
}

/// The alerts' rows of a batch list, as text fields.
pub fn alert_rows(batches: &[RecordBatch]) -> Result<Vec<Alert>> {
    let mut text = Vec::new();
    for batch in batches {
        write_rows(&mut text, batch).map_err(|e| Error::sink(ALERTS, e))?;
    }
    Ok(String::from_utf8_lossy(&text).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect())
}

/// The keys of the alerts published at `output` (for `period`, when the run has one).
pub fn published_keys(output: &SinkUrl, period: Option<&Period>) -> Result<HashSet<Key>> {
    let rows: Vec<Alert> = match output {
        SinkUrl::TsvStdout => {
            return Err(Error::Usage("--notify needs an output that keeps the previous alerts, not stdout".into()));
        }
        SinkUrl::ParquetDir(_) | SinkUrl::ParquetFile(_) | SinkUrl::TsvDir(_) | SinkUrl::TsvFile(_) => {
            let location = output.table_location(ALERTS, period);
            if !Path::new(&location).exists() {
                return Ok(HashSet::new());
            }
            lines_to_rows(crate::verify::table_rows(&location, ALERTS)?)
        }
        SinkUrl::Sqlite(path) => {
            if !path.exists() {
                return Ok(HashSet::new());
            }
            let conn = rusqlite::Connection::open(path).map_err(|e| Error::sink(output.to_string(), e))?;
            let exists: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [ALERTS], |r| {
                    r.get(0)
                })
                .map_err(|e| Error::sink(output.to_string(), e))?;
            if exists == 0 {
                return Ok(HashSet::new());
            }
            lines_to_rows(crate::verify::table_rows(&format!("sqlite:{}", path.display()), ALERTS)?)
        }
        SinkUrl::Postgres(url) => {
            lines_to_rows(crate::sink::postgres::published_rows(url, &BUDGET_ALERTS, None)?.unwrap_or_default())
        }
        SinkUrl::Mysql(url) => {
            lines_to_rows(crate::sink::mysql::published_rows(url, &BUDGET_ALERTS, None)?.unwrap_or_default())
        }
    };
    Ok(rows.iter().map(|r| key(r)).collect())
}

fn lines_to_rows(lines: Vec<String>) -> Vec<Alert> {
    lines.into_iter().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

/// Writes the alerts of `current` whose key is not in `previous`; returns how many.
pub fn notify_new(target: &NotifyTarget, current: &[Alert], previous: &HashSet<Key>) -> Result<usize> {
    let mut lines = String::new();
    let mut count = 0;
    for alert in current.iter().filter(|a| !previous.contains(&key(a))) {
        let field = |i: usize| alert.get(i).cloned().unwrap_or_default();
        let object = serde_json::json!({
            "user_id": field(0), "month": field(1), "category": field(2),
            "amount": field(3), "budget": field(4), "status": field(5),
        });
        lines.push_str(&object.to_string());
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
