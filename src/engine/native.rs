//! The native engine: runs a job's [`MapReduce`] over the inputs on rayon.
//!
//! read (parallel decode) -> `update` + combine per task -> shuffle into P hash
//! partitions -> reduce each partition in parallel (`merge`) -> `finish` -> each output
//! table sorted by its declared order ([`super::sort`]), which is why the output does
//! not depend on the thread count.
//!
//! Under `--memory-limit` every job spills alike: a map task whose groups outgrow its
//! share of the limit drains them to the shuffle's partition files
//! ([`crate::shuffle::spill`]); the partitions are then reduced a few at a time while
//! `finish` consumes them, and the sort spills runs of its own.

use rayon::prelude::*;

use super::RunContext;
use crate::error::Result;
use crate::map::{Combiner, Groups, MapReduce};
use crate::read::input::{Encoding, InputFile};
use crate::read::{self, ReadSummary, format::Format};
use crate::shuffle::spill::{SpillWriter, max_open_partitions};
use crate::table::Table;
use crate::{reduce, shuffle};

use super::sort::sort_table;

/// Runs `job` over the context's inputs read as `format`: its output tables, each in
/// its declared order, and what the read found.
pub fn run<J: MapReduce>(job: &J, format: &Format, ctx: &RunContext) -> Result<(Vec<Table>, ReadSummary)> {
    ctx.progress.set_message("map");
    let (groups, summary) = match ctx.memory_limit {
        None => {
            let (states, summary) = read_groups(job, format, ctx, None)?;
            (reduce_in_memory(job, states), summary)
        }
        Some(limit) => map_spilling(job, format, ctx, limit)?,
    };
    if summary.stopped {
        // Over the bad-line budget: the run fails on it; nothing to finish.
        return Ok((Vec::new(), summary));
    }
    ctx.progress.set_message("reduce");
    Ok((finish_sorted(job, groups, ctx)?, summary))
}

/// Runs several jobs of one kind (the periods of a backfill) over one read of the
/// inputs, in memory: each batch is folded into every job's groups, so the inputs are
/// read, checked and hashed once. Returns each job's tables, in the order of `jobs`,
/// and the read's summary. Every job's groups are held at once, so this is for runs
/// without `--memory-limit` (the runner reads once per period under one).
pub fn run_periods<J: MapReduce>(
    jobs: &[J],
    format: &Format,
    ctx: &RunContext,
) -> Result<(Vec<Vec<Table>>, ReadSummary)> {
    ctx.progress.set_message("map");
    // The reader builds the columns of the first job; all must read the same ones.
    let columns = jobs.first().and_then(J::input_columns);
    let columns = jobs.iter().all(|j| j.input_columns() == columns).then_some(columns).flatten();
    let source = read::Source { columns, ..ctx.source(format) };
    let init = || jobs.iter().map(|_| Combiner::default()).collect::<Vec<TaskGroups<J>>>();
    let outcome = read::read_fold(&source, init, |groups, batch| {
        jobs.iter().zip(groups.iter_mut()).try_for_each(|(job, groups)| job.update(&batch, groups))
    })?;
    let (tasks, summary) = outcome.split();
    if summary.stopped {
        return Ok((jobs.iter().map(|_| Vec::new()).collect(), summary));
    }
    ctx.progress.set_message("reduce");
    // Task-major to job-major: every task's groups of job i.
    let mut per_job: Vec<Vec<TaskGroups<J>>> = jobs.iter().map(|_| Vec::with_capacity(tasks.len())).collect();
    for task in tasks {
        for (groups, of_job) in task.into_iter().zip(per_job.iter_mut()) {
            of_job.push(groups);
        }
    }
    let tables = jobs
        .iter()
        .zip(per_job)
        .map(|(job, states)| finish_sorted(job, reduce_in_memory(job, states), ctx))
        .collect::<Result<Vec<_>>>()?;
    Ok((tables, summary))
}

