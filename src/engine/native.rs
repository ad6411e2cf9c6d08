//! The native engine: runs one [`MapReduce`] step over the inputs on rayon.
//!
//! read (parallel decode) -> map + combine per task -> shuffle into P hash
//! partitions -> reduce each partition in parallel. The result is one entry per key
//! in no particular order; jobs sort it into their output's total order, which is
//! why the output does not depend on the thread count.

use rayon::prelude::*;

use super::{ReadSummary, split_outcome};
use crate::error::Result;
use crate::job::RunContext;
use crate::map::{Combiner, Entries, MapReduce};
use crate::read::{self, format::Format};
use crate::{reduce, shuffle};

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
