//! Progress reporting: a byte-count bar on stderr (indicatif) that appears only when
//! stderr is a terminal and the run has lasted more than a second, so cron and pipes
//! never see it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared progress of a run, updated from worker threads.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    enabled: bool,
    shown: AtomicBool,
}

impl Progress {
    /// A progress bar over `total` bytes (a spinner when unknown); `enabled` false hides it for good.
    pub fn new(total: Option<u64>, enabled: bool) -> Self {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = if total.is_some() {
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{spinner} {msg} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            started: Instant::now(),
            enabled: enabled && std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
        }
    }

    /// A progress that never draws (tests, library use).
    pub fn hidden() -> Self {
        Progress::new(None, false)
    }

    /// Sets the phase shown beside the bar.
    pub fn set_message(&self, msg: &'static str) {
        self.bar.set_message(msg);
    }

    /// Counts `bytes` more as done.
    pub fn add(&self, bytes: u64) {
        self.bar.inc(bytes);
        if self.enabled
            && !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() > Duration::from_secs(1)
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
