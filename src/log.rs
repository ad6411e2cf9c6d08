//! Run events on stderr, for people and for log collectors. A closed stderr
//! (`2>&1 | head`) drops them: never a panic.
//!
//! Text (default): warnings and errors always; the one-line summary only when stderr
//! is a terminal or with `-v` (so cron mails only when something is wrong), never with
//! `-q`. JSON (`--log-format json`): one object per line per event (`start`, `input`,
//! `bad_lines`, `published`, `summary`, `warning`, `error`), each with `time` and `job`.

use std::io::{IsTerminal, Write};

use serde_json::{Value, json};

/// How events are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a run's events go.
#[derive(Clone, Debug)]
pub struct EventLog {
    format: LogFormat,
    job: String,
    /// Whether informational events (summary, progress of stages) are shown.
    info: bool,
    /// Whether warnings are shown (only a nested run, like verify's, hides them).
    warnings: bool,
}

impl EventLog {
    /// An event log; `quiet` silences information, `verbose` shows it even off a terminal.
    pub fn new(format: LogFormat, job: &str, quiet: bool, verbose: bool) -> Self {
        let info = !quiet && (verbose || format == LogFormat::Json || std::io::stderr().is_terminal());
        EventLog { format, job: job.to_string(), info, warnings: true }
    }

    /// A log that shows nothing but warnings and errors, as text.
    pub fn quiet(job: &str) -> Self {
        EventLog { format: LogFormat::Text, job: job.to_string(), info: false, warnings: true }
    }

    /// A log that shows only errors (for runs nested in another command).
    pub fn silent(job: &str) -> Self {
        EventLog { warnings: false, ..EventLog::quiet(job) }
    }

    /// Whether informational output is wanted (also decides the progress bar).
    pub fn shows_info(&self) -> bool {
        self.info
    }

    /// An informational event; in text mode it prints as `text` unless that is empty.
    pub fn info(&self, event: &str, fields: Value, text: impl FnOnce() -> String) {
        if !self.info {
            return;
        }
        match self.format {
            LogFormat::Json => self.json(event, fields),
            LogFormat::Text => {
                let line = text();
                if !line.is_empty() {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
        }
    }

    /// A warning: shown unless the log is silent.
    pub fn warning(&self, message: &str) {
        if !self.warnings {
            return;
        }
        match self.format {
            LogFormat::Json => self.json("warning", json!({ "message": message })),
            LogFormat::Text => drop(writeln!(std::io::stderr().lock(), "mrpipe: warning: {message}")),
        }
    }

    /// A failure: always shown.
    pub fn error(&self, message: &str, exit_code: u8) {
        match self.format {
            LogFormat::Json => self.json("error", json!({ "message": message, "exit_code": exit_code })),
            LogFormat::Text => drop(writeln!(std::io::stderr().lock(), "mrpipe: error: {message}")),
        }
    }

    fn json(&self, event: &str, fields: Value) {
        let mut object = json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "job": self.job,
            "event": event,
        });
        if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), fields) {
            o.extend(extra);
        }
        let _ = writeln!(std::io::stderr().lock(), "{object}");
    }
}