/// The job's output tables from its final groups, each sorted by its declared order.
fn finish_sorted<'a, J: MapReduce>(job: &'a J, groups: JobGroups<'a, J>, ctx: &RunContext) -> Result<Vec<Table>> {
    job.finish(groups)?.into_iter().map(|rows| sort_table(rows, ctx.memory_limit, &ctx.temp_dir)).collect()
}

type TaskGroups<J> = Combiner<<J as MapReduce>::Key, <J as MapReduce>::Acc>;
type JobGroups<'a, J> = Groups<'a, <J as MapReduce>::Key, <J as MapReduce>::Acc>;

/// Reads the inputs, each task folding batches into its groups; a task whose groups
/// pass `spill`'s budget (bytes) drains them to the spill's partition files.
fn read_groups<J: MapReduce>(
    job: &J,
    format: &Format,
    ctx: &RunContext,
    spill: Option<(&SpillWriter, usize)>,
) -> Result<(Vec<TaskGroups<J>>, ReadSummary)> {
    let source = read::Source { columns: job.input_columns(), ..ctx.source(format) };
    let outcome = read::read_fold(&source, Combiner::default, |groups, batch| {
        job.update(&batch, groups)?;
        if let Some((spill, budget)) = spill
            && groups.bytes() > budget
        {
            spill.drain(groups)?;
        }
        Ok(())
    })?;
    Ok(outcome.split())
}

/// Shuffles the tasks' groups into hash partitions and reduces them all in memory.
fn reduce_in_memory<J: MapReduce>(job: &J, states: Vec<TaskGroups<J>>) -> JobGroups<'_, J> {
    let partitions = (rayon::current_num_threads() * 4).max(1);
    let tasks: Vec<_> = states.into_par_iter().map(|c| shuffle::partition(c, partitions)).collect();
    let groups = reduce::reduce_partitions(job, shuffle::transpose(tasks, partitions));
    Box::new(groups.into_iter().flatten().map(Ok))
}

/// The map stage under a memory limit of `limit` bytes: half of it for the map tasks'
/// groups (split evenly between threads), spilled to hash partitions sized so that
/// one per thread fits the other half when they are reduced.
fn map_spilling<'a, J: MapReduce>(
    job: &'a J,
    format: &Format,
    ctx: &RunContext,
    limit: u64,
) -> Result<(JobGroups<'a, J>, ReadSummary)> {
    let threads = rayon::current_num_threads() as u64;
    let partitions = (estimated_input_bytes(&ctx.inputs, limit)
        .saturating_mul(2 * threads)
        .div_ceil(limit.max(1))
        .clamp(threads.max(2), 4096) as usize)
        .min(max_open_partitions());
    let task_budget = usize::try_from((limit / (threads * 2)).max(1)).unwrap_or(usize::MAX);
    let buffer = usize::try_from(limit / 4 / partitions as u64).unwrap_or(usize::MAX);
    let spill = SpillWriter::new(&ctx.temp_dir, partitions, buffer);
    let (states, summary) = read_groups(job, format, ctx, Some((&spill, task_budget)))?;
    let held: usize = states.iter().map(Combiner::bytes).sum();
    if !spill.spilled() && held as u64 <= limit / 2 {
        return Ok((reduce_in_memory(job, states), summary));
    }
    for mut groups in states {
        spill.drain(&mut groups)?;
    }
    match spill.finish()? {
        Some(partitions) => Ok((reduce::spilled_groups(job, partitions, threads as usize), summary)),
        None => Ok((Box::new(std::iter::empty()), summary)),
    }
}

/// Bytes of text the inputs hold, for sizing the spill's partitions. Compressed text
/// is typically 4-8x smaller than its text; a stream's size is unknown.
fn estimated_input_bytes(inputs: &[InputFile], limit: u64) -> u64 {
    inputs
        .iter()
        .map(|f| match f.encoding {
            Encoding::Plain => f.size().unwrap_or(0),
            Encoding::Gzip | Encoding::Zstd => f.size().map_or(0, |n| n.saturating_mul(8)),
            Encoding::Stdin | Encoding::Stream => limit.saturating_mul(16),
        })
        .fold(0, u64::saturating_add)
}
