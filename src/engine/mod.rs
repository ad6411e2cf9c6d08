//! Engines run a job's plan over the inputs. Both read through mrpipe's own reader
//! (same typed batches, same bad-line rules) and give the same rows:
//!
//! - [`native`]: the job's [`crate::map::MapReduce`] step on rayon (map, shuffle, reduce);
//! - [`datafusion`]: the job's SQL twin (`jobs/<job>.sql`) run by Apache DataFusion.

pub mod datafusion;
pub mod native;

pub use native::map_reduce;

use crate::read::{self, BadLine, InputDigest, ReadStats};

/// Stack of every worker thread (rayon's and DataFusion's): planning and evaluating a
/// SQL expression recurses once per term, and a few hundred `OR`s must not overflow.
pub const WORKER_STACK_BYTES: usize = 64 << 20;

/// Which engine runs a job (`--engine`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// mrpipe's own map/reduce on rayon.
    #[default]
    Native,
    /// The job's SQL twin, run by Apache DataFusion on the same parsed input.
    Datafusion,
}

impl Engine {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Datafusion => "datafusion",
        }
    }
}

/// What reading the inputs found, besides rows.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Line counts.
    pub stats: ReadStats,
    /// Quarantined lines, in (file, line) order.
    pub bad_lines: Vec<BadLine>,
    /// Size and BLAKE3 of each input, in input order.
    pub digests: Vec<InputDigest>,
}

/// Splits a read's outcome into the per-task states and the summary.
pub fn split_outcome<S>(outcome: read::ReadOutcome<S>) -> (Vec<S>, ReadSummary) {
    let read::ReadOutcome { states, stats, bad_lines, digests } = outcome;
    (states, ReadSummary { stats, bad_lines, digests })
}
