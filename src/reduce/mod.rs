//! The `reduce` stage: one hash partition's partial aggregates (from every map task)
//! in, one final aggregate per key out. Partitions are reduced in parallel; since no
//! key spans two partitions, each reduce task may assume it sees all of a key's rows.
//!
//! In memory, [`reduce_partitions`] reduces every partition at once; after a spill,
//! [`spilled_groups`] reduces the partition files a few at a time (one per thread), so
//! only those few are in memory while the job's `finish` consumes them.

use rayon::prelude::*;

use crate::error::Result;
use crate::map::{Combiner, Groups, MapReduce};
use crate::shuffle::Shard;
use crate::shuffle::spill::SpillPartitions;

/// Merges each partition's partials into one entry per key, in parallel: each
/// partition's final groups. `partitions[p]` holds every map task's entries of
/// partition `p`. (Not flattened into one vector: that would copy every group once
/// more, and a caller that iterates frees each partition as it goes.)
pub fn reduce_partitions<J: MapReduce>(
    job: &J,
    partitions: Vec<Vec<Shard<J::Key, J::Acc>>>,
) -> Vec<Vec<(J::Key, J::Acc)>> {
    partitions
        .into_par_iter()
        .map(|mut tasks| {
            tasks.retain(|t| !t.is_empty());
            // Keys are unique within one task's output: a lone task needs no merge.
            if tasks.len() == 1 {
                return tasks.pop().into_iter().flatten().map(|e| (e.key, e.acc)).collect();
            }
            let mut merged: Combiner<J::Key, J::Acc> =
                Combiner::with_capacity(tasks.iter().map(Vec::len).max().unwrap_or(0));
            for entry in tasks.into_iter().flatten() {
                merged.merge_entry(entry, |into, acc| job.merge(into, acc));
            }
            merged.into_entries().map(|e| (e.key, e.acc)).collect()
        })
        .collect()
}

/// The groups of spilled partitions, reduced `width` partition files at a time in
/// parallel as the consumer asks for more. The files are removed as they are read.
pub fn spilled_groups<J: MapReduce>(job: &J, partitions: SpillPartitions, width: usize) -> Groups<'_, J::Key, J::Acc> {
    Box::new(SpilledGroups { job, partitions, next: 0, width: width.max(1), ready: Vec::new().into_iter() })
}

struct SpilledGroups<'a, J: MapReduce> {
    job: &'a J,
    partitions: SpillPartitions,
    next: usize,
    width: usize,
    ready: std::vec::IntoIter<(J::Key, J::Acc)>,
}

impl<J: MapReduce> Iterator for SpilledGroups<'_, J> {
    type Item = Result<(J::Key, J::Acc)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(group) = self.ready.next() {
                return Some(Ok(group));
            }
            let end = self.partitions.len().min(self.next + self.width);
            if self.next >= end {
                return None;
            }
            let (job, partitions) = (self.job, &self.partitions);
            let reduced: Result<Vec<Vec<_>>> =
                (self.next..end).into_par_iter().map(|p| partitions.reduce(p, |a, b| job.merge(a, b))).collect();
            self.next = end;
            match reduced {
                Ok(reduced) => self.ready = reduced.into_iter().flatten().collect::<Vec<_>>().into_iter(),
                Err(e) => {
                    // Stop after the first error: the rest would be incomplete anyway.
                    self.next = self.partitions.len();
                    return Some(Err(e));
                }
            }
        }
    }
}
