//! Error types of the library. Only `main.rs` turns them into exit codes.
//!
//! `Error::Usage` and `Error::BadMetricsFile` are bad values given by the user (exit 2), `Error::BadLineBudget`
//! a run stopped by its bad-line threshold (exit 3), `Error::Locked` a run refused
//! because another holds its lock (exit 4), `Error::NoInput` a glob or directory that
//! matched no file (exit 5); everything else is a runtime failure (exit 1).

use std::path::PathBuf;

/// Everything that can make a run fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that cannot be used, quoted in the message.
    #[error("{0}")]
    Usage(String),

    /// A `--metrics-file` that must not be written: not a regular file, a file that is
    /// not mrpipe's metrics, an input of the run or a file the run writes (exit 2; no
    /// metrics are written there).
    #[error("{0}")]
    BadMetricsFile(String),

    /// An input pattern or directory that matched no file.
    #[error("no input matched {0}")]
    NoInput(String),

    /// The bad-line threshold was exceeded; nothing was published.
    #[error(
        "too many bad lines: {bad} found, over the budget of {budget} ({read}); nothing was published; first bad line: {first}"
    )]
    BadLineBudget { bad: u64, budget: String, read: String, first: String },

    /// Another run of the same job and output holds the lock.
    #[error("another run holds {} ({holder}); try later or use --wait", path.display())]
    Locked { path: PathBuf, holder: String },

    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A failure writing an output.
    #[error("writing {target}: {message}")]
    Sink { target: String, message: String },

    /// A failure of the Ballista cluster: its scheduler or executors cannot be reached,
    /// listen, or were lost mid-job.
    #[error("{0}")]
    Cluster(String),

    /// `mrpipe verify` found a difference (or a changed input).
    #[error("not reproduced: {0}")]
    Verify(String),

    /// Standard output was closed by its reader (e.g. `| head`); not a failure.
    #[error("broken pipe")]
    BrokenPipe,

    /// A job found data it cannot represent (e.g. a sum overflowing DECIMAL(18,2)).
    #[error("{job}: {message}")]
    Job { job: &'static str, message: String },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Wraps a write to standard output, keeping a closed pipe recognisable.
    pub fn stdout(source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::BrokenPipe { Error::BrokenPipe } else { Error::sink("stdout", source) }
    }

    /// Wraps a sink failure with the output it concerns.
    pub fn sink(target: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Sink { target: target.into(), message: message.to_string() }
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
