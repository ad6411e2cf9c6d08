//! The native engine: runs one [`MapReduce`] step over the inputs on rayon.
//!
//! read (parallel decode) -> map + combine per task -> shuffle into P hash
//! partitions -> reduce each partition in parallel. The result is one entry per key
//! in no particular order; jobs sort it into their output's total order, which is
//! why the output does not depend on the thread count.

use rayon::prelude::*;

use crate::error::Result;
use crate::job::RunContext;
use crate::map::{Combiner, Entries, MapReduce};
use crate::read::format::Format;
use crate::read::{self, BadLine, InputDigest, ReadStats};
use crate::{reduce, shuffle};

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

/// Runs `job` over the context's inputs read as `format`; one entry per key.
pub fn map_reduce<J: MapReduce>(job: &J, format: &Format, ctx: &RunContext) -> Result<(Entries<J>, ReadSummary)> {
    ctx.progress.set_message("map");
    let outcome = read::read_fold(&ctx.inputs, format, &ctx.progress, Combiner::default, |combiner, batch| {
        job.map(&batch, combiner)
    })?;
    ctx.progress.set_message("reduce");
    let (states, summary) = split_outcome(outcome);
    let partitions = (rayon::current_num_threads() * 4).max(1);
    let tasks: Vec<_> = states.into_par_iter().map(|c| shuffle::partition(c, partitions)).collect();
    let entries = reduce::reduce_partitions(job, shuffle::transpose(tasks, partitions));
    Ok((entries, summary))
}
